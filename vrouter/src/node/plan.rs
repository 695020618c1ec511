//! The start-up plan: the ports the workers start with — uplinks, and one endpoint slot
//! per endpoint of the file plus `endpoint_slots` spare — with their next hops. Pools,
//! static routes and endpoints (the file's too) are then installed by `NodeState`, by
//! the one path each takes whoever asks (`NodeState::start`). After start-up the plan's
//! parts are owned by `NodeState`.

use super::interface::IfInfo;
use super::nexthops::{NextHopAlloc, UplinkRef};
use crate::arp::HOST_SIDE_MAC;
use crate::config::{parse_mac, Config, Endpoint, EndpointKind};
use crate::nexthop::PortId;
use crate::pipeline::{Port, PortKind};
use crate::tunnel::Overlay;
use ipnet::IpNet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone)]
pub struct Plan {
    pub ports: Ports,
    pub alloc: NextHopAlloc,
    /// What we decapsulate.
    pub overlay: Overlay,
    /// With BGP: the next hop that blackholes unused addresses of our own blocks.
    pub blackhole: Option<u32>,
    /// The largest MTU of the uplinks and the file's endpoints: every worker's frames
    /// carry it, so any slot can take any of these endpoints.
    pub frame_mtu: u16,
}

/// The node's ports: uplinks, endpoints in use, and slots free for endpoints.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    /// Every port's shape at start (index = port id).
    pub ports: Vec<Port>,
    /// Interface behind each port ("" for a free slot).
    pub names: Vec<String>,
    pub uplinks: Vec<UplinkPlan>,
    pub endpoints: Vec<EndpointPlan>,
    /// Ports reserved for endpoints added while running, not in use now (taken from
    /// the end).
    pub free_slots: Vec<Slot>,
}

/// A port (with its next hop and worker) an endpoint added while running can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub port: PortId,
    pub nh: u32,
    pub worker: usize,
}

#[derive(Debug, Clone)]
pub struct UplinkPlan {
    pub name: String,
    pub port: PortId,
    pub queues: Vec<u32>,
    pub ifindex: u32,
}

#[derive(Debug, Clone, PartialEq)]
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

/// What a port no endpoint uses looks like: no address may be sent from it.
pub fn idle_port() -> Port {
    endpoint_port(&[], 1500)
}

/// The port of an endpoint with addresses `ips`: its pod may send from them only.
pub fn endpoint_port(ips: &[IpNet], mtu: u16) -> Port {
    let (v4, v6) = split_addrs(ips);
    Port {
        mac: HOST_SIDE_MAC,
        mtu,
        kind: PortKind::Endpoint { v4, v6 },
    }
}

impl EndpointPlan {
    /// Endpoint `e` in port `slot`.
    pub fn new(e: &Endpoint, slot: Slot) -> EndpointPlan {
        let (v4, v6) = split_addrs(&e.ips);
        EndpointPlan {
            name: e.name.clone(),
            kind: e.kind,
            interface: e.interface.clone(),
            port: slot.port,
            nh: slot.nh,
            mac: e.mac.as_deref().and_then(parse_mac),
            v4: v4.first().map(|&a| Ipv4Addr::from(a)),
            v6: v6.first().map(|&a| Ipv6Addr::from(a)),
            worker: slot.worker,
        }
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

/// Of our `blocks`, those BGP announces: not those of a pool with disable_bgp_export.
pub fn exported_blocks(config: &Config, blocks: &[IpNet]) -> Vec<IpNet> {
    blocks
        .iter()
        .filter(|b| {
            !config
                .pools
                .iter()
                .any(|p| p.disable_bgp_export && p.cidr.contains(*b))
        })
        .copied()
        .collect()
}

/// The addresses of `nets` by family, as the pipeline keeps them.
pub fn split_addrs(nets: &[IpNet]) -> (Vec<u32>, Vec<u128>) {
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
pub fn split_networks(nets: &[IpNet]) -> (Networks<u32>, Networks<u128>) {
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

/// What we decapsulate: tunnels to our addresses whose inner packet is for our pools.
pub fn overlay(config: &Config) -> Overlay {
    let (local_v4, local_v6) = split_addrs(&config.node_ips);
    let pools: Vec<IpNet> = config.pools.iter().map(|p| p.cidr).collect();
    let (pools_v4, pools_v6) = split_networks(&pools);
    let nat: Vec<IpNet> = config
        .pools
        .iter()
        .filter(|p| p.nat_outgoing)
        .map(|p| p.cidr)
        .collect();
    let (nat_v4, nat_v6) = split_networks(&nat);
    let node_ips: Vec<IpNet> = config.nodes.iter().flat_map(|n| n.ips.clone()).collect();
    let (mut nodes_v4, mut nodes_v6) = split_addrs(&node_ips);
    nodes_v4.sort_unstable();
    nodes_v4.dedup();
    nodes_v6.sort_unstable();
    nodes_v6.dedup();
    Overlay {
        local_v4,
        local_v6,
        pools_v4,
        pools_v6,
        vni: config.vxlan.vni,
        nat_v4,
        nat_v6,
        nodes_v4,
        nodes_v6,
    }
}

impl Plan {
    /// `info` looks interfaces up (`if_info` on a host; a table in tests). Tap endpoints
    /// may not exist yet (opening one creates it): they default to MTU 1500.
    pub fn new(config: &Config, info: &dyn Fn(&str) -> io::Result<IfInfo>) -> io::Result<Plan> {
        let mut ports = Ports::default();
        for u in &config.uplinks {
            let i = info(&u.name)?;
            let port = PortId(ports.ports.len() as u16);
            ports.ports.push(Port {
                mac: i.mac,
                mtu: i.mtu,
                kind: PortKind::Uplink,
            });
            ports.names.push(u.name.clone());
            ports.uplinks.push(UplinkPlan {
                name: u.name.clone(),
                port,
                queues: u.queues.clone(),
                ifindex: i.ifindex,
            });
        }
        let mut frame_mtu = ports.ports.iter().map(|p| p.mtu).max().unwrap_or(1500);
        for e in &config.endpoints {
            let mtu = match (e.kind, info(&e.interface)) {
                (_, Ok(i)) => i.mtu,
                (EndpointKind::Tap, Err(_)) => 1500,
                (EndpointKind::Veth, Err(err)) => return Err(err),
            };
            frame_mtu = frame_mtu.max(mtu);
        }
        let mut plan = Plan {
            alloc: NextHopAlloc::new(
                ports
                    .uplinks
                    .iter()
                    .map(|u| UplinkRef {
                        port: u.port,
                        ifindex: u.ifindex,
                    })
                    .collect(),
            ),
            ports,
            overlay: overlay(config),
            blackhole: None,
            frame_mtu: frame_mtu.max(1500),
        };
        // A slot per endpoint of the file, then the spare ones, round robin over
        // workers: the file's endpoints take the first ones, in order.
        for k in 0..config.endpoints.len() + config.workers.endpoint_slots {
            let port = PortId(plan.ports.ports.len() as u16);
            let nh = plan.alloc.allocate();
            plan.ports.ports.push(idle_port());
            plan.ports.names.push(String::new());
            plan.ports.free_slots.push(Slot {
                port,
                nh,
                worker: k % config.workers.count,
            });
        }
        // Taken from the end: the first slots go first.
        plan.ports.free_slots.reverse();
        if config.bgp.is_some() || config.datastore.is_some() {
            // Our blocks (routed as endpoints come) drop their unused addresses, never
            // sending them back out toward whoever routed them to us.
            plan.blackhole = Some(plan.alloc.allocate());
        }
        Ok(plan)
    }
}
