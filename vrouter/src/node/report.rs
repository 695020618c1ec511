//! Views of the node for the API: status, peers, endpoints, pools, routes with where
//! their next hops lead.

use super::error::{invalid, NodeResult};
use super::plan::EndpointPlan;
use super::NodeState;
use crate::config::{AssignmentMode, EncapMode, EndpointKind, Pool};
use crate::nexthop::{Adjacency, PortId};
use crate::tunnel::Encap;
use control::api::pb;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

impl NodeState {
    pub fn node_status(&self) -> pb::NodeStatusReply {
        let bgp = self.config.bgp.as_ref();
        pb::NodeStatusReply {
            node_name: self.config.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            workers: self.config.workers.count as u32,
            bgp_enabled: bgp.is_some(),
            asn: bgp.map_or(0, |b| b.asn),
            router_id: self
                .speaker_router_id()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            peers: self.peers(),
            routes_installed: self.bgp.len() as u64,
            datastore: self
                .cluster
                .as_ref()
                .map(|c| c.status.describe())
                .unwrap_or_default(),
            cluster_nodes: self.cluster.as_ref().map_or(0, |c| c.nodes.len() as u32),
        }
    }

    fn speaker_router_id(&self) -> Option<Ipv4Addr> {
        let b = self.config.bgp.as_ref()?;
        b.router_id.or_else(|| {
            self.config.node_ips.iter().find_map(|n| match n.addr() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
        })
    }

    pub fn peers(&self) -> Vec<pb::Peer> {
        let Some(sp) = &self.speaker else {
            return Vec::new();
        };
        let mesh = self.config.bgp.as_ref().is_some_and(|b| b.mesh);
        sp.status
            .lock()
            .unwrap()
            .iter()
            .map(|p| {
                let ds_mesh = self
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.mesh.contains(&p.address));
                let in_mesh = ds_mesh
                    || mesh
                        && self
                            .config
                            .nodes
                            .iter()
                            .any(|n| n.ips.iter().any(|i| i.addr() == p.address));
                pb::Peer {
                    address: p.address.to_string(),
                    asn: p.asn,
                    peer_type: if self.origins.peers.contains(&p.address) {
                        "api"
                    } else if in_mesh {
                        "node-to-node mesh"
                    } else if self
                        .cluster
                        .as_ref()
                        .is_some_and(|c| c.peers.contains_key(&p.address))
                    {
                        "global (datastore)"
                    } else {
                        "global"
                    }
                    .into(),
                    state: p.state.clone(),
                    since: p
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    info: p.info.clone(),
                    prefixes_received: p.prefixes_received as u64,
                    prefixes_sent: p.prefixes_sent as u64,
                    ibgp: p.ibgp,
                    ..Default::default()
                }
            })
            .collect()
    }

    pub fn endpoint_pb(&self, e: &EndpointPlan) -> pb::Endpoint {
        let mac = match self.tables.nexthops.get(e.nh) {
            Some(Adjacency::Forward { mac, .. }) => Some(mac),
            _ => e.mac,
        };
        let conf = self.config.endpoints.iter().find(|c| c.name == e.name);
        let ips = conf
            .map(|c| c.ips.iter().map(|i| i.addr().to_string()).collect())
            .unwrap_or_default();
        pb::Endpoint {
            name: e.name.clone(),
            kind: match e.kind {
                EndpointKind::Veth => "veth",
                EndpointKind::Tap => "tap",
            }
            .into(),
            interface: e.interface.clone(),
            addresses: ips,
            mac: mac.map(mac_text).unwrap_or_default(),
            ipv6: e.v6.is_some(),
            worker: e.worker as u32,
            origin: if self.origins.endpoints.contains(&e.name) {
                "api"
            } else {
                "config"
            }
            .into(),
            labels: conf
                .map(|c| c.labels.clone().into_iter().collect())
                .unwrap_or_default(),
            container_id: conf
                .and_then(|c| c.container_id.clone())
                .unwrap_or_default(),
            workload: conf
                .and_then(|c| c.workload.as_ref())
                .map(|w| pb::Workload {
                    orchestrator: w.orchestrator.clone(),
                    namespace: w.namespace.clone(),
                    pod: w.pod.clone(),
                    endpoint: w.endpoint.clone(),
                    profiles: w.profiles.clone(),
                }),
        }
    }

    pub fn pool_pb(&self, p: &Pool) -> pb::Pool {
        pb::Pool {
            cidr: p.cidr.to_string(),
            block_size: p.block_size() as u32,
            ipip_mode: mode_text(p.ipip_mode).into(),
            vxlan_mode: mode_text(p.vxlan_mode).into(),
            nat_outgoing: p.nat_outgoing,
            disabled: p.disabled,
            node_selector: p.node_selector.clone().unwrap_or_else(|| "all()".into()),
            disable_bgp_export: p.disable_bgp_export,
            allowed_uses: p.allowed_uses(),
            assignment_mode: match p.assignment_mode {
                AssignmentMode::Automatic => "Automatic",
                AssignmentMode::Manual => "Manual",
            }
            .into(),
            blocks: self
                .ipam
                .blocks()
                .iter()
                .filter(|b| p.cidr.contains(*b))
                .map(|b| b.to_string())
                .collect(),
            origin: if self.origins.pools.contains(&p.cidr) {
                "api"
            } else {
                "config"
            }
            .into(),
        }
    }

    pub fn describe(&self, nh: u32) -> (Vec<String>, &'static str, Vec<String>) {
        let port_name = |p: PortId| {
            self.ports
                .names
                .get(p.0 as usize)
                .cloned()
                .unwrap_or_default()
        };
        let gateway = |nh: u32| self.alloc.gateways.iter().find(|g| g.nh == nh);
        match self.tables.nexthops.get(nh) {
            Some(Adjacency::Forward { port, mac }) => {
                let via = gateway(nh).map_or(mac_text(mac), |g| g.via.to_string());
                (vec![via], "none", vec![port_name(port)])
            }
            Some(Adjacency::Incomplete) | None => {
                let via = gateway(nh).map_or(String::new(), |g| g.via.to_string());
                (vec![via], "none", vec!["(unresolved)".into()])
            }
            Some(Adjacency::Blackhole) => (Vec::new(), "none", vec!["blackhole".into()]),
            Some(Adjacency::Tunnel { id }) => match self.alloc.tunnels.get(id as usize) {
                Some(t) => match &t.encap {
                    Encap::Vxlan(v) => (
                        vec![underlay_dst(&v.underlay)],
                        "vxlan",
                        vec!["vxlan".into()],
                    ),
                    Encap::Ipip(i) => {
                        (vec![underlay_dst(&i.underlay)], "ipip", vec!["ipip".into()])
                    }
                },
                None => (Vec::new(), "none", Vec::new()),
            },
            Some(Adjacency::Group { id }) => {
                let mut hops = Vec::new();
                let mut encap = "none";
                let mut out = Vec::new();
                for &m in self
                    .alloc
                    .groups
                    .get(id as usize)
                    .map_or(&[][..], |g| &g[..])
                {
                    let (h, e, o) = self.describe_member(m);
                    hops.extend(h);
                    encap = e;
                    out.extend(o);
                }
                (hops, encap, out)
            }
        }
    }

    fn describe_member(&self, nh: u32) -> (Vec<String>, &'static str, Vec<String>) {
        match self.tables.nexthops.get(nh) {
            // Groups never nest; guard against it anyway.
            Some(Adjacency::Group { .. }) => (Vec::new(), "none", Vec::new()),
            _ => self.describe(nh),
        }
    }

    pub fn source_of(&self, prefix: IpNet, nh: u32) -> &'static str {
        if self.ports.endpoints.iter().any(|e| e.nh == nh) {
            "connected"
        } else if Some(nh) == self.blackhole {
            "blackhole"
        } else if self.bgp.is_configured(prefix) {
            "static"
        } else {
            "bgp"
        }
    }

    pub fn list_routes(&self, r: &pb::ListRoutesRequest) -> NodeResult<pb::ListRoutesReply> {
        let filter: Option<IpNet> = match r.filter.as_str() {
            "" => None,
            f if f.contains('/') => Some(
                f.parse()
                    .map_err(|e| invalid(format!("filter {f:?}: {e}")))?,
            ),
            f => Some(IpNet::from(
                f.parse::<IpAddr>()
                    .map_err(|e| invalid(format!("filter {f:?}: {e}")))?,
            )),
        };
        let all = self.tables.routes();
        let mut routes: Vec<pb::Route> = Vec::new();
        let mut total = 0u64;
        for (prefix, nh) in all {
            // An address: the routes covering it; a prefix: the routes inside it.
            if let Some(f) = filter {
                let wanted = if f.prefix_len() == f.max_prefix_len() && !r.filter.contains('/') {
                    prefix.contains(&f.addr())
                } else {
                    f.contains(&prefix)
                };
                if !wanted {
                    continue;
                }
            }
            total += 1;
            if r.limit != 0 && routes.len() >= r.limit as usize {
                continue;
            }
            routes.push(self.route_pb(prefix, nh));
        }
        // Which peer each BGP route's best path came from: one question to the RIB.
        if let Some(sp) = &self.speaker {
            let bgp: Vec<usize> = (0..routes.len())
                .filter(|&i| routes[i].source == "bgp")
                .collect();
            if !bgp.is_empty() {
                let prefixes = bgp
                    .iter()
                    .filter_map(|&i| routes[i].prefix.parse().ok())
                    .collect();
                for (&i, peer) in bgp.iter().zip(sp.best_peers(prefixes)) {
                    routes[i].peer = peer.map(|p| p.to_string()).unwrap_or_default();
                }
            }
        }
        Ok(pb::ListRoutesReply { routes, total })
    }

    /// A static or connected route as the API shows it.
    pub fn route_pb(&self, prefix: IpNet, nh: u32) -> pb::Route {
        let (next_hops, encap, out) = self.describe(nh);
        pb::Route {
            prefix: prefix.to_string(),
            source: self.source_of(prefix, nh).into(),
            peer: String::new(),
            next_hops,
            encapsulation: encap.into(),
            out,
        }
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn mode_text(m: EncapMode) -> &'static str {
    match m {
        EncapMode::Always => "Always",
        EncapMode::CrossSubnet => "CrossSubnet",
        EncapMode::Never => "Never",
    }
}

fn underlay_dst(u: &encap::tunnel::Underlay) -> String {
    match u {
        encap::tunnel::Underlay::V4 { dst, .. } => dst.to_string(),
        encap::tunnel::Underlay::V6 { dst, .. } => dst.to_string(),
    }
}
