//! `api`: gRPC requests (protobuf bytes, as tonic would hand them over) answered by
//! `vrouter::api::answer` on an in-memory node (a pretend host: no root, no workers),
//! several calls in a row on the same node. Each call must be answered, with a reply
//! or a status: a call left unanswered would hang its client.
//!
//! Input: calls, each `kind len_hi len_lo protobuf...`; `kind` picks the RPC.

use control::api::{pb, Call};
use prost::Message;
use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use vrouter::config::Config;
use vrouter::nexthop::PortId;
use vrouter::node::error::NodeResult;
use vrouter::node::host::Host;
use vrouter::node::interface::IfInfo;
use vrouter::node::plan::EndpointPlan;
use vrouter::node::NodeState;
use vrouter::pipeline::Port;
use vrouter::test_support::fake_host::{fake_interface, node_on_fake_host};
use vrouter::tunnel::Overlay;

pub const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24", "fd00::1/64"]
[[uplinks]]
name = "eth0"
queues = [0, 1]
[[pools]]
cidr = "10.244.0.0/16"
nat_outgoing = true
[[pools]]
cidr = "fd10::/48"
[workers]
count = 2
endpoint_slots = 4
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32"]
labels = { app = "web" }
[[nodes]]
name = "n2"
ips = ["10.0.0.2/32"]
[[routes]]
dst = "0.0.0.0/0"
via = "10.0.0.254"
[bgp]
asn = 64512
"#;

/// The interfaces of the pretend host: its uplink and any pod's (`cali*`, `tap*`).
pub fn info(name: &str) -> io::Result<IfInfo> {
    fake_interface(name, |n| n.starts_with("cali") || n.starts_with("tap"))
}

/// A host that does nothing but answer.
struct FakeHost;

impl Host for FakeHost {
    fn interface(&self, name: &str) -> io::Result<IfInfo> {
        info(name)
    }
    fn interface_counter(&self, _name: &str, _key: &str) -> u64 {
        0
    }
    fn set_port(&mut self, _id: PortId, _port: &Port) {}
    fn set_overlay(&mut self, _overlay: &Overlay) {}
    fn set_policy(&mut self, _set: &Arc<vrouter::policy::set::PolicySet>) {}
    fn open_endpoint(&mut self, _ep: &EndpointPlan) -> NodeResult<()> {
        Ok(())
    }
    fn close_endpoint(&mut self, _ep: &EndpointPlan) -> NodeResult<()> {
        Ok(())
    }
    fn steer_to_us(&mut self, _prefix: ipnet::IpNet, _on: bool) {}
    fn host_routes(&mut self, _: &str, _: &[ipnet::IpNet], _: bool) -> NodeResult<()> {
        Ok(())
    }
    fn prune_host_routes(&mut self, _keep: &[(String, ipnet::IpNet)]) -> NodeResult<usize> {
        Ok(0)
    }
}

/// This thread's state directory (tmpfs when there is one), emptied for each input.
/// One per thread, not per process: the replay tests run targets on parallel threads,
/// and one target's `remove_dir_all` must not pull the directory from under another's
/// node while it saves its state.
pub fn state_dir() -> PathBuf {
    static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    }
    DIR.with(|d| {
        d.borrow_mut()
            .get_or_insert_with(|| {
                let base = if std::path::Path::new("/dev/shm").is_dir() {
                    PathBuf::from("/dev/shm")
                } else {
                    std::env::temp_dir()
                };
                let thread = THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                base.join(format!("vrouter-fuzz-api-{}-{thread}", std::process::id()))
            })
            .clone()
    })
}

/// A node started from `text` on the pretend host, its state in `dir`.
pub fn node_from(text: &str, dir: &std::path::Path) -> NodeState {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = Config::parse(text).expect("the fuzz config parses");
    config.state_dir = dir.to_path_buf();
    node_on_fake_host(&config, Box::new(FakeHost))
}

/// Decode `bytes` as `T` and make the call; the receiver of its answer.
macro_rules! calls {
    ($kind:expr, $bytes:expr, $($n:literal => $variant:ident($t:ty)),* $(,)?) => {
        match $kind % calls!(@count $($n)*) {
            $($n => {
                let Ok(req) = <$t>::decode($bytes) else { return None };
                let (tx, rx) = oneshot::channel();
                Some((Call::$variant(req, tx), Box::new(move || answered(rx)) as Box<dyn FnOnce() -> bool>))
            })*
            _ => unreachable!(),
        }
    };
    (@count $($n:literal)*) => { 0u8 $(+ { let _ = $n; 1u8 })* };
}

fn answered<T: std::fmt::Debug>(mut rx: oneshot::Receiver<Result<T, tonic::Status>>) -> bool {
    match rx.try_recv() {
        Ok(r) => {
            if crate::debug() {
                eprintln!("  -> {r:?}");
            }
            true
        }
        Err(_) => false,
    }
}

type Pending = (Call, Box<dyn FnOnce() -> bool>);

/// The call of kind `kind` from protobuf `bytes` (None: they do not decode).
pub fn call(kind: u8, bytes: &[u8]) -> Option<Pending> {
    calls!(kind, bytes,
        0 => NodeStatus(pb::NodeStatusRequest),
        1 => ListEndpoints(pb::ListEndpointsRequest),
        2 => AddEndpoint(pb::Endpoint),
        3 => RemoveEndpoint(pb::RemoveEndpointRequest),
        4 => AllocateAddresses(pb::AllocateAddressesRequest),
        5 => ReleaseAddresses(pb::ReleaseAddressesRequest),
        6 => ListRoutes(pb::ListRoutesRequest),
        7 => AddRoute(pb::AddRouteRequest),
        8 => RemoveRoute(pb::RemoveRouteRequest),
        9 => ApplyPool(pb::Pool),
        10 => ListPools(pb::ListPoolsRequest),
        11 => RemovePool(pb::RemovePoolRequest),
        12 => ListPeers(pb::ListPeersRequest),
        13 => AddPeer(pb::Peer),
        14 => RemovePeer(pb::RemovePeerRequest),
        15 => GetStats(pb::StatsRequest),
        16 => Reload(pb::ReloadRequest),
        17 => ListFlows(pb::ListFlowsRequest),
        18 => FlushFlows(pb::FlushFlowsRequest),
        19 => ConntrackStats(pb::ConntrackStatsRequest),
        20 => ApplyPolicies(pb::ApplyPoliciesRequest),
        21 => ListPolicies(pb::ListPoliciesRequest),
        22 => RemovePolicy(pb::RemovePolicyRequest),
    )
}

/// Split the input into (kind, protobuf bytes), at most 8 calls.
pub fn split(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && out.len() < 8 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let take = len.min(rest.len() - 3);
        out.push((rest[0], &rest[3..3 + take]));
        rest = &rest[3 + take..];
    }
    out
}

pub fn run(data: &[u8]) {
    let calls: Vec<Pending> = split(data)
        .into_iter()
        .filter_map(|(k, b)| call(k, b))
        .collect();
    if calls.is_empty() {
        return;
    }
    let dir = state_dir();
    let mut n = node_from(CONFIG, &dir);
    for (c, check) in calls {
        let what = format!("{c:?}");
        if crate::debug() {
            eprintln!("{what}");
        }
        vrouter::api::answer(&mut n, c, None);
        assert!(check(), "unanswered: {what}");
    }
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}
