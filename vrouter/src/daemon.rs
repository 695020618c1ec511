//! `vrouterd`: turns a validated `Config` into a running node.
//!
//! ```text
//!  main thread (control)                      worker w (pinned to cores[w])
//!  ├─ plan: ports, next hops, FIB routes      ├─ AfXdpIo: one UMEM, its uplink queue,
//!  ├─ attach our XDP program (BPF links)      │  its veth / tap endpoints
//!  ├─ spawn workers ─────── readers ────────▶ ├─ Pipeline (FIB readers, next hops)
//!  ├─ neighbours: kernel table → next hops    └─ loop: rx burst → pipeline → tx
//!  └─ stats file, until SIGTERM / SIGINT          (next hops: one atomic store each)
//! ```
//! Logical ports: uplink i is `PortId(i)` in every worker (each worker sends on its own
//! queue of it); endpoints follow. An endpoint belongs to one worker (round robin).

use crate::arp::HOST_SIDE_MAC;
use crate::config::{parse_mac, Config, EncapMode, EndpointKind, Node, XdpMode};
use crate::counters::{Counters, DropReason};
use crate::ecmp::GroupTable;
use crate::io::afxdp::{AfXdpIo, PortSpec};
use crate::io::mailbox::Mailbox;
use crate::neigh::Neighbours;
use crate::nexthop::{Adjacency, NextHopTable, PortId};
use crate::pipeline::{Pipeline, Port, PortKind};
use crate::tunnel::{Encap, Overlay, Tunnel, TunnelTable};
use crate::worker::{PodProbe, Worker};
use crate::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};
use encap::ipip::Ipip;
use encap::tunnel::{OuterEth, Underlay};
use encap::vxlan::{self, SourcePort, Vxlan};
use fib::{Fib4, Fib6, NextHopId};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the configuration asks for, resolved to ports, next hops and routes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ports: Vec<Port>,
    pub port_names: Vec<String>,
    pub uplinks: Vec<UplinkPlan>,
    pub endpoints: Vec<EndpointPlan>,
    pub routes4: Vec<(Ipv4Net, u32)>,
    pub routes6: Vec<(Ipv6Net, u32)>,
    /// Next hops behind an uplink, resolved through the kernel's neighbour table.
    pub gateways: Vec<Gateway>,
    /// Tunnels toward remote nodes (index = tunnel id) and the next hops naming them.
    pub tunnels: Vec<Tunnel>,
    pub tunnel_nexthops: Vec<(u32, u32)>,
    /// ECMP groups (index = group id: member next hops) and the next hops naming them.
    pub groups: Vec<Vec<u32>>,
    pub group_nexthops: Vec<(u32, u32)>,
    /// What we decapsulate.
    pub overlay: Overlay,
    pub nexthop_count: u32,
    /// Next hops already made, by (uplink, neighbour) and by (node, VXLAN?, IPv6?), so
    /// that routes learnt later share them.
    pub(crate) by_via: HashMap<(usize, IpAddr), u32>,
    pub(crate) by_tunnel: HashMap<(String, bool, bool), u32>,
    /// Our own blocks (announced by BGP; unused addresses in them are blackholed).
    pub own_blocks: Vec<IpNet>,
    pub blackhole: Option<u32>,
    /// Ports reserved for endpoints added while running, not in use now.
    pub free_slots: Vec<Slot>,
}

/// A port (with its next hop and worker) an endpoint added while running can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub port: PortId,
    pub nh: u32,
    pub worker: usize,
}

/// What a port no endpoint uses looks like: no address may be sent from it.
pub fn idle_port() -> Port {
    Port {
        mac: HOST_SIDE_MAC,
        mtu: 1500,
        kind: PortKind::Endpoint {
            v4: Vec::new(),
            v6: Vec::new(),
        },
    }
}

/// The blocks (of each pool's block size) holding our endpoints' addresses.
pub fn own_blocks(config: &Config) -> Vec<IpNet> {
    let mut blocks: Vec<IpNet> = Vec::new();
    for ip in config.endpoints.iter().flat_map(|e| &e.ips) {
        if let Some(p) = config.pools.iter().find(|p| p.cidr.contains(ip)) {
            if let Ok(b) = IpNet::new(ip.addr(), p.block_size()) {
                let b = b.trunc();
                if !blocks.contains(&b) {
                    blocks.push(b);
                }
            }
        }
    }
    blocks
}

/// The addresses of `nets` by family, as the pipeline keeps them.
fn split_addrs(nets: &[IpNet]) -> (Vec<u32>, Vec<u128>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nets {
        match n {
            IpNet::V4(n) => v4.push(u32::from(n.addr())),
            IpNet::V6(n) => v6.push(u128::from(n.addr())),
        }
    }
    (v4, v6)
}

/// Networks as (network address, prefix length).
type Networks<A> = Vec<(A, u8)>;

/// The networks of `nets` by family.
pub(crate) fn split_networks(nets: &[IpNet]) -> (Networks<u32>, Networks<u128>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nets {
        match n {
            IpNet::V4(n) => v4.push((u32::from(n.network()), n.prefix_len())),
            IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len())),
        }
    }
    (v4, v6)
}

fn uplink_index(plan: &Plan, name: Option<&str>) -> usize {
    name.and_then(|n| plan.uplinks.iter().position(|u| u.name == n))
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct UplinkPlan {
    pub name: String,
    pub port: PortId,
    pub queues: Vec<u32>,
    pub ifindex: u32,
}

#[derive(Debug, Clone)]
pub struct EndpointPlan {
    pub name: String,
    pub kind: EndpointKind,
    pub interface: String,
    pub port: PortId,
    pub nh: u32,
    pub mac: Option<[u8; 6]>,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub worker: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub nh: u32,
    pub port: PortId,
    pub ifindex: u32,
    pub via: IpAddr,
}

/// A network interface's MAC, MTU and index (from /sys/class/net).
#[derive(Debug, Clone, Copy)]
pub struct IfInfo {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub ifindex: u32,
}

pub fn if_info(name: &str) -> io::Result<IfInfo> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{f}"))
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {f}: {e}")))
    };
    let bad = |f: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("interface {name}: bad {f}"),
        )
    };
    Ok(IfInfo {
        mac: parse_mac(&read("address")?).ok_or_else(|| bad("address"))?,
        mtu: read("mtu")?.parse().map_err(|_| bad("mtu"))?,
        ifindex: read("ifindex")?.parse().map_err(|_| bad("ifindex"))?,
    })
}

impl Plan {
    /// `info` looks interfaces up (`if_info` on a host; a table in tests). Tap endpoints
    /// may not exist yet (opening one creates it): they default to MTU 1500.
    pub fn new(config: &Config, info: &dyn Fn(&str) -> io::Result<IfInfo>) -> io::Result<Plan> {
        let mut plan = Plan {
            ports: Vec::new(),
            port_names: Vec::new(),
            uplinks: Vec::new(),
            endpoints: Vec::new(),
            routes4: Vec::new(),
            routes6: Vec::new(),
            gateways: Vec::new(),
            tunnels: Vec::new(),
            tunnel_nexthops: Vec::new(),
            groups: Vec::new(),
            group_nexthops: Vec::new(),
            overlay: Overlay::default(),
            nexthop_count: 0,
            by_via: HashMap::new(),
            by_tunnel: HashMap::new(),
            own_blocks: Vec::new(),
            blackhole: None,
            free_slots: Vec::new(),
        };
        for u in &config.uplinks {
            let i = info(&u.name)?;
            let port = PortId(plan.ports.len() as u16);
            plan.ports.push(Port {
                mac: i.mac,
                mtu: i.mtu,
                kind: PortKind::Uplink,
            });
            plan.port_names.push(u.name.clone());
            plan.uplinks.push(UplinkPlan {
                name: u.name.clone(),
                port,
                queues: u.queues.clone(),
                ifindex: i.ifindex,
            });
        }
        for (n, e) in config.endpoints.iter().enumerate() {
            let mtu = match (e.kind, info(&e.interface)) {
                (_, Ok(i)) => i.mtu,
                (EndpointKind::Tap, Err(_)) => 1500,
                (EndpointKind::Veth, Err(err)) => return Err(err),
            };
            let port = PortId(plan.ports.len() as u16);
            let (v4, v6) = split_addrs(&e.ips);
            let nh = plan.nexthop_count;
            plan.nexthop_count += 1;
            for ip in &e.ips {
                match ip {
                    IpNet::V4(n) => plan.routes4.push((*n, nh)),
                    IpNet::V6(n) => plan.routes6.push((*n, nh)),
                }
            }
            plan.endpoints.push(EndpointPlan {
                name: e.name.clone(),
                kind: e.kind,
                interface: e.interface.clone(),
                port,
                nh,
                mac: e.mac.as_deref().and_then(parse_mac),
                v4: v4.first().map(|&a| Ipv4Addr::from(a)),
                v6: v6.first().map(|&a| Ipv6Addr::from(a)),
                worker: n % config.workers.count,
            });
            plan.ports.push(Port {
                mac: HOST_SIDE_MAC,
                mtu,
                kind: PortKind::Endpoint { v4, v6 },
            });
            plan.port_names.push(e.interface.clone());
        }
        // Routes via neighbours first, then to nodes (next hop numbering follows).
        for r in config.routes.iter().filter(|r| r.via.is_some()) {
            let nh = plan.static_nexthop(config, r)?;
            plan.route(r.dst, nh);
        }
        for r in config.routes.iter().filter(|r| r.node.is_some()) {
            let nh = plan.static_nexthop(config, r)?;
            plan.route(r.dst, nh);
        }
        if config.bgp.is_some() {
            // Our blocks: announced, and their unused addresses dropped (never sent back
            // out toward whoever routed them to us).
            plan.own_blocks = own_blocks(config);
            let blackhole = plan.new_nexthop();
            plan.blackhole = Some(blackhole);
            for b in plan.own_blocks.clone() {
                plan.route(b, blackhole);
            }
        }
        let (local_v4, local_v6) = split_addrs(&config.node_ips);
        let pools: Vec<IpNet> = config.pools.iter().map(|p| p.cidr).collect();
        let (pools_v4, pools_v6) = split_networks(&pools);
        plan.overlay = Overlay {
            local_v4,
            local_v6,
            pools_v4,
            pools_v6,
            vni: config.vxlan.vni,
        };
        // Slots continue the endpoints' round robin over workers.
        for k in 0..config.workers.endpoint_slots {
            let port = PortId(plan.ports.len() as u16);
            let nh = plan.new_nexthop();
            plan.ports.push(idle_port());
            plan.port_names.push(String::new());
            plan.free_slots.push(Slot {
                port,
                nh,
                worker: (config.endpoints.len() + k) % config.workers.count,
            });
        }
        // Taken from the end: the first slots go first.
        plan.free_slots.reverse();
        Ok(plan)
    }
}

impl Plan {
    /// The next hop of a static route: a neighbour on an uplink, an ECMP group of them,
    /// or the tunnel (or plain next hop) toward a remote node, as its pool says.
    pub(crate) fn static_nexthop(
        &mut self,
        config: &Config,
        r: &crate::config::StaticRoute,
    ) -> io::Result<u32> {
        let u = uplink_index(self, r.uplink.as_deref());
        let mut by_via = std::mem::take(&mut self.by_via);
        let nh = match (&r.via, &r.node) {
            (Some(via), _) => {
                let members: Vec<u32> = via
                    .addrs()
                    .iter()
                    .map(|&v| self.gateway(&mut by_via, u, v))
                    .collect();
                if members.len() == 1 {
                    Ok(members[0])
                } else {
                    // ECMP: a group of the gateways' next hops.
                    let id = self.groups.len() as u32;
                    self.groups.push(members);
                    let nh = self.new_nexthop();
                    self.group_nexthops.push((nh, id));
                    Ok(nh)
                }
            }
            (None, Some(name)) => {
                let mut by_tunnel = std::mem::take(&mut self.by_tunnel);
                let nh = match config.nodes.iter().find(|n| &n.name == name) {
                    Some(node) => {
                        self.node_route(config, &mut by_via, &mut by_tunnel, u, node, r.dst, true)
                    }
                    None => Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("route {}: no node {name}", r.dst),
                    )),
                };
                self.by_tunnel = by_tunnel;
                nh
            }
            (None, None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("route {}: needs via or node", r.dst),
            )),
        };
        self.by_via = by_via;
        nh
    }

    pub(crate) fn new_nexthop(&mut self) -> u32 {
        self.nexthop_count += 1;
        self.nexthop_count - 1
    }

    fn route(&mut self, dst: IpNet, nh: u32) {
        match dst {
            IpNet::V4(n) => self.routes4.push((n.trunc(), nh)),
            IpNet::V6(n) => self.routes6.push((n.trunc(), nh)),
        }
    }

    /// The next hop for neighbour `via` behind uplink `u` (one per neighbour).
    fn gateway(
        &mut self,
        by_via: &mut HashMap<(usize, IpAddr), u32>,
        u: usize,
        via: IpAddr,
    ) -> u32 {
        if let Some(&nh) = by_via.get(&(u, via)) {
            return nh;
        }
        let nh = self.new_nexthop();
        self.gateways.push(Gateway {
            nh,
            port: self.uplinks[u].port,
            ifindex: self.uplinks[u].ifindex,
            via,
        });
        by_via.insert((u, via), nh);
        nh
    }

    /// The next hop for a remote node's block: a tunnel when the block's pool says so
    /// (Always; CrossSubnet when the node is outside our subnets), else plain routing to
    /// the node's address. `known`: the node is in `[[nodes]]`; a BGP next hop that is
    /// not has no VTEP MAC, so VXLAN is impossible and its blocks are routed plainly.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn node_route(
        &mut self,
        config: &Config,
        by_via: &mut HashMap<(usize, IpAddr), u32>,
        by_tunnel: &mut HashMap<(String, bool, bool), u32>,
        u: usize,
        node: &Node,
        dst: IpNet,
        known: bool,
    ) -> io::Result<u32> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        let name = node.name.as_str();
        let v6 = dst.addr().is_ipv6();
        let remote = node
            .ips
            .iter()
            .map(|n| n.addr())
            .find(|a| a.is_ipv6() == v6)
            .unwrap_or(node.ips[0].addr());
        let local = config
            .node_ips
            .iter()
            .map(|n| n.addr())
            .find(|a| a.is_ipv6() == remote.is_ipv6())
            .ok_or_else(|| {
                bad(format!(
                    "node {name}: no node_ips address of {remote}'s family"
                ))
            })?;
        let on_subnet = config.node_ips.iter().any(|n| n.contains(&remote));
        // Off our subnets, the underlay next hop is the static route's toward the node.
        let underlay_via = if on_subnet {
            remote
        } else {
            config
                .routes
                .iter()
                .filter(|s| s.via.is_some() && s.dst.contains(&remote))
                .max_by_key(|s| s.dst.prefix_len())
                .and_then(|s| s.via.as_ref().map(|v| v.addrs()[0]))
                .ok_or_else(|| {
                    bad(format!(
                        "node {name}: {remote} is off our subnets and no route reaches it"
                    ))
                })?
        };
        let underlay_nh = self.gateway(by_via, u, underlay_via);
        let pool = config.pools.iter().find(|p| p.cidr.contains(&dst));
        let wants = |mode: EncapMode| match mode {
            EncapMode::Always => true,
            EncapMode::CrossSubnet => !on_subnet,
            EncapMode::Never => false,
        };
        let vxlan = pool.is_some_and(|p| wants(p.vxlan_mode));
        let ipip = pool.is_some_and(|p| wants(p.ipip_mode));
        if vxlan && !known {
            warn!(%dst, next_hop = %remote, "VXLAN toward a node not in [[nodes]] (no VTEP MAC): routed plainly");
        }
        if (!vxlan || !known) && !ipip {
            return Ok(underlay_nh);
        }
        if let Some(&nh) = by_tunnel.get(&(name.to_string(), vxlan, v6)) {
            return Ok(nh);
        }
        let underlay = match (local, remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Underlay::V4 { src, dst },
            (IpAddr::V6(src), IpAddr::V6(dst)) => Underlay::V6 { src, dst },
            _ => unreachable!("same family by construction"),
        };
        let blank = OuterEth {
            dst: [0; 6],
            src: [0; 6],
        };
        let encap = if vxlan {
            let vtep = |n: &str| {
                if v6 {
                    vxlan::vtep_mac_v6(n)
                } else {
                    vxlan::vtep_mac(n)
                }
            };
            Encap::Vxlan(Vxlan {
                vni: config.vxlan.vni,
                local_vtep_mac: config
                    .vxlan
                    .vtep_mac
                    .as_deref()
                    .and_then(parse_mac)
                    .unwrap_or_else(|| vtep(&config.node_name)),
                remote_vtep_mac: node
                    .vtep_mac
                    .as_deref()
                    .and_then(parse_mac)
                    .unwrap_or_else(|| vtep(name)),
                underlay,
                eth: blank,
                source_port: match config.vxlan.source_port {
                    Some(p) => SourcePort::Fixed(p),
                    None => SourcePort::FlowHash,
                },
            })
        } else {
            Encap::Ipip(Ipip {
                underlay,
                eth: blank,
            })
        };
        let id = self.tunnels.len() as u32;
        self.tunnels.push(Tunnel::new(encap, underlay_nh));
        let nh = self.new_nexthop();
        self.tunnel_nexthops.push((nh, id));
        by_tunnel.insert((name.to_string(), vxlan, v6), nh);
        Ok(nh)
    }
}

/// Everything `run` keeps alive; dropping it detaches the XDP programs.
pub(crate) struct Attached {
    uplinks: Vec<Arc<XdpProgram>>,
    endpoints: HashMap<String, Arc<XdpProgram>>,
}

pub(crate) fn attach(ifname: &str, role: XdpRole, mode: XdpMode) -> io::Result<XdpProgram> {
    match mode {
        XdpMode::Native => XdpProgram::attach(ifname, role, AttachMode::Native),
        XdpMode::Generic => XdpProgram::attach(ifname, role, AttachMode::Generic),
        XdpMode::Auto => XdpProgram::attach(ifname, role, AttachMode::Native).or_else(|e| {
            warn!(%ifname, error = %e, "native XDP refused; using generic mode");
            XdpProgram::attach(ifname, role, AttachMode::Generic)
        }),
    }
}

fn attach_all(config: &Config, plan: &Plan) -> io::Result<Attached> {
    let local: Vec<IpNet> = config
        .node_ips
        .iter()
        .map(|n| IpNet::new(n.addr(), n.max_prefix_len()).unwrap())
        .collect();
    let mut uplinks = Vec::new();
    for u in &plan.uplinks {
        let prog = attach(&u.name, XdpRole::Uplink, config.xdp_mode)?;
        for p in &config.pools {
            prog.add_prefix(p.cidr.trunc(), PrefixClass::Ours)?;
        }
        for e in &config.endpoints {
            for ip in &e.ips {
                prog.add_prefix(*ip, PrefixClass::Ours)?;
            }
        }
        for l in &local {
            prog.add_prefix(*l, PrefixClass::Local)?;
        }
        uplinks.push(Arc::new(prog));
    }
    let mut endpoints = HashMap::new();
    for e in plan
        .endpoints
        .iter()
        .filter(|e| e.kind == EndpointKind::Veth)
    {
        let prog = attach(&e.interface, XdpRole::Endpoint, config.xdp_mode)?;
        for l in &local {
            prog.add_prefix(*l, PrefixClass::Local)?;
        }
        endpoints.insert(e.interface.clone(), Arc::new(prog));
    }
    Ok(Attached { uplinks, endpoints })
}

/// Next hops, tunnels and ECMP groups kept free for static routes added while running.
const RUNTIME_NEXTHOPS: usize = 1024;
const RUNTIME_TUNNELS: usize = 256;
const RUNTIME_GROUPS: usize = 256;

/// Options of `vrouterd` besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rewrite this JSON file with the counters every `stats_interval`.
    pub stats_file: Option<std::path::PathBuf>,
    pub stats_interval: Duration,
    /// The file SIGHUP and `vrouterctl reload` re-read.
    pub config_path: Option<std::path::PathBuf>,
    /// Set by SIGHUP.
    pub reload: Arc<AtomicBool>,
}

/// Run the node until `stop` is set. Errors at start-up name what failed.
pub fn run(file_config: &Config, options: &RunOptions, stop: Arc<AtomicBool>) -> io::Result<()> {
    // The effective configuration: the file, plus what was added through the API.
    let mut config = file_config.clone();
    let api_state = crate::manage::ApiState::load(&config.state_dir)?;
    api_state.merge_into(&mut config);
    config.validate().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/api.json with the file: {e}", config.state_dir.display()),
        )
    })?;
    let config = config;
    let ipam = crate::manage::open_ipam(&config)?;
    let plan = Plan::new(&config, &if_info)?;
    // Room for what the BGP speaker's routes may add while running.
    let bgp_on = config.bgp.is_some();
    let extra = |n: usize| if bgp_on { n } else { 0 };
    // And for static routes added while running (API, reload).
    let nexthop_capacity =
        plan.nexthop_count.max(1) as usize + RUNTIME_NEXTHOPS + extra(crate::bgp::EXTRA_NEXTHOPS);
    let tunnel_capacity = plan.tunnels.len() + RUNTIME_TUNNELS + extra(crate::bgp::EXTRA_TUNNELS);
    let group_capacity = plan.groups.len() + RUNTIME_GROUPS + extra(crate::bgp::EXTRA_GROUPS);
    let nexthops = Arc::new(NextHopTable::new(nexthop_capacity));
    if let Some(b) = plan.blackhole {
        nexthops.set(b, Adjacency::Blackhole);
    }
    for e in &plan.endpoints {
        if let Some(mac) = e.mac {
            nexthops.set(e.nh, Adjacency::Forward { port: e.port, mac });
        }
    }
    for &(nh, id) in &plan.tunnel_nexthops {
        nexthops.set(nh, Adjacency::Tunnel { id });
    }
    let groups = Arc::new(GroupTable::new(group_capacity));
    for (id, members) in plan.groups.iter().enumerate() {
        groups.set(id as u32, members);
    }
    for &(nh, id) in &plan.group_nexthops {
        nexthops.set(nh, Adjacency::Group { id });
    }
    let tunnels = Arc::new(TunnelTable::new(tunnel_capacity));
    for (id, t) in plan.tunnels.iter().enumerate() {
        tunnels.set(id as u32, *t);
    }
    let mut fib4 = Fib4::new();
    for &(net, nh) in &plan.routes4 {
        fib4.insert(net, NextHopId(nh));
    }
    let mut fib6 = Fib6::new();
    for &(net, nh) in &plan.routes6 {
        fib6.insert(net, NextHopId(nh));
    }
    let attached = attach_all(&config, &plan)?;
    let ports: Arc<[Port]> = plan.ports.clone().into();
    let counters = Arc::new(Counters::new(config.workers.count));
    // ICMP errors come from the node's first address of each family.
    let node_v4 = plan.overlay.local_v4.first().map(|&a| Ipv4Addr::from(a));
    let node_v6 = plan.overlay.local_v6.first().map(|&a| Ipv6Addr::from(a));
    let cores = config.workers.cores();

    // Frames for a pod another worker owns go through that worker's mailbox.
    let mailboxes: Vec<Arc<Mailbox>> = (0..cores.len()).map(|_| Arc::default()).collect();
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let mut threads = Vec::new();
    let mut commands = Vec::new();
    let mut endpoint_mtu_limit = u16::MAX;
    for (w, &core) in cores.iter().enumerate() {
        let mut specs: Vec<(PortId, PortSpec)> = plan
            .uplinks
            .iter()
            .map(|u| {
                (
                    u.port,
                    PortSpec::Xsk {
                        ifname: u.name.clone(),
                        queue: u.queues[w],
                        uplink: true,
                    },
                )
            })
            .collect();
        let mine: Vec<&EndpointPlan> = plan.endpoints.iter().filter(|e| e.worker == w).collect();
        let my_slots: Vec<Slot> = plan
            .free_slots
            .iter()
            .filter(|s| s.worker == w)
            .copied()
            .collect();
        for e in &mine {
            specs.push((
                e.port,
                match e.kind {
                    EndpointKind::Veth => PortSpec::Xsk {
                        ifname: e.interface.clone(),
                        queue: 0,
                        uplink: false,
                    },
                    EndpointKind::Tap => PortSpec::Tap {
                        name: e.interface.clone(),
                    },
                },
            ));
        }
        let mtu = specs
            .iter()
            .map(|(p, _)| plan.ports[p.0 as usize].mtu)
            .max()
            .unwrap_or(1500)
            .max(1500);
        endpoint_mtu_limit = endpoint_mtu_limit.min(AfXdpIo::mtu_limit(mtu));
        let mut outboxes: Vec<Option<Arc<Mailbox>>> = vec![None; plan.ports.len()];
        for e in plan.endpoints.iter().filter(|e| e.worker != w) {
            outboxes[e.port.0 as usize] = Some(mailboxes[e.worker].clone());
        }
        for s in plan.free_slots.iter().filter(|s| s.worker != w) {
            outboxes[s.port.0 as usize] = Some(mailboxes[s.worker].clone());
        }
        let inbox = mailboxes[w].clone();
        let mut by_port = vec![None; plan.ports.len()];
        for e in &mine {
            by_port[e.port.0 as usize] = Some(e.nh);
        }
        for s in &my_slots {
            by_port[s.port.0 as usize] = Some(s.nh);
        }
        let probes: Vec<PodProbe> = mine
            .iter()
            .filter(|e| e.mac.is_none())
            .map(|e| PodProbe {
                port: e.port,
                nh: e.nh,
                v4: e.v4,
                v6: e.v6,
            })
            .collect();
        // Which XDP program steers each of this worker's sockets, and on which queue.
        let steering: Vec<(PortId, Arc<XdpProgram>, u32)> = plan
            .uplinks
            .iter()
            .zip(&attached.uplinks)
            .map(|(u, p)| (u.port, p.clone(), u.queues[w]))
            .chain(mine.iter().filter_map(|e| {
                attached
                    .endpoints
                    .get(&e.interface)
                    .map(|p| (e.port, p.clone(), 0))
            }))
            .collect();
        let mut pipeline = Pipeline::new(
            fib4.reader(),
            fib6.reader(),
            nexthops.clone(),
            ports.clone(),
            counters.clone(),
            w,
        )
        .with_icmp(
            node_v4.unwrap_or(Ipv4Addr::UNSPECIFIED),
            node_v6.unwrap_or(Ipv6Addr::UNSPECIFIED),
            config.icmp_rate,
        )
        .with_pod_nexthops(by_port)
        .with_overlay(tunnels.clone(), plan.overlay.clone())
        .with_groups(groups.clone());
        pipeline.offline();
        let nexthops = nexthops.clone();
        let stop = stop.clone();
        let ready = ready_tx.clone();
        let poll_mode = config.workers.poll_mode;
        let (cmd_tx, cmd_rx) = mpsc::channel();
        commands.push(cmd_tx);
        let spare = my_slots.len();
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        warn!(worker = w, core, "could not pin to core");
                    }
                    let io = match AfXdpIo::open_with_room(&specs, mtu, spare).and_then(|mut io| {
                        io.connect_workers(inbox, outboxes)?;
                        for (port, prog, queue) in &steering {
                            if let Some(fd) = io.socket_fd(*port) {
                                prog.register_socket(*queue, fd)?;
                            }
                        }
                        Ok(io)
                    }) {
                        Ok(io) => io,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let mut worker = Worker::new(io, pipeline, nexthops, probes, poll_mode)
                        .with_commands(cmd_rx);
                    worker.run(&stop);
                    for (_, prog, queue) in &steering {
                        let _ = prog.unregister_socket(*queue);
                    }
                })?,
        );
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(io::Error::other("a worker died at start"))),
        }
    }
    if let Some(e) = failure {
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        return Err(e);
    }
    for e in &plan.endpoints {
        info!(endpoint = %e.name, interface = %e.interface, worker = e.worker, "endpoint");
    }
    info!(
        node = %config.node_name,
        workers = threads.len(),
        ports = plan.ports.len(),
        routes = plan.routes4.len() + plan.routes6.len(),
        "forwarding"
    );

    let mut neighbours = match Neighbours::new() {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(error = %e, "no rtnetlink: uplink next hops stay unresolved");
            None
        }
    };
    // The BGP speaker on its own thread; its route changes are applied here.
    let (routes_tx, routes_rx) = mpsc::channel();
    let speaker = match crate::bgp::speaker_config(&config, &plan) {
        Some(cfg) => {
            info!(
                asn = cfg.asn,
                peers = cfg.peers.len(),
                blocks = cfg.advertise.len(),
                "BGP speaker"
            );
            Some(control::speaker::spawn(cfg, routes_tx).map_err(|e| {
                stop.store(true, Ordering::Relaxed);
                io::Error::new(e.kind(), format!("bgp: {e}"))
            })?)
        }
        None => None,
    };
    let learned =
        crate::bgp::Learned::new(&plan, nexthop_capacity, tunnel_capacity, group_capacity);
    // The API: calls are answered below, between route batches.
    let (calls_tx, calls_rx) = mpsc::channel();
    let api = control::api::spawn(
        &control::api::ServeConfig {
            socket: config.api.socket.clone(),
            tcp: config.api.listen,
        },
        calls_tx,
    )
    .inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
    info!(socket = %config.api.socket.display(), "API");
    let origins = api_state.origins(file_config);
    let mut live = crate::manage::Live {
        config: config.clone(),
        plan,
        nexthops,
        tunnels,
        groups,
        fib4,
        fib6,
        learned,
        speaker,
        uplink_progs: attached.uplinks.clone(),
        endpoint_progs: attached.endpoints.clone(),
        workers: commands,
        counters: counters.clone(),
        ipam,
        origins,
        started: Instant::now(),
        last_install: std::time::UNIX_EPOCH,
        endpoint_mtu_limit,
        events: Some(api.events.clone()),
        info: if_info,
        config_path: options.config_path.clone(),
    };
    drop(attached);
    // Health for /livez and /readyz, and scrapes answered by this loop.
    let health = Arc::new(crate::manage::Health::default());
    let (scrapes_tx, scrapes_rx) = mpsc::channel::<mpsc::Sender<String>>();
    let _metrics = match &config.metrics {
        Some(m) => {
            let source = Arc::new(crate::manage::MetricsSource {
                health: health.clone(),
                scrapes: std::sync::Mutex::new(scrapes_tx),
            });
            let (addr, handle) = control::metrics::spawn_server(m.listen, source)
                .inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
            info!(%addr, "metrics");
            Some(handle)
        }
        None => None,
    };
    // systemd (Type=notify): ready now that workers forward and BGP has started.
    let mut notifier = crate::notify::Notifier::from_env()?;
    notifier.send(&format!(
        "READY=1\nSTATUS=forwarding with {} worker(s){}",
        threads.len(),
        if live.speaker.is_some() {
            ", BGP started"
        } else {
            ""
        }
    ));
    health.ready.store(true, Ordering::Relaxed);
    let mut asked: HashMap<u32, Instant> = HashMap::new();
    let mut last_stats = Instant::now() - Duration::from_secs(1);
    let mut last_neighbours = Instant::now() - Duration::from_secs(1);
    let mut last_beats = (counters.heartbeats(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        // Wait for route changes or API calls; 100 ms at most (neighbours, stats).
        let mut batches = Vec::new();
        if live.speaker.is_some() {
            if let Ok(b) = routes_rx.recv_timeout(Duration::from_millis(10)) {
                batches.push(b);
                batches.extend(routes_rx.try_iter());
            }
        } else if let Ok(call) = calls_rx.recv_timeout(Duration::from_millis(100)) {
            live.answer(call);
        }
        for call in calls_rx.try_iter() {
            live.answer(call);
        }
        if options.reload.swap(false, Ordering::Relaxed) {
            notifier.send("RELOADING=1");
            match live.reload() {
                Ok(changes) => info!(changes = changes.len(), "reloaded (SIGHUP)"),
                Err(e) => warn!(error = %e.message(), "reload (SIGHUP)"),
            }
            notifier.send("READY=1");
        }
        for reply in scrapes_rx.try_iter() {
            let _ = reply.send(live.metrics());
        }
        if !batches.is_empty() {
            let live = &mut live;
            let mut tables = crate::bgp::Tables {
                nexthops: &live.nexthops,
                tunnels: &live.tunnels,
                groups: &live.groups,
                fib4: &mut live.fib4,
                fib6: &mut live.fib6,
            };
            for b in &batches {
                live.learned
                    .apply(&live.config, &mut live.plan, &mut tables, b);
            }
            for b in &batches {
                live.publish_bgp(b);
            }
            live.last_install = std::time::SystemTime::now();
        }
        let beats = counters.heartbeats();
        notifier.tick(beats.clone());
        // Live while every worker's heartbeat moved in the last few seconds.
        if beats.iter().zip(&last_beats.0).all(|(a, b)| a != b) {
            last_beats = (beats, Instant::now());
        }
        health.live.store(
            last_beats.1.elapsed() < Duration::from_secs(5),
            Ordering::Relaxed,
        );
        if last_neighbours.elapsed() >= Duration::from_millis(90) {
            last_neighbours = Instant::now();
            if let Some(n) = neighbours.as_mut() {
                sync_gateways(n, &live.plan.gateways, &live.nexthops, &mut asked);
            }
        }
        if last_stats.elapsed() >= options.stats_interval {
            last_stats = Instant::now();
            if let Some(path) = &options.stats_file {
                let mut json = stats_json(&counters, &live.plan, &live.nexthops);
                if let Some(sp) = &live.speaker {
                    json["bgp"] = bgp_json(&sp.status.lock().unwrap(), live.learned.len());
                    // The FIB's share of memory: lookup structure and its writer's store.
                    json["bgp"]["fib_bytes"] = live.fib_bytes().into();
                    // When the last batch reached the FIB (benchmarks time convergence).
                    json["bgp"]["last_install_unix_ms"] = live
                        .last_install
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64)
                        .into();
                }
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, json.to_string())
                    .and_then(|_| std::fs::rename(&tmp, path))
                    .is_err()
                {
                    warn!(path = %path.display(), "cannot write the stats file");
                }
            }
        }
    }
    info!("stopping");
    health.ready.store(false, Ordering::Relaxed);
    notifier.send("STOPPING=1");
    if live.speaker.is_some() {
        crate::bgp::mark_clean_stop(&config);
    }
    drop(api);
    live.speaker = None;
    for t in threads {
        let _ = t.join();
    }
    drop(live);
    Ok(())
}

/// Point uplink next hops at the MACs the kernel resolved; ask it for the others.
fn sync_gateways(
    n: &mut Neighbours,
    gateways: &[Gateway],
    nexthops: &NextHopTable,
    asked: &mut HashMap<u32, Instant>,
) {
    if gateways.is_empty() {
        return;
    }
    let table = match n.dump() {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "reading the kernel's neighbours");
            return;
        }
    };
    for g in gateways {
        let mac = table
            .iter()
            .find(|e| e.ifindex == g.ifindex && e.ip == g.via)
            .and_then(|e| e.mac);
        match mac {
            Some(mac) => {
                let want = Adjacency::Forward { port: g.port, mac };
                if nexthops.get(g.nh) != Some(want) {
                    info!(via = %g.via, mac = ?mac, "next hop resolved");
                    nexthops.set(g.nh, want);
                }
            }
            None => {
                if asked
                    .get(&g.nh)
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    asked.insert(g.nh, Instant::now());
                    if let Err(e) = n.resolve(g.ifindex, g.via) {
                        warn!(via = %g.via, error = %e, "asking the kernel to resolve");
                    }
                }
            }
        }
    }
}

/// The speaker's peers (as `vrouterctl node status` shows them) and the routes learnt.
pub fn bgp_json(peers: &[control::speaker::PeerStatus], routes: usize) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "address": p.address.to_string(),
                "asn": p.asn,
                "type": if p.ibgp { "iBGP" } else { "eBGP" },
                "state": p.state,
                "since": p.since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "info": p.info,
                "prefixes_received": p.prefixes_received,
                "prefixes_sent": p.prefixes_sent,
            })
        })
        .collect();
    serde_json::json!({ "peers": peers, "routes_installed": routes })
}

/// The counters summed over workers, with per-reason drops.
pub fn stats_json(counters: &Counters, plan: &Plan, nexthops: &NextHopTable) -> serde_json::Value {
    let t = counters.total();
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .map(|&r| (r.name().to_string(), t.dropped(r).into()))
        .collect();
    let endpoints: Vec<serde_json::Value> = plan
        .endpoints
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "interface": e.interface,
                "resolved": matches!(nexthops.get(e.nh), Some(Adjacency::Forward { .. })),
            })
        })
        .collect();
    let backend: serde_json::Map<String, serde_json::Value> = crate::io::BackendStats::NAMES
        .iter()
        .zip(counters.backend_total())
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    serde_json::json!({
        "rx": t.rx,
        "tx": t.tx,
        "to_kernel": t.to_kernel,
        "replies": t.replies,
        "icmp_errors": t.icmp_errors,
        "held": t.held,
        "fragmented": t.fragmented,
        "decapsulated": t.decapsulated,
        "drops": drops,
        "backend": backend,
        "endpoints": endpoints,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Interfaces of the unit tests' pretend host.
    pub(crate) fn info(name: &str) -> io::Result<IfInfo> {
        match name {
            "eth0" => Ok(IfInfo {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 9000,
                ifindex: 7,
            }),
            "cali-a" | "cali-b" => Ok(IfInfo {
                mac: HOST_SIDE_MAC,
                mtu: 1500,
                ifindex: 8,
            }),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {name}"),
            )),
        }
    }

    const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
queues = [0, 1]
[[pools]]
cidr = "10.244.0.0/16"
[[pools]]
cidr = "fd10::/48"
[workers]
count = 2
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32", "fd10::2/128"]
[[endpoints]]
name = "b"
kind = "veth"
interface = "cali-b"
ips = ["10.244.1.3/32"]
[[endpoints]]
name = "vm"
kind = "tap"
interface = "tap9"
ips = ["10.244.1.4/32"]
mac = "52:54:00:00:00:09"
[[routes]]
dst = "0.0.0.0/0"
via = "10.0.0.254"
[[routes]]
dst = "172.16.0.0/12"
via = "10.0.0.254"
[[routes]]
dst = "::/0"
via = "fd00::fe"
"#;

    #[test]
    fn the_plan_numbers_ports_next_hops_and_routes() {
        let mut text = CONFIG.to_string();
        text = text.replace(
            "node_ips = [\"10.0.0.1/24\"]",
            "node_ips = [\"10.0.0.1/24\", \"fd00::1/64\"]",
        );
        let config = Config::parse(&text).unwrap();
        let plan = Plan::new(&config, &info).unwrap();
        assert_eq!(plan.port_names[..4], ["eth0", "cali-a", "cali-b", "tap9"]);
        assert_eq!(plan.free_slots.len(), config.workers.endpoint_slots);
        assert_eq!(plan.port_names.len(), 4 + config.workers.endpoint_slots);
        assert_eq!(plan.ports[0].mtu, 9000);
        assert_eq!(plan.ports[0].kind, PortKind::Uplink);
        assert_eq!(plan.ports[3].mtu, 1500, "a tap that does not exist yet");
        assert_eq!(
            plan.endpoints
                .iter()
                .map(|e| (e.port.0, e.nh, e.worker))
                .collect::<Vec<_>>(),
            [(1, 0, 0), (2, 1, 1), (3, 2, 0)],
            "one next hop per pod, pods round robin over workers"
        );
        assert_eq!(plan.endpoints[2].mac, Some([0x52, 0x54, 0, 0, 0, 9]));
        assert_eq!(plan.endpoints[0].v6, Some("fd10::2".parse().unwrap()));
        // Two IPv4 routes share one gateway next hop; IPv6 has its own.
        assert_eq!(
            plan.gateways,
            [
                Gateway {
                    nh: 3,
                    port: PortId(0),
                    ifindex: 7,
                    via: "10.0.0.254".parse().unwrap()
                },
                Gateway {
                    nh: 4,
                    port: PortId(0),
                    ifindex: 7,
                    via: "fd00::fe".parse().unwrap()
                },
            ]
        );
        assert_eq!(plan.nexthop_count, 5 + config.workers.endpoint_slots as u32);
        let r4: Vec<String> = plan
            .routes4
            .iter()
            .map(|(n, h)| format!("{n}>{h}"))
            .collect();
        assert_eq!(
            r4,
            [
                "10.244.1.2/32>0",
                "10.244.1.3/32>1",
                "10.244.1.4/32>2",
                "0.0.0.0/0>3",
                "172.16.0.0/12>3"
            ]
        );
        assert_eq!(plan.routes6.len(), 2);
    }

    #[test]
    fn a_missing_veth_is_an_error_naming_it() {
        let text = CONFIG.replace("cali-b", "cali-x");
        let e = Plan::new(&Config::parse(&text).unwrap(), &info).unwrap_err();
        assert!(e.to_string().contains("cali-x"), "{e}");
    }

    #[test]
    fn stats_json_has_the_counters_drops_and_backend() {
        let config = Config::parse(CONFIG).unwrap();
        let plan = Plan::new(&config, &info).unwrap();
        let counters = Counters::new(2);
        let mut t = crate::counters::Tally {
            rx: 5,
            tx: 4,
            ..Default::default()
        };
        t.drop(DropReason::Spoofed);
        counters.publish(1, &t);
        counters.publish_backend(0, [0, 0, 0, 0, 0, 3, 0, 0, 0]);
        let nh = NextHopTable::new(8);
        let j = stats_json(&counters, &plan, &nh);
        assert_eq!((j["rx"].as_u64(), j["tx"].as_u64()), (Some(5), Some(4)));
        assert_eq!(j["drops"]["spoofed"], 1);
        assert_eq!(j["backend"]["mailbox_delivered"], 3);
        assert_eq!(j["endpoints"][2]["resolved"], false);
    }
}

#[cfg(test)]
mod overlay_tests {
    use super::*;

    fn info(name: &str) -> io::Result<IfInfo> {
        match name {
            "eth0" => Ok(IfInfo {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                ifindex: 7,
            }),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, name.to_string())),
        }
    }

    #[test]
    fn pool_modes_decide_the_encapsulation_of_remote_blocks() {
        let config = Config::parse(
            r#"
node_name = "node-a"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.244.0.0/16"
vxlan_mode = "Always"
[[pools]]
cidr = "10.245.0.0/16"
ipip_mode = "CrossSubnet"
[[pools]]
cidr = "10.246.0.0/16"
[[nodes]]
name = "node-b"
ips = ["10.0.0.2/24"]
[[nodes]]
name = "node-c"
ips = ["10.1.0.3/24"]
vtep_mac = "66:00:00:00:00:0c"
[[routes]]
dst = "10.1.0.0/16"
via = "10.0.0.254"
[[routes]]
dst = "0.0.0.0/0"
via = ["10.0.0.253", "10.0.0.254"]
[[routes]]
dst = "10.244.2.0/26"
node = "node-b"
[[routes]]
dst = "10.244.3.0/26"
node = "node-c"
[[routes]]
dst = "10.245.2.0/26"
node = "node-b"
[[routes]]
dst = "10.245.3.0/26"
node = "node-c"
[[routes]]
dst = "10.246.2.0/26"
node = "node-b"
"#,
        )
        .unwrap();
        let plan = Plan::new(&config, &info).unwrap();
        let gw = |ip: &str| {
            plan.gateways
                .iter()
                .find(|g| g.via == ip.parse::<IpAddr>().unwrap())
                .unwrap()
                .nh
        };
        let (router, b) = (gw("10.0.0.254"), gw("10.0.0.2"));
        assert!(
            plan.gateways
                .iter()
                .all(|g| g.via != "10.1.0.3".parse::<IpAddr>().unwrap()),
            "node C is reached through the router"
        );
        let route = |dst: &str| {
            plan.routes4
                .iter()
                .find(|(n, _)| n.to_string() == dst)
                .unwrap()
                .1
        };
        let tunnel = |nh: u32| {
            let id = plan
                .tunnel_nexthops
                .iter()
                .find(|(n, _)| *n == nh)
                .map(|p| p.1)?;
            Some(plan.tunnels[id as usize])
        };
        // VXLAN Always: both nodes, node C's VTEP MAC as configured, underlay via router.
        let tb = tunnel(route("10.244.2.0/26")).unwrap();
        let Encap::Vxlan(v) = tb.encap else { panic!() };
        assert_eq!(
            (v.vni, v.remote_vtep_mac, v.local_vtep_mac),
            (4096, vxlan::vtep_mac("node-b"), vxlan::vtep_mac("node-a"))
        );
        assert_eq!(tb.underlay_nh, b);
        let tc = tunnel(route("10.244.3.0/26")).unwrap();
        let Encap::Vxlan(v) = tc.encap else { panic!() };
        assert_eq!(v.remote_vtep_mac, [0x66, 0, 0, 0, 0, 0x0c]);
        assert_eq!(tc.underlay_nh, router);
        // IPIP CrossSubnet: node B (same subnet) plain, node C (other subnet) tunnelled.
        assert_eq!(route("10.245.2.0/26"), b);
        let Encap::Ipip(_) = tunnel(route("10.245.3.0/26")).unwrap().encap else {
            panic!()
        };
        // Never: plain routing to the node.
        assert_eq!(route("10.246.2.0/26"), b);
        assert_eq!(plan.tunnels.len(), 3);
        // ECMP: the default route is a group of both routers' next hops.
        let (nh, id) = plan.group_nexthops[0];
        assert_eq!(route("0.0.0.0/0"), nh);
        assert_eq!(plan.groups[id as usize], vec![gw("10.0.0.253"), router]);
        assert_eq!(plan.overlay.local_v4, vec![0x0a00_0001]);
        assert_eq!(plan.overlay.pools_v4.len(), 3);
    }
}
