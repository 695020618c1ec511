//! `chaosbench`: faults injected into a vrouterd cluster under traffic, measured.
//!
//! Three vrouterd nodes on a 3-member etcd (Calico's datastore) with a BIRD 2 route
//! reflector (graceful restart both ways), four veth pods (a1 and b1 on node 1, a2 on
//! node 2, a3 on node 3), sequence-numbered UDP probes (see `bench::probe`) — a1 -> a2
//! and a3 -> a1 at 10 kpps, b1 -> a1 (same node) at 1 kHz — and an iperf3 TCP stream
//! a1 -> a2. Each event is measured over its window (from just before the fault until
//! the flows it touched flow again, plus a settling time): per flow the packets lost, the
//! loss in ms (lost / rate), the longest silence (outage) and the reordered packets;
//! iperf3's 0.5 s intervals over the window; and evidence that the fault did what it
//! says (the process gone, the session down, the routes kept). Scenarios:
//!   reload   SIGHUP to node 1 (nothing in its file changed);
//!   churn    tap endpoints added and removed on nodes 1 and 3 through the API;
//!   etcd     one etcd member killed (SIGKILL) and restarted;
//!   rr       BIRD killed (SIGKILL) and restarted: the nodes keep its routes (GR);
//!   flap     node 3's uplink down for --flap-ms and up again;
//!   kill9    vrouterd of node 2 killed with SIGKILL and started again after
//!            --restart-sec (RestartSec of configs/vrouterd.service): nodes 1 and 3 keep
//!            its routes (BIRD keeps them stale) while it is away;
//!   restart  node 1 killed with SIGKILL and started at once, then stopped with SIGTERM
//!            and started at once (a planned restart): the same-node 1 kHz stream's
//!            outage is the restart figure.
//! Figures are reported, not judged (tests/e2e/chaos.sh judges them). With `--soak M`
//! the cluster runs M minutes of churn (endpoints, static routes, BGP peers, SIGHUP)
//! under the same traffic, sampling each vrouterd (see `bench::soak`).
//!
//! `cargo build -p vrouter -p bench && sudo target/debug/chaosbench [--scenario all]
//! [--soak MINUTES] [--quick] [--json] [--out PATH]` (root; etcd, bird2, iperf3).

use bench::chaos::{block_of, Iperf, IperfWindow, Testbed};
use bench::netns;
use bench::probe::{FlowSpec, Mark, Probe, Window};
use bench::soak::{self, Sample, Trend};
use clap::Parser;
use control::api::pb;
use serde::Serialize;
use serde_json::{json, Value};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 7] = ["reload", "churn", "etcd", "rr", "flap", "kill9", "restart"];

#[derive(Parser)]
#[command(about = "Faults under traffic on a 3-node vrouterd cluster: loss and outage per event")]
struct Opts {
    /// all, or a comma-separated list of: reload, churn, etcd, rr, flap, kill9, restart.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Run this many minutes of churn under traffic instead, sampling every vrouterd.
    #[arg(long)]
    soak: Option<f64>,
    /// Shorter pauses and fewer churn rounds (the smoke test).
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rate of the two cross-node probes (packets/s).
    #[arg(long, default_value_t = 10_000)]
    pps: u32,
    /// Rate of the same-node probe the restart figure is read from (packets/s).
    #[arg(long, default_value_t = 1_000)]
    restart_pps: u32,
    /// Seconds between the kill and the start in the kill9 scenario (systemd's
    /// RestartSec in configs/vrouterd.service).
    #[arg(long, default_value_t = 2.0)]
    restart_sec: f64,
    /// How long the uplink stays down in the flap scenario (ms).
    #[arg(long, default_value_t = 1000)]
    flap_ms: u64,
    /// iperf3's rate (Mbit/s): bounded, so that 2 cores keep up with the probes.
    #[arg(long, default_value_t = 30)]
    iperf_mbps: u32,
    /// Seconds between soak samples.
    #[arg(long, default_value_t = 5.0)]
    sample_s: f64,
    /// vrouterd binary (default: vrouterd beside this binary).
    #[arg(long)]
    vrouterd: Option<PathBuf>,
    /// Copy the nodes' and BIRD's logs and configurations here at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

/// One flow over an event's window, and whether the event's fault lies on its path.
#[derive(Serialize)]
struct FlowResult {
    #[serde(flatten)]
    w: Window,
    through_fault: bool,
}

#[derive(Serialize)]
struct Event {
    event: String,
    what: String,
    /// Seconds since the start of the traffic.
    started_s: f64,
    window_ms: f64,
    /// Over every flow.
    lost_packets: u64,
    loss_ms: f64,
    outage_ms: f64,
    reordered: u64,
    /// Over the flows whose path the fault is not on.
    lost_packets_other_flows: u64,
    /// Whether every flow was flowing just before the fault.
    healthy_before: bool,
    flows: Vec<FlowResult>,
    iperf: IperfWindow,
    evidence: Value,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    nodes: usize,
    pps: u32,
    restart_pps: u32,
    restart_sec: f64,
    quick: bool,
    events: Vec<Event>,
    /// The restart figures: the same-node stream's outage (ms) and loss.
    restart_kill9_outage_ms: Option<f64>,
    restart_kill9_lost: Option<u64>,
    restart_planned_outage_ms: Option<f64>,
    restart_planned_lost: Option<u64>,
    /// iperf3 still connected at the end.
    iperf_survived: bool,
    iperf_intervals: usize,
    probe_send_errors: u64,
    probe_sender_stalls: u64,
    soak: Option<SoakReport>,
    setup_s: f64,
    total_s: f64,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct SoakReport {
    minutes: f64,
    rounds: usize,
    round_errors: Vec<String>,
    trends: Vec<Trend>,
    /// Each node's counters once the traffic stopped: the balance must be exact.
    final_balance: Vec<(usize, soak::Balance)>,
    counters_consistent: bool,
    /// The probes over the whole soak.
    flows: Vec<Window>,
    samples: Vec<Sample>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn say(msg: &str) {
    eprintln!("chaosbench: {msg}");
}

fn sleep(d: Duration) -> io::Result<()> {
    netns::sleep_interruptible(d)
}

/// The running traffic.
struct Traffic {
    probes: Vec<Probe>,
    iperf: Iperf,
}

impl Traffic {
    fn marks(&self) -> Vec<Mark> {
        self.probes.iter().map(Probe::mark).collect()
    }

    /// Until every probe (or those named) delivers again, at most `within`.
    fn wait_flowing(&self, names: &[&str], within: Duration) -> io::Result<Duration> {
        let t = Instant::now();
        loop {
            let all = self
                .probes
                .iter()
                .filter(|p| names.is_empty() || names.contains(&p.name()))
                .all(|p| p.flowing(Duration::from_millis(20)));
            if all {
                return Ok(t.elapsed());
            }
            if t.elapsed() > within {
                return Err(other(format!(
                    "flows {names:?} not delivering within {within:?}"
                )));
            }
            sleep(Duration::from_millis(20))?;
        }
    }
}

struct Ctx {
    o: Opts,
    tb: Testbed,
    tr: Traffic,
    settle: Duration,
}

/// The pods' flows: cross-node through node 2, cross-node not through node 2, same node.
const N1_N2: &str = "a1>a2";
const N3_N1: &str = "a3>a1";
const LOCAL: &str = "b1>a1";

impl Ctx {
    /// Measure one event: `fault` injects it (and waits for what it waits for); flows
    /// named in `through` are those whose path the fault lies on.
    fn event(
        &mut self,
        name: &str,
        what: &str,
        through: &[&str],
        fault: impl FnOnce(&mut Ctx, &mut Value) -> io::Result<()>,
    ) -> Event {
        say(&format!("event {name}: {what}"));
        let healthy_before = self.tr.wait_flowing(&[], Duration::from_secs(30)).is_ok();
        let m0 = self.tr.marks();
        let started_s = self.tb.epoch.elapsed().as_secs_f64();
        let mut evidence = json!({});
        let mut errors = Vec::new();
        if let Err(e) = fault(self, &mut evidence) {
            errors.push(e.to_string());
        }
        if let Err(e) = sleep(self.settle) {
            errors.push(e.to_string());
        }
        let m1 = self.tr.marks();
        let ended_s = self.tb.epoch.elapsed().as_secs_f64();
        // Stragglers of the window arrive.
        std::thread::sleep(Duration::from_millis(300));
        let flows: Vec<FlowResult> = self
            .tr
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| FlowResult {
                w: p.window(m0[i], m1[i]),
                through_fault: through.contains(&p.name()),
            })
            .collect();
        let e = Event {
            event: name.to_string(),
            what: what.to_string(),
            started_s,
            window_ms: (ended_s - started_s) * 1000.0,
            lost_packets: flows.iter().map(|f| f.w.lost_packets).sum(),
            loss_ms: flows.iter().map(|f| f.w.loss_ms).fold(0.0, f64::max),
            outage_ms: flows.iter().map(|f| f.w.outage_ms).fold(0.0, f64::max),
            reordered: flows.iter().map(|f| f.w.reordered).sum(),
            lost_packets_other_flows: flows
                .iter()
                .filter(|f| !f.through_fault)
                .map(|f| f.w.lost_packets)
                .sum(),
            healthy_before,
            iperf: self.tr.iperf.window(started_s, ended_s),
            flows,
            evidence,
            errors,
        };
        for f in &e.flows {
            say(&format!(
                "  {:6} lost {:6} ({:8.1} ms), outage {:8.1} ms, reordered {}{}",
                f.w.flow,
                f.w.lost_packets,
                f.w.loss_ms,
                f.w.outage_ms,
                f.w.reordered,
                if f.through_fault {
                    "  (through the fault)"
                } else {
                    ""
                }
            ));
        }
        for err in &e.errors {
            say(&format!("  error: {err}"));
        }
        e
    }

    /// Whether nodes `on` hold a BGP route to `block`.
    fn routes_held(&self, on: &[usize], block: &str) -> io::Result<bool> {
        for &n in on {
            if !self.tb.bgp_routes(n, block)?.iter().any(|r| r == block) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sample `routes_held` every 200 ms for `d`: (samples, samples with the routes).
    fn routes_kept_for(&self, on: &[usize], block: &str, d: Duration) -> io::Result<(u32, u32)> {
        let end = Instant::now() + d;
        let (mut n, mut kept) = (0, 0);
        while Instant::now() < end {
            n += 1;
            kept += u32::from(self.routes_held(on, block)?);
            sleep(Duration::from_millis(200))?;
        }
        Ok((n, kept))
    }
}

fn log_count(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.matches(needle).count())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn reload(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    let log = cx.tb.c.node(1).log.clone();
    let before = log_count(&log, "reloaded (SIGHUP)");
    let pid = cx.tb.pid(1)?;
    netns::signal(pid, libc::SIGHUP)?;
    let t = Instant::now();
    while log_count(&log, "reloaded (SIGHUP)") == before && t.elapsed() < Duration::from_secs(10) {
        sleep(Duration::from_millis(20))?;
    }
    ev["reloaded_logged"] = json!(log_count(&log, "reloaded (SIGHUP)") > before);
    ev["reload_ms"] = json!(ms(t.elapsed()));
    ev["same_pid"] = json!(cx.tb.pid(1)? == pid);
    Ok(())
}

fn churn(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    let rounds = if cx.o.quick { 4 } else { 12 };
    let (mut added, mut removed) = (0, 0);
    let mut errors = Vec::new();
    for k in 0..rounds {
        let node = if k % 2 == 0 { 1 } else { 3 };
        let (a, r) = churn_round(&cx.tb, node, &format!("ch{k}"), &mut errors)?;
        added += a;
        removed += r;
    }
    ev["endpoints_added"] = json!(added);
    ev["endpoints_removed"] = json!(removed);
    ev["rounds"] = json!(rounds);
    ev["api_errors"] = json!(errors);
    Ok(())
}

/// Two tap endpoints added on `node` and removed again: (added, removed).
fn churn_round(
    tb: &Testbed,
    node: usize,
    tag: &str,
    errors: &mut Vec<String>,
) -> io::Result<(u32, u32)> {
    let mut api = tb.api(node)?;
    let (mut added, mut removed) = (0, 0);
    let names = [format!("{tag}x"), format!("{tag}y")];
    for n in &names {
        let r = tb.rt.block_on(api.add_endpoint(pb::Endpoint {
            name: n.clone(),
            kind: "tap".into(),
            interface: format!("t{n}"),
            ..Default::default()
        }));
        match r {
            Ok(_) => added += 1,
            Err(s) => errors.push(format!("add {n} on node {node}: {}", s.message())),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    for n in &names {
        let r = tb
            .rt
            .block_on(api.remove_endpoint(pb::RemoveEndpointRequest { name: n.clone() }));
        match r {
            Ok(_) => removed += 1,
            Err(s) => errors.push(format!("remove {n} on node {node}: {}", s.message())),
        }
    }
    Ok((added, removed))
}

fn etcd(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    let pid = cx.tb.c.etcd().pid(0);
    ev["member_pid"] = json!(pid);
    cx.tb.c.etcd().kill(0);
    ev["member_gone"] =
        json!(pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()));
    sleep(Duration::from_secs(if cx.o.quick { 2 } else { 4 }))?;
    let mut api = cx.tb.api(1)?;
    let st = cx
        .tb
        .rt
        .block_on(api.node_status(pb::NodeStatusRequest {}))
        .map_err(|s| other(s.message()))?
        .into_inner();
    ev["node1_datastore_while_down"] = json!(st.datastore);
    cx.tb.c.etcd().restart(0)?;
    cx.tb.c.etcd().wait_healthy(Duration::from_secs(20))?;
    ev["restarted"] = json!(true);
    Ok(())
}

fn rr(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    let block = block_of(cx.tb.pod("a2").ip);
    ev["routes_before"] = json!(cx.routes_held(&[1, 3], &block)?);
    cx.tb.kill_reflector()?;
    let t = Instant::now();
    let mut down_seen = false;
    while t.elapsed() < Duration::from_secs(5) && !down_seen {
        down_seen = !cx.tb.c.node(1).established_with(bench::cluster::RR_ADDR);
        sleep(Duration::from_millis(50))?;
    }
    ev["node1_saw_session_down"] = json!(down_seen);
    let away = Duration::from_secs(if cx.o.quick { 2 } else { 4 });
    let (n, kept) = cx.routes_kept_for(&[1, 3], &block, away.saturating_sub(t.elapsed()))?;
    ev["route_samples_while_down"] = json!(n);
    ev["route_samples_kept"] = json!(kept);
    ev["routes_kept_by_nodes"] = json!(n > 0 && kept == n);
    cx.tb.c.spawn_reflector()?;
    let t = Instant::now();
    for i in 1..=3 {
        cx.tb.wait_rr(i, Duration::from_secs(60))?;
    }
    ev["reestablished_ms"] = json!(ms(t.elapsed()));
    Ok(())
}

fn flap(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    // Node 3's counters around the flap say where frames went if the flow stays cut.
    ev["node3_counters_before"] = json!(soak::sample(&mut cx.tb, 3, 0.0)?.balance);
    cx.tb.uplink(3, false)?;
    let t = Instant::now();
    sleep(Duration::from_millis(cx.o.flap_ms))?;
    cx.tb.uplink(3, true)?;
    ev["down_ms"] = json!(ms(t.elapsed()));
    let back = cx.tr.wait_flowing(&[N3_N1], Duration::from_secs(20));
    ev["node3_counters_after"] = json!(soak::sample(&mut cx.tb, 3, 0.0)?.balance);
    ev["node3_alive"] = json!(cx.tb.pid(3).is_ok());
    ev["node3_session_up"] = json!(cx.tb.c.node(3).established_with(bench::cluster::RR_ADDR));
    if let Err(e) = back {
        // Where it broke: the kernel's own path over the same uplink, and whether a
        // restart of vrouterd brings the flow back (later events need it flowing).
        let n3 = cx.tb.c.node(3).ns.name().to_string();
        let ping = std::process::Command::new("ip")
            .args([
                "netns", "exec", &n3, "ping", "-c", "2", "-i", "0.2", "-W", "1",
            ])
            .arg(bench::cluster::node_ip(1))
            .output()?;
        ev["node3_kernel_pings_node1"] = json!(ping.status.success());
        cx.tb.stop_node(3, libc::SIGTERM)?;
        cx.tb.start_node(3)?;
        let r = cx.tr.wait_flowing(&[N3_N1], Duration::from_secs(20));
        ev["flowing_after_vrouterd_restart"] = json!(r.is_ok());
        cx.tb.wait_rr(3, Duration::from_secs(60))?;
        return Err(other(format!(
            "{e} after the flap (vrouterd of node 3 restarted to go on)"
        )));
    }
    ev["flowing_again_after_up_ms"] = json!(ms(back?));
    Ok(())
}

fn kill9(cx: &mut Ctx, ev: &mut Value) -> io::Result<()> {
    let block = block_of(cx.tb.pod("a2").ip);
    ev["block"] = json!(block);
    ev["routes_before"] = json!(cx.routes_held(&[1, 3], &block)?);
    let pid = cx.tb.pid(2)?;
    let t = Instant::now();
    cx.tb.stop_node(2, libc::SIGKILL)?;
    ev["killed_pid_gone"] = json!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // While it is away (systemd's RestartSec): its peers' routes and BIRD's session.
    sleep(Duration::from_millis(300))?;
    ev["rr_session_while_down"] = json!(cx.tb.bird_protocol(2)?);
    let rest = Duration::from_secs_f64(cx.o.restart_sec).saturating_sub(t.elapsed());
    let (n, kept) = cx.routes_kept_for(&[1, 3], &block, rest)?;
    ev["route_samples_while_down"] = json!(n);
    ev["route_samples_kept"] = json!(kept);
    ev["routes_kept_by_peers"] = json!(n > 0 && kept == n);
    ev["downtime_ms"] = json!(ms(t.elapsed()));
    cx.tb.start_node(2)?;
    let back = cx.tr.wait_flowing(&[N1_N2], Duration::from_secs(30))?;
    ev["forwarding_again_ms"] = json!(ms(t.elapsed()));
    ev["forwarding_after_start_ms"] = json!(ms(back));
    cx.tb.wait_rr(2, Duration::from_secs(60))?;
    ev["rr_session_after"] = json!(cx.tb.bird_protocol(2)?);
    Ok(())
}

/// Node 1 stopped with `sig` and started again at once.
fn restart(cx: &mut Ctx, ev: &mut Value, sig: libc::c_int) -> io::Result<()> {
    let log = cx.tb.c.node(1).log.clone();
    let took_over = |log: &std::path::Path| log_count(log, "taking over the last run's UMEM");
    let before = took_over(&log);
    ev["fds_stored"] = json!(cx.tb.c.node(1).fds.names());
    let t = Instant::now();
    cx.tb.stop_node(1, sig)?;
    ev["stopped_ms"] = json!(ms(t.elapsed()));
    cx.tb.start_node(1)?;
    ev["started_ms"] = json!(ms(t.elapsed()));
    // The new run took over the sockets and UMEM the store kept (systemd's fd store).
    ev["took_over"] = json!(took_over(&log) > before);
    cx.tr.wait_flowing(&[LOCAL], Duration::from_secs(30))?;
    ev["local_flowing_ms"] = json!(ms(t.elapsed()));
    cx.tr.wait_flowing(&[], Duration::from_secs(30))?;
    cx.tb.wait_rr(1, Duration::from_secs(60))?;
    Ok(())
}

fn scenarios(o: &Opts) -> io::Result<Vec<&'static str>> {
    if o.scenario == "all" {
        return Ok(SCENARIOS.to_vec());
    }
    o.scenario
        .split(',')
        .map(|s| {
            SCENARIOS
                .iter()
                .copied()
                .find(|&k| k == s.trim())
                .ok_or_else(|| {
                    other(format!(
                        "unknown scenario {s:?} (all, {})",
                        SCENARIOS.join(", ")
                    ))
                })
        })
        .collect()
}

fn setup(o: Opts) -> io::Result<Ctx> {
    let bin = o.vrouterd.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .map(|p| p.with_file_name("vrouterd"))
            .unwrap_or_default()
    });
    if !bin.exists() {
        return Err(other(format!(
            "{} not found (--vrouterd PATH)",
            bin.display()
        )));
    }
    say("starting etcd, BIRD and 3 vrouterd nodes");
    let mut tb = Testbed::start(&bin, 3)?;
    tb.c.keep_logs = o.keep_logs.clone();
    for (pod, node) in [("a1", 1), ("b1", 1), ("a2", 2), ("a3", 3)] {
        tb.add_pod(pod, node)?;
    }
    // Routes to every pod's block have reached every other node before traffic starts.
    let t = Instant::now();
    loop {
        let a2 = block_of(tb.pod("a2").ip);
        let a1 = block_of(tb.pod("a1").ip);
        let ok = tb.bgp_routes(1, &a2)?.contains(&a2)
            && tb.bgp_routes(3, &a1)?.contains(&a1)
            && tb.bgp_routes(2, &a1)?.contains(&a1);
        if ok {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(other(
                "pods' blocks not routed on the other nodes within 60 s",
            ));
        }
        sleep(Duration::from_millis(200))?;
    }
    let flow = |name: &str, from: &str, to: &str, port: u16, pps: u32| FlowSpec {
        name: name.into(),
        from_ns: tb.pod(from).ns.name().into(),
        to_ns: tb.pod(to).ns.name().into(),
        dst: tb.pod(to).ip,
        port,
        pps,
    };
    let specs = [
        flow(N1_N2, "a1", "a2", 7001, o.pps),
        flow(N3_N1, "a3", "a1", 7002, o.pps),
        flow(LOCAL, "b1", "a1", 7003, o.restart_pps),
    ];
    let mut probes = Vec::new();
    for s in specs {
        probes.push(Probe::start(s, tb.epoch)?);
    }
    // The probes deliver first (routes in place), then the TCP stream starts.
    let probing = Duration::from_secs(30);
    let t = Instant::now();
    while !probes.iter().all(|p| p.flowing(Duration::from_millis(20))) {
        if t.elapsed() > probing {
            return Err(other(format!("flows not delivering within {probing:?}")));
        }
        sleep(Duration::from_millis(20))?;
    }
    let secs = o.soak.map_or(3600, |m| (m * 60.0) as u64 + 600);
    let mut iperf = Iperf::start(
        tb.pod("a2").ns.name(),
        tb.pod("a1").ns.name(),
        tb.pod("a2").ip,
        o.iperf_mbps,
        secs,
        tb.epoch,
    )?;
    iperf.wait_first_interval(Duration::from_secs(15))?;
    let tr = Traffic { probes, iperf };
    tr.wait_flowing(&[], Duration::from_secs(30))?;
    let settle = Duration::from_millis(if o.quick { 1000 } else { 2000 });
    Ok(Ctx { o, tb, tr, settle })
}

fn run_events(cx: &mut Ctx, which: &[&str]) -> Vec<Event> {
    let mut out = Vec::new();
    for &s in which {
        let e = match s {
            "reload" => cx.event("reload_node1", "SIGHUP to vrouterd of node 1", &[], reload),
            "churn" => cx.event(
                "churn",
                "tap endpoints added and removed on nodes 1 and 3",
                &[],
                churn,
            ),
            "etcd" => cx.event(
                "etcd_member_kill",
                "etcd member m0 killed (SIGKILL) and restarted",
                &[],
                etcd,
            ),
            "rr" => cx.event(
                "rr_kill",
                "BIRD (route reflector) killed (SIGKILL) and restarted",
                &[],
                rr,
            ),
            "flap" => cx.event(
                "flap_node3_uplink",
                "node 3's uplink down and up",
                &[N3_N1],
                flap,
            ),
            "kill9" => cx.event(
                "kill9_node2",
                "vrouterd of node 2 killed (SIGKILL), started after RestartSec",
                &[N1_N2],
                kill9,
            ),
            "restart" => {
                let all = [N1_N2, N3_N1, LOCAL];
                out.push(cx.event(
                    "restart_kill9_node1",
                    "vrouterd of node 1 killed (SIGKILL) and started at once",
                    &all,
                    |c, v| restart(c, v, libc::SIGKILL),
                ));
                cx.event(
                    "restart_planned_node1",
                    "vrouterd of node 1 stopped (SIGTERM) and started at once",
                    &all,
                    |c, v| restart(c, v, libc::SIGTERM),
                )
            }
            _ => unreachable!("checked by scenarios()"),
        };
        out.push(e);
        if netns::interrupted() {
            break;
        }
    }
    out
}

fn run_soak(cx: &mut Ctx, minutes: f64) -> io::Result<SoakReport> {
    say(&format!("soak: {minutes} minutes of churn under traffic"));
    let t0 = Instant::now();
    let m0 = cx.tr.marks();
    let end = t0 + Duration::from_secs_f64(minutes * 60.0);
    let every = Duration::from_secs_f64(cx.o.sample_s);
    let mut samples = Vec::new();
    let mut round_errors = Vec::new();
    let mut rounds = 0;
    let mut next_sample = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next_sample {
            for n in 1..=3 {
                samples.push(soak::sample(
                    &mut cx.tb,
                    n,
                    t0.elapsed().as_secs_f64() / 60.0,
                )?);
            }
            next_sample += every;
        }
        soak_round(cx, rounds, &mut round_errors)?;
        rounds += 1;
    }
    let m1 = cx.tr.marks();
    std::thread::sleep(Duration::from_millis(300));
    let flows = cx
        .tr
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| p.window(m0[i], m1[i]))
        .collect();
    let trends = (1..=3).filter_map(|n| soak::trend(n, &samples)).collect();
    Ok(SoakReport {
        minutes,
        rounds,
        round_errors,
        trends,
        final_balance: Vec::new(),
        counters_consistent: false,
        flows,
        samples,
    })
}

/// One round of soak churn (about 2 s): endpoints, a static route, a BGP peer, SIGHUP.
fn soak_round(cx: &mut Ctx, k: usize, errors: &mut Vec<String>) -> io::Result<()> {
    let node = k % 3 + 1;
    churn_round(&cx.tb, node, &format!("s{}", k % 50), errors)?;
    let mut api = cx.tb.api(node)?;
    let prefix = format!("10.250.{}.0/24", k % 200);
    let r = cx.tb.rt.block_on(api.add_route(pb::AddRouteRequest {
        prefix: prefix.clone(),
        via: vec![bench::cluster::RR_ADDR.into()],
        ..Default::default()
    }));
    if let Err(s) = r {
        errors.push(format!(
            "route add {prefix} on node {node}: {}",
            s.message()
        ));
    }
    let peer = format!("10.96.0.{}", 200 + k % 20);
    let r = cx.tb.rt.block_on(api.add_peer(pb::Peer {
        address: peer.clone(),
        asn: bench::cluster::ASN,
        hold_time: 9,
        ..Default::default()
    }));
    if let Err(s) = r {
        errors.push(format!("peer add {peer} on node {node}: {}", s.message()));
    }
    sleep(Duration::from_millis(500))?;
    if let Err(s) = cx.tb.rt.block_on(api.remove_route(pb::RemoveRouteRequest {
        prefix: prefix.clone(),
    })) {
        errors.push(format!(
            "route remove {prefix} on node {node}: {}",
            s.message()
        ));
    }
    if let Err(s) = cx.tb.rt.block_on(api.remove_peer(pb::RemovePeerRequest {
        address: peer.clone(),
    })) {
        errors.push(format!(
            "peer remove {peer} on node {node}: {}",
            s.message()
        ));
    }
    netns::signal(cx.tb.pid(node)?, libc::SIGHUP)?;
    sleep(Duration::from_millis(1000))
}

fn run(o: Opts) -> io::Result<Report> {
    let t_start = Instant::now();
    let which = scenarios(&o)?;
    let mut cx = setup(o)?;
    let setup_s = t_start.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    let (events, soak) = match cx.o.soak {
        Some(m) => (Vec::new(), Some(run_soak(&mut cx, m)?)),
        None => (run_events(&mut cx, &which), None),
    };
    let iperf_survived = cx.tr.iperf.running();
    let send_errors = cx.tr.probes.iter().map(Probe::send_errors).sum();
    let stalls = cx.tr.probes.iter().map(Probe::sender_stalls).sum();
    let Ctx { o, mut tb, tr, .. } = cx;
    for p in tr.probes {
        let name = p.name().to_string();
        if let Err(e) = p.stop() {
            errors.push(format!("probe {name}: {e}"));
        }
    }
    let iperf_intervals = tr.iperf.stop();
    let soak = match soak {
        Some(mut s) => {
            // Quiet: nothing in flight, nothing held; then the balance is exact.
            sleep(Duration::from_secs(2))?;
            for n in 1..=3 {
                let b = soak::sample(&mut tb, n, s.minutes)?.balance;
                s.final_balance.push((n, b));
            }
            s.counters_consistent = s.final_balance.iter().all(|(_, b)| b.residual == 0);
            Some(s)
        }
        None => None,
    };
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e.event == name)
            .and_then(|e| e.flows.iter().find(|f| f.w.flow == LOCAL))
            .map(|f| (f.w.outage_ms, f.w.lost_packets))
    };
    let (k, p) = (find("restart_kill9_node1"), find("restart_planned_node1"));
    for e in &events {
        errors.extend(e.errors.iter().map(|x| format!("{}: {x}", e.event)));
    }
    drop(tb);
    Ok(Report {
        nodes: 3,
        pps: o.pps,
        restart_pps: o.restart_pps,
        restart_sec: o.restart_sec,
        quick: o.quick,
        restart_kill9_outage_ms: k.map(|x| x.0),
        restart_kill9_lost: k.map(|x| x.1),
        restart_planned_outage_ms: p.map(|x| x.0),
        restart_planned_lost: p.map(|x| x.1),
        events,
        iperf_survived,
        iperf_intervals,
        probe_send_errors: send_errors,
        probe_sender_stalls: stalls,
        soak,
        setup_s,
        total_s: t_start.elapsed().as_secs_f64(),
        errors,
    })
}

fn print_table(r: &Report) {
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>9} {:>11}  iperf3 min/mean Mbit/s",
        "event", "lost", "loss ms", "outage ms", "reorder", "lost other"
    );
    for e in &r.events {
        println!(
            "{:<22} {:>9} {:>10.1} {:>10.1} {:>9} {:>11}  {:.1} / {:.1}",
            e.event,
            e.lost_packets,
            e.loss_ms,
            e.outage_ms,
            e.reordered,
            e.lost_packets_other_flows,
            if e.iperf.intervals > 0 {
                e.iperf.min_mbps
            } else {
                0.0
            },
            e.iperf.mean_mbps
        );
    }
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1} ms"));
    println!(
        "restart outage (same-node {} pps stream): kill -9 {}, planned {}",
        r.restart_pps,
        opt(r.restart_kill9_outage_ms),
        opt(r.restart_planned_outage_ms)
    );
    println!(
        "iperf3 survived: {} ({} intervals)",
        r.iperf_survived, r.iperf_intervals
    );
    if let Some(s) = &r.soak {
        println!(
            "soak {} min, {} rounds, {} round errors",
            s.minutes,
            s.rounds,
            s.round_errors.len()
        );
        for t in &s.trends {
            println!(
                "  node {}: RSS {} -> {} KB ({:+.1} KB/min), fds {} -> {} ({:+.2}/min), flows {}",
                t.node,
                t.rss_kb_first,
                t.rss_kb_last,
                t.rss_kb_per_min,
                t.fds_first,
                t.fds_last,
                t.fds_per_min,
                t.flows_last
            );
        }
        for (n, b) in &s.final_balance {
            println!(
                "  node {n}: rx {} = tx {} + to_kernel {} + fragmented {} + drops {} - icmp_errors {} (residual {})",
                b.rx, b.tx, b.to_kernel, b.fragmented, b.drops_total, b.icmp_errors, b.residual
            );
        }
    }
    for e in &r.errors {
        println!("error: {e}");
    }
}

fn fail(m: &str) -> ! {
    say(m);
    std::process::exit(1)
}

fn main() {
    let o = Opts::parse();
    if !netns::is_root() {
        fail("must run as root (namespaces, AF_XDP)");
    }
    if let Some(m) = o.soak {
        if m <= 0.0 {
            fail("--soak wants a positive number of minutes");
        }
    }
    netns::install_interrupt_handler().unwrap_or_else(|e| fail(&e.to_string()));
    netns::remove_stale("ch");
    let (json_out, path) = (o.json, o.out.clone());
    let r = run(o).unwrap_or_else(|e| fail(&e.to_string()));
    let text = serde_json::to_string_pretty(&r).expect("serializable");
    if let Some(p) = path {
        std::fs::write(&p, &text).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
    }
    if json_out {
        println!("{text}");
    } else {
        print_table(&r);
    }
    if !r.errors.is_empty() {
        fail(&format!("{} error(s) while measuring", r.errors.len()));
    }
}
