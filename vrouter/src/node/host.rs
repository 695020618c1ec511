//! `Host`: what the node's state asks of the machine and of the workers when it changes
//! — interfaces looked up, an endpoint's socket and XDP steering opened or closed on
//! its worker, ports and the overlay told to every worker, the uplinks' XDP prefixes,
//! the kernel's routes to the node's pods.
//! vrouterd's implementation is `crate::host::WorkerHost`; unit tests use a fake, so the
//! node's state is tested without root.

use super::error::NodeResult;
use super::interface::IfInfo;
use super::plan::EndpointPlan;
use crate::nexthop::PortId;
use crate::pipeline::Port;
use crate::tunnel::Overlay;
use ipnet::IpNet;
use std::io;

pub trait Host {
    /// An interface's MAC, MTU and index.
    fn interface(&self, name: &str) -> io::Result<IfInfo>;
    /// A kernel counter of an interface (`rx_packets`, ...; 0 when unknown).
    fn interface_counter(&self, name: &str, key: &str) -> u64;
    /// Every worker: port `id` is now `port` (its MTU, the addresses its pod may use).
    fn set_port(&mut self, id: PortId, port: &Port);
    /// Every worker: the pools we decapsulate toward changed.
    fn set_overlay(&mut self, overlay: &Overlay);
    /// Every worker: enforce these policies (swapped between bursts).
    fn set_policy(&mut self, set: &std::sync::Arc<crate::policy::set::PolicySet>);
    /// Open the endpoint on its worker: XDP steering for a veth, its socket (or tap),
    /// and asking the pod for its MAC. On error nothing is left open.
    fn open_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()>;
    /// Close it: the socket on its worker, then its XDP steering. The endpoint is the
    /// same whether it came from the file (at start or reload) or the API.
    fn close_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()>;
    /// The uplinks' XDP programs send traffic to `prefix` to us (`true`) or no longer.
    fn steer_to_us(&mut self, prefix: IpNet, on: bool);
    /// The node's kernel routes to a veth endpoint's addresses (`<ip> dev <interface>
    /// scope link`, marked ours): added, replacing any to the same address (`on`), or
    /// removed. Host prefixes whatever the length of `ips`.
    fn host_routes(&mut self, interface: &str, ips: &[IpNet], on: bool) -> NodeResult<()>;
    /// Every worker's flows that `filter` picks (at most `limit` each) and how many it
    /// picks in all; or, with `flush`, remove them.
    fn flows(
        &mut self,
        _filter: &crate::conntrack::view::FlowFilter,
        _limit: usize,
        _flush: bool,
    ) -> NodeResult<(Vec<crate::conntrack::view::FlowView>, usize)> {
        Ok((Vec::new(), 0))
    }
    /// NAT outgoing's ports while a pool asks for NAT.
    fn nat_ports(&self) -> Option<std::ops::RangeInclusive<u16>> {
        None
    }
    /// Remove the kernel routes marked ours that `keep` (interface, address) does not
    /// list: those an earlier run left. Returns how many went.
    fn prune_host_routes(&mut self, keep: &[(String, IpNet)]) -> NodeResult<usize>;
    /// Once the start has installed everything: remove what programs taken over from the
    /// last run still hold that this run did not set (see `XdpProgram::sweep_stale`).
    fn sweep_kept_programs(&mut self) {}
}
