//! `fwdbench --scenario l3` in network namespaces: one topology, three forwarders (device
//! under test) measured on it one after the other, with the same generator and sink.
//!
//! ```text
//!  ns GEN  gen_if 10.99.0.254 ──veth── up_if 10.99.0.1  ns DUT  pod_if ──veth── sink_if  ns SINK
//!  generator (pktgen), CPU0             (uplink)  forwarder  (ee:ee:..)    10.244.1.2   XDP_DROP
//!  64 B UDP to 10.244.1.2,             vrouterd / bare AF_XDP / kernel     counted in rx_packets
//!  256 source ports                                on CPU1
//! ```
//! Candidates: `vrouterd` (the daemon next to our executable, one busy-polling worker);
//! a bare AF_XDP forwarder (same I/O layer, `AfXdpIo`, and the same XDP program, but no
//! pipeline: rx → MAC rewrite → tx); the kernel (ip_forward, static route and neighbour).
//! Per candidate: a warm-up (the DUT and the sink must both have received something,
//! else the run fails), then N windows; the rate is what the sink's interface received,
//! the offered rate what the DUT's uplink received (rx_packets).
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

use crate::bpf;
use crate::netns::{self, DevStats, Netns};
use crate::pktgen::{Engine, GenConfig, Generator};
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
use vrouter::counters::DropReason;
use vrouter::io::afxdp::{AfXdpIo, PortSpec};
use vrouter::io::Io;
use vrouter::nexthop::PortId;
use vrouter::pipeline::Action;
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
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::L3 => "l3",
            Scenario::Vxlan => "vxlan",
            Scenario::Ipip => "ipip",
            Scenario::V6 => "v6",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        match s {
            "l3" => Some(Scenario::L3),
            "vxlan" => Some(Scenario::Vxlan),
            "ipip" => Some(Scenario::Ipip),
            "v6" => Some(Scenario::V6),
            _ => None,
        }
    }

    /// Bytes the encapsulation adds in front of the inner frame's IP header.
    pub fn overhead(self) -> usize {
        match self {
            Scenario::L3 | Scenario::V6 => 0,
            Scenario::Vxlan => 50,
            Scenario::Ipip => 20,
        }
    }

    fn overlay(self) -> bool {
        matches!(self, Scenario::Vxlan | Scenario::Ipip)
    }
}

#[derive(Debug, Clone)]
pub struct L3Options {
    pub scenario: Scenario,
    /// The vrouterd executable, and arguments to put first (fwdbench itself with
    /// `--as-vrouterd` when no vrouterd binary is built).
    pub vrouterd: PathBuf,
    pub vrouterd_args: Vec<String>,
    pub windows: usize,
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
}

/// Per-window rates of one candidate.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Received by the sink, Mpps.
    pub mpps: Vec<f64>,
    /// Offered: what the DUT's uplink received (its rx_packets), Mpps.
    pub offered_mpps: Vec<f64>,
    /// Mean frame length the sink received over the windows (rx_bytes / rx_packets,
    /// no FCS): 64 plain, 114 VXLAN, 84 IPIP.
    pub sink_frame_bytes: f64,
    /// Over the windows: how long the forwarder's threads were runnable but waiting
    /// for a CPU (schedstat run_delay), ms; another task on the DUT core shows here.
    /// NaN for the kernel candidates.
    pub runq_wait_ms: f64,
    /// Over the windows: how busy the DUT core and the generator core were (0..1, from
    /// /proc/stat: everything but idle and iowait).
    pub dut_cpu_busy: f64,
    pub gen_cpu_busy: f64,
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let s = sorted(v);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

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
}

/// Build the topology, measure the three candidates, tear everything down.
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
    let mut topo = Topology::up(opts.dut_core, opts.scenario)?;
    let bare = topo.bare(opts)?;
    let (vrouter, vrouterd_stats) = topo.vrouterd(opts)?;
    let testpmd = if opts.testpmd {
        Some(topo.testpmd(opts)?)
    } else {
        None
    };
    let (kernel, kernel_vxlan) = match opts.scenario {
        Scenario::L3 | Scenario::V6 => (Some(topo.kernel(opts)?), None),
        Scenario::Vxlan => (None, Some(topo.kernel_vxlan(opts)?)),
        // No ipip module here: IPIP compares against the bare forwarder only.
        Scenario::Ipip => (None, None),
    };
    Ok(L3Results {
        vrouter,
        bare: bare.0,
        kernel,
        kernel_vxlan,
        bare_xdp_mode: bare.1,
        testpmd,
        sink_native: topo.sink_native,
        vrouterd_stats,
    })
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
    _sink_xdp: OwnedFd,
    sink_native: bool,
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

impl Topology {
    fn up(dut_core: usize, scenario: Scenario) -> io::Result<Topology> {
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
        // Created directly inside the namespaces: the root namespace never sees them.
        netns::veth(&gen_if, gen.name(), &up_if, dut.name())?;
        netns::veth(&pod_if, dut.name(), &sink_if, sink.name())?;
        if scenario.overlay() {
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
        let (sink_xdp, sink_native) =
            netns::in_netns(sink.name(), || bpf::attach_action(&sink_if, bpf::XDP_DROP))?;
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
            _sink_xdp: sink_xdp,
            sink_native,
            gen,
            dut,
            _sink: sink,
        })
    }

    fn sink_rx(&mut self) -> io::Result<u64> {
        Ok(self.sink_stats.read(&self.sink_if)?.rx_packets)
    }

    fn sink_bytes(&mut self) -> io::Result<u64> {
        Ok(self.sink_stats.read(&self.sink_if)?.rx_bytes)
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
        let mut c = if self.scenario.overlay() {
            GenConfig::udp64(&self.gen_if, GEN_MAC, POD_SIDE_MAC, POD_IP, REMOTE_POD)
        } else {
            GenConfig::udp64(&self.gen_if, GEN_MAC, UPLINK_MAC, GEN_IP, POD_IP)
        };
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

    /// Run the generator through the current forwarder: warm-up, then the windows.
    /// `alive` fails when the forwarder died.
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
        let (mut s0, mut a0, mut t0) = (self.sink_rx()?, self.arrivals()?, Instant::now());
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
        let (sink_first, bytes_first) = (s0, self.sink_bytes()?);
        let wait_first = self.forwarder_task.map(runq_wait_ns);
        let cpu_first = (cpu_times(opts.dut_core), cpu_times(opts.gen_core));
        let mut series = Series::default();
        for _ in 0..opts.windows {
            netns::sleep_interruptible(opts.window)?;
            let (s1, a1, t1) = (self.sink_rx()?, self.arrivals()?, Instant::now());
            let dt = (t1 - t0).as_secs_f64();
            series.mpps.push((s1 - s0) as f64 / dt / 1e6);
            series.offered_mpps.push((a1 - a0) as f64 / dt / 1e6);
            (s0, a0, t0) = (s1, a1, t1);
        }
        let bytes = self.sink_bytes()? - bytes_first;
        series.sink_frame_bytes = bytes as f64 / (s0 - sink_first).max(1) as f64;
        series.dut_cpu_busy = busy(cpu_first.0, cpu_times(opts.dut_core));
        series.gen_cpu_busy = busy(cpu_first.1, cpu_times(opts.gen_core));
        series.runq_wait_ms = match (wait_first, self.forwarder_task.map(runq_wait_ns)) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
            _ => f64::NAN,
        };
        alive()?;
        gen.stop()?;
        Ok(series)
    }

    /// vrouterd in the DUT namespace, one busy-polling worker on the DUT core.
    fn vrouterd(&mut self, opts: &L3Options) -> io::Result<(Series, Option<serde_json::Value>)> {
        let config = self.dir.join("vrouterd.toml");
        let stats = self.dir.join("vrouterd-stats.json");
        let log = self.dir.join("vrouterd.log");
        let text = if self.scenario.overlay() {
            format!(
                r#"node_name = "fwdbench"
state_dir = "{dir}/state"
api = {{ socket = "{dir}/api.sock" }}
node_ips = ["{UNDERLAY_NODE}/24"]
xdp_mode = "{mode}"
[[uplinks]]
name = "{up}"
[[pools]]
cidr = "{POOL}"
{encap}_mode = "Always"
[workers]
cores = [{core}]
poll_mode = "busy"
[[endpoints]]
name = "fwdbench/gen"
kind = "veth"
interface = "{pod}"
ips = ["{POD_IP}/32"]
mac = "{mac}"
[[nodes]]
name = "remote"
ips = ["{UNDERLAY_REMOTE}/24"]
vtep_mac = "{vtep}"
[[routes]]
dst = "{REMOTE_BLOCK}"
node = "remote"
"#,
                mode = opts.xdp_mode.name(),
                dir = self.dir.display(),
                encap = self.scenario.name(),
                up = self.pod_if,
                core = opts.dut_core,
                pod = self.up_if,
                mac = mac_str(GEN_MAC),
                vtep = mac_str(REMOTE_VTEP_MAC),
            )
        } else {
            format!(
                r#"node_name = "fwdbench"
state_dir = "{dir}/state"
api = {{ socket = "{dir}/api.sock" }}
node_ips = ["{NODE_IP}/24", "{NODE_IP6}/64"]
xdp_mode = "{mode}"
[[uplinks]]
name = "{up}"
[[pools]]
cidr = "{POOL}"
[[pools]]
cidr = "{POOL6}"
[workers]
cores = [{core}]
poll_mode = "busy"
[[endpoints]]
name = "fwdbench/sink"
kind = "veth"
interface = "{pod}"
ips = ["{POD_IP}/32", "{POD_IP6}/128"]
mac = "{mac}"
"#,
                mode = opts.xdp_mode.name(),
                dir = self.dir.display(),
                up = self.up_if,
                core = opts.dut_core,
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
        self.forwarder_task = daemon.child.as_ref().map(|c| (c.id(), None));
        let series = self.measure(opts, "vrouterd", &mut || daemon.check());
        self.forwarder_task = None;
        let series = series?;
        if self.scenario.overlay() {
            check_frames("vrouterd", self.scenario, self.plain_frame_bytes, &series)?;
        }
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
        self.pod_route(IpAddr::V4(POD_IP))?;
        self.dut.write_proc_sys("net/ipv4/ip_forward", "1")?;
        if self.scenario == Scenario::V6 {
            self.pod_route(IpAddr::V6(POD_IP6))?;
            self.dut
                .write_proc_sys("net/ipv6/conf/all/forwarding", "1")?;
        }
        let series = self.measure(opts, "kernel forwarding", &mut || Ok(()));
        let _ = self.dut.write_proc_sys("net/ipv4/ip_forward", "0");
        let _ = self.dut.write_proc_sys("net/ipv6/conf/all/forwarding", "0");
        series
    }
}

impl Topology {
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
        dut.ip(&[
            "route",
            "replace",
            &format!("{POD_IP}/32"),
            "dev",
            &self.up_if,
            "scope",
            "link",
        ])?;
        for conf in ["all", "default", self.up_if.as_str()] {
            dut.write_proc_sys(&format!("net/ipv4/conf/{conf}/rp_filter"), "0")?;
        }
        dut.write_proc_sys("net/ipv4/ip_forward", "1")?;
        let series = self.measure(opts, "kernel VXLAN", &mut || Ok(()));
        let _ = self.dut.write_proc_sys("net/ipv4/ip_forward", "0");
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
        let (up, mode) = attach(&a.up_if, XdpRole::Uplink, a.mode)?;
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
    fn cpu_busy_share() {
        assert_eq!(busy((10, 100), (60, 200)), 0.5);
        assert!(busy((0, 0), (0, 0)).is_nan());
        // /proc/stat has this machine's cores.
        let (b, t) = cpu_times(0);
        assert!(t > 0 && b <= t);
    }
}
