//! fwdbench: forwarding figures for vrouterd.
//!
//! `fwdbench --scenario l3 [--json]` (root) builds its own namespace topology — ns GEN
//! (the project's generator, `bench::pktgen`, pinned to CPU0) ── veth ── ns DUT ── veth ──
//! ns SINK (an XDP program dropping everything, counted in the sink veth's rx_packets) —
//! and sends 64-byte UDP (256 flows) to a pod address through the forwarders in the
//! DUT, pinned to CPU1: a bare AF_XDP forwarder (vrouterd's XDP program and I/O layer,
//! rx → MAC rewrite → tx, no pipeline), `vrouterd` (found next to this executable; one
//! busy-polling worker, then two workers), DPDK testpmd (AF_XDP PMD) and the kernel
//! (ip_forward, RPS to CPU1).
//! They take turns in `--rounds` rounds (default 3; 1 with `--quick`): in each round
//! every forwarder in that order is started, warmed up, measures its share of the
//! `--windows` (≥ 3, over all rounds; at least one a round) windows of `--window-secs`,
//! and is stopped, so that a disturbed stretch of the shared host falls on all of them,
//! not on one. In the last round, after each one's windows, a latency probe
//! (`--latency-pps`, stamped frames, p50 / p99 one way).
//! Per forwarder: min / median / max Mpps received by the sink over all its windows, the
//! spread ((max - min) / median; `*_spread`), the median of each round
//! (`*_round_medians_mpps`), and the offered rate (what the DUT's uplink received; a
//! result close to it is generator-bound). `ratio_vs_bare` and `ratio_vs_kernel` compare
//! the medians of all windows; `ratio_vs_bare_per_round`, `ratio_vs_kernel_per_round`
//! (and testpmd, kernel VXLAN) those of each round, to show whether a ratio stands in
//! every round. The default generator is XDP live frames (`--generator xdp-live`, ~4 Mpps
//! here); `--generator afxdp` is the AF_XDP txonly one, which on veth also pays for the
//! DUT's receive NAPI per frame and tops out below the forwarders. See `bench::fwdns`.
//!
//! `--scenario vxlan` / `--scenario ipip`: GEN is a pod of the DUT node and SINK the
//! remote node owning the destination block; vrouterd encapsulates (VXLAN or IPIP) toward
//! it, compared with the bare forwarder (unencapsulated) and, for vxlan, the kernel's own
//! `vxlan.calico` device configured as Calico does (`kernel_vxlan_mpps`,
//! `ratio_vs_kernel_vxlan`). The sink's mean frame length proves the outer headers.
//!
//! `--scenario fullfib`: the pod sends to random destinations across a full table
//! (`--routes`, 1.08M by default) that vrouterd learns over BGP and the kernel gets from
//! `ip -batch`. `--scenario ecmp`: the pod's flows over four next hops. `--scenario v6`:
//! l3 over IPv6. `--scenario all`: every one, the suite (`--out DIR` for docs/bench).
//!
//! The same invocation then runs `--memio` (skip it with `--no-memio`): the pipeline's own
//! cost per packet on in-memory frames with the full IPv4 table (1.08M routes), which is
//! what decides throughput on zero-copy NICs. `--memio` alone runs only that.
//!
//! Fails loudly (non-zero, a message on stderr) when not root, when vrouterd is not built,
//! or when any candidate forwards nothing: it never prints figures it did not measure.

use bench::fwdns::{self, AfxdpVariant, L3Options, L3Results, Scenario, Series, XdpMode};
use bench::pktgen::Engine;
use bench::rounds::{CandidateRounds, RoundsReport};
use bench::{round4, Tsc};
use clap::Parser;
use fib::synth::{self, Rng};
use fib::{Fib4, Fib6, NextHopId};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use vrouter::burst::{Action, BURST};
use vrouter::config::PollMode;
use vrouter::counters::Counters;
use vrouter::ecmp::GroupTable;
use vrouter::io::memory::MemoryIo;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port, PortKind};
use vrouter::tunnel::{Encap, Overlay, Tunnel, TunnelTable};
use vrouter::worker::Worker;

#[derive(Parser, Debug, Clone)]
#[command(about = "Forwarding benchmarks for vrouterd")]
struct Opts {
    /// Scenario: l3 (plain routing), vxlan or ipip (a pod's traffic encapsulated toward
    /// a remote node's block).
    /// `all`: every scenario in one run (the suite; with --out, the files for docs/bench).
    /// fullfib: a pod's traffic to random destinations across a full table (1.08M
    /// routes, learnt over BGP; the kernel gets the same table); ecmp: a pod's flows
    /// over four next hops; v6: l3 over IPv6.
    #[arg(long, default_value = "l3", value_parser = ["l3", "vxlan", "ipip", "v6", "fullfib", "ecmp", "nat", "policy", "all"])]
    scenario: String,
    /// Measure only the pipeline on in-memory frames (cycles per packet).
    #[arg(long)]
    memio: bool,
    /// Skip the in-memory measurement that follows the namespace run.
    #[arg(long, conflicts_with = "memio")]
    no_memio: bool,
    /// Routes in the FIB for --memio and in scenario fullfib's table (default: DPDK's
    /// 1,076,806).
    #[arg(long, default_value_t = synth::DPDK_V4_TOTAL)]
    routes: usize,
    /// Packets measured.
    #[arg(long, default_value_t = 20_000_000)]
    packets: usize,
    /// Measurement windows per forwarder (at least 3), over all the rounds.
    #[arg(long, default_value_t = 5)]
    windows: usize,
    /// Rounds (default 3; 1 with --quick): in each, every forwarder in turn is started,
    /// warmed up, measures its share of the windows (at least one) and is stopped, so
    /// that a disturbed stretch of the host falls on all of them.
    #[arg(long)]
    rounds: Option<usize>,
    /// Length of one window, seconds.
    #[arg(long, default_value_t = 1.5)]
    window_secs: f64,
    /// Warm-up before the windows, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// How the AF_XDP forwarders attach their XDP program: native (driver) or generic
    /// (skb; on veth its receive work then shares the DUT core with the busy-polling
    /// worker through ksoftirqd).
    #[arg(long, default_value = "native", value_parser = ["native", "generic", "auto"])]
    xdp_mode: String,
    /// Generator engine: xdp-live (XDP live frames, BPF_PROG_RUN) or afxdp (AF_XDP
    /// txonly; weaker on veth: it pays for the receiver's NAPI per frame).
    #[arg(long, default_value = "xdp-live", value_parser = ["xdp-live", "afxdp"])]
    generator: String,
    #[arg(long)]
    json: bool,
    /// Leave DPDK testpmd out (it needs Debian's dpdk package).
    #[arg(long)]
    no_testpmd: bool,
    /// Scenario policy: rules on the receiving pod's ingress, one run per value
    /// (comma-separated; default 1,100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    rules: Vec<usize>,
    /// UDP flows (source ports) the generator sends (nat: each a flow to translate).
    #[arg(long, default_value_t = 256)]
    flows: u16,
    /// Leave out vrouterd with two workers.
    #[arg(long)]
    no_two_workers: bool,
    /// Fixed offered load of the latency probe after each forwarder's windows of the
    /// last round (stamped frames from the AF_XDP generator, one-way latency at the
    /// sink); 0: no probe.
    #[arg(long, default_value_t = 100_000)]
    latency_pps: u64,
    /// Length of the latency probe's window, seconds.
    #[arg(long, default_value_t = 1.0)]
    latency_secs: f64,
    /// Short windows (3 × 0.3 s after 0.3 s, one round), a short latency probe, a 100,000-route
    /// table (fullfib, memio) and a small memio run: a smoke run that checks every figure
    /// is produced, not a measurement to quote.
    #[arg(long)]
    quick: bool,
    /// Also write the results as a markdown table to this file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// Write fwdbench.json, fwdbench.md and fwdbench.svg (a plot) into this directory
    /// (docs/bench for the README's Performance section).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// vrouterd once more in every round with other AF_XDP options, as
    /// NAME:KEY=VALUE,... (the keys of vrouterd's `[afxdp]` table, and xdp_mode);
    /// repeatable. Reported under `afxdp_variants` beside the default vrouterd and the
    /// kernel of the same rounds.
    #[arg(long = "afxdp-variant", value_parser = AfxdpVariant::parse)]
    afxdp_variants: Vec<AfxdpVariant>,
}

#[derive(Serialize)]
struct Report {
    scenario: String,
    vrouter_mpps: Option<f64>,
    bare_afxdp_mpps: Option<f64>,
    kernel_mpps: Option<f64>,
    ratio_vs_bare: Option<f64>,
    ratio_vs_kernel: Option<f64>,
    /// DPDK testpmd (AF_XDP PMD, mac forwarding) on the same veths; null with --no-testpmd.
    testpmd_mpps: Option<f64>,
    ratio_vs_testpmd: Option<f64>,
    /// Every forwarder measured, in the order run: windows, offered load, CPU use,
    /// latency at the fixed load.
    candidates: Vec<Candidate>,
    /// vrouterd with two workers (the second on the generator's core) and its ratio to
    /// one worker, medians.
    #[serde(skip_serializing_if = "Option::is_none")]
    vrouter_2_workers_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scaling_2_workers: Option<f64>,
    /// Scenario fullfib: routes in the table; seconds for vrouterd to install them from
    /// BGP (its first round; then each round's) and for the kernel to take them from `ip
    /// -batch` (once).
    #[serde(skip_serializing_if = "Option::is_none")]
    fib_routes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrouter_fib_install_s: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vrouter_fib_install_s_per_round: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_fib_install_s: Option<f64>,
    /// Scenario vxlan: the kernel's VXLAN device (vxlan.calico) forwarding the same
    /// traffic. Absent for l3, null for ipip (no kernel ipip module here).
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_mpps: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_kernel_vxlan: Option<Option<f64>>,
    /// Scenario nat: the kernel masquerading the same flows (nftables, conntrack).
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_nat_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_kernel_nat: Option<f64>,
    /// The pipeline's cycles per packet: the median of `memio_cycles_reps`; targets are
    /// judged on `memio_cycles_per_pkt_min` (steal only ever adds cycles).
    memio_cycles_per_pkt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_cycles_per_pkt_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_cycles_reps: Option<bench::Reps>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_routes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_packets: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_forwarded_ratio: Option<f64>,
    /// The pipeline inside a worker loop on the in-memory backend (I/O layer included).
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_worker_cycles_per_pkt: Option<f64>,
    /// Two workers against one, pipeline only (memory backend, no generator): Mpps of
    /// one pipeline on one core, of two at once on both cores, and their ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_mpps_1_worker: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_mpps_2_workers: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memio_scaling_2_workers: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    namespace: Option<NsReport>,
    /// `--afxdp-variant`: each variant's rates and its ratios to the default vrouterd
    /// and to the kernel (medians, and round by round).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    afxdp_variants: Vec<VariantReport>,
    /// Scenario nat: connection tracking and NAT on in-memory frames (bench::natmemio).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    nat_memio: Option<NatMemioReport>,
}

#[derive(Serialize)]
struct VariantReport {
    name: String,
    settings: String,
    mpps_min: f64,
    mpps_median: f64,
    mpps_max: f64,
    round_medians_mpps: Vec<f64>,
    spread: f64,
    ratio_vs_vrouter: f64,
    ratio_vs_vrouter_per_round: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_kernel: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratio_vs_kernel_per_round: Vec<f64>,
}

fn variant_reports(res: &L3Results) -> Vec<VariantReport> {
    let v = &res.vrouter;
    let k = res.kernel.as_ref().or(res.kernel_vxlan.as_ref());
    res.afxdp_variants
        .iter()
        .map(|(var, s)| VariantReport {
            name: var.name.clone(),
            settings: var.settings_text(),
            mpps_min: round4(s.min()),
            mpps_median: round4(s.median()),
            mpps_max: round4(s.max()),
            round_medians_mpps: CandidateRounds::of(s).round_medians_mpps,
            spread: round4(s.spread()),
            ratio_vs_vrouter: round4(s.median() / v.median()),
            ratio_vs_vrouter_per_round: bench::rounds::ratio_per_round(s, v),
            ratio_vs_kernel: k.map(|k| round4(s.median() / k.median())),
            ratio_vs_kernel_per_round: k
                .map(|k| bench::rounds::ratio_per_round(s, k))
                .unwrap_or_default(),
        })
        .collect()
}

/// `--memio` of scenario nat. Targets: conntrack <= 1.3x and NAT <= 1.6x the plain
/// pipeline of the same run and traffic, >= 2M new flows/s, <= 128 bytes per flow.
#[derive(Serialize)]
struct NatMemioReport {
    memio_nat_flows: usize,
    /// The same pod traffic without NAT: the baseline of the two ratios.
    memio_pod_plain_cycles_per_pkt: f64,
    memio_conntrack_cycles_per_pkt: f64,
    memio_nat_cycles_per_pkt: f64,
    conntrack_ratio_vs_plain: f64,
    nat_ratio_vs_plain: f64,
    new_flows_per_s: f64,
    conntrack_bytes_per_flow: usize,
    memio_nat_translated_ratio: f64,
}

/// Scenario nat's memio (100,000 flows; 20,000 with --quick), or None for the others.
fn nat_memio(opts: &Opts, tsc: &Tsc) -> Option<NatMemioReport> {
    if opts.scenario != "nat" {
        return None;
    }
    let flows = std::env::var("FWDBENCH_NAT_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if opts.quick { 20_000 } else { 100_000 });
    let m = bench::natmemio::run(memio_routes(opts), flows, opts.packets, tsc);
    if m.translated_ratio < 0.999 {
        fail(
            1,
            &format!(
                "memio nat: only {:.1}% of packets translated",
                m.translated_ratio * 100.0
            ),
        );
    }
    Some(NatMemioReport {
        memio_nat_flows: m.flows,
        memio_pod_plain_cycles_per_pkt: round4(m.plain_cycles_per_pkt),
        memio_conntrack_cycles_per_pkt: round4(m.conntrack_cycles_per_pkt),
        memio_nat_cycles_per_pkt: round4(m.nat_cycles_per_pkt),
        conntrack_ratio_vs_plain: round4(m.conntrack_cycles_per_pkt / m.plain_cycles_per_pkt),
        nat_ratio_vs_plain: round4(m.nat_cycles_per_pkt / m.plain_cycles_per_pkt),
        new_flows_per_s: m.new_flows_per_s.round(),
        conntrack_bytes_per_flow: m.bytes_per_flow,
        memio_nat_translated_ratio: round4(m.translated_ratio),
    })
}

fn print_nat_memio(r: &Report) {
    if let Some(n) = &r.nat_memio {
        println!(
            "memio nat ({} flows at random, the full table): pod traffic plain {:.1} cycles/packet; conntrack (established) {:.1} = {:.2}x (target <= 1.3); NAT {:.1} = {:.2}x (target <= 1.6); new flows {:.2} M/s (target >= 2); {} bytes per flow (target <= 128)",
            n.memio_nat_flows,
            n.memio_pod_plain_cycles_per_pkt,
            n.memio_conntrack_cycles_per_pkt,
            n.conntrack_ratio_vs_plain,
            n.memio_nat_cycles_per_pkt,
            n.nat_ratio_vs_plain,
            n.new_flows_per_s / 1e6,
            n.conntrack_bytes_per_flow
        );
    }
}

#[derive(Serialize)]
struct Candidate {
    name: String,
    mpps_min: f64,
    mpps_median: f64,
    mpps_max: f64,
    windows_mpps: Vec<f64>,
    /// The median of each round's windows, and (max - min) / median of all of them.
    #[serde(flatten)]
    rounds: CandidateRounds,
    offered_mpps: f64,
    /// "generator" when the forwarder kept up with (95% of) what reached it.
    bound_by: &'static str,
    /// Busy share of the DUT core and of the generator's core over the windows.
    dut_cpu_busy: f64,
    gen_cpu_busy: f64,
    /// One-way latency (µs) at `latency_offered_pps`, stamped at the generator and read
    /// at the sink (same host clock); null when not probed.
    latency_p50_us: Option<f64>,
    latency_p99_us: Option<f64>,
    latency_offered_pps: u64,
    /// Scenario ecmp: share of the probed frames per next hop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ecmp_shares: Vec<f64>,
}

/// The namespace run's figures besides the medians (Mpps unless named otherwise).
#[derive(Serialize)]
struct NsReport {
    vrouter_mpps_min: f64,
    vrouter_mpps_max: f64,
    bare_afxdp_mpps_min: f64,
    bare_afxdp_mpps_max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_mpps_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_mpps_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_mpps_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_mpps_max: Option<f64>,
    /// The offered rate (median; what the DUT's uplink received) while vrouterd forwarded.
    offered_mpps: f64,
    vrouter_offered_mpps: f64,
    bare_afxdp_offered_mpps: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_offered_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_offered_mpps: Option<f64>,
    vrouter_windows_mpps: Vec<f64>,
    bare_afxdp_windows_mpps: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_windows_mpps: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_windows_mpps: Option<Vec<f64>>,
    /// Mean frame length received by the sink per candidate (bytes, no FCS).
    vrouter_sink_frame_bytes: f64,
    bare_afxdp_sink_frame_bytes: f64,
    /// ms the forwarder's threads waited for a CPU during the windows (schedstat
    /// run_delay): ~2% of the windows is normal, much more means another task shared the
    /// DUT core and disturbed the figures.
    vrouter_runq_wait_ms: f64,
    bare_afxdp_runq_wait_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_vxlan_sink_frame_bytes: Option<f64>,
    windows: usize,
    window_secs: f64,
    warmup_secs: f64,
    frame_bytes: usize,
    xdp_mode: String,
    bare_afxdp_xdp_mode: String,
    generator: String,
    generator_core: usize,
    dut_core: usize,
    vrouterd_counters: Option<serde_json::Value>,
    /// Per candidate the median of each round and the spread; vrouterd's ratios per round.
    #[serde(flatten)]
    rounds: RoundsReport,
}

fn fail(code: i32, msg: &str) -> ! {
    eprintln!("fwdbench: {msg}");
    std::process::exit(code);
}

/// --quick: the full table's size (fullfib, memio), so that the kernel's `ip -batch`
/// takes seconds, not tens of them.
const QUICK_ROUTES: usize = 100_000;

/// First argument that makes fwdbench run as vrouterd (see `main`).
const AS_VROUTERD: &str = "--as-vrouterd";

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == AS_VROUTERD) {
        let rest = std::env::args_os().skip(2);
        vrouter::cli::main_with_args(std::iter::once("vrouterd".into()).chain(rest));
        return;
    }
    let mut opts = Opts::parse();
    if opts.quick {
        opts.windows = opts.windows.min(3);
        opts.window_secs = opts.window_secs.min(0.3);
        opts.warmup_secs = opts.warmup_secs.min(0.3);
        opts.packets = opts.packets.min(2_000_000);
        opts.latency_secs = opts.latency_secs.min(0.3);
        opts.routes = opts.routes.min(QUICK_ROUTES);
    }
    if opts.scenario == "policy" {
        policy_scenario(&opts);
        return;
    }
    let scenarios: Vec<Scenario> = if opts.scenario == "all" {
        vec![
            Scenario::L3,
            Scenario::V6,
            Scenario::Vxlan,
            Scenario::Ipip,
            Scenario::Fullfib,
            Scenario::Ecmp,
        ]
    } else {
        match Scenario::parse(&opts.scenario) {
            Some(s) => vec![s],
            None => fail(2, &format!("unknown scenario {:?}", opts.scenario)),
        }
    };
    if opts.memio {
        if scenarios.len() > 1 {
            fail(2, "--memio runs one scenario at a time");
        }
        memio_only(&opts);
        return;
    }
    if opts.windows < 3 {
        fail(2, &format!("--windows {} (at least 3)", opts.windows));
    }
    match opts.rounds {
        Some(0) => fail(2, "--rounds 0 (at least 1)"),
        Some(r) if r > opts.windows => fail(
            2,
            &format!(
                "--rounds {r} > --windows {}: every round measures at least one window",
                opts.windows
            ),
        ),
        _ => {}
    }
    if !(opts.window_secs >= 0.1 && opts.window_secs <= 3600.0) {
        fail(2, "--window-secs must be between 0.1 and 3600");
    }
    if !(opts.warmup_secs >= 0.1 && opts.warmup_secs <= 3600.0) {
        fail(2, "--warmup-secs must be between 0.1 and 3600");
    }
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    let mut markdowns = Vec::new();
    let tsc = (!opts.no_memio).then(Tsc::calibrate);
    for scenario in scenarios {
        let mut one = Opts {
            scenario: scenario.name().to_string(),
            ..opts.clone()
        };
        one.markdown = None;
        let (l3, res) = measure(&one, scenario);
        let memio = tsc.as_ref().map(|tsc| {
            // The kernel tears the namespaces down in the background: let that finish first.
            std::thread::sleep(Duration::from_secs(1));
            memio(&one, tsc)
        });
        let mut r = report(&one, &l3, &res, memio);
        r.nat_memio = tsc.as_ref().and_then(|tsc| nat_memio(&one, tsc));
        if !opts.json {
            print_table(&one, &l3, &res, &r);
            print_nat_memio(&r);
            println!();
        }
        markdowns.push(markdown(&one, &l3, &res, &r));
        reports.push(r);
    }
    let md = markdowns.join("\n");
    if let Some(path) = &opts.markdown {
        if let Err(e) = std::fs::write(path, &md) {
            fail(1, &format!("{}: {e}", path.display()));
        }
    }
    if let Some(dir) = &opts.out {
        if let Err(e) = write_outputs(dir, &opts, &reports, &md, started.elapsed()) {
            fail(1, &format!("{}: {e}", dir.display()));
        }
    }
    if opts.json {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        };
        println!("{}", json.unwrap());
    } else if reports.len() > 1 {
        println!(
            "suite: {} scenarios in {:.0} s",
            reports.len(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// --memio's ports: the uplink (port 0), then pods 1.. with the IPv4 sources `pod_v4(p)`.
fn memio_ports(ports: u16, pod_v4: impl Fn(u16) -> Vec<u32>) -> Vec<Port> {
    let uplink = Port {
        mac: [0x52, 0x54, 0, 0, 0, 1],
        mtu: 1500,
        kind: PortKind::Uplink,
    };
    std::iter::once(uplink)
        .chain((1..ports).map(|p| Port {
            mac: [0xee; 6],
            mtu: 1500,
            kind: PortKind::Endpoint {
                v4: pod_v4(p),
                v6: vec![],
            },
        }))
        .collect()
}

/// --memio's figures: pipeline cycles per packet, share forwarded, cycles in a worker on
/// the memory backend, and (IPv4) Mpps of one and of two pipelines run at once on the
/// machine's two cores (the scaling of workers with no generator in the way).
type Memio = (bench::Reps, f64, f64, Option<(f64, f64)>);

/// Routes in the --memio table: the IPv6 one is fixed (200,000), the IPv4 one --routes.
fn memio_routes(opts: &Opts) -> usize {
    if opts.scenario == "v6" {
        V6_MEMIO_ROUTES
    } else {
        opts.routes
    }
}

const V6_MEMIO_ROUTES: usize = 200_000;

/// `--memio` for IPv6: 200,000 routes (`synth::realistic_v6`) each to one of 64 next hops
/// on pod ports; 64-byte IPv6 UDP frames from the uplink to random addresses inside
/// random routes (the IPv6 space is sparse: uniformly random addresses would all miss).
fn memio_v6(opts: &Opts, tsc: &Tsc) -> Memio {
    const PORTS: u16 = 8;
    const ROUTES: usize = V6_MEMIO_ROUTES;
    let nexthops = Arc::new(NextHopTable::new(64));
    for i in 0..64u32 {
        let port = PortId(1 + (i % (PORTS as u32 - 1)) as u16);
        nexthops.set(
            i,
            Adjacency::Forward {
                port,
                mac: [0x02, 0, 0, 0, 0, i as u8],
            },
        );
    }
    let mut rng = Rng::new(synth::DEFAULT_SEED);
    let routes = synth::realistic_v6(ROUTES, synth::DEFAULT_SEED);
    let fib6 = Fib6::from_routes(routes.iter().map(|&n| (n, NextHopId(rng.below(64) as u32))));
    let fib4 = Fib4::new();
    let ports = memio_ports(PORTS, |_| vec![]);
    let counters = Arc::new(Counters::new(1));
    let pipeline = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops.clone(),
        ports.into(),
        counters.clone(),
        0,
    );
    let cfg = {
        let mut c = bench::pktgen::GenConfig::udp64(
            "-",
            [0x52, 0x54, 0, 0, 0, 0xfe],
            [0x52, 0x54, 0, 0, 0, 1],
            std::net::Ipv4Addr::UNSPECIFIED,
            std::net::Ipv4Addr::UNSPECIFIED,
        );
        c.v6 = Some((
            "2001:db8::9".parse().unwrap(),
            std::net::Ipv6Addr::UNSPECIFIED,
        ));
        c
    };
    let template = bench::pktgen::udp_frame(&cfg, 10_000);
    let pick = |rng: &mut Rng| -> [u8; 16] {
        let n = routes[rng.below(ROUTES as u64) as usize];
        let host = if n.prefix_len() == 128 {
            0
        } else {
            rng.next_u128() & (u128::MAX >> n.prefix_len())
        };
        (u128::from(n.network()) | host).to_be_bytes()
    };
    let mut ring_fill = |frames: &mut [Vec<u8>]| {
        for f in frames.iter_mut() {
            f[..64].copy_from_slice(&template);
            f[38..54].copy_from_slice(&pick(&mut rng));
        }
    };
    let mut rng2 = Rng::new(synth::DEFAULT_SEED + 1);
    let mut frame = template.clone();
    let mut next_frame = || {
        frame[38..54].copy_from_slice(&pick(&mut rng2));
        frame.clone()
    };
    let (pipeline_cycles, forwarded, worker_cycles, _) = time_pipeline(
        opts,
        tsc,
        pipeline,
        nexthops,
        &counters,
        PortId(0),
        PORTS as usize,
        &mut ring_fill,
        &mut next_frame,
    );
    (pipeline_cycles, forwarded, worker_cycles, None)
}

/// "1 round", "3 rounds".
fn rounds_text(n: usize) -> String {
    format!("{n} round{}", if n == 1 { "" } else { "s" })
}

/// `--rounds`, or its default: 3, 1 with --quick (a smoke run's time as it was), never
/// more than the windows.
fn rounds(opts: &Opts) -> usize {
    opts.rounds
        .unwrap_or(if opts.quick { 1 } else { 3 })
        .clamp(1, opts.windows.max(1))
}

/// One scenario's namespace run (fails the process loudly on error).
fn measure(opts: &Opts, scenario: Scenario) -> (L3Options, L3Results) {
    // The vrouterd next to us, or else ourselves in its place (`--as-vrouterd`: the same
    // code, `vrouter::cli`), so `cargo run -p bench --bin fwdbench` alone works.
    let (vrouterd, vrouterd_args) = match std::env::current_exe() {
        Ok(exe) if exe.with_file_name("vrouterd").is_file() => {
            (exe.with_file_name("vrouterd"), vec![])
        }
        Ok(exe) => (exe, vec![AS_VROUTERD.to_string()]),
        Err(e) => fail(1, &format!("cannot find our own executable: {e}")),
    };
    let l3 = L3Options {
        scenario,
        vrouterd,
        vrouterd_args,
        windows: opts.windows,
        rounds: rounds(opts),
        window: Duration::from_secs_f64(opts.window_secs),
        warmup: Duration::from_secs_f64(opts.warmup_secs),
        xdp_mode: match opts.xdp_mode.as_str() {
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            _ => XdpMode::Auto,
        },
        gen_core: 0,
        dut_core: 1,
        engine: match opts.generator.as_str() {
            "afxdp" => Engine::AfXdp,
            _ => Engine::XdpLive,
        },
        flows: opts.flows.max(1),
        batch: 64,
        testpmd: !opts.no_testpmd,
        two_workers: !opts.no_two_workers,
        latency_pps: opts.latency_pps,
        latency_window: Duration::from_secs_f64(opts.latency_secs.clamp(0.1, 60.0)),
        fib_routes: opts.routes,
        policy_rules: opts.rules.first().copied().unwrap_or(1),
        afxdp_variants: opts.afxdp_variants.clone(),
    };
    if !opts.json {
        eprintln!(
            "fwdbench {}: building the namespace topology; {} windows of {} s per forwarder in {}",
            opts.scenario,
            opts.windows,
            opts.window_secs,
            rounds_text(l3.rounds)
        );
    }
    match fwdns::run(&l3) {
        Ok(r) => (l3, r),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            fail(130, "interrupted; namespaces removed")
        }
        Err(e) => fail(1, &format!("namespace scenario {}: {e}", opts.scenario)),
    }
}

/// fwdbench.json, fwdbench.md and fwdbench.svg in `dir`.
fn write_outputs(
    dir: &std::path::Path,
    opts: &Opts,
    reports: &[Report],
    md: &str,
    took: Duration,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let header = format!(
        "# fwdbench results\n\n{when}; {cores} cores ({cpu}); kernel {}; {} in {:.0} s.\nReproduce (root): `cargo build --release -p vrouter -p bench && target/release/fwdbench --scenario {} --out docs/bench{}`\n\n",
        kernel.trim(),
        if reports.len() > 1 { "the suite" } else { "one scenario" },
        took.as_secs_f64(),
        opts.scenario,
        if opts.quick { " --quick" } else { "" },
    );
    std::fs::write(dir.join("fwdbench.md"), format!("{header}{md}"))?;
    std::fs::write(
        dir.join("fwdbench.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "date": when,
            "cpu": cpu,
            "cores": cores,
            "kernel": kernel.trim(),
            "seconds": took.as_secs_f64(),
            "scenarios": reports,
        }))?,
    )?;
    plot(&dir.join("fwdbench.svg"), reports).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Medians per scenario and forwarder as bars, min..max as whiskers.
fn plot(path: &std::path::Path, reports: &[Report]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let kinds = [
        "vrouterd 2 workers",
        "vrouterd",
        "bare AF_XDP",
        "DPDK testpmd",
        "kernel ip_forward",
        "kernel vxlan",
    ];
    let colors = [
        RGBColor(0xae, 0xc7, 0xe8),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    let kind_of = |name: &str| kinds.iter().position(|k| name.starts_with(k));
    let top = reports
        .iter()
        .flat_map(|r| r.candidates.iter().map(|c| c.mpps_max))
        .fold(0.0f64, f64::max)
        .max(0.1)
        * 1.45; // room for the legend above the bars
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = reports.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fwdbench: Mpps at the sink (64 B UDP), median with min..max",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n, 0f64..top)?;
    let names: Vec<String> = reports.iter().map(|r| r.scenario.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(reports.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("Mpps")
        .draw()?;
    let width = 0.8 / kinds.len() as f64;
    for (k, kind) in kinds.iter().enumerate() {
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            for c in r.candidates.iter().filter(|c| kind_of(&c.name) == Some(k)) {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, c.mpps_median)],
                    colors[k].filled(),
                ));
                let xm = x0 + width * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, c.mpps_min), (xm, c.mpps_max)],
                    BLACK.stroke_width(1),
                ));
            }
        }
        if bars.is_empty() {
            continue;
        }
        let color = colors[k];
        chart
            .draw_series(bars)?
            .label(*kind)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(whiskers)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn report(opts: &Opts, l3: &L3Options, res: &L3Results, memio: Option<Memio>) -> Report {
    let (v, b, k, kx) = (
        &res.vrouter,
        &res.bare,
        res.kernel.as_ref(),
        res.kernel_vxlan.as_ref(),
    );
    let windows = |s: &Series| s.mpps.iter().map(|&x| round4(x)).collect::<Vec<_>>();
    let t = res.testpmd.as_ref();
    let candidates = candidates(l3, res)
        .into_iter()
        .map(|(name, s)| Candidate {
            name,
            mpps_min: round4(s.min()),
            mpps_median: round4(s.median()),
            mpps_max: round4(s.max()),
            windows_mpps: windows(s),
            rounds: CandidateRounds::of(s),
            offered_mpps: round4(s.offered_median()),
            bound_by: bound_by(s),
            dut_cpu_busy: round4(s.dut_cpu_busy),
            gen_cpu_busy: round4(s.gen_cpu_busy),
            latency_p50_us: s.latency_p50_us.map(round4),
            latency_p99_us: s.latency_p99_us.map(round4),
            latency_offered_pps: s.latency_pps,
            ecmp_shares: s.ecmp_shares.iter().map(|&x| round4(x)).collect(),
        })
        .collect();
    let two = res.vrouter_2w.as_ref();
    Report {
        nat_memio: None,
        afxdp_variants: variant_reports(res),
        testpmd_mpps: t.map(|t| round4(t.median())),
        ratio_vs_testpmd: t.map(|t| round4(v.median() / t.median())),
        candidates,
        vrouter_2_workers_mpps: two.map(|s| round4(s.median())),
        scaling_2_workers: two.map(|s| round4(s.median() / v.median())),
        fib_routes: res.fib_routes,
        vrouter_fib_install_s: res.vrouter_fib_install_s.map(round4),
        vrouter_fib_install_s_per_round: res
            .vrouter_fib_install_s_per_round
            .iter()
            .map(|&x| round4(x))
            .collect(),
        kernel_fib_install_s: res.kernel_fib_install_s.map(round4),
        scenario: opts.scenario.clone(),
        vrouter_mpps: Some(round4(v.median())),
        bare_afxdp_mpps: Some(round4(b.median())),
        kernel_mpps: k.map(|k| round4(k.median())),
        ratio_vs_bare: Some(round4(v.median() / b.median())),
        ratio_vs_kernel: k.map(|k| round4(v.median() / k.median())),
        kernel_vxlan_mpps: l3
            .scenario
            .overlay()
            .then(|| kx.map(|k| round4(k.median()))),
        ratio_vs_kernel_vxlan: l3
            .scenario
            .overlay()
            .then(|| kx.map(|k| round4(v.median() / k.median()))),
        kernel_nat_mpps: k
            .filter(|_| l3.scenario == Scenario::Nat)
            .map(|k| round4(k.median())),
        ratio_vs_kernel_nat: k
            .filter(|_| l3.scenario == Scenario::Nat)
            .map(|k| round4(v.median() / k.median())),
        memio_cycles_per_pkt: memio.map(|m| round4(m.0.median)),
        memio_cycles_per_pkt_min: memio.map(|m| round4(m.0.min)),
        memio_cycles_reps: memio.map(|m| m.0),
        memio_routes: memio.map(|_| memio_routes(opts)),
        memio_packets: memio.map(|_| opts.packets),
        memio_forwarded_ratio: memio.map(|m| m.1),
        memio_worker_cycles_per_pkt: memio.map(|m| m.2),
        memio_mpps_1_worker: memio.and_then(|m| m.3).map(|s| round4(s.0)),
        memio_mpps_2_workers: memio.and_then(|m| m.3).map(|s| round4(s.1)),
        memio_scaling_2_workers: memio.and_then(|m| m.3).map(|s| round4(s.1 / s.0)),
        namespace: Some(NsReport {
            vrouter_mpps_min: round4(v.min()),
            vrouter_mpps_max: round4(v.max()),
            bare_afxdp_mpps_min: round4(b.min()),
            bare_afxdp_mpps_max: round4(b.max()),
            kernel_mpps_min: k.map(|k| round4(k.min())),
            kernel_mpps_max: k.map(|k| round4(k.max())),
            kernel_vxlan_mpps_min: kx.map(|k| round4(k.min())),
            kernel_vxlan_mpps_max: kx.map(|k| round4(k.max())),
            offered_mpps: round4(v.offered_median()),
            vrouter_offered_mpps: round4(v.offered_median()),
            bare_afxdp_offered_mpps: round4(b.offered_median()),
            kernel_offered_mpps: k.map(|k| round4(k.offered_median())),
            kernel_vxlan_offered_mpps: kx.map(|k| round4(k.offered_median())),
            vrouter_windows_mpps: windows(v),
            bare_afxdp_windows_mpps: windows(b),
            kernel_windows_mpps: k.map(windows),
            kernel_vxlan_windows_mpps: kx.map(windows),
            vrouter_sink_frame_bytes: round4(v.sink_frame_bytes),
            bare_afxdp_sink_frame_bytes: round4(b.sink_frame_bytes),
            vrouter_runq_wait_ms: round4(v.runq_wait_ms),
            bare_afxdp_runq_wait_ms: round4(b.runq_wait_ms),
            kernel_vxlan_sink_frame_bytes: kx.map(|k| round4(k.sink_frame_bytes)),
            windows: l3.windows,
            window_secs: opts.window_secs,
            warmup_secs: opts.warmup_secs,
            frame_bytes: 64,
            xdp_mode: l3.xdp_mode.name().to_string(),
            bare_afxdp_xdp_mode: res.bare_xdp_mode.to_string(),
            generator: l3.engine.name().to_string(),
            generator_core: l3.gen_core,
            dut_core: l3.dut_core,
            vrouterd_counters: res.vrouterd_stats.clone(),
            rounds: RoundsReport::new(res),
        }),
    }
}

/// The forwarders measured, named as the tables show them.
fn candidates<'a>(l3: &L3Options, res: &'a L3Results) -> Vec<(String, &'a Series)> {
    let mut v = vec![(
        match l3.scenario {
            Scenario::L3 => "vrouterd (1 busy worker)",
            Scenario::V6 => "vrouterd IPv6 (1 busy worker)",
            Scenario::Vxlan => "vrouterd VXLAN (1 worker)",
            Scenario::Ipip => "vrouterd IPIP (1 worker)",
            Scenario::Fullfib => "vrouterd full table (1 worker)",
            Scenario::Ecmp => "vrouterd ECMP x4 (1 worker)",
            Scenario::Nat => "vrouterd NAT outgoing (1 worker)",
            Scenario::Policy => "vrouterd with policy (1 worker)",
        }
        .to_string(),
        &res.vrouter,
    )];
    for (var, s) in &res.afxdp_variants {
        v.push((var.label(), s));
    }
    if let Some(two) = &res.vrouter_2w {
        v.push(("vrouterd 2 workers (1 on gen core)".into(), two));
    }
    v.push(("bare AF_XDP (rx->MAC->tx)".into(), &res.bare));
    if let Some(t) = &res.testpmd {
        v.push(("DPDK testpmd (af_xdp, mac)".into(), t));
    }
    if let Some(k) = &res.kernel {
        let what = match l3.scenario {
            Scenario::Fullfib => "kernel ip_forward, full table",
            Scenario::Ecmp => "kernel ip_forward, ECMP x4",
            Scenario::Nat => "kernel NAT (nftables masquerade)",
            _ => "kernel ip_forward (RPS)",
        };
        v.push((what.into(), k));
    }
    if let Some(k) = &res.kernel_vxlan {
        v.push(("kernel vxlan.calico (RPS)".into(), k));
    }
    v
}

/// "p50 / p99" in µs, or "-" when not probed.
fn latency_text(s: &Series) -> String {
    match (s.latency_p50_us, s.latency_p99_us) {
        (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
        _ => "-".into(),
    }
}

fn bound_by(s: &Series) -> &'static str {
    if s.median() >= 0.95 * s.offered_median() {
        "generator"
    } else {
        "forwarder"
    }
}

/// The run as a markdown table (docs/bench, the README's Performance section).
fn markdown(opts: &Opts, l3: &L3Options, res: &L3Results, r: &Report) -> String {
    let mut m = format!(
        "### {} — 64 B UDP, {} flows, {} windows of {} s in {}{}\n\n| forwarder | min | median | max (Mpps) | spread | offered | bound by | DUT core busy | generator core busy | latency p50 / p99 (µs) at {} kpps |\n|---|---|---|---|---|---|---|---|---|---|\n",
        opts.scenario,
        l3.flows,
        l3.windows,
        opts.window_secs,
        rounds_text(l3.rounds),
        if opts.quick { " (--quick: a smoke run, not figures to quote)" } else { "" },
        l3.latency_pps / 1000
    );
    for (name, s) in candidates(l3, res) {
        m.push_str(&format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.0}% | {:.3} | {} | {:.0}% | {:.0}% | {} |\n",
            s.min(),
            s.median(),
            s.max(),
            s.spread() * 100.0,
            s.offered_median(),
            bound_by(s),
            s.dut_cpu_busy * 100.0,
            s.gen_cpu_busy * 100.0,
            latency_text(s)
        ));
    }
    let mut ratios = vec![format!(
        "vs bare AF_XDP {:.3}",
        r.ratio_vs_bare.unwrap_or(f64::NAN)
    )];
    if let Some(t) = r.ratio_vs_testpmd {
        ratios.push(format!("vs testpmd {t:.3}"));
    }
    if let Some(k) = r.ratio_vs_kernel {
        ratios.push(format!("vs kernel {k:.3}"));
    }
    if let Some(Some(k)) = r.ratio_vs_kernel_vxlan {
        ratios.push(format!("vs kernel VXLAN {k:.3}"));
    }
    m.push_str(&format!(
        "\nvrouterd's ratios (medians): {}. Per round: {}. Spread: (max - min) / median of a forwarder's windows.",
        ratios.join(", "),
        per_round_ratios(&r.namespace.as_ref().expect("a namespace run").rounds)
    ));
    if let Some(x) = r.scaling_2_workers {
        m.push_str(&format!(
            " Two workers against one in namespaces: {x:.2}x (the second worker shares the generator's core)."
        ));
    }
    if let (Some(n), Some(v), Some(k)) = (
        r.fib_routes,
        r.vrouter_fib_install_s,
        r.kernel_fib_install_s,
    ) {
        m.push_str(&format!(
            " Table: {n} routes, installed by vrouterd from BGP in {v:.1} s{}, by the kernel from ip -batch in {k:.1} s.",
            if r.vrouter_fib_install_s_per_round.len() > 1 {
                format!(
                    " (round by round: {})",
                    r.vrouter_fib_install_s_per_round
                        .iter()
                        .map(|x| format!("{x:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        ));
    }
    if let Some(x) = r.memio_scaling_2_workers {
        m.push_str(&format!(
            " Two workers against one (memio, both cores, no generator): {x:.2}x."
        ));
    }
    if let Some(c) = r.memio_cycles_reps {
        m.push_str(&format!(
            " memio: {:.1} cycles per packet at the minimum, {:.1} median, over {} repetitions ({} routes).",
            c.min, c.median, c.reps,
            memio_routes(opts)
        ));
    }
    m.push('\n');
    m
}

/// vrouterd's ratios round by round: "vs bare AF_XDP 0.910 0.930 0.900, vs kernel ...".
fn per_round_ratios(r: &RoundsReport) -> String {
    bench::rounds::REFERENCES
        .iter()
        .filter_map(|(key, what)| {
            let v = r.ratio(key)?;
            let list: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
            Some(format!("vs {what} {}", list.join(" ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(opts: &Opts, l3: &L3Options, res: &L3Results, r: &Report) {
    println!(
        "fwdbench {}: 64 B UDP, {} flows: ns GEN ({}{} generator, CPU{}) -> ns DUT (forwarder, CPU{}) -> ns SINK ({}XDP drop{})",
        opts.scenario,
        l3.flows,
        if l3.scenario.from_pod() { "a pod, " } else { "" },
        l3.engine.name(),
        l3.gen_core,
        l3.dut_core,
        if !l3.scenario.from_pod() {
            "a pod, "
        } else if l3.scenario.overlay() {
            "the remote node, "
        } else {
            "a router on the uplink, "
        },
        if res.sink_native { "" } else { ", generic mode" }
    );
    println!(
        "{} windows of {} s per forwarder in {} (each forwarder in turn, a {} s warm-up each round); XDP mode {} (bare forwarder: {})",
        l3.windows,
        opts.window_secs,
        rounds_text(l3.rounds),
        opts.warmup_secs,
        l3.xdp_mode.name(),
        res.bare_xdp_mode
    );
    println!();
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>7} {:>13}  {:<9} {:>8} {:>8}  {}",
        "forwarder (Mpps at sink)",
        "min",
        "median",
        "max",
        "spread",
        "offered (med)",
        "bound by",
        "DUT cpu",
        "gen cpu",
        format_args!("latency p50 / p99 us at {} kpps", l3.latency_pps / 1000)
    );
    for (name, s) in candidates(l3, res) {
        println!(
            "{name:<34} {:>8.3} {:>8.3} {:>8.3} {:>6.0}% {:>13.3}  {:<9} {:>7.0}% {:>7.0}%  {}",
            s.min(),
            s.median(),
            s.max(),
            s.spread() * 100.0,
            s.offered_median(),
            bound_by(s),
            s.dut_cpu_busy * 100.0,
            s.gen_cpu_busy * 100.0,
            latency_text(s)
        );
    }
    println!();
    if let Some(t) = r.ratio_vs_testpmd {
        println!("ratio vs DPDK testpmd (same veths, AF_XDP PMD): {t:.3}");
    }
    match l3.scenario {
        Scenario::L3 | Scenario::V6 | Scenario::Policy => println!(
            "ratio vs bare AF_XDP: {:.3} (target >= 0.9)   ratio vs kernel: {:.3}",
            r.ratio_vs_bare.unwrap_or(f64::NAN),
            r.ratio_vs_kernel.unwrap_or(f64::NAN)
        ),
        Scenario::Vxlan => println!(
            "ratio vs kernel VXLAN: {:.3} (target >= 1.2)   ratio vs bare AF_XDP (no encapsulation): {:.3}",
            r.ratio_vs_kernel_vxlan.flatten().unwrap_or(f64::NAN),
            r.ratio_vs_bare.unwrap_or(f64::NAN)
        ),
        Scenario::Ipip => println!(
            "ratio vs bare AF_XDP (no encapsulation; no kernel ipip module here): {:.3}",
            r.ratio_vs_bare.unwrap_or(f64::NAN)
        ),
        Scenario::Fullfib => println!(
            "ratio vs the kernel with the same {} routes: {:.3} (target >= 1.0)   vs bare AF_XDP (no lookup): {:.3}\ntable installed by vrouterd from BGP in {:.2} s, by the kernel from ip -batch in {:.2} s",
            r.fib_routes.unwrap_or(0),
            r.ratio_vs_kernel.unwrap_or(f64::NAN),
            r.ratio_vs_bare.unwrap_or(f64::NAN),
            r.vrouter_fib_install_s.unwrap_or(f64::NAN),
            r.kernel_fib_install_s.unwrap_or(f64::NAN)
        ),
        Scenario::Ecmp => println!(
            "ratio vs kernel ECMP: {:.3}   vs bare AF_XDP (no ECMP): {:.3}; share per next hop at the probe: vrouterd {:?}, kernel {:?}",
            r.ratio_vs_kernel.unwrap_or(f64::NAN),
            r.ratio_vs_bare.unwrap_or(f64::NAN),
            res.vrouter.ecmp_shares,
            res.kernel.as_ref().map(|k| k.ecmp_shares.clone()).unwrap_or_default()
        ),
        Scenario::Nat => println!(
            "ratio vs kernel NAT (nftables masquerade): {:.3} (target >= 1.5)   vs bare AF_XDP (no NAT, no lookup): {:.3}",
            r.ratio_vs_kernel_nat.unwrap_or(f64::NAN),
            r.ratio_vs_bare.unwrap_or(f64::NAN)
        ),
    }
    if let Some(n) = &r.namespace {
        println!(
            "vrouterd's ratios per round ({}, of {:?} windows): {}",
            rounds_text(n.rounds.rounds),
            n.rounds.windows_per_round,
            per_round_ratios(&n.rounds)
        );
    }
    if let Some(x) = r.scaling_2_workers {
        println!(
            "vrouterd 2 workers vs 1: {x:.2}x (on 2 cores the second worker shares the generator's core, and veth puts the generator's frames on one queue: not a scaling figure; see memio scaling)"
        );
    }
    println!(
        "forwarder threads waiting for a CPU during the windows: vrouterd {:.1} ms, bare AF_XDP {:.1} ms (of {:.0} ms; ~2% is the kernel's own work on that core, much more means another task shared it)",
        res.vrouter.runq_wait_ms,
        res.bare.runq_wait_ms,
        opts.window_secs * l3.windows as f64 * 1e3
    );
    if l3.scenario.overlay() {
        println!(
            "mean frame at the sink (rx_bytes/rx_packets): bare AF_XDP {:.1} B, vrouterd {:.1} B{} (bare + {} B of outer headers expected)",
            res.bare.sink_frame_bytes,
            res.vrouter.sink_frame_bytes,
            res.kernel_vxlan
                .as_ref()
                .map(|k| format!(", kernel VXLAN {:.1} B", k.sink_frame_bytes))
                .unwrap_or_default(),
            l3.scenario.overhead()
        );
    }
    match r.memio_cycles_reps {
        Some(c) => println!(
            "memio: {:.1} cycles/packet at the minimum, {:.1} median, {:.1} max over {} repetitions, {} routes, {} packets, {:.1}% forwarded; {:.1} in a worker on the memory backend",
            c.min, c.median, c.max, c.reps,
            memio_routes(opts),
            opts.packets,
            r.memio_forwarded_ratio.unwrap_or(0.0) * 100.0,
            r.memio_worker_cycles_per_pkt.unwrap_or(f64::NAN)
        ),
        None => println!("memio: skipped (--no-memio)"),
    }
    if let (Some(one), Some(two), Some(x)) = (
        r.memio_mpps_1_worker,
        r.memio_mpps_2_workers,
        r.memio_scaling_2_workers,
    ) {
        println!(
            "memio scaling: one pipeline {one:.2} Mpps, two at once on both cores {two:.2} Mpps: {x:.2}x (target >= 1.6; no generator in the way)"
        );
    }
}

/// `--memio` alone: the pipeline's cost, printed as it always was.
fn memio_only(opts: &Opts) {
    let tsc = Tsc::calibrate();
    let (cycles, forwarded, worker_cycles, scaling) = memio(opts, &tsc);
    let r = Report {
        afxdp_variants: Vec::new(),
        scenario: opts.scenario.clone(),
        vrouter_mpps: None,
        bare_afxdp_mpps: None,
        kernel_mpps: None,
        ratio_vs_bare: None,
        ratio_vs_kernel: None,
        testpmd_mpps: None,
        ratio_vs_testpmd: None,
        candidates: Vec::new(),
        vrouter_2_workers_mpps: None,
        scaling_2_workers: None,
        fib_routes: None,
        vrouter_fib_install_s: None,
        vrouter_fib_install_s_per_round: Vec::new(),
        kernel_fib_install_s: None,
        kernel_vxlan_mpps: None,
        ratio_vs_kernel_vxlan: None,
        kernel_nat_mpps: None,
        ratio_vs_kernel_nat: None,
        memio_cycles_per_pkt: Some(round4(cycles.median)),
        memio_cycles_per_pkt_min: Some(round4(cycles.min)),
        memio_cycles_reps: Some(cycles),
        memio_routes: Some(memio_routes(opts)),
        memio_packets: Some(opts.packets),
        memio_forwarded_ratio: Some(forwarded),
        memio_worker_cycles_per_pkt: Some(worker_cycles),
        memio_mpps_1_worker: scaling.map(|s| round4(s.0)),
        memio_mpps_2_workers: scaling.map(|s| round4(s.1)),
        memio_scaling_2_workers: scaling.map(|s| round4(s.1 / s.0)),
        namespace: None,
        nat_memio: nat_memio(opts, &tsc),
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
    } else {
        println!(
            "fwdbench {} --memio: {} routes, {} packets of 64 B {}",
            r.scenario,
            memio_routes(opts),
            opts.packets,
            if r.scenario == "l3" || r.scenario == "fullfib" {
                "from the uplink to uniformly random addresses"
            } else if r.scenario == "ecmp" {
                "from the uplink, each route to one of 16 ECMP groups of four neighbours"
            } else if r.scenario == "v6" {
                "of IPv6 from the uplink (200,000-route IPv6 table, random destinations inside it)"
            } else {
                "from a pod, each route to one of 64 tunnels (encapsulated in 2048 B buffers)"
            }
        );
        println!(
            "pipeline cost: {:.1} cycles/packet at the minimum, {:.1} median, {:.1} max over {} repetitions ({:.1}% forwarded, rest to the kernel or dropped)",
            cycles.min, cycles.median, cycles.max, cycles.reps,
            forwarded * 100.0
        );
        println!(
            "in a worker on the memory backend: {worker_cycles:.1} cycles/packet (I/O layer included)"
        );
        if let Some((one, two)) = scaling {
            println!(
                "two workers against one (pipelines on both cores at once, frames written included): {one:.2} -> {two:.2} Mpps, {:.2}x",
                two / one
            );
        }
        print_nat_memio(&r);
    }
}

/// Cycles per packet of `Pipeline::process` on 64-byte UDP frames from the uplink with
/// uniformly random destinations, bursts of 64. Frames are rewritten from a template
/// between bursts (outside the timed region), as live frames are.
///
/// Scenarios vxlan / ipip: the frames come from a pod (port 1, its own source address)
/// and every route of the table points at one of 64 tunnels (`Adjacency::Tunnel`, each
/// toward its own remote node, whose underlay next hop is a router out of the uplink):
/// each forwarded packet is encapsulated in its 2048-byte buffer.
///
/// Scenario fullfib measures what l3 does (the full table, random destinations);
/// scenario ecmp points every route at one of 16 groups of four neighbours.
fn memio(opts: &Opts, tsc: &Tsc) -> Memio {
    const PORTS: u16 = 8;
    const NODE: [u8; 4] = [10, 98, 0, 1];
    let scenario = Scenario::parse(&opts.scenario).unwrap_or(Scenario::L3);
    if scenario == Scenario::V6 {
        return memio_v6(opts, tsc);
    }
    let overlay = scenario.overlay();
    // Scenario ecmp: each route's next hop is one of 16 groups of four neighbours
    // (next hops 65..129), picked by the flow's hash.
    let ecmp = scenario == Scenario::Ecmp;
    let nexthops = Arc::new(NextHopTable::new(65 + 64));
    let tunnels = Arc::new(TunnelTable::new(64));
    let groups = Arc::new(GroupTable::new(16));
    for i in 0..64u32 {
        let port = PortId(1 + (i % (PORTS as u32 - 1)) as u16);
        if overlay {
            let underlay = encap::tunnel::Underlay::V4 {
                src: NODE.into(),
                dst: [10, 98, 1, i as u8].into(),
            };
            let eth = encap::tunnel::OuterEth {
                dst: [0; 6],
                src: [0; 6],
            };
            let encap = match scenario {
                Scenario::Ipip => Encap::Ipip(encap::ipip::Ipip { underlay, eth }),
                _ => Encap::Vxlan(encap::vxlan::Vxlan {
                    vni: encap::vxlan::CALICO_VNI,
                    local_vtep_mac: [0x66, 0, 0, 0, 0, 1],
                    remote_vtep_mac: [0x66, 0, 0, 0, 1, i as u8],
                    underlay,
                    eth,
                    source_port: encap::vxlan::SourcePort::FlowHash,
                }),
            };
            tunnels.set(i, Tunnel::new(encap, 64));
            nexthops.set(i, Adjacency::Tunnel { id: i });
        } else {
            let direct = if ecmp { 65 + i } else { i };
            nexthops.set(
                direct,
                Adjacency::Forward {
                    port,
                    mac: [0x02, 0, 0, 0, 0, i as u8],
                },
            );
            if ecmp {
                nexthops.set(i, Adjacency::Group { id: i % 16 });
                if i < 16 {
                    groups.set(i, &[65 + 4 * i, 66 + 4 * i, 67 + 4 * i, 68 + 4 * i]);
                }
            }
        }
    }
    nexthops.set(
        64,
        Adjacency::Forward {
            port: PortId(0),
            mac: [0x52, 0x54, 0, 0, 0, 0xfe],
        },
    );
    let mut rng = Rng::new(synth::DEFAULT_SEED);
    let fib4 = Fib4::from_routes(
        synth::dpdk_v4(opts.routes, synth::DEFAULT_SEED)
            .into_iter()
            .map(|n| (n, NextHopId(rng.below(64) as u32))),
    );
    let fib6 = Fib6::new();
    // Pod p may send from 10.244.0.p (the overlay scenarios' source).
    let ports = memio_ports(PORTS, |p| vec![0x0af4_0000 + p as u32]);
    let counters = Arc::new(Counters::new(2));
    let nexthops_for_worker = nexthops.clone();
    let ports: Arc<[Port]> = ports.into();
    // One pipeline per worker, all reading the same FIB and tables.
    let make_pipeline = |w: usize| {
        let p = Pipeline::new(
            fib4.reader(),
            fib6.reader(),
            nexthops.clone(),
            ports.clone(),
            counters.clone(),
            w,
        )
        .with_groups(groups.clone());
        if overlay {
            p.with_overlay(
                tunnels.clone(),
                Overlay {
                    local_v4: vec![u32::from_be_bytes(NODE)],
                    local_v6: vec![],
                    pools_v4: vec![(0x0af4_0000, 16)],
                    pools_v6: vec![],
                    vni: encap::vxlan::CALICO_VNI,
                    ..Overlay::default()
                },
            )
        } else {
            p
        }
    };
    let pipeline = make_pipeline(0);
    // Frames enter from the uplink (l3) or from the pod on port 1 (its address as source).
    let in_port = if overlay { PortId(1) } else { PortId(0) };

    // A 64-byte frame: Ethernet + IPv4 (TTL 64) + UDP + payload.
    let mut template = vec![0u8; 64];
    template[12..14].copy_from_slice(&[0x08, 0x00]);
    template[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 9, 0, 0, 0, 0,
    ]);
    if overlay {
        template[0..6].copy_from_slice(&[0xee; 6]);
        template[26..30].copy_from_slice(&[10, 244, 0, 1]);
    }
    let mut ring_fill = |frames: &mut [Vec<u8>]| {
        for f in frames.iter_mut() {
            f[..64].copy_from_slice(&template);
            f[30..34].copy_from_slice(&rng.next_u32().to_be_bytes());
            let c = encap::rewrite::ipv4_checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
    };
    let mut rng2 = Rng::new(synth::DEFAULT_SEED + 1);
    let mut frame = template.clone();
    let mut next_frame = || {
        frame[30..34].copy_from_slice(&rng2.next_u32().to_be_bytes());
        let c = encap::rewrite::ipv4_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        frame.clone()
    };
    // A first short run warms the caches and TLBs over the table, uncounted.
    let secs = if opts.quick { 0.5 } else { 2.0 };
    parallel_mpps(&[1], &make_pipeline, &template, in_port, secs / 4.0);
    // One worker on either core (the better of the two: cores differ in what else
    // the kernel runs there), then two at once.
    let one = parallel_mpps(&[0], &make_pipeline, &template, in_port, secs).max(parallel_mpps(
        &[1],
        &make_pipeline,
        &template,
        in_port,
        secs,
    ));
    let scaling = (
        one,
        parallel_mpps(&[0, 1], &make_pipeline, &template, in_port, secs),
    );
    let (pipeline_cycles, forwarded, worker_cycles, actions) = time_pipeline(
        opts,
        tsc,
        pipeline,
        nexthops_for_worker,
        &counters,
        in_port,
        PORTS as usize,
        &mut ring_fill,
        &mut next_frame,
    );
    // The last burst's transmissions must carry the scenario's outer headers.
    let want = 64 + scenario.overhead();
    if let Some(len) = actions.iter().find_map(|a| match a {
        Action::Tx { len, .. } if *len != want => Some(*len),
        _ => None,
    }) {
        fail(
            1,
            &format!(
                "memio {}: a {len}-byte frame sent, not {want}",
                opts.scenario
            ),
        );
    }
    (pipeline_cycles, forwarded, worker_cycles, Some(scaling))
}

/// Mpps of pipelines run at once, one per core of `cores` (pinned), each over its own
/// ring of frames to random IPv4 destinations, for `secs` of wall-clock time.
fn parallel_mpps(
    cores: &[usize],
    make_pipeline: &dyn Fn(usize) -> Pipeline,
    template: &[u8],
    in_port: PortId,
    secs: f64,
) -> f64 {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let pipelines: Vec<Pipeline> = (0..cores.len()).map(make_pipeline).collect();
    let started = std::time::Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = pipelines
            .into_iter()
            .zip(cores)
            .enumerate()
            .map(|(w, (mut pipeline, &core))| {
                let stop = &stop;
                scope.spawn(move || {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                    let mut rng = Rng::new(synth::DEFAULT_SEED + 7 + w as u64);
                    let mut frames: Vec<Vec<u8>> = vec![vec![0u8; 2048]; 1024];
                    let lens = [template.len(); BURST];
                    let mut actions = [Action::Kernel; BURST];
                    let mut done = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for f in frames.iter_mut() {
                            f[..template.len()].copy_from_slice(template);
                            f[30..34].copy_from_slice(&rng.next_u32().to_be_bytes());
                            let c = encap::rewrite::ipv4_checksum(&f[14..34]);
                            f[24..26].copy_from_slice(&c.to_be_bytes());
                        }
                        for chunk in frames.chunks_mut(BURST) {
                            let mut refs: Vec<&mut [u8]> =
                                chunk.iter_mut().map(|f| &mut f[..]).collect();
                            let n = refs.len();
                            pipeline.process(in_port, &mut refs, &lens[..n], &mut actions[..n]);
                            done += n;
                        }
                    }
                    pipeline.offline();
                    done
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// Time `pipeline` over `opts.packets` frames into `in_port` (a ring of 4096 buffers of
/// 2048 bytes, filled by `ring_fill` before each pass), then the same pipeline inside a
/// worker on the in-memory backend (the trait AF_XDP implements: taking frames off a
/// port, carrying the actions out, the per-loop housekeeping), fed by `next_frame`.
/// Returns (pipeline cycles per packet, share forwarded, worker cycles per packet, the
/// last burst's actions).
#[allow(clippy::too_many_arguments)]
fn time_pipeline(
    opts: &Opts,
    tsc: &Tsc,
    mut pipeline: Pipeline,
    nexthops: Arc<NextHopTable>,
    counters: &Counters,
    in_port: PortId,
    ports: usize,
    ring_fill: &mut dyn FnMut(&mut [Vec<u8>]),
    next_frame: &mut dyn FnMut() -> Vec<u8>,
) -> (bench::Reps, f64, f64, [Action; BURST]) {
    let mut frames: Vec<Vec<u8>> = vec![vec![0u8; 2048]; 4096];
    let lens = [64usize; BURST];
    let mut actions = [Action::Kernel; BURST];
    // MEMIO_REPS repetitions after a warm-up of one: figures are judged on the minimum.
    let per_rep = opts.packets.div_ceil(MEMIO_REPS).max(frames.len());
    let mut reps = Vec::with_capacity(MEMIO_REPS);
    for rep in 0..=MEMIO_REPS {
        let (mut cycles, mut done) = (0u64, 0usize);
        while done < per_rep {
            if bench::netns::interrupted() {
                fail(130, "interrupted");
            }
            ring_fill(&mut frames);
            for chunk in frames.chunks_mut(BURST) {
                let mut refs: Vec<&mut [u8]> = chunk.iter_mut().map(|f| &mut f[..]).collect();
                let n = refs.len();
                let c0 = tsc.now();
                pipeline.process(in_port, &mut refs, &lens[..n], &mut actions[..n]);
                cycles += tsc.now() - c0;
                done += n;
            }
        }
        if rep > 0 {
            reps.push(cycles as f64 / done as f64);
        }
    }
    let t = counters.total();
    let forwarded = t.tx as f64 / t.rx.max(1) as f64;
    let mut worker = Worker::new(
        MemoryIo::new(ports, 4 * BURST),
        pipeline,
        nexthops,
        Vec::new(),
        PollMode::Busy,
    );
    let (mut wcycles, mut wdone) = (0u64, 0usize);
    while wdone < opts.packets {
        for _ in 0..4 * BURST {
            worker.io.inject(in_port, &next_frame());
        }
        let c0 = tsc.now();
        let n = worker.poll_once();
        wcycles += tsc.now() - c0;
        wdone += n;
        worker.io.discard_sent();
        worker.io.take_to_kernel();
    }
    (
        bench::Reps::of(&reps),
        forwarded,
        wcycles as f64 / wdone.max(1) as f64,
        actions,
    )
}

/// Repetitions of the memio pipeline measurement (bench::MIN_REPS or more).
const MEMIO_REPS: usize = 16;

/// One N of `--scenario policy`: the namespace run's medians (unless --memio) and the
/// memio figures at 256 and 100,000 flows (20,000 with --quick).
#[derive(Serialize)]
struct PolicyRow {
    rules: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrouter_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_policy_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_kernel_policy: Option<f64>,
    /// vrouterd's flows in its stats after the run (evidence the policy was tracked).
    #[serde(skip_serializing_if = "Option::is_none")]
    vrouter_tracked_flows: Option<u64>,
    /// {"established": at 100K flows, "new": each packet a new flow,
    /// "established_256_flows": at 256 flows}.
    memio_policy_cycles_per_pkt: std::collections::BTreeMap<&'static str, f64>,
    memio_no_policy_cycles_per_pkt: f64,
    memio_no_policy_256_flows_cycles_per_pkt: f64,
    /// Targets: established <= 1.15x at every N; new <= 3x at N = 10,000.
    established_ratio_vs_no_policy: f64,
    established_256_flows_ratio_vs_no_policy: f64,
    new_ratio_vs_no_policy: f64,
    /// Building the policy set (target: <= 100 ms at 10,000 rules).
    compile_publish_ms: f64,
    /// The receiving pod's classifier alone, per first packet (what N changes).
    memio_classify_cycles_per_pkt: f64,
    memio_policy_flows: usize,
}

#[derive(Serialize)]
struct PolicyReport {
    scenario: &'static str,
    generator_flows: u16,
    memio_routes: usize,
    memio_packets: usize,
    policy: Vec<PolicyRow>,
}

/// `--scenario policy`: per N, vrouterd beside the kernel's nftables chain on the same
/// veths (l3 topology: generator on the uplink, the sink a pod with the rules), then
/// the memio figures.
fn policy_scenario(opts: &Opts) {
    let rules = if opts.rules.is_empty() {
        vec![1, 100, 1000, 10_000]
    } else {
        opts.rules.clone()
    };
    if rules.contains(&0) {
        fail(2, "--rules: at least 1 (the last rule is the Allow)");
    }
    let tsc = Tsc::calibrate();
    let big = if opts.quick { 20_000 } else { 100_000 };
    let mut rows = Vec::new();
    for &n in &rules {
        let mut row_ns = (None, None, None, None);
        if !opts.memio {
            let one = Opts {
                rules: vec![n],
                ..opts.clone()
            };
            let (l3, res) = measure(&one, Scenario::Policy);
            let r = report(&one, &l3, &res, None);
            let tracked = res
                .vrouterd_stats
                .as_ref()
                .and_then(|s| s.pointer("/conntrack/flows").and_then(|v| v.as_u64()));
            match tracked {
                Some(f) if f > 0 => {}
                other => fail(
                    1,
                    &format!("policy N={n}: vrouterd tracked no flow ({other:?}): was the policy applied?"),
                ),
            }
            let (Some(v), Some(k)) = (r.vrouter_mpps, r.kernel_mpps) else {
                fail(1, &format!("policy N={n}: a forwarder has no figure"));
            };
            row_ns = (Some(v), Some(k), Some(round4(v / k)), tracked);
            std::thread::sleep(Duration::from_secs(1));
        }
        let m = bench::policymemio::run(memio_routes(opts), n, big, opts.packets, &tsc);
        let small = bench::policymemio::run(memio_routes(opts), n, 256, opts.packets, &tsc);
        for x in [&m, &small] {
            if x.forwarded_ratio < 0.999 {
                fail(
                    1,
                    &format!(
                        "memio policy N={n}: only {:.1}% forwarded",
                        x.forwarded_ratio * 100.0
                    ),
                );
            }
        }
        let mut cycles = std::collections::BTreeMap::new();
        cycles.insert("established", round4(m.established_cycles_per_pkt));
        cycles.insert("new", round4(m.new_cycles_per_pkt));
        cycles.insert(
            "established_256_flows",
            round4(small.established_cycles_per_pkt),
        );
        rows.push(PolicyRow {
            rules: n,
            vrouter_mpps: row_ns.0,
            kernel_policy_mpps: row_ns.1,
            ratio_vs_kernel_policy: row_ns.2,
            vrouter_tracked_flows: row_ns.3,
            memio_policy_cycles_per_pkt: cycles,
            memio_no_policy_cycles_per_pkt: round4(m.no_policy_cycles_per_pkt),
            memio_no_policy_256_flows_cycles_per_pkt: round4(small.no_policy_cycles_per_pkt),
            established_ratio_vs_no_policy: round4(
                m.established_cycles_per_pkt / m.no_policy_cycles_per_pkt,
            ),
            established_256_flows_ratio_vs_no_policy: round4(
                small.established_cycles_per_pkt / small.no_policy_cycles_per_pkt,
            ),
            new_ratio_vs_no_policy: round4(m.new_cycles_per_pkt / m.no_policy_cycles_per_pkt),
            compile_publish_ms: round4(m.compile_ms),
            memio_classify_cycles_per_pkt: round4(m.classify_cycles_per_pkt),
            memio_policy_flows: big,
        });
    }
    let report = PolicyReport {
        scenario: "policy",
        generator_flows: opts.flows,
        memio_routes: memio_routes(opts),
        memio_packets: opts.packets,
        policy: rows,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    println!(
        "fwdbench policy: N rules on the receiving pod's ingress (none matching but the last Allow); memio: {} routes, 64 B UDP pod to pod, {} flows at random (and 256)",
        report.memio_routes, big
    );
    println!(
        "{:>6} | {:>8} {:>8} {:>6} | {:>9} {:>9} {:>6} | {:>9} {:>6} | {:>8} {:>6} | {:>8} | {:>8}",
        "rules",
        "vrouter",
        "kernel",
        "ratio",
        "no-pol",
        "estab",
        "x",
        "est-256",
        "x",
        "new",
        "x",
        "classify",
        "compile"
    );
    for r in &report.policy {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
        println!(
            "{:>6} | {:>8} {:>8} {:>6} | {:>9.1} {:>9.1} {:>6.2} | {:>9.1} {:>6.2} | {:>8.1} {:>6.2} | {:>8.1} | {:>6.1}ms",
            r.rules,
            f(r.vrouter_mpps),
            f(r.kernel_policy_mpps),
            f(r.ratio_vs_kernel_policy),
            r.memio_no_policy_cycles_per_pkt,
            r.memio_policy_cycles_per_pkt["established"],
            r.established_ratio_vs_no_policy,
            r.memio_policy_cycles_per_pkt["established_256_flows"],
            r.established_256_flows_ratio_vs_no_policy,
            r.memio_policy_cycles_per_pkt["new"],
            r.new_ratio_vs_no_policy,
            r.memio_classify_cycles_per_pkt,
            r.compile_publish_ms
        );
    }
    println!("targets: established <= 1.15x no policy at every N; new <= 3x at N = 10,000; >= 2x the kernel at N = 1,000 (veth); compile + publish of 10,000 rules <= 100 ms");
}
