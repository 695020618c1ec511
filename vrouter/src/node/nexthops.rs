//! `NextHopAlloc`: the one owner of next-hop numbering while the node runs. Routes from
//! the file, the API and BGP all get their next hops here, so that a neighbour, a tunnel
//! toward a node or an ECMP group is made once and shared. It only numbers and
//! describes; `Tables::sync` puts what it made into the live tables.

use crate::config::{parse_mac, Config, EncapMode, Node, StaticRoute};
use crate::nexthop::PortId;
use crate::tunnel::{Encap, Tunnel};
use encap::ipip::Ipip;
use encap::tunnel::{OuterEth, Underlay};
use encap::vxlan::{self, SourcePort, Vxlan};
use ipnet::IpNet;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use tracing::warn;

/// A next hop behind an uplink, resolved through the kernel's neighbour table.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub nh: u32,
    pub port: PortId,
    pub ifindex: u32,
    pub via: IpAddr,
}

/// An uplink as next hops need it: its port and kernel interface index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UplinkRef {
    pub port: PortId,
    pub ifindex: u32,
}

#[derive(Debug, Clone, Default)]
pub struct NextHopAlloc {
    /// Next hops handed out so far (the next one is this number).
    pub count: u32,
    pub uplinks: Vec<UplinkRef>,
    pub gateways: Vec<Gateway>,
    /// Tunnels toward remote nodes (index = tunnel id) and the next hops naming them.
    pub tunnels: Vec<Tunnel>,
    pub tunnel_nexthops: Vec<(u32, u32)>,
    /// ECMP groups (index = group id: member next hops) and the next hops naming them.
    pub groups: Vec<Vec<u32>>,
    pub group_nexthops: Vec<(u32, u32)>,
    /// Next hops already made, by (uplink, neighbour) and by (node, VXLAN?, IPv6?), so
    /// that routes learnt later share them.
    by_via: HashMap<(usize, IpAddr), u32>,
    by_tunnel: HashMap<(String, bool, bool), u32>,
    /// Next hop numbers given back (`free_gateway`), handed out again first.
    free: Vec<u32>,
    /// Bumped whenever `gateways` changes: the control loop reads the kernel's
    /// neighbours at once then, instead of at its next tick.
    pub gateway_changes: u64,
}

fn bad(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, m)
}

impl NextHopAlloc {
    pub fn new(uplinks: Vec<UplinkRef>) -> NextHopAlloc {
        NextHopAlloc {
            uplinks,
            ..NextHopAlloc::default()
        }
    }

    /// A new next hop number (one given back first).
    pub fn allocate(&mut self) -> u32 {
        if let Some(nh) = self.free.pop() {
            return nh;
        }
        self.count += 1;
        self.count - 1
    }

    /// Forget the gateway behind next hop `nh` (no route uses it any more): the kernel
    /// is no longer asked to resolve it and its number goes back. False if `nh` is not
    /// a gateway's.
    pub fn free_gateway(&mut self, nh: u32) -> bool {
        let before = self.gateways.len();
        self.gateways.retain(|g| g.nh != nh);
        if self.gateways.len() == before {
            return false;
        }
        self.by_via.retain(|_, v| *v != nh);
        self.free.push(nh);
        self.gateway_changes += 1;
        true
    }

    /// The index of the uplink named `name` (the first one when unnamed or unknown).
    pub fn uplink_index(config: &Config, name: Option<&str>) -> usize {
        name.and_then(|n| config.uplinks.iter().position(|u| u.name == n))
            .unwrap_or(0)
    }

    /// The next hop of a static route: a neighbour on an uplink, an ECMP group of them,
    /// or the tunnel (or plain next hop) toward a remote node, as its pool says.
    pub fn static_route(&mut self, config: &Config, r: &StaticRoute) -> io::Result<u32> {
        let u = Self::uplink_index(config, r.uplink.as_deref());
        match (&r.via, &r.node) {
            (Some(via), _) => {
                let members: Vec<u32> = via.addrs().iter().map(|&v| self.gateway(u, v)).collect();
                if members.len() == 1 {
                    Ok(members[0])
                } else {
                    Ok(self.group(members))
                }
            }
            (None, Some(name)) => match config.nodes.iter().find(|n| &n.name == name) {
                Some(node) => self.node_route(config, u, node, r.dst, true),
                None => Err(bad(format!("route {}: no node {name}", r.dst))),
            },
            (None, None) => Err(bad(format!("route {}: needs via or node", r.dst))),
        }
    }

    /// A new ECMP group of `members` and the next hop naming it.
    pub fn group(&mut self, members: Vec<u32>) -> u32 {
        let id = self.groups.len() as u32;
        self.groups.push(members);
        let nh = self.allocate();
        self.group_nexthops.push((nh, id));
        nh
    }

    /// The next hop for neighbour `via` behind uplink `u` (one per neighbour).
    pub fn gateway(&mut self, u: usize, via: IpAddr) -> u32 {
        if let Some(&nh) = self.by_via.get(&(u, via)) {
            return nh;
        }
        let nh = self.allocate();
        let uplink = self.uplinks[u];
        self.gateways.push(Gateway {
            nh,
            port: uplink.port,
            ifindex: uplink.ifindex,
            via,
        });
        self.by_via.insert((u, via), nh);
        self.gateway_changes += 1;
        nh
    }

    /// The next hop for a remote node's block: a tunnel when the block's pool says so
    /// (Always; CrossSubnet when the node is outside our subnets), else plain routing to
    /// the node's address. `known`: the node is in `[[nodes]]`; a BGP next hop that is
    /// not has no VTEP MAC, so VXLAN is impossible and its blocks are routed plainly.
    pub fn node_route(
        &mut self,
        config: &Config,
        u: usize,
        node: &Node,
        dst: IpNet,
        known: bool,
    ) -> io::Result<u32> {
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
        let underlay_nh = self.gateway(u, underlay_via);
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
        if let Some(&nh) = self.by_tunnel.get(&(name.to_string(), vxlan, v6)) {
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
        let nh = self.allocate();
        self.tunnel_nexthops.push((nh, id));
        self.by_tunnel.insert((name.to_string(), vxlan, v6), nh);
        Ok(nh)
    }
}
