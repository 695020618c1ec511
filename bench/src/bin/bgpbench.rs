//! `bgpbench`: how fast a full table learnt over BGP becomes usable by the workers.
//!
//! A sender (ours: pre-encoded UPDATEs packing hundreds of prefixes each, written as
//! fast as TCP takes them) announces N distinct routes (default 1,076,806 with DPDK's
//! length distribution, fixed seed) over eBGP to the device under test in a namespace:
//!   1. a discarding sink (our own minimal speaker): the sender alone, so that it is
//!      known not to be the bottleneck;
//!   2. vrouterd (with the environment of configs/vrouterd.service, as deployed): from
//!      Established (as the sender sees it) to the moment the last route
//!      reached the FIB the workers read (`bgp.last_install_unix_ms` in its stats file,
//!      polled until all N are installed), its RSS growth per route, then churn:
//!      withdraw 10% of the table and announce it again;
//!   3. BIRD 2 installing into the namespace's kernel FIB (until its kernel protocol has
//!      exported all N; the kernel's table is counted once at the end to confirm).
//!
//! `cargo run --release -p bench --bin bgpbench -- [--routes N] [--json]` (as root; needs
//! vrouterd built: `cargo build --release -p vrouter`, and bird2).

use bench::bgpfeed::{
    connect, encode_announce, encode_withdraw, now_us, open_message, read_message, table,
    vrouter_stats, vrouterd_bgp, wait_installed, SENDER_AS,
};
use bench::netns::{self, Netns};
use clap::Parser;
use control::bgp::wire;
use ipnet::Ipv4Net;
use serde::Serialize;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "BGP full-table convergence: vrouterd vs BIRD into the kernel")]
struct Opts {
    /// Distinct routes to announce (DPDK's prefix-length distribution).
    #[arg(long, default_value_t = 1_076_806)]
    routes: usize,
    #[arg(long, default_value_t = fib::synth::DEFAULT_SEED)]
    seed: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// vrouterd binary (default: next to this one).
    #[arg(long)]
    vrouterd: Option<PathBuf>,
    /// Skip the BIRD baseline.
    #[arg(long)]
    no_bird: bool,
}

#[derive(Serialize)]
struct Report {
    routes: usize,
    /// Prefixes drawn from DPDK's distribution to get `routes` distinct valid ones.
    drawn: usize,
    updates: usize,
    sender_alone_s: f64,
    vrouter_converge_s: f64,
    bird_kernel_converge_s: Option<f64>,
    ratio: Option<f64>,
    vrouter_rss_bytes: usize,
    vrouter_rss_before_bytes: usize,
    vrouter_rss_peak_bytes: usize,
    vrouter_bytes_per_route: f64,
    vrouter_fib_bytes_per_route: f64,
    /// The environment vrouterd ran with (the systemd unit's).
    vrouter_environment: Vec<String>,
    bird_rss_bytes: Option<usize>,
    bird_kernel_routes: Option<usize>,
    churn_updates_per_s: f64,
}

const DUT: &str = "10.97.9.1";
const DUT_ADDR: &str = "10.97.9.1:179";
const SENDER: &str = "10.97.9.2";
const DUT_AS: u32 = 64512;

fn fail(msg: &str) -> ! {
    eprintln!("bgpbench: {msg}");
    std::process::exit(1);
}

/// Wall-clock microseconds (the daemons' timestamps are wall-clock too).
/// The sender alone: a sink that completes the handshake and discards; seconds from
/// Established to the last byte read by the sink.
fn sender_alone(dut: &Netns, snd: &Netns, updates: &[u8]) -> io::Result<f64> {
    let listener = netns::in_netns(dut.name(), || TcpListener::bind(format!("{DUT}:179")))?;
    let total = updates.len();
    let sink = std::thread::spawn(move || -> io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = Vec::new();
        let _open = read_message(&mut s, &mut buf)?;
        s.write_all(&open_message(DUT_AS, DUT.parse().unwrap()))?;
        s.write_all(&wire::keepalive())?;
        let _ka = read_message(&mut s, &mut buf)?;
        let mut got = buf.len();
        let mut chunk = vec![0u8; 1 << 20];
        while got < total {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(now_us())
    });
    let mut s = connect(
        snd.name(),
        DUT_ADDR.parse().unwrap(),
        SENDER.parse().unwrap(),
    )?;
    s.stream.write_all(updates)?;
    let end = sink
        .join()
        .map_err(|_| io::Error::other("sink panicked"))??;
    Ok((end - s.established_us) as f64 / 1e6)
}

fn rss_of(pid: u32) -> usize {
    bench::rss_bytes_of(&format!("/proc/{pid}/status"))
}

/// The FIB's bytes (lookup structure and writer's store) in vrouterd's stats file.
fn vrouter_fib_bytes(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|j| j["bgp"]["fib_bytes"].as_u64())
        .unwrap_or(0) as usize
}

/// The environment the shipped systemd unit gives vrouterd (its `Environment=` lines):
/// the daemon is measured as deployed.
fn unit_environment() -> Vec<(String, String)> {
    include_str!("../../../configs/vrouterd.service")
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct VrouterRun {
    converge_s: f64,
    rss_before: usize,
    rss_after: usize,
    /// Growth of the FIB's own bytes with the table.
    fib_bytes: usize,
    rss_peak: usize,
    churn_updates_per_s: f64,
}

fn run_vrouterd(
    bin: &Path,
    dut: &Netns,
    snd: &Netns,
    prefixes: &[Ipv4Net],
    updates: &[u8],
) -> io::Result<VrouterRun> {
    let dir = std::env::temp_dir().join(format!("bgpbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("vrouter.toml");
    let stats = dir.join("stats.json");
    let dir_s = dir.display();
    std::fs::write(
        &config,
        format!(
            r#"node_name = "bench"
state_dir = "{dir_s}/state"
api = {{ socket = "{dir_s}/api.sock" }}
node_ips = ["{DUT}/24"]
[[uplinks]]
name = "dut0"
[workers]
cores = [1]
{}"#,
            vrouterd_bgp(DUT_AS, DUT_ADDR, SENDER)
        ),
    )?;
    let child = Command::new("ip")
        .envs(unit_environment())
        .args(["netns", "exec", dut.name()])
        .arg(bin)
        .args(["--config"])
        .arg(&config)
        .args(["--stats-file"])
        .arg(&stats)
        .args(["--stats-interval-ms", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.join("vrouterd.log"),
        )?))
        .spawn()?;
    let child = Killed(child);
    let start = Instant::now();
    while vrouter_stats(&stats).is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(io::Error::other(format!(
                "vrouterd did not start; see {}",
                dir.join("vrouterd.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // `ip netns exec` execs vrouterd: the child's pid is vrouterd's.
    let pid = child.0.id();
    let rss_before = rss_of(pid);
    let fib_before = vrouter_fib_bytes(&stats);
    let mut s = connect(
        snd.name(),
        DUT_ADDR.parse().unwrap(),
        SENDER.parse().unwrap(),
    )?;
    s.stream.write_all(updates)?;
    let at = wait_installed(
        &stats,
        prefixes.len(),
        Duration::from_secs(300),
        &mut || Ok(()),
    )?;
    let converge_s = at.saturating_sub(s.established_us) as f64 / 1e6;
    std::thread::sleep(Duration::from_millis(200));
    let rss_after = rss_of(pid);
    let rss_peak = bench::status_bytes(&format!("/proc/{pid}/status"), "VmHWM:");
    let fib_after = vrouter_fib_bytes(&stats);

    // Churn: withdraw 10% of the table, then announce it again.
    let tenth = &prefixes[..prefixes.len() / 10];
    let withdraw = encode_withdraw(tenth);
    let announce = encode_announce(tenth, SENDER.parse().unwrap());
    let t0 = now_us();
    s.stream.write_all(&withdraw)?;
    wait_installed(
        &stats,
        prefixes.len() - tenth.len(),
        Duration::from_secs(120),
        &mut || Ok(()),
    )?;
    s.stream.write_all(&announce)?;
    let t1 = wait_installed(
        &stats,
        prefixes.len(),
        Duration::from_secs(120),
        &mut || Ok(()),
    )?;
    let churn_s = (t1.saturating_sub(t0)).max(1) as f64 / 1e6;
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(VrouterRun {
        converge_s,
        rss_before,
        rss_after,
        fib_bytes: fib_after.saturating_sub(fib_before),
        rss_peak,
        churn_updates_per_s: 2.0 * tenth.len() as f64 / churn_s,
    })
}

/// BIRD's kernel protocol: routes exported to the kernel so far.
fn bird_exported(ctl: &Path, ns: &str) -> Option<usize> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "birdc", "-s"])
        .arg(ctl)
        .args(["show", "protocols", "all", "kern1"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Routes:         0 imported, 1076000 exported, 0 preferred"
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Routes:"))?;
    let exported = line.split(',').find(|p| p.contains("exported"))?;
    exported.split_whitespace().next()?.parse().ok()
}

fn kernel_routes(ns: &str) -> usize {
    Command::new("ip")
        .args(["-n", ns, "-4", "route", "show", "proto", "bird"])
        .output()
        .map(|o| o.stdout.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

fn run_bird(
    dut: &Netns,
    snd: &Netns,
    prefixes: &[Ipv4Net],
    updates: &[u8],
) -> io::Result<(f64, usize, usize)> {
    let dir = std::env::temp_dir().join(format!("bgpbench-bird-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("bird.conf");
    let ctl = dir.join("bird.ctl");
    let pidfile = dir.join("bird.pid");
    std::fs::write(
        &conf,
        format!(
            r#"router id {DUT};
protocol device {{ }}
protocol direct {{ ipv4; interface "dut0"; }}
protocol kernel kern1 {{ ipv4 {{ import none; export all; }}; }}
protocol bgp sender {{
  local {DUT} as {DUT_AS};
  neighbor {SENDER} as {SENDER_AS};
  passive on;
  hold time 240;
  ipv4 {{ import all; export none; }};
}}
"#
        ),
    )?;
    let st = Command::new("ip")
        .args(["netns", "exec", dut.name(), "bird", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(&ctl)
        .arg("-P")
        .arg(&pidfile)
        .status()?;
    if !st.success() {
        return Err(io::Error::other("bird did not start"));
    }
    // BIRD writes its pid file once it runs in the background.
    let mut pid = None;
    for _ in 0..100 {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = pid.ok_or_else(|| io::Error::other("bird wrote no pid file"))?;
    let mut s = connect(
        snd.name(),
        DUT_ADDR.parse().unwrap(),
        SENDER.parse().unwrap(),
    )?;
    s.stream.write_all(updates)?;
    let end = Instant::now() + Duration::from_secs(120);
    let done_ms = loop {
        // (Our table, plus nothing else: the direct route is not exported to the kernel.)
        let seen = bird_exported(&ctl, dut.name());
        if seen.is_some_and(|n| n >= prefixes.len()) {
            break now_us();
        }
        if Instant::now() > end || netns::interrupted() {
            return Err(io::Error::other(format!(
                "BIRD did not export the whole table in time (kernel protocol: {seen:?} of {})",
                prefixes.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rss = rss_of(pid);
    let in_kernel = kernel_routes(dut.name());
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(((done_ms - s.established_us) as f64 / 1e6, rss, in_kernel))
}

fn main() {
    let opts = Opts::parse();
    if !netns::is_root() {
        fail("must run as root (namespaces)");
    }
    let bin = opts.vrouterd.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("vrouterd")))
            .unwrap_or_else(|| PathBuf::from("target/release/vrouterd"))
    });
    if !bin.exists() {
        fail(&format!(
            "{} not found: cargo build --release -p vrouter",
            bin.display()
        ));
    }
    netns::install_interrupt_handler().unwrap_or_else(|e| fail(&e.to_string()));
    netns::remove_stale("bgpb");
    let (prefixes, drawn) = table(opts.routes, opts.seed);
    let updates = encode_announce(&prefixes, SENDER.parse().unwrap());
    let messages = {
        let mut n = 0;
        let mut at = 0;
        while let Ok(Some(len)) = wire::frame_len(&updates[at..]) {
            n += 1;
            at += len;
        }
        n
    };
    eprintln!(
        "bgpbench: {} distinct unicast routes (of {drawn} drawn with DPDK's distribution) in {} UPDATEs ({:.1} MB)",
        prefixes.len(),
        messages,
        updates.len() as f64 / 1e6
    );
    let setup = || -> io::Result<(Netns, Netns)> {
        let dut = Netns::add(&format!("bgpb{}-dut", std::process::id()))?;
        let snd = Netns::add(&format!("bgpb{}-snd", std::process::id()))?;
        netns::veth("dut0", dut.name(), "snd0", snd.name())?;
        dut.ip(&["addr", "add", &format!("{DUT}/24"), "dev", "dut0"])?;
        snd.ip(&["addr", "add", &format!("{SENDER}/24"), "dev", "snd0"])?;
        dut.ip(&["link", "set", "dut0", "up"])?;
        snd.ip(&["link", "set", "snd0", "up"])?;
        Ok((dut, snd))
    };
    // Each run on a fresh topology, torn down (and what runs in it killed) before the
    // next one or the error is reported.
    let in_topology = |what: &str, f: &dyn Fn(&Netns, &Netns) -> io::Result<()>| {
        let r = setup().and_then(|(dut, snd)| f(&dut, &snd));
        if let Err(e) = r {
            fail(&format!("{what}: {e}"));
        }
    };
    let sender_alone_s = std::cell::Cell::new(0.0);
    in_topology("sender alone", &|dut, snd| {
        sender_alone_s.set(sender_alone(dut, snd, &updates)?);
        Ok(())
    });
    let sender_alone_s = sender_alone_s.get();
    eprintln!("bgpbench: sender alone {sender_alone_s:.3} s");
    let vr = std::cell::RefCell::new(None);
    in_topology("vrouterd", &|dut, snd| {
        *vr.borrow_mut() = Some(run_vrouterd(&bin, dut, snd, &prefixes, &updates)?);
        Ok(())
    });
    let v = vr.into_inner().expect("set by the run");
    eprintln!("bgpbench: vrouterd {:.3} s", v.converge_s);
    let bird = if opts.no_bird {
        None
    } else {
        let b = std::cell::Cell::new(None);
        in_topology("bird", &|dut, snd| {
            b.set(Some(run_bird(dut, snd, &prefixes, &updates)?));
            Ok(())
        });
        let b = b.get();
        if let Some(b) = b {
            eprintln!("bgpbench: BIRD into the kernel {:.3} s", b.0);
        }
        b
    };
    let per_route = v.rss_after.saturating_sub(v.rss_before) as f64 / prefixes.len() as f64;
    let r = Report {
        routes: prefixes.len(),
        drawn,
        updates: messages,
        sender_alone_s,
        vrouter_converge_s: v.converge_s,
        bird_kernel_converge_s: bird.map(|b| b.0),
        ratio: bird.map(|b| b.0 / v.converge_s.max(1e-3)),
        vrouter_rss_bytes: v.rss_after,
        vrouter_rss_before_bytes: v.rss_before,
        vrouter_rss_peak_bytes: v.rss_peak,
        vrouter_bytes_per_route: per_route,
        vrouter_fib_bytes_per_route: v.fib_bytes as f64 / prefixes.len() as f64,
        vrouter_environment: unit_environment()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        bird_rss_bytes: bird.map(|b| b.1),
        bird_kernel_routes: bird.map(|b| b.2),
        churn_updates_per_s: v.churn_updates_per_s,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
        return;
    }
    println!("bgpbench: {} distinct IPv4 routes (DPDK's length distribution, seed {}), {} UPDATEs, eBGP from one sender", r.routes, opts.seed, r.updates);
    println!();
    println!("| receiver | seconds from Established to all routes usable | RSS |");
    println!("|---|---|---|");
    println!(
        "| sender alone (discarding sink) | {:.3} | — |",
        r.sender_alone_s
    );
    println!(
        "| vrouterd (FIB read by workers) | {:.3} | {} ({} before the routes; {:.1} B/route) |",
        r.vrouter_converge_s,
        bench::mb(r.vrouter_rss_bytes),
        bench::mb(r.vrouter_rss_before_bytes),
        per_route
    );
    if let Some(b) = bird {
        println!(
            "| BIRD 2 into the kernel FIB | {:.3} | {} (kernel table: {} routes) |",
            b.0,
            bench::mb(b.1),
            b.2
        );
        println!();
        println!(
            "ratio (BIRD / vrouterd): {:.2} (target >= 3)",
            r.ratio.unwrap()
        );
    }
    println!(
        "memory per route: {per_route:.1} B (target <= 100, FIB included; the FIB's own share {:.1} B)",
        r.vrouter_fib_bytes_per_route
    );
    println!(
        "churn (withdraw 10%, announce again): {:.0} updates/s",
        r.churn_updates_per_s
    );
}
