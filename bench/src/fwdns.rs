//! fwdbench's namespace scenarios: one topology per scenario, the forwarders (device
//! under test) measured on it in turns, round by round, with the same generator and sink.
//!
//! ```text
//!  ns GEN  gen_if 10.99.0.254 ──veth── up_if 10.99.0.1  ns DUT  pod_if ──veth── sink_if  ns SINK
//!  generator (pktgen), CPU0             (uplink)  forwarder  (ee:ee:..)    10.244.1.2   XDP_DROP
//!  64 B UDP to 10.244.1.2,             vrouterd / bare AF_XDP / kernel     counted in rx_packets
//!  256 source ports                                on CPU1
//! ```
//! That is l3 (and v6). In vxlan, ipip, fullfib and ecmp (`Scenario::from_pod`) GEN is
//! a pod of the node (up_if its host-side veth, ee:ee:..) and pod_if the DUT's uplink
//! (10.98.0.1/24): SINK is the remote node (vxlan, ipip) or the routers on the uplink
//! (10.98.0.2 for the full table, four neighbours for ECMP, all one veth).
//!
//! Candidates: `vrouterd` (the daemon next to our executable, one busy-polling worker,
//! then two workers); a bare AF_XDP forwarder (same I/O layer, `AfXdpIo`, and the same
//! XDP program, but no pipeline: rx → MAC rewrite → tx); DPDK testpmd; the kernel
//! (ip_forward with the same routes, or its VXLAN device).
//! Rounds (`L3Options::rounds`): in each, every candidate in the same order (bare,
//! vrouterd, vrouterd with two workers, testpmd, the kernel) is started, measured and
//! stopped; then the next round. A candidate's windows (`windows` over all rounds,
//! shared out by `rounds::split`) are thus spread over the whole run, and a disturbed
//! stretch of the host falls on every candidate instead of flipping one ratio;
//! `Series::absorb` adds up the rounds. What is costly is set up once: the topology, fullfib's table and its BGP
//! UPDATEs, the kernel's copy of it (`ip -batch` in the first round, flushed after the
//! last). vrouterd starts afresh each round (fullfib: it relearns the table over BGP).
//! Per candidate and round: a warm-up (the DUT and the sink must both have received
//! something, else the run fails), then the round's windows; the rate is what the sink's
//! interface received, the offered rate what the DUT's uplink received (rx_packets). In
//! the last round the latency probe follows (`Topology::probe_latency`): stamped frames
//! at a fixed rate, one-way latency read by the sink's probe program.
//!
//! Where the work lands on veth: the uplink's receive NAPI (our XDP program and the copy
//! into the AF_XDP socket; for the kernel, building the skb) runs on the sender's CPU,
//! CPU0, much as a NIC does it in hardware; the DUT core does the rest (userspace,
//! copy-mode TX, and the sink's NAPI, which veth runs inside the DUT's transmit). Kernel
//! forwarding goes to CPU1 through RPS. Generic XDP would run the receive side in the DUT
//! core's softirqs, which ksoftirqd then starves against the busy-polling worker
//! (`--xdp-mode generic` shows it: about a tenth of native). The DUT uplink has GRO on so
//! that it has NAPI when no native XDP program is attached: the live-frames generator's
//! XDP frames need it.
//!
//! Everything lives in namespaces `fwb<pid>-{gen,dut,sink}`, deleted on drop (errors,
//! Ctrl-C); namespaces of dead earlier runs are removed at start.

// kill(2), gettid(2) and sched_setaffinity through libc: FFI.
#![allow(unsafe_code)]

use crate::bgpfeed;
use crate::bpf::{self, ProbeSink};
use crate::netns::{self, DevStats, Netns};
use crate::pktgen::{Engine, GenConfig, Generator};
use crate::rounds;
use ipnet::IpNet;
use std::io::{self, Read, Seek};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vrouter::burst::Action;
use vrouter::burst::DropReason;
use vrouter::io::afxdp::AfXdpIo;
use vrouter::io::Io;
use vrouter::io::PortSpec;
use vrouter::nexthop::PortId;
use vrouter::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};

const GEN_MAC: [u8; 6] = [0x02, 0x66, 0x77, 0, 0, 0x01];
const UPLINK_MAC: [u8; 6] = [0x02, 0x66, 0x77, 0, 0, 0x02];
const SINK_MAC: [u8; 6] = [0x02, 0x66, 0x77, 0, 0, 0x05];
const POD_SIDE_MAC: [u8; 6] = vrouter::arp::HOST_SIDE_MAC;
const GEN_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 254);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
const POOL: &str = "10.244.0.0/16";
// Scenario v6: the same path over IPv6.
const GEN_IP6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0xfe);
const NODE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
const POD_IP6: Ipv6Addr = Ipv6Addr::new(0xfd10, 0, 0, 1, 0, 0, 0, 2);
const POOL6: &str = "fd10::/48";
// Overlay scenarios (`vxlan`, `ipip`): GEN is a local pod, SINK the remote node.
const UNDERLAY_NODE: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const UNDERLAY_REMOTE: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);
const REMOTE_BLOCK: &str = "10.244.2.0/26";
const REMOTE_TUNNEL_IP: &str = "10.244.2.0";
const LOCAL_VTEP_MAC: [u8; 6] = [0x66, 0, 0, 0, 0, 0x01];
const REMOTE_VTEP_MAC: [u8; 6] = [0x66, 0, 0, 0, 0, 0x02];
const KERNEL_VXLAN_DEV: &str = "vxlan.calico";
/// Namespace names start with this, then the pid.
pub const PREFIX: &str = "fwb";

/// How the forwarders attach their XDP program (vrouterd's `xdp_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

impl XdpMode {
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

/// What the DUT does with the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Plain routing, uplink → pod.
    L3,
    /// Pod → remote node's block, VXLAN (VNI 4096, UDP 4789) over the underlay.
    Vxlan,
    /// Pod → remote node's block, IP in IP over the underlay.
    Ipip,
    /// Plain routing over IPv6, uplink → pod.
    V6,
    /// Pod → uplink through a full IPv4 table (1.08M routes; vrouterd learns it over
    /// BGP, the kernel gets it with `ip -batch`), random destinations across it.
    Fullfib,
    /// Pod → uplink over four next hops (ECMP), 256 flows.
    Ecmp,
    /// Pod of a natOutgoing pool → a host outside the pools (UDP, many flows): the
    /// source becomes the node's address; the kernel does it with nftables masquerade.
    Nat,
    /// l3 with `policy_rules` rules on the sink pod's ingress (none matching but the
    /// last, an Allow); the kernel gets them as Calico's iptables mode would write them:
    /// conntrack's ESTABLISHED accepted first, then a linear chain (nftables).
    Policy,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::L3 => "l3",
            Scenario::Vxlan => "vxlan",
            Scenario::Ipip => "ipip",
            Scenario::V6 => "v6",
            Scenario::Fullfib => "fullfib",
            Scenario::Ecmp => "ecmp",
            Scenario::Nat => "nat",
            Scenario::Policy => "policy",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        match s {
            "l3" => Some(Scenario::L3),
            "vxlan" => Some(Scenario::Vxlan),
            "ipip" => Some(Scenario::Ipip),
            "v6" => Some(Scenario::V6),
            "fullfib" => Some(Scenario::Fullfib),
            "ecmp" => Some(Scenario::Ecmp),
            "nat" => Some(Scenario::Nat),
            "policy" => Some(Scenario::Policy),
            _ => None,
        }
    }

    /// Bytes the encapsulation adds in front of the inner frame's IP header.
    pub fn overhead(self) -> usize {
        match self {
            Scenario::L3
            | Scenario::V6
            | Scenario::Fullfib
            | Scenario::Ecmp
            | Scenario::Nat
            | Scenario::Policy => 0,
            Scenario::Vxlan => 50,
            Scenario::Ipip => 20,
        }
    }

    /// VXLAN or IPIP: the forwarder encapsulates.
    pub fn overlay(self) -> bool {
        matches!(self, Scenario::Vxlan | Scenario::Ipip)
    }

    /// The generator is a pod of the DUT node and the sink a neighbour on its uplink.
    pub fn from_pod(self) -> bool {
        !matches!(self, Scenario::L3 | Scenario::V6 | Scenario::Policy)
    }
}

#[derive(Debug, Clone)]
pub struct L3Options {
    pub scenario: Scenario,
    /// The vrouterd executable, and arguments to put first (fwdbench itself with
    /// `--as-vrouterd` when no vrouterd binary is built).
    pub vrouterd: PathBuf,
    pub vrouterd_args: Vec<String>,
    /// Windows per candidate, in all the rounds together.
    pub windows: usize,
    /// Rounds: in each, every candidate in turn measures its share of the windows.
    pub rounds: usize,
    pub window: Duration,
    pub warmup: Duration,
    pub xdp_mode: XdpMode,
    pub gen_core: usize,
    pub dut_core: usize,
    /// Generator: engine, source ports (flows) and frames per kick / per run.
    pub engine: Engine,
    pub flows: u16,
    pub batch: usize,
    /// Also measure DPDK testpmd (needs Debian's dpdk package).
    pub testpmd: bool,
    /// Also measure vrouterd with two workers.
    pub two_workers: bool,
    /// Latency probe after each candidate's windows of the last round: frames per
    /// second (AF_XDP, stamped), 0 for none.
    pub latency_pps: u64,
    pub latency_window: Duration,
    /// Scenario fullfib: routes in the table.
    pub fib_routes: usize,
    /// Scenario policy: rules on the sink pod's ingress.
    pub policy_rules: usize,
    /// vrouterd again with other AF_XDP options (`--afxdp-variant`), as more candidates
    /// of every round.
    pub afxdp_variants: Vec<AfxdpVariant>,
}

/// One `--afxdp-variant NAME:KEY=VALUE,...`: vrouterd's `[afxdp]` table (and `xdp_mode`)
/// for one more candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct AfxdpVariant {
    pub name: String,
    /// `xdp_mode` instead of the run's.
    pub xdp_mode: Option<XdpMode>,
    /// The `[afxdp]` keys and values, as written in vrouterd's file.
    pub settings: Vec<(String, String)>,
}

impl AfxdpVariant {
    /// `NAME:KEY=VALUE,...` (`NAME:` alone: the defaults, under another name). The keys
    /// are checked against vrouterd's own `[afxdp]` table, so a typo fails here.
    pub fn parse(s: &str) -> Result<AfxdpVariant, String> {
        let (name, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("--afxdp-variant {s:?}: NAME:KEY=VALUE,... expected"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "--afxdp-variant {s:?}: the name is letters, digits, - and _"
            ));
        }
        let mut v = AfxdpVariant {
            name: name.into(),
            xdp_mode: None,
            settings: Vec::new(),
        };
        for kv in rest.split(',').filter(|kv| !kv.is_empty()) {
            let (k, val) = kv
                .split_once('=')
                .ok_or_else(|| format!("--afxdp-variant {s:?}: {kv:?} is not KEY=VALUE"))?;
            if k == "xdp_mode" {
                v.xdp_mode = Some(match val {
                    "native" => XdpMode::Native,
                    "generic" => XdpMode::Generic,
                    _ => return Err(format!("--afxdp-variant {s:?}: xdp_mode native or generic")),
                });
            } else {
                v.settings.push((k.into(), val.into()));
            }
        }
        let t: vrouter::io::afxdp::Tuning = toml::from_str(&v.table())
            .map_err(|e| format!("--afxdp-variant {s:?}: {}", e.message()))?;
        t.validate()
            .map_err(|e| format!("--afxdp-variant {s:?}: {e}"))?;
        Ok(v)
    }

    /// The `[afxdp]` table's lines.
    fn table(&self) -> String {
        self.settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }

    /// As the tables name it.
    pub fn label(&self) -> String {
        format!("vrouterd afxdp {}", self.name)
    }

    /// `KEY=VALUE,...` as given, `xdp_mode` first.
    pub fn settings_text(&self) -> String {
        let mode = self.xdp_mode.map(|m| format!("xdp_mode={}", m.name()));
        mode.into_iter()
            .chain(self.settings.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Per-window rates of one candidate (all its rounds, in the order run).
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Received by the sink, Mpps.
    pub mpps: Vec<f64>,
    /// How many of the windows each round measured (`rounds::split`); empty for one
    /// round's own series.
    pub round_windows: Vec<usize>,
    /// Offered: what the DUT's uplink received (its rx_packets), Mpps.
    pub offered_mpps: Vec<f64>,
    /// Mean frame length the sink received over the windows (rx_bytes / rx_packets) as
    /// veth counts it: without the Ethernet header for frames sent through AF_XDP copy
    /// mode, so 50 plain, 100 VXLAN, 70 IPIP for 64-byte frames.
    pub sink_frame_bytes: f64,
    /// Over the windows: how long the forwarder's threads were runnable but waiting
    /// for a CPU (schedstat run_delay), ms; another task on the DUT core shows here.
    /// NaN for the kernel candidates.
    pub runq_wait_ms: f64,
    /// Over the windows: how busy the DUT core and the generator core were (0..1, from
    /// /proc/stat: everything but idle and iowait).
    pub dut_cpu_busy: f64,
    pub gen_cpu_busy: f64,
    /// One-way latency at the fixed offered load `latency_pps` (µs; None: not probed).
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub latency_pps: u64,
    /// Probed frames received at the fixed load, per second.
    pub latency_rx_pps: f64,
    /// Scenario ecmp: the share of probed frames sent to each of the next hops.
    pub ecmp_shares: Vec<f64>,
}

pub use crate::median;
use crate::sorted;

impl Series {
    pub fn min(&self) -> f64 {
        sorted(&self.mpps).first().copied().unwrap_or(f64::NAN)
    }
    pub fn median(&self) -> f64 {
        median(&self.mpps)
    }
    pub fn max(&self) -> f64 {
        sorted(&self.mpps).last().copied().unwrap_or(f64::NAN)
    }
    pub fn offered_median(&self) -> f64 {
        median(&self.offered_mpps)
    }
}

#[derive(Debug, Clone)]
pub struct L3Results {
    pub vrouter: Series,
    pub bare: Series,
    /// Kernel ip_forward (scenario l3).
    pub kernel: Option<Series>,
    /// The kernel's VXLAN device, configured as Calico does (scenario vxlan).
    pub kernel_vxlan: Option<Series>,
    /// The XDP attach mode the bare forwarder got ("native" / "generic").
    pub bare_xdp_mode: &'static str,
    /// DPDK testpmd (Debian's, AF_XDP PMD, mac forwarding) on the same veths.
    pub testpmd: Option<Series>,
    /// Whether the sink's drop program runs in native mode.
    pub sink_native: bool,
    /// vrouterd's counters (its --stats-file) after its run.
    pub vrouterd_stats: Option<serde_json::Value>,
    /// vrouterd with two workers (the second on the generator's core).
    pub vrouter_2w: Option<Series>,
    /// vrouterd (one worker) with each `--afxdp-variant`, in the options' order.
    pub afxdp_variants: Vec<(AfxdpVariant, Series)>,
    /// Scenario fullfib: routes, and seconds to get them into vrouterd (BGP, from
    /// Established to installed; its first round, one worker) and into the kernel (`ip
    /// -batch`, once: the table stays for the later rounds).
    pub fib_routes: Option<usize>,
    pub vrouter_fib_install_s: Option<f64>,
    /// vrouterd (one worker) relearns the table in every round: the seconds of each.
    pub vrouter_fib_install_s_per_round: Vec<f64>,
    pub kernel_fib_install_s: Option<f64>,
}

/// Build the topology, measure the candidates round by round, tear everything down.
pub fn run(opts: &L3Options) -> io::Result<L3Results> {
    if !netns::is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the namespace scenario needs root (network namespaces, XDP, AF_XDP); run as root or use --memio alone",
        ));
    }
    if !opts.vrouterd.is_file() {
        let profile = if opts
            .vrouterd
            .parent()
            .is_some_and(|d| d.ends_with("release"))
        {
            "--release "
        } else {
            ""
        };
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "vrouterd not found at {} (fwdbench runs the one next to its own executable): build it with `cargo build {profile}-p vrouter`",
                opts.vrouterd.display()
            ),
        ));
    }
    netns::run("ip", &["-V"])?;
    netns::run("ethtool", &["--version"])?;
    netns::install_interrupt_handler()?;
    netns::remove_stale(PREFIX);
    remove_stale_dirs();
    let mut topo = Topology::up(opts)?;
    let plan = rounds::split(opts.windows, opts.rounds);
    let (mut bare, mut vrouter) = (Series::default(), Series::default());
    let (mut vrouter_2w, mut testpmd, mut kernel, mut kernel_vxlan) = (None, None, None, None);
    let (mut bare_xdp_mode, mut vrouterd_stats) = ("", None);
    let mut variants: Vec<(AfxdpVariant, Series)> = opts
        .afxdp_variants
        .iter()
        .map(|v| (v.clone(), Series::default()))
        .collect();
    let add = |to: &mut Option<Series>, round: Series| {
        to.get_or_insert_with(Series::default).absorb(round)
    };
    for (i, &windows) in plan.iter().enumerate() {
        topo.round = Round {
            windows,
            last: i + 1 == plan.len(),
        };
        let (series, mode) = topo.bare(opts)?;
        bare.absorb(series);
        bare_xdp_mode = mode;
        // Its counters after its last round.
        let (series, stats) = topo.vrouterd(opts, 1, None)?;
        vrouter.absorb(series);
        vrouterd_stats = stats;
        for (v, s) in &mut variants {
            s.absorb(topo.vrouterd(opts, 1, Some(v))?.0);
        }
        if opts.two_workers {
            add(&mut vrouter_2w, topo.vrouterd(opts, 2, None)?.0);
        }
        if opts.testpmd {
            add(&mut testpmd, topo.testpmd(opts)?);
        }
        match opts.scenario {
            Scenario::L3
            | Scenario::V6
            | Scenario::Fullfib
            | Scenario::Ecmp
            | Scenario::Nat
            | Scenario::Policy => add(&mut kernel, topo.kernel(opts)?),
            Scenario::Vxlan => add(&mut kernel_vxlan, topo.kernel_vxlan(opts)?),
            // No ipip module here: IPIP compares against the bare forwarder only.
            Scenario::Ipip => {}
        }
    }
    Ok(L3Results {
        vrouter_2w,
        afxdp_variants: variants,
        fib_routes: topo.fib.as_ref().map(|f| f.prefixes.len()),
        vrouter_fib_install_s: topo.vrouter_fib_install_s.first().copied(),
        vrouter_fib_install_s_per_round: topo.vrouter_fib_install_s.clone(),
        kernel_fib_install_s: topo.kernel_fib_install_s,
        vrouter,
        bare,
        kernel,
        kernel_vxlan,
        bare_xdp_mode,
        testpmd,
        sink_native: topo.sink_native,
        vrouterd_stats,
    })
}

/// The round being measured: the candidates' windows in it, and whether it is the last
/// (the one with the latency probe, and after which the kernel's full table goes).
#[derive(Debug, Clone, Copy)]
struct Round {
    windows: usize,
    last: bool,
}

/// Our temporary directory (vrouterd's configuration, log and counters).
fn run_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("fwdbench-{pid}"))
}

/// Remove the temporary directories of runs whose process is gone (killed by SIGKILL).
fn remove_stale_dirs() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("fwdbench-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

struct Topology {
    round: Round,
    /// The forwarder being measured: (pid, one thread or all of them), for its
    /// run-queue wait.
    forwarder_task: Option<(u32, Option<u32>)>,
    scenario: Scenario,
    /// Mean frame length at the sink with the bare forwarder (no encapsulation).
    plain_frame_bytes: f64,
    gen_if: String,
    up_if: String,
    pod_if: String,
    sink_if: String,
    dir: PathBuf,
    sink_stats: DevStats,
    dut_stats: DevStats,
    /// The sink's XDP link, its plain drop program and the probe (swapped in while
    /// probing latency).
    sink_link: OwnedFd,
    sink_drop: OwnedFd,
    probe: ProbeSink,
    sink_native: bool,
    /// Scenario fullfib: the table, its UPDATEs and the generator's destinations.
    fib: Option<FullTable>,
    vrouter_fib_install_s: Vec<f64>,
    kernel_fib_install_s: Option<f64>,
    // Last: the namespaces go after everything that uses them.
    gen: Netns,
    dut: Netns,
    _sink: Netns,
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Scenario fullfib's table.
struct FullTable {
    prefixes: Vec<ipnet::Ipv4Net>,
    updates: Vec<u8>,
    /// 2^20 addresses, each inside a route drawn at random.
    destinations: Arc<Vec<Ipv4Addr>>,
}

impl FullTable {
    fn new(routes: usize) -> FullTable {
        let (prefixes, _) = bgpfeed::table(routes, fib::synth::DEFAULT_SEED);
        let updates = bgpfeed::encode_announce(&prefixes, UNDERLAY_REMOTE);
        let mut rng = fib::synth::Rng::new(fib::synth::DEFAULT_SEED);
        let destinations = (0..1 << 20)
            .map(|_| {
                let p = prefixes[rng.below(prefixes.len() as u64) as usize];
                let host = rng.next_u32() & u32::from(p.hostmask());
                Ipv4Addr::from(u32::from(p.network()) | host)
            })
            .collect();
        FullTable {
            prefixes,
            updates,
            destinations: Arc::new(destinations),
        }
    }
}

/// Scenario policy's nftables ruleset: what Calico's iptables mode writes for a
/// workload's ingress (cali-tw-<if>): RELATED / ESTABLISHED accepted, INVALID dropped,
/// then the policy's rules one after the other (the same `rules` as
/// `policymemio::policy_yaml`), the last accepting. Counters on the final accept (the
/// evidence that the chain was walked).
pub fn kernel_policy(pod_if: &str, rules: usize) -> String {
    let mut t = format!(
        "table inet fwbpol {{\n chain filter_forward {{\n  type filter hook forward priority 0; policy accept;\n  oifname \"{pod_if}\" jump to_sink\n }}\n chain to_sink {{\n  ct state established,related accept\n  ct state invalid drop\n"
    );
    for i in 0..rules.saturating_sub(1) {
        let proto = if i % 2 == 0 { "udp" } else { "tcp" };
        let p = 1000 + (i % 50_000);
        let port = if i % 5 == 0 {
            format!("{p}-{}", p + 100)
        } else {
            p.to_string()
        };
        t.push_str(&format!(
            "  ip saddr 172.{}.{}.0/24 {proto} dport {port} drop\n",
            16 + (i >> 8) % 16,
            i & 255
        ));
    }
    t.push_str("  counter accept\n }\n}\n");
    t
}

/// Scenario ecmp: the routed network and its next hops on the uplink (neighbours whose
/// MACs end in 0x11.., all reaching the sink's interface).
const ECMP_NET: &str = "198.18.0.0/15";
const ECMP_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Scenario nat: a host outside every pool, behind the sink (the default route), and
/// the NAT ports (wide enough for every flow of the generator on one worker).
const NAT_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const NAT_PORTS: &str = "40000-65535";
const ECMP_HOPS: usize = 4;

fn ecmp_hop(i: usize) -> (Ipv4Addr, [u8; 6]) {
    (
        Ipv4Addr::new(10, 98, 0, 11 + i as u8),
        [0x02, 0x66, 0x77, 0, 1, 0x11 + i as u8],
    )
}

/// BGP between the feed and vrouterd (scenario fullfib), over the DUT's loopback.
const BGP_LISTEN: &str = "127.0.0.2:179";
const BGP_FEED: &str = "127.0.0.1";
const DUT_AS: u32 = 64512;

impl Topology {
    fn up(opts: &L3Options) -> io::Result<Topology> {
        let (dut_core, scenario) = (opts.dut_core, opts.scenario);
        let p = format!("{PREFIX}{}", std::process::id());
        let gen = Netns::add(&format!("{p}-gen"))?;
        let dut = Netns::add(&format!("{p}-dut"))?;
        let sink = Netns::add(&format!("{p}-sink"))?;
        // Interface names: at most 15 characters.
        let i = format!("f{}", std::process::id());
        let (gen_if, up_if, pod_if, sink_if) = (
            format!("{i}g"),
            format!("{i}u"),
            format!("{i}p"),
            format!("{i}s"),
        );
        // Created directly inside the namespaces: the root namespace never sees them. Two
        // queues each, for vrouterd's two-worker run (a queue per worker).
        netns::veth_queues(&gen_if, gen.name(), &up_if, dut.name(), 2)?;
        netns::veth_queues(&pod_if, dut.name(), &sink_if, sink.name(), 2)?;
        if scenario.from_pod() {
            // GEN is a pod on this node (up_if is its host-side veth, ee:ee:..); the
            // SINK is the remote node, reached through pod_if, our underlay uplink.
            gen.ip(&["link", "set", &gen_if, "address", &mac_str(GEN_MAC), "up"])?;
            gen.ip(&["addr", "add", &format!("{POD_IP}/32"), "dev", &gen_if])?;
            dut.ip(&[
                "link",
                "set",
                &up_if,
                "address",
                &mac_str(POD_SIDE_MAC),
                "up",
            ])?;
            dut.ip(&[
                "link",
                "set",
                &pod_if,
                "address",
                &mac_str(UPLINK_MAC),
                "up",
            ])?;
            dut.ip(&[
                "addr",
                "add",
                &format!("{UNDERLAY_NODE}/24"),
                "dev",
                &pod_if,
            ])?;
            // The sink's XDP program drops ARP too: a permanent neighbour, which both
            // vrouterd (it asks the kernel) and the kernel's VXLAN device use.
            dut.ip(&[
                "neigh",
                "replace",
                &UNDERLAY_REMOTE.to_string(),
                "lladdr",
                &mac_str(SINK_MAC),
                "dev",
                &pod_if,
                "nud",
                "permanent",
            ])?;
            for (ip, mac) in (0..ECMP_HOPS).map(ecmp_hop) {
                dut.ip(&[
                    "neigh",
                    "replace",
                    &ip.to_string(),
                    "lladdr",
                    &mac_str(mac),
                    "dev",
                    &pod_if,
                    "nud",
                    "permanent",
                ])?;
            }
            sink.ip(&["link", "set", &sink_if, "address", &mac_str(SINK_MAC), "up"])?;
            sink.ip(&[
                "addr",
                "add",
                &format!("{UNDERLAY_REMOTE}/24"),
                "dev",
                &sink_if,
            ])?;
        } else {
            gen.ip(&["link", "set", &gen_if, "address", &mac_str(GEN_MAC), "up"])?;
            gen.ip(&["addr", "add", &format!("{GEN_IP}/24"), "dev", &gen_if])?;
            gen.ip(&["route", "add", POOL, "via", &NODE_IP.to_string()])?;
            dut.ip(&["link", "set", &up_if, "address", &mac_str(UPLINK_MAC), "up"])?;
            dut.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", &up_if])?;
            dut.ip(&[
                "link",
                "set",
                &pod_if,
                "address",
                &mac_str(POD_SIDE_MAC),
                "up",
            ])?;
            sink.ip(&["link", "set", &sink_if, "address", &mac_str(SINK_MAC), "up"])?;
            sink.ip(&["addr", "add", &format!("{POD_IP}/32"), "dev", &sink_if])?;
            if scenario == Scenario::V6 {
                // Namespaces start with IPv6 off (no router solicitations in the way).
                for (ns, ifname) in [
                    (&gen, &gen_if),
                    (&dut, &up_if),
                    (&dut, &pod_if),
                    (&sink, &sink_if),
                ] {
                    for conf in ["all", "default", ifname.as_str()] {
                        ns.write_proc_sys(&format!("net/ipv6/conf/{conf}/disable_ipv6"), "0")?;
                    }
                }
                gen.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{GEN_IP6}/64"),
                    "dev",
                    &gen_if,
                    "nodad",
                ])?;
                dut.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{NODE_IP6}/64"),
                    "dev",
                    &up_if,
                    "nodad",
                ])?;
                sink.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{POD_IP6}/128"),
                    "dev",
                    &sink_if,
                    "nodad",
                ])?;
            }
        }
        dut.write_proc_sys("net/ipv4/ip_forward", "0")?;
        let sink_drop = bpf::load_xdp(c"fwb_sink", &bpf::action_prog(bpf::XDP_DROP))?;
        let (sink_link, sink_native) =
            netns::in_netns(sink.name(), || bpf::attach_xdp(&sink_drop, &sink_if))?;
        let probe = ProbeSink::new()?;
        let fib = (scenario == Scenario::Fullfib).then(|| FullTable::new(opts.fib_routes));
        // NAPI on the uplink even with no native XDP program there (kernel forwarding,
        // generic mode): XDP frames from the live-frames generator need it.
        dut.exec(&["ethtool", "-K", &up_if, "gro", "on"])?;
        // What the stack receives on the uplink (kernel forwarding, generic XDP) is
        // processed on the DUT core (RPS), as a NIC's interrupt affinity would put it.
        dut.exec(&[
            "sh",
            "-c",
            &format!(
                "echo {:x} > /sys/class/net/{up_if}/queues/rx-0/rps_cpus",
                1u64 << dut_core
            ),
        ])?;
        let mut sink_stats = DevStats::open(sink.name())?;
        sink_stats.read(&sink_if)?;
        let mut dut_stats = DevStats::open(dut.name())?;
        dut_stats.read(&up_if)?;
        let dir = run_dir(std::process::id());
        std::fs::create_dir_all(&dir)?;
        Ok(Topology {
            round: Round {
                windows: opts.windows,
                last: true,
            },
            forwarder_task: None,
            scenario,
            plain_frame_bytes: f64::NAN,
            gen_if,
            up_if,
            pod_if,
            sink_if,
            dir,
            sink_stats,
            dut_stats,
            sink_link,
            sink_drop,
            probe,
            sink_native,
            fib,
            vrouter_fib_install_s: Vec::new(),
            kernel_fib_install_s: None,
            gen,
            dut,
            _sink: sink,
        })
    }

    fn sink_rx(&mut self) -> io::Result<u64> {
        Ok(self.sink_stats.read(&self.sink_if)?.rx_packets)
    }

    /// The sink's frames and bytes, read together: apart, the frames received between
    /// the two reads skew the mean frame length (by a byte or more over short windows).
    fn sink_frames_bytes(&mut self) -> io::Result<(u64, u64)> {
        let c = self.sink_stats.read(&self.sink_if)?;
        Ok((c.rx_packets, c.rx_bytes))
    }

    /// Frames the DUT's uplink received (the offered load). With NAPI on, a veth counts
    /// in rx_packets every frame its NAPI took from the ring, whatever happened next (XDP
    /// redirect, or drop when the AF_XDP ring is full: those count in rx_dropped too, so
    /// the two must not be added); frames refused because that ring was full count only
    /// in rx_dropped: they never reached the forwarder.
    fn arrivals(&mut self) -> io::Result<u64> {
        Ok(self.dut_stats.read(&self.up_if)?.rx_packets)
    }

    fn gen_config(&self, opts: &L3Options) -> GenConfig {
        let mut c = match self.scenario {
            Scenario::Vxlan | Scenario::Ipip | Scenario::Fullfib => {
                GenConfig::udp64(&self.gen_if, GEN_MAC, POD_SIDE_MAC, POD_IP, REMOTE_POD)
            }
            Scenario::Ecmp => {
                GenConfig::udp64(&self.gen_if, GEN_MAC, POD_SIDE_MAC, POD_IP, ECMP_DST)
            }
            Scenario::Nat => GenConfig::udp64(&self.gen_if, GEN_MAC, POD_SIDE_MAC, POD_IP, NAT_DST),
            Scenario::L3 | Scenario::V6 | Scenario::Policy => {
                GenConfig::udp64(&self.gen_if, GEN_MAC, UPLINK_MAC, GEN_IP, POD_IP)
            }
        };
        c.dst_table = self.fib.as_ref().map(|f| f.destinations.clone());
        if self.scenario == Scenario::V6 {
            c.v6 = Some((GEN_IP6, POD_IP6));
        }
        c.netns = Some(self.gen.name().to_string());
        c.core = Some(opts.gen_core);
        c.engine = opts.engine;
        c.flows = opts.flows;
        c.batch = opts.batch;
        c
    }

    /// Run the generator through the current forwarder: warm-up, then this round's
    /// windows; the latency probe in the last round. `alive` fails when the forwarder
    /// died.
    fn measure(
        &mut self,
        opts: &L3Options,
        name: &str,
        alive: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<Series> {
        let (sink0, arrived0) = (self.sink_rx()?, self.arrivals()?);
        let gen = Generator::start(self.gen_config(opts))?;
        netns::sleep_interruptible(opts.warmup)?;
        alive()?;
        let ((mut s0, mut b0), mut a0, mut t0) =
            (self.sink_frames_bytes()?, self.arrivals()?, Instant::now());
        if a0 == arrived0 {
            return Err(err(format!(
                "{name}: nothing reached the DUT's uplink during the {:?} warm-up (generator: {} frames)",
                opts.warmup,
                gen.sent()
            )));
        }
        if s0 == sink0 {
            return Err(err(format!(
                "{name}: the sink received nothing during the {:?} warm-up although {} frames reached the DUT: the forwarder does not forward",
                opts.warmup,
                a0 - arrived0
            )));
        }
        let (sink_first, bytes_first) = (s0, b0);
        let wait_first = self.forwarder_task.map(runq_wait_ns);
        let cpu_first = (cpu_times(opts.dut_core), cpu_times(opts.gen_core));
        let mut series = Series::default();
        for _ in 0..self.round.windows {
            netns::sleep_interruptible(opts.window)?;
            let ((s1, b1), a1, t1) = (self.sink_frames_bytes()?, self.arrivals()?, Instant::now());
            let dt = (t1 - t0).as_secs_f64();
            series.mpps.push((s1 - s0) as f64 / dt / 1e6);
            series.offered_mpps.push((a1 - a0) as f64 / dt / 1e6);
            (s0, b0, a0, t0) = (s1, b1, a1, t1);
        }
        let bytes = b0 - bytes_first;
        series.sink_frame_bytes = bytes as f64 / (s0 - sink_first).max(1) as f64;
        series.dut_cpu_busy = busy(cpu_first.0, cpu_times(opts.dut_core));
        series.gen_cpu_busy = busy(cpu_first.1, cpu_times(opts.gen_core));
        series.runq_wait_ms = match (wait_first, self.forwarder_task.map(runq_wait_ns)) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
            _ => f64::NAN,
        };
        alive()?;
        gen.stop()?;
        if opts.latency_pps > 0 && self.round.last {
            self.probe_latency(opts, &mut series)
                .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
            alive()?;
        }
        Ok(series)
    }

    /// The fixed-load probe: the sink's program swapped for the probe, stamped frames
    /// from the AF_XDP generator at `latency_pps`, one-way latency over a window after
    /// a short settling time; the plain drop program back afterwards.
    fn probe_latency(&mut self, opts: &L3Options, series: &mut Series) -> io::Result<()> {
        let mut cfg = self.gen_config(opts);
        cfg.engine = Engine::AfXdp;
        cfg.set_rate(opts.latency_pps);
        cfg.stamp = true;
        bpf::replace_program(&self.sink_link, &self.probe.prog)?;
        // Long enough for the rings the saturating windows filled to drain.
        let settle = Duration::from_millis(300);
        let result = (|| {
            let gen = Generator::start(cfg)?;
            netns::sleep_interruptible(settle)?;
            let (first, rx0, t0) = (self.probe.read()?, self.sink_rx()?, Instant::now());
            netns::sleep_interruptible(opts.latency_window)?;
            let (last, rx1, t1) = (self.probe.read()?, self.sink_rx()?, Instant::now());
            gen.stop()?;
            Ok::<_, io::Error>((
                last.since(&first),
                (rx1 - rx0) as f64 / (t1 - t0).as_secs_f64(),
            ))
        })();
        bpf::replace_program(&self.sink_link, &self.sink_drop)?;
        let (probe, rx_pps) = result?;
        series.latency_p50_us = probe.latency_us(50.0);
        series.latency_p99_us = probe.latency_us(99.0);
        series.latency_pps = opts.latency_pps;
        series.latency_rx_pps = rx_pps;
        if probe.stamped() == 0 {
            return Err(err(format!(
                "latency probe at {} pps: no stamped frame reached the sink",
                opts.latency_pps
            )));
        }
        if self.scenario == Scenario::Ecmp {
            let total = probe.by_mac.iter().sum::<u64>().max(1) as f64;
            series.ecmp_shares = (0..ECMP_HOPS)
                .map(|i| probe.by_mac[ecmp_hop(i).1[5] as usize] as f64 / total)
                .collect();
        }
        Ok(())
    }

    /// vrouterd in the DUT namespace: one busy-polling worker on the DUT core, or two
    /// (adaptive polling, the second on the generator's core: on two cores there is no
    /// other place for it).
    fn vrouterd(
        &mut self,
        opts: &L3Options,
        workers: usize,
        variant: Option<&AfxdpVariant>,
    ) -> io::Result<(Series, Option<serde_json::Value>)> {
        let config = self.dir.join("vrouterd.toml");
        let stats = self.dir.join("vrouterd-stats.json");
        let log = self.dir.join("vrouterd.log");
        let (cores, queues, poll) = if workers == 2 {
            (
                format!("{}, {}", opts.dut_core, opts.gen_core),
                "[0, 1]",
                "adaptive",
            )
        } else {
            (opts.dut_core.to_string(), "[0]", "busy")
        };
        if self.scenario == Scenario::Policy {
            // The policy as vrouterd keeps what the API applied: restored and compiled
            // at start, before the first packet.
            let state = self.dir.join("state");
            std::fs::create_dir_all(&state)?;
            let doc = crate::policymemio::policy_yaml(opts.policy_rules);
            let api = serde_json::json!({ "policies": [doc] });
            std::fs::write(state.join("api.json"), api.to_string())?;
        }
        let head = format!(
            r#"node_name = "fwdbench"
state_dir = "{dir}/state"
api = {{ socket = "{dir}/api.sock" }}
xdp_mode = "{mode}"
"#,
            mode = variant
                .and_then(|v| v.xdp_mode)
                .unwrap_or(opts.xdp_mode)
                .name(),
            dir = self.dir.display(),
        );
        let mut workers_table =
            format!("[workers]\ncount = {workers}\ncores = [{cores}]\npoll_mode = \"{poll}\"\n");
        if let Some(v) = variant {
            workers_table += &format!("[afxdp]\n{}", v.table());
        }
        let text = if self.scenario.from_pod() {
            let routes = match self.scenario {
                Scenario::Vxlan | Scenario::Ipip => format!(
                    r#"[[nodes]]
name = "remote"
ips = ["{UNDERLAY_REMOTE}/24"]
vtep_mac = "{vtep}"
[[routes]]
dst = "{REMOTE_BLOCK}"
node = "remote"
"#,
                    vtep = mac_str(REMOTE_VTEP_MAC),
                ),
                Scenario::Ecmp => format!(
                    "[[routes]]\ndst = \"{ECMP_NET}\"\nvia = [{}]\n",
                    (0..ECMP_HOPS)
                        .map(|i| format!("\"{}\"", ecmp_hop(i).0))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Scenario::Nat => format!(
                    "[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"{UNDERLAY_REMOTE}\"\n[conntrack]\nnat_ports = \"{NAT_PORTS}\"\n"
                ),
                _ => bgpfeed::vrouterd_bgp(DUT_AS, BGP_LISTEN, BGP_FEED),
            };
            format!(
                r#"{head}node_ips = ["{UNDERLAY_NODE}/24"]
[[uplinks]]
name = "{up}"
queues = {queues}
[[pools]]
cidr = "{POOL}"
{encap}
[[endpoints]]
name = "fwdbench/gen"
kind = "veth"
interface = "{pod}"
ips = ["{POD_IP}/32"]
mac = "{mac}"
{workers_table}{routes}"#,
                encap = if self.scenario.overlay() {
                    format!("{}_mode = \"Always\"", self.scenario.name())
                } else if self.scenario == Scenario::Nat {
                    "nat_outgoing = true".into()
                } else {
                    String::new()
                },
                up = self.pod_if,
                pod = self.up_if,
                mac = mac_str(GEN_MAC),
            )
        } else {
            format!(
                r#"{head}node_ips = ["{NODE_IP}/24", "{NODE_IP6}/64"]
[[uplinks]]
name = "{up}"
queues = {queues}
[[pools]]
cidr = "{POOL}"
[[pools]]
cidr = "{POOL6}"
[[endpoints]]
name = "fwdbench/sink"
kind = "veth"
interface = "{pod}"
ips = ["{POD_IP}/32", "{POD_IP6}/128"]
mac = "{mac}"
labels = {{ app = "sink" }}
{workers_table}"#,
                up = self.up_if,
                pod = self.pod_if,
                mac = mac_str(SINK_MAC),
            )
        };
        std::fs::write(&config, text)?;
        let _ = std::fs::remove_file(&stats);
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.dut.name()])
            .arg(&opts.vrouterd)
            .args(&opts.vrouterd_args)
            .arg("--config")
            .arg(&config)
            .arg("--stats-file")
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal
        // (`ip netns exec` execs vrouterd in place, so it applies to vrouterd), so vrouterd
        // stops even if we are killed.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut daemon = Spawned {
            what: "vrouterd",
            child: Some(cmd.spawn()?),
            log,
            signal: (libc::SIGTERM, "SIGTERM"),
            grace: Duration::from_secs(5),
            strict: true,
            leftover: None,
        };
        let start = Instant::now();
        while !stats.exists() {
            daemon.check()?;
            if start.elapsed() > Duration::from_secs(30) {
                return Err(err(format!(
                    "vrouterd did not start forwarding within 30 s: {}",
                    tail(&daemon.log)
                )));
            }
            netns::sleep_interruptible(Duration::from_millis(50))?;
        }
        // Scenario fullfib: the table over BGP, before any traffic; the session stays
        // up (its thread answers keepalives) until vrouterd stops.
        let _feed = match &self.fib {
            Some(fib) => {
                // `connect` makes the connection from inside the DUT's namespace.
                let mut feed = bgpfeed::connect(
                    self.dut.name(),
                    BGP_LISTEN.parse().unwrap(),
                    BGP_FEED.parse().unwrap(),
                )
                .map_err(|e| err(format!("BGP feed to vrouterd: {e}")))?;
                std::io::Write::write_all(&mut feed.stream, &fib.updates)?;
                let at = bgpfeed::wait_installed(
                    &stats,
                    fib.prefixes.len(),
                    Duration::from_secs(120),
                    &mut || daemon.check(),
                )
                .map_err(|e| err(format!("vrouterd's BGP table within 120 s: {e}")))?;
                if workers == 1 {
                    self.vrouter_fib_install_s
                        .push(at.saturating_sub(feed.established_us) as f64 / 1e6);
                }
                Some(feed)
            }
            None => None,
        };
        self.forwarder_task = daemon.child.as_ref().map(|c| (c.id(), None));
        let name = match variant {
            Some(v) => v.label(),
            None if workers == 2 => "vrouterd (2 workers)".into(),
            None => "vrouterd".into(),
        };
        let name = name.as_str();
        let series = self.measure(opts, name, &mut || daemon.check());
        self.forwarder_task = None;
        let series = series?;
        if self.scenario.overlay() {
            check_frames("vrouterd", self.scenario, self.plain_frame_bytes, &series)?;
        }
        check_ecmp(name, self.scenario, &series)?;
        // Its counters, written every second: wait for one written after the windows.
        let written = std::fs::metadata(&stats).and_then(|m| m.modified()).ok();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500)
            && std::fs::metadata(&stats).and_then(|m| m.modified()).ok() == written
        {
            netns::sleep_interruptible(Duration::from_millis(50))?;
        }
        let counters = std::fs::read_to_string(&stats)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        daemon.stop()?;
        Ok((series, counters))
    }

    /// The bare forwarder: our XDP program and `AfXdpIo` in the DUT, no pipeline.
    fn bare(&mut self, opts: &L3Options) -> io::Result<(Series, &'static str)> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let args = BareArgs {
            netns: self.dut.name().to_string(),
            up_if: self.up_if.clone(),
            pod_if: self.pod_if.clone(),
            mode: opts.xdp_mode,
            core: opts.dut_core,
            from_pod: self.scenario.from_pod(),
        };
        let s = stop.clone();
        let mut fwd = Bare {
            stop,
            handle: Some(
                std::thread::Builder::new()
                    .name("bare-afxdp".into())
                    .spawn(move || bare_forwarder(args, &s, ready_tx))?,
            ),
        };
        let mode = match ready_rx.recv() {
            Ok(Ok((mode, tid))) => {
                self.forwarder_task = Some((std::process::id(), Some(tid)));
                mode
            }
            Ok(Err(e)) => {
                fwd.finish()?;
                return Err(e);
            }
            Err(_) => {
                fwd.finish()?;
                return Err(err("the bare forwarder exited at start".into()));
            }
        };
        let series = self.measure(opts, "bare AF_XDP forwarder", &mut || {
            if fwd.handle.as_ref().is_none_or(|h| h.is_finished()) {
                Err(err("the bare AF_XDP forwarder stopped".into()))
            } else {
                Ok(())
            }
        });
        self.forwarder_task = None;
        let series = series?;
        fwd.finish()?;
        self.plain_frame_bytes = series.sink_frame_bytes;
        Ok((series, mode))
    }

    /// The pod's host route and permanent neighbour (the sink's MAC) in the DUT.
    fn pod_route(&self, pod: IpAddr) -> io::Result<()> {
        let family = if pod.is_ipv6() { "-6" } else { "-4" };
        let host = IpNet::from(pod).to_string();
        self.dut
            .ip(&[family, "route", "replace", &host, "dev", &self.pod_if])?;
        self.dut.ip(&[
            family,
            "neigh",
            "replace",
            &pod.to_string(),
            "lladdr",
            &mac_str(SINK_MAC),
            "dev",
            &self.pod_if,
            "nud",
            "permanent",
        ])
    }

    /// The kernel: ip_forward, a route and a permanent neighbour for the pod (RPS, set up
    /// with the topology, runs the uplink's receive processing and so the forwarding on
    /// the DUT core).
    fn kernel(&mut self, opts: &L3Options) -> io::Result<Series> {
        if self.scenario.from_pod() {
            return self.kernel_from_pod(opts);
        }
        self.pod_route(IpAddr::V4(POD_IP))?;
        self.dut.write_proc_sys("net/ipv4/ip_forward", "1")?;
        if self.scenario == Scenario::V6 {
            self.pod_route(IpAddr::V6(POD_IP6))?;
            self.dut
                .write_proc_sys("net/ipv6/conf/all/forwarding", "1")?;
        }
        if self.scenario == Scenario::Policy {
            let file = self.dir.join("policy.nft");
            std::fs::write(&file, kernel_policy(&self.pod_if, opts.policy_rules))?;
            self.dut.exec(&["nft", "-f", &file.display().to_string()])?;
        }
        let name = if self.scenario == Scenario::Policy {
            "kernel policy (nftables, Calico's chain)"
        } else {
            "kernel forwarding"
        };
        let series = self.measure(opts, name, &mut || Ok(()));
        let _ = self.dut.write_proc_sys("net/ipv4/ip_forward", "0");
        let _ = self.dut.write_proc_sys("net/ipv6/conf/all/forwarding", "0");
        if self.scenario == Scenario::Policy {
            // Its rules must have been walked: the last (accept) counted the new flows.
            let listing = self
                .dut
                .exec_output(&["nft", "list", "chain", "inet", "fwbpol", "to_sink"]);
            let _ = self.dut.exec(&["nft", "delete", "table", "inet", "fwbpol"]);
            let text = listing?;
            let accepted = text
                .lines()
                .rev()
                .find(|l| l.contains("accept") && !l.contains("ct state"))
                .and_then(|l| l.split("packets ").nth(1))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok());
            match accepted {
                Some(n) if n > 0 => {}
                _ => {
                    return Err(err(format!(
                        "kernel policy: the chain's final accept counted nothing: {}",
                        text.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
                    )))
                }
            }
        }
        series
    }
}

impl Topology {
    /// The kernel's way back to the pod (GEN) on up_if, and no reverse-path filter (its
    /// frames come in on an interface without an address).
    fn pod_return_path(&self) -> io::Result<()> {
        self.dut.ip(&[
            "route",
            "replace",
            &format!("{POD_IP}/32"),
            "dev",
            &self.up_if,
            "scope",
            "link",
        ])?;
        for conf in ["all", "default", self.up_if.as_str()] {
            self.dut
                .write_proc_sys(&format!("net/ipv4/conf/{conf}/rp_filter"), "0")?;
        }
        Ok(())
    }

    /// The kernel routing the pod's traffic out of the uplink: the full table (`ip
    /// -batch`, timed; in the first round, kept until the last) via the sink's address,
    /// or the ECMP route over four neighbours with the L4 multipath hash; ip_forward,
    /// rp_filter off, RPS on the DUT core.
    fn kernel_from_pod(&mut self, opts: &L3Options) -> io::Result<Series> {
        let dut = &self.dut;
        self.pod_return_path()?;
        if self.scenario == Scenario::Nat {
            // Calico's kernel dataplane: masquerade from the pool to outside it.
            dut.ip(&[
                "route",
                "replace",
                "default",
                "via",
                &UNDERLAY_REMOTE.to_string(),
                "dev",
                &self.pod_if,
            ])?;
            let rules = format!(
                "table ip fwbnat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  ip saddr {POOL} ip daddr != {POOL} oifname \"{}\" masquerade\n }}\n}}\n",
                self.pod_if
            );
            let file = self.dir.join("nat.nft");
            std::fs::write(&file, rules)?;
            dut.exec(&["nft", "-f", &file.display().to_string()])?;
        } else if let Some(fib) = self
            .fib
            .as_ref()
            .filter(|_| self.kernel_fib_install_s.is_none())
        {
            let batch = self.dir.join("routes.batch");
            let mut text = String::with_capacity(fib.prefixes.len() * 48);
            for p in &fib.prefixes {
                text.push_str(&format!(
                    "route add {p} via {UNDERLAY_REMOTE} dev {}\n",
                    self.pod_if
                ));
            }
            std::fs::write(&batch, text)?;
            let t = Instant::now();
            dut.ip(&["-batch", &batch.display().to_string()])?;
            self.kernel_fib_install_s = Some(t.elapsed().as_secs_f64());
            let _ = std::fs::remove_file(&batch);
        } else if self.fib.is_none() {
            dut.write_proc_sys("net/ipv4/fib_multipath_hash_policy", "1")?;
            let mut args = vec!["route".to_string(), "replace".into(), ECMP_NET.into()];
            for (ip, _) in (0..ECMP_HOPS).map(ecmp_hop) {
                args.extend(
                    ["nexthop", "via", &ip.to_string(), "dev", &self.pod_if].map(String::from),
                );
            }
            dut.ip(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        dut.write_proc_sys("net/ipv4/ip_forward", "1")?;
        let name = if self.scenario == Scenario::Nat {
            "kernel NAT (nftables masquerade)"
        } else {
            "kernel forwarding"
        };
        let series = self.measure(opts, name, &mut || Ok(()));
        let _ = self.dut.write_proc_sys("net/ipv4/ip_forward", "0");
        if self.scenario == Scenario::Nat {
            // Its flows must show the masquerade happened (the sink only counts frames).
            let flows = self
                .dut
                .exec_output(&["conntrack", "-L", "-p", "udp", "--src-nat"]);
            let _ = self.dut.exec(&["nft", "delete", "table", "ip", "fwbnat"]);
            // The next round's kernel starts with no flows, as the first did.
            let _ = self.dut.exec(&["conntrack", "-F"]);
            let text = flows?;
            if !text.contains(&format!("dst={UNDERLAY_NODE}")) {
                return Err(err(format!(
                    "kernel NAT: no masqueraded flow in conntrack -L: {}",
                    text.lines().take(3).collect::<Vec<_>>().join(" / ")
                )));
            }
        }
        if self.fib.is_some() && self.round.last {
            // Now, not in the namespace's teardown: that runs in the background for
            // seconds and would disturb whatever is measured next.
            self.dut.ip(&["route", "flush", "proto", "boot"])?;
        }
        let series = series?;
        check_ecmp("kernel forwarding", self.scenario, &series)?;
        Ok(series)
    }

    /// DPDK testpmd from Debian as the DPDK reference: its AF_XDP PMD on the DUT's two
    /// veths (the same sockets-on-veth path as ours), mac forwarding (rx on one port,
    /// MACs rewritten, tx on the other), one forwarding lcore on the DUT core; the main
    /// lcore (idle, printing stats) on the generator's. No hugepages, no PCI.
    fn testpmd(&mut self, opts: &L3Options) -> io::Result<Series> {
        let bin = "/usr/bin/dpdk-testpmd";
        if !Path::new(bin).exists() {
            return Err(err(
                "dpdk-testpmd is not installed (Debian package dpdk; scripts/setup.sh installs it)"
                    .into(),
            ));
        }
        let log = self.dir.join("testpmd.log");
        let prefix = format!("fwdbench{}", std::process::id());
        let lcores = format!("{},{}", opts.gen_core, opts.dut_core);
        let main = opts.gen_core.to_string();
        let vdev0 = format!(
            "net_af_xdp0,iface={},start_queue=0,queue_count=1",
            self.up_if
        );
        let vdev1 = format!(
            "net_af_xdp1,iface={},start_queue=0,queue_count=1",
            self.pod_if
        );
        // Port 0 faces the generator, port 1 the sink (and the other way round).
        let peer1 = format!("--eth-peer=1,{}", mac_str(SINK_MAC));
        let peer0 = format!("--eth-peer=0,{}", mac_str(GEN_MAC));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.dut.name(), bin])
            .args([
                "-l",
                &lcores,
                "--main-lcore",
                &main,
                "--no-huge",
                "-m",
                "1024",
            ])
            .args([
                "--no-pci",
                "--file-prefix",
                &prefix,
                "--vdev",
                &vdev0,
                "--vdev",
                &vdev1,
            ])
            .args([
                "--",
                "--forward-mode=mac",
                "--nb-cores=1",
                "--burst=64",
                "--total-num-mbufs=32768",
            ])
            .args([&peer0, &peer1, "--auto-start", "--stats-period=1"])
            // testpmd waits on stdin when not interactive: keep a pipe open.
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(&log)?);
        let mut pmd = Spawned {
            what: "testpmd",
            child: Some(cmd.spawn()?),
            log: log.clone(),
            // SIGINT: testpmd's own clean exit (ports stopped, XDP programs detached).
            signal: (libc::SIGINT, "SIGINT"),
            grace: Duration::from_secs(10),
            strict: false,
            leftover: Some(format!("/var/run/dpdk/{prefix}").into()),
        };
        // Forwarding once it printed its first statistics.
        let t = Instant::now();
        loop {
            pmd.check()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Port statistics") || text.contains("NIC statistics") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(err(format!(
                    "testpmd did not start forwarding within 30 s: {}",
                    tail(&log)
                )));
            }
            netns::sleep_interruptible(Duration::from_millis(100))?;
        }
        self.forwarder_task = pmd.child.as_ref().map(|c| (c.id(), None));
        let series = self.measure(opts, "DPDK testpmd", &mut || pmd.check());
        self.forwarder_task = None;
        let series = series?;
        pmd.stop()?;
        Ok(series)
    }
}

/// Scenario ecmp: every next hop must have carried at least 10% of the probed frames
/// (four next hops, 256 flows: about 25% each).
fn check_ecmp(name: &str, scenario: Scenario, s: &Series) -> io::Result<()> {
    if scenario != Scenario::Ecmp || s.latency_pps == 0 {
        return Ok(());
    }
    if s.ecmp_shares.iter().any(|&x| x < 0.10) {
        return Err(err(format!(
            "{name}: the next hops carried {:?} of the frames: not spread over all four",
            s.ecmp_shares
        )));
    }
    Ok(())
}

/// The sink must have received what the scenario sends: the bare forwarder's frames
/// (the generator's, unencapsulated, as the sink's counters count them), plus 50 B
/// (VXLAN) or 20 B (IPIP) of outer headers.
fn check_frames(name: &str, scenario: Scenario, plain: f64, s: &Series) -> io::Result<()> {
    let want = plain + scenario.overhead() as f64;
    if (s.sink_frame_bytes - want).abs() > 0.5 {
        return Err(err(format!(
            "{name}: the sink received frames of {:.1} bytes on average, not {want:.1} (bare forwarder's {plain:.1} + {} for {}): not the expected encapsulation",
            s.sink_frame_bytes,
            scenario.overhead(),
            scenario.name()
        )));
    }
    Ok(())
}

impl Topology {
    /// The kernel's VXLAN device in the DUT, configured as Calico's felix configures
    /// vxlan.calico (VNI 4096, UDP 4789, nolearning, static neighbour + FDB entry for the
    /// remote VTEP, onlink route for the remote block); ip_forward, the pod's /32 route,
    /// rp_filter off. RPS puts the receive and forwarding work on the DUT core.
    fn kernel_vxlan(&mut self, opts: &L3Options) -> io::Result<Series> {
        let dut = &self.dut;
        dut.ip(&[
            "link",
            "add",
            KERNEL_VXLAN_DEV,
            "type",
            "vxlan",
            "id",
            "4096",
            "local",
            &UNDERLAY_NODE.to_string(),
            "dev",
            &self.pod_if,
            "dstport",
            "4789",
            "nolearning",
        ])?;
        dut.ip(&[
            "link",
            "set",
            KERNEL_VXLAN_DEV,
            "address",
            &mac_str(LOCAL_VTEP_MAC),
            "mtu",
            "1450",
            "up",
        ])?;
        dut.ip(&["addr", "add", "10.244.1.0/32", "dev", KERNEL_VXLAN_DEV])?;
        dut.ip(&[
            "neigh",
            "replace",
            REMOTE_TUNNEL_IP,
            "lladdr",
            &mac_str(REMOTE_VTEP_MAC),
            "dev",
            KERNEL_VXLAN_DEV,
            "nud",
            "permanent",
        ])?;
        dut.exec(&[
            "bridge",
            "fdb",
            "replace",
            &mac_str(REMOTE_VTEP_MAC),
            "dev",
            KERNEL_VXLAN_DEV,
            "dst",
            &UNDERLAY_REMOTE.to_string(),
        ])?;
        dut.ip(&[
            "route",
            "replace",
            REMOTE_BLOCK,
            "via",
            REMOTE_TUNNEL_IP,
            "dev",
            KERNEL_VXLAN_DEV,
            "onlink",
        ])?;
        self.pod_return_path()?;
        dut.write_proc_sys("net/ipv4/ip_forward", "1")?;
        let series = self.measure(opts, "kernel VXLAN", &mut || Ok(()));
        let _ = self.dut.write_proc_sys("net/ipv4/ip_forward", "0");
        // Gone with its routes, neighbour and FDB entry until the next round's kernel.
        let _ = self.dut.ip(&["link", "del", KERNEL_VXLAN_DEV]);
        let series = series?;
        check_frames(
            "kernel VXLAN",
            self.scenario,
            self.plain_frame_bytes,
            &series,
        )?;
        Ok(series)
    }
}

/// A core's (busy, total) jiffies from /proc/stat (idle and iowait are not busy).
fn cpu_times(core: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{core}");
    let Some(line) = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
    else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The busy share between two readings (NaN when nothing can be read).
fn busy(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1);
    if total == 0 {
        return f64::NAN;
    }
    b.0.saturating_sub(a.0) as f64 / total as f64
}

/// Nanoseconds the task's threads (all of them, or one) spent runnable but not running
/// (the second field of /proc/PID/task/TID/schedstat); 0 for what cannot be read.
fn runq_wait_ns((pid, tid): (u32, Option<u32>)) -> u64 {
    let read = |path: PathBuf| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let task = PathBuf::from(format!("/proc/{pid}/task"));
    match tid {
        Some(t) => read(task.join(t.to_string()).join("schedstat")),
        None => std::fs::read_dir(&task)
            .map(|d| d.flatten().map(|e| read(e.path().join("schedstat"))).sum())
            .unwrap_or(0),
    }
}

/// A forwarder we started as a process (vrouterd, testpmd): checked while it runs,
/// stopped by its signal (then SIGKILL after `grace`) on `stop` or drop.
struct Spawned {
    what: &'static str,
    child: Option<Child>,
    log: PathBuf,
    signal: (libc::c_int, &'static str),
    grace: Duration,
    /// vrouterd must exit cleanly on its signal; testpmd's exit status is not judged.
    strict: bool,
    /// Removed once it stopped (testpmd's runtime directory).
    leftover: Option<PathBuf>,
}

impl Spawned {
    fn check(&mut self) -> io::Result<()> {
        match self.child.as_mut().map(|c| c.try_wait()).transpose()? {
            Some(Some(status)) => Err(err(format!(
                "{} exited ({status}): {}",
                self.what,
                tail(&self.log)
            ))),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let (signal, name) = self.signal;
        // `ip netns exec` execs the program: the child is the forwarder itself.
        // SAFETY: kill(2) of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let t = Instant::now();
        let result = loop {
            if let Some(status) = child.try_wait()? {
                break if status.success() || !self.strict {
                    Ok(())
                } else {
                    Err(err(format!(
                        "{} exited with {status} on {name}: {}",
                        self.what,
                        tail(&self.log)
                    )))
                };
            }
            if t.elapsed() >= self.grace {
                let _ = child.kill();
                let _ = child.wait();
                break if self.strict {
                    Err(err(format!(
                        "{} did not stop within {} s of {name}",
                        self.what,
                        self.grace.as_secs()
                    )))
                } else {
                    Ok(())
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(dir) = &self.leftover {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(io::SeekFrom::Start(len.saturating_sub(2000)));
        let _ = f.read_to_string(&mut s);
    }
    let s = s.trim();
    if s.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        format!("log {}:\n{s}", path.display())
    }
}

struct BareArgs {
    netns: String,
    up_if: String,
    pod_if: String,
    mode: XdpMode,
    core: usize,
    /// The generator is a pod: every frame on up_if is for the forwarder (else only
    /// those to our pools, as on an uplink).
    from_pod: bool,
}

/// The bare forwarder's thread; stopped and joined on drop.
struct Bare {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

impl Bare {
    fn finish(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| err("the bare forwarder panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn attach(ifname: &str, role: XdpRole, mode: XdpMode) -> io::Result<(XdpProgram, &'static str)> {
    match mode {
        XdpMode::Native => {
            XdpProgram::attach(ifname, role, AttachMode::Native).map(|p| (p, "native"))
        }
        XdpMode::Generic => {
            XdpProgram::attach(ifname, role, AttachMode::Generic).map(|p| (p, "generic"))
        }
        XdpMode::Auto => XdpProgram::attach(ifname, role, AttachMode::Native)
            .map(|p| (p, "native"))
            .or_else(|_| {
                XdpProgram::attach(ifname, role, AttachMode::Generic).map(|p| (p, "generic"))
            }),
    }
}

/// rx on the uplink → destination MAC = the sink's, source MAC = ours → tx on the pod
/// side, with vrouterd's XDP program and I/O layer: what vrouterd does minus the pipeline.
fn bare_forwarder(
    a: BareArgs,
    stop: &AtomicBool,
    ready: mpsc::Sender<io::Result<(&'static str, u32)>>,
) -> io::Result<()> {
    let setup = || -> io::Result<_> {
        netns::enter(&a.netns)?;
        if !core_affinity::set_for_current(core_affinity::CoreId { id: a.core }) {
            return Err(err(format!(
                "cannot pin the bare forwarder to core {}",
                a.core
            )));
        }
        let role = if a.from_pod {
            XdpRole::Endpoint
        } else {
            XdpRole::Uplink
        };
        let (up, mode) = attach(&a.up_if, role, a.mode)?;
        up.add_prefix(POOL.parse().unwrap(), PrefixClass::Ours)?;
        up.add_prefix(POOL6.parse().unwrap(), PrefixClass::Ours)?;
        up.add_prefix(
            IpNet::from(ipnet::Ipv4Net::from(NODE_IP)),
            PrefixClass::Local,
        )?;
        let (pod, _) = attach(&a.pod_if, XdpRole::Endpoint, a.mode)?;
        pod.add_prefix(
            IpNet::from(ipnet::Ipv4Net::from(NODE_IP)),
            PrefixClass::Local,
        )?;
        let io = AfXdpIo::open(&[
            (
                PortId(0),
                PortSpec::Xsk {
                    ifname: a.up_if.clone(),
                    queue: 0,
                    uplink: true,
                },
            ),
            (
                PortId(1),
                PortSpec::Xsk {
                    ifname: a.pod_if.clone(),
                    queue: 0,
                    uplink: false,
                },
            ),
        ])?;
        up.register_socket(0, io.socket_fd(PortId(0)).unwrap())?;
        pod.register_socket(0, io.socket_fd(PortId(1)).unwrap())?;
        Ok((up, pod, io, mode))
    };
    let (up, pod, mut io, mode) = match setup() {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let _ = ready.send(Ok((mode, tid)));
    let (uplink, pod_port) = (PortId(0), PortId(1));
    while !stop.load(Ordering::Relaxed) {
        io.rx_burst(uplink, &mut |frames, lens, actions| {
            for ((f, &len), act) in frames.iter_mut().zip(lens).zip(actions.iter_mut()) {
                if len < 14 {
                    *act = Action::Drop(DropReason::Malformed);
                    continue;
                }
                f[0..6].copy_from_slice(&SINK_MAC);
                f[6..12].copy_from_slice(&POD_SIDE_MAC);
                *act = Action::Tx {
                    port: pod_port,
                    len,
                };
            }
        });
        io.rx_burst(pod_port, &mut |_, _, actions| {
            actions.fill(Action::Drop(DropReason::Unsupported))
        });
        io.flush();
    }
    let _ = up.unregister_socket(0);
    let _ = pod.unregister_socket(0);
    drop(io);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn afxdp_variants_are_checked_against_vrouterds_table() {
        let v = AfxdpVariant::parse("busy:busy_poll_us=50,prefer_busy_poll=true,xdp_mode=generic")
            .unwrap();
        assert_eq!(v.name, "busy");
        assert_eq!(v.xdp_mode, Some(XdpMode::Generic));
        assert_eq!(v.table(), "busy_poll_us = 50\nprefer_busy_poll = true\n");
        assert_eq!(
            v.settings_text(),
            "xdp_mode=generic,busy_poll_us=50,prefer_busy_poll=true"
        );
        assert!(AfxdpVariant::parse("default:").unwrap().settings.is_empty());
        for bad in [
            "nocolon",
            ":busy_poll_us=5",
            "x:busy_pol=5",
            "x:rx_batch=0",
            "x:prefer_busy_poll=true",
            "x:xdp_mode=fast",
            "x:busy_poll_us",
        ] {
            assert!(AfxdpVariant::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn series_statistics() {
        let s = Series {
            mpps: vec![0.9, 0.7, 0.8, 1.0],
            offered_mpps: vec![4.0, 3.0, 5.0],
            sink_frame_bytes: 64.0,
            runq_wait_ms: 0.0,
            ..Default::default()
        };
        assert_eq!(s.min(), 0.7);
        assert_eq!(s.max(), 1.0);
        assert!((s.median() - 0.85).abs() < 1e-12);
        assert_eq!(s.offered_median(), 4.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn full_table_destinations_fall_inside_its_routes() {
        let t = FullTable::new(2000);
        assert_eq!(t.prefixes.len(), 2000);
        assert_eq!(t.destinations.len(), 1 << 20);
        let mut fib = fib::Fib4::new();
        fib.apply(
            &t.prefixes
                .iter()
                .map(|&p| fib::Update::Insert(p, fib::NextHopId(1)))
                .collect::<Vec<_>>(),
        );
        let mut reader = fib.reader();
        for a in t.destinations.iter().step_by(997) {
            assert_eq!(reader.lookup(*a), Some(fib::NextHopId(1)), "{a}");
            assert_ne!(a.octets()[0], 10, "{a} is in the benchmarks' own 10/8");
        }
        assert!(!t.updates.is_empty());
    }

    #[test]
    fn cpu_busy_share() {
        assert_eq!(busy((10, 100), (60, 200)), 0.5);
        assert!(busy((0, 0), (0, 0)).is_nan());
        // /proc/stat has this machine's cores.
        let (b, t) = cpu_times(0);
        assert!(t > 0 && b <= t);
    }
}
