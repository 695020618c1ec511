//! pktgen: the project's packet generator and sink as a tool (root).
//!
//! `pktgen send --interface IF --dst-mac MAC --src IP --dst IP [--netns NS] [--size 64..1500]
//! [--flows N] [--rate PPS] [--engine xdp-live|afxdp] [--stamp] [--seconds S] [--json]`
//! sends UDP over IPv4 or IPv6 (the addresses decide) and prints the frames sent per
//! second. `--rate` paces the AF_XDP engine (chosen for you when a rate is set); without
//! it frames go as fast as the interface takes them (XDP live frames by default).
//! `--stamp` puts the send time in each frame's last 8 bytes.
//!
//! `pktgen sink --interface IF [--netns NS] [--seconds S] [--probe] [--json]` drops
//! everything arriving on IF with an XDP program and prints the frames received per
//! second (the interface's rx_packets). `--probe` also counts by destination MAC and,
//! for stamped frames, one-way latency (p50 / p99 / p99.9 in µs; sender and sink on the
//! same host, so the same monotonic clock).

use bench::bpf::{self, ProbeSink};
use bench::netns::{self, DevStats};
use bench::pktgen::{Engine, GenConfig, Generator};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "AF_XDP / XDP live-frames packet generator and XDP sink")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send UDP frames out of an interface.
    Send(SendOpts),
    /// Count (and drop) what arrives on an interface.
    Sink(SinkOpts),
}

#[derive(Parser)]
struct SendOpts {
    #[arg(long)]
    interface: String,
    /// Network namespace (`ip netns` name) the interface is in.
    #[arg(long)]
    netns: Option<String>,
    /// Source MAC (default: the interface's).
    #[arg(long)]
    src_mac: Option<String>,
    #[arg(long)]
    dst_mac: String,
    #[arg(long)]
    src: IpAddr,
    #[arg(long)]
    dst: IpAddr,
    /// Frame length without FCS, 64..=1500.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows: source ports 10000.. (in turn with AF_XDP, at random with live frames).
    #[arg(long, default_value_t = 256)]
    flows: u16,
    #[arg(long, default_value_t = 9)]
    dst_port: u16,
    /// Frames per second (0: as fast as possible). Needs, and selects, the AF_XDP engine.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// xdp-live (XDP live frames; the fastest on veth) or afxdp (AF_XDP txonly).
    #[arg(long, value_parser = ["xdp-live", "afxdp"])]
    engine: Option<String>,
    /// Send time in each frame's last 8 bytes (for `pktgen sink --probe`).
    #[arg(long)]
    stamp: bool,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Core to pin the generator to.
    #[arg(long)]
    core: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Parser)]
struct SinkOpts {
    #[arg(long)]
    interface: String,
    #[arg(long)]
    netns: Option<String>,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Count by destination MAC and measure the latency of stamped frames.
    #[arg(long)]
    probe: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SendReport {
    interface: String,
    engine: &'static str,
    frame_bytes: usize,
    flows: u16,
    rate_pps: u64,
    seconds: f64,
    sent: u64,
    sent_pps: f64,
    per_second_pps: Vec<f64>,
}

#[derive(Serialize)]
struct SinkReport {
    interface: String,
    seconds: f64,
    received: u64,
    rx_pps: f64,
    per_second_pps: Vec<f64>,
    mean_frame_bytes: f64,
    xdp_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stamped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_p999_us: Option<f64>,
    /// Frames per destination MAC (last byte, hex), when probing.
    #[serde(skip_serializing_if = "Option::is_none")]
    by_dst_mac: Option<std::collections::BTreeMap<String, u64>>,
}

fn fail(msg: &str) -> ! {
    eprintln!("pktgen: {msg}");
    std::process::exit(1);
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC address {s:?}"))?;
    parts
        .try_into()
        .map_err(|_| format!("bad MAC address {s:?} (six bytes)"))
}

/// The interface's MAC, from `ip -o link show` (in its namespace).
fn interface_mac(netns: Option<&str>, ifname: &str) -> Result<[u8; 6], String> {
    let mut cmd = std::process::Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-o", "link", "show", "dev", ifname])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| {
            format!("no MAC address for {ifname} (is it an Ethernet interface here?)")
        })?;
    parse_mac(mac)
}

fn seconds(s: f64) -> Duration {
    if !(0.1..=86_400.0).contains(&s) {
        fail("--seconds must be between 0.1 and 86400");
    }
    Duration::from_secs_f64(s)
}

/// For `duration` (or until Ctrl-C): the rate of `count` (which starts at `first`)
/// about every second, printed as it goes with `label` unless None.
fn per_second(
    duration: Duration,
    label: Option<&str>,
    first: u64,
    mut count: impl FnMut() -> u64,
) -> Vec<f64> {
    let start = Instant::now();
    let (mut last, mut t_last) = (first, start);
    let mut rates = Vec::new();
    while start.elapsed() < duration && !netns::interrupted() {
        let step = Duration::from_secs(1).min(duration.saturating_sub(start.elapsed()));
        std::thread::sleep(step.max(Duration::from_millis(10)));
        let (n, t) = (count(), Instant::now());
        rates.push((n - last) as f64 / (t - t_last).as_secs_f64());
        if let Some(label) = label {
            eprintln!("{label} {:>12.0} pps", rates.last().unwrap());
        }
        (last, t_last) = (n, t);
    }
    rates
}

fn send(o: SendOpts) {
    if !(64..=1500).contains(&o.size) {
        fail(&format!("--size {} (64..=1500)", o.size));
    }
    let engine = match (o.engine.as_deref(), o.rate) {
        (Some("xdp-live"), r) if r > 0 => {
            fail("--rate needs the AF_XDP engine (live frames cannot be paced)")
        }
        (Some("xdp-live"), _) => Engine::XdpLive,
        (Some(_), _) => Engine::AfXdp,
        (None, 0) => Engine::XdpLive,
        (None, _) => Engine::AfXdp,
    };
    let duration = seconds(o.seconds);
    let dst_mac = parse_mac(&o.dst_mac).unwrap_or_else(|e| fail(&e));
    let src_mac = match &o.src_mac {
        Some(m) => parse_mac(m),
        None => interface_mac(o.netns.as_deref(), &o.interface),
    }
    .unwrap_or_else(|e| fail(&e));
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let mut cfg = GenConfig::udp64(&o.interface, src_mac, dst_mac, v4(o.src), v4(o.dst));
    match (o.src, o.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => cfg.v6 = Some((s, d)),
        (IpAddr::V4(_), IpAddr::V4(_)) => {}
        _ => fail("--src and --dst must be of the same family"),
    }
    cfg.engine = engine;
    cfg.netns = o.netns.clone();
    cfg.core = o.core;
    cfg.frame_len = o.size;
    cfg.flows = o.flows.max(1);
    cfg.dst_port = o.dst_port;
    cfg.set_rate(o.rate);
    cfg.stamp = o.stamp;
    netns::install_interrupt_handler().unwrap_or_else(|e| fail(&e.to_string()));
    let gen = Generator::start(cfg).unwrap_or_else(|e| fail(&e.to_string()));
    let start = Instant::now();
    let per_second = per_second(duration, (!o.json).then_some("sent"), 0, || gen.sent());
    let elapsed = start.elapsed().as_secs_f64();
    let stats = gen.stop().unwrap_or_else(|e| fail(&e.to_string()));
    let r = SendReport {
        interface: o.interface,
        engine: engine.name(),
        frame_bytes: o.size,
        flows: o.flows,
        rate_pps: o.rate,
        seconds: elapsed,
        sent: stats.sent,
        sent_pps: stats.sent as f64 / elapsed,
        per_second_pps: per_second,
    };
    if o.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
    } else {
        println!(
            "sent {} frames of {} B in {:.1} s: {:.0} pps ({})",
            r.sent, r.frame_bytes, r.seconds, r.sent_pps, r.engine
        );
    }
}

fn sink(o: SinkOpts) {
    let duration = seconds(o.seconds);
    netns::install_interrupt_handler().unwrap_or_else(|e| fail(&e.to_string()));
    let ns = o.netns.clone();
    let ifname = o.interface.clone();
    let probe = o.probe;
    // The program and link are made inside the namespace; fds work from anywhere after.
    let attach = move || -> std::io::Result<_> {
        let probe_sink = if probe { Some(ProbeSink::new()?) } else { None };
        let (link, native) = match &probe_sink {
            Some(p) => bpf::attach_xdp(&p.prog, &ifname)?,
            None => bpf::attach_action(&ifname, bpf::XDP_DROP)?,
        };
        Ok((probe_sink, link, native))
    };
    let (probe_sink, _link, native) = match &ns {
        Some(ns) => netns::in_netns(ns, attach),
        None => attach(),
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut stats = match &ns {
        Some(ns) => DevStats::open(ns),
        None => DevStats::open_current(),
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    let read = |s: &mut DevStats| {
        s.read(&o.interface)
            .unwrap_or_else(|e| fail(&e.to_string()))
    };
    let first = read(&mut stats);
    let probe_first = probe_sink
        .as_ref()
        .map(|p| p.read().unwrap_or_else(|e| fail(&e.to_string())));
    let start = Instant::now();
    let per_second = per_second(
        duration,
        (!o.json).then_some("received"),
        first.rx_packets,
        || read(&mut stats).rx_packets,
    );
    let end = read(&mut stats);
    let elapsed = start.elapsed().as_secs_f64();
    let received = end.rx_packets - first.rx_packets;
    let probed = match (&probe_sink, &probe_first) {
        (Some(p), Some(first)) => Some(
            p.read()
                .unwrap_or_else(|e| fail(&e.to_string()))
                .since(first),
        ),
        _ => None,
    };
    let r = SinkReport {
        interface: o.interface.clone(),
        seconds: elapsed,
        received,
        rx_pps: received as f64 / elapsed,
        per_second_pps: per_second,
        mean_frame_bytes: (end.rx_bytes - first.rx_bytes) as f64 / received.max(1) as f64,
        xdp_mode: if native { "native" } else { "generic" },
        stamped: probed.as_ref().map(|p| p.stamped()),
        latency_p50_us: probed.as_ref().and_then(|p| p.latency_us(50.0)),
        latency_p99_us: probed.as_ref().and_then(|p| p.latency_us(99.0)),
        latency_p999_us: probed.as_ref().and_then(|p| p.latency_us(99.9)),
        by_dst_mac: probed.as_ref().map(|p| {
            p.by_mac
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| (format!("{i:02x}"), n))
                .collect()
        }),
    };
    if o.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
    } else {
        println!(
            "received {} frames ({:.1} B mean) in {:.1} s: {:.0} pps",
            r.received, r.mean_frame_bytes, r.seconds, r.rx_pps
        );
        if let (Some(p50), Some(p99)) = (r.latency_p50_us, r.latency_p99_us) {
            println!(
                "latency of {} stamped frames: p50 {p50:.1} us, p99 {p99:.1} us",
                r.stamped.unwrap_or(0)
            );
        }
    }
}

fn main() {
    if !netns::is_root() {
        fail("needs root (XDP programs and AF_XDP sockets)");
    }
    match Cli::parse().cmd {
        Cmd::Send(o) => send(o),
        Cmd::Sink(o) => sink(o),
    }
}
