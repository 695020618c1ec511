//! Views of the node for the API: status, peers, endpoints, pools, routes with where
//! their next hops lead.

use super::error::{invalid, NodeResult};
use super::plan::EndpointPlan;
use super::NodeState;
use crate::config::{AssignmentMode, EncapMode, EndpointKind, Pool};
use crate::nexthop::{Adjacency, Mac, PortId};
use crate::tunnel::Encap;
use control::api::pb;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

/// One peer's row: its status and the settings its session uses (never the key).
fn peer_pb(p: &control::speaker::PeerStatus, peer_type: &str) -> pb::Peer {
    pb::Peer {
        address: p.address.to_string(),
        asn: p.asn,
        peer_type: peer_type.into(),
        state: p.state.clone(),
        since: p
            .since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        info: p.info.clone(),
        prefixes_received: p.prefixes_received as u64,
        prefixes_sent: p.prefixes_sent as u64,
        ibgp: p.ibgp,
        hold_time: p.hold_time.into(),
        port: p.port.into(),
        passive: p.passive,
        rr_client: p.rr_client,
        session: Some(session_pb(p)),
        ..Default::default()
    }
}

fn counts_pb(c: &control::bgp::counters::MessageCounts) -> pb::MessageCounts {
    pb::MessageCounts {
        open: c.open,
        update: c.update,
        notification: c.notification,
        keepalive: c.keepalive,
        route_refresh: c.route_refresh,
        total: c.total(),
    }
}

/// A peer's session in detail (`vrouterctl peer show`).
fn session_pb(p: &control::speaker::PeerStatus) -> pb::PeerSession {
    let established = p.state == "Established";
    let s = p.session.as_ref();
    pb::PeerSession {
        uptime_seconds: if established {
            p.since.elapsed().map_or(0, |d| d.as_secs())
        } else {
            0
        },
        router_id: s.map(|s| s.router_id.to_string()).unwrap_or_default(),
        hold_time: s.map_or(0, |s| s.hold_time.into()),
        keepalive: s.map_or(0, |s| s.keepalive.into()),
        local_capabilities: s.map(|s| s.local_capabilities.clone()).unwrap_or_default(),
        peer_capabilities: s.map(|s| s.peer_capabilities.clone()).unwrap_or_default(),
        messages_received: Some(counts_pb(&p.counters.received.messages)),
        messages_sent: Some(counts_pb(&p.counters.sent)),
        prefixes_announced: p.counters.received.announced,
        prefixes_withdrawn: p.counters.received.withdrawn,
        prefixes_accepted: p.prefixes_received as u64,
        prefixes_advertised: p.prefixes_sent as u64,
        last_error: p.last_error.clone(),
    }
}

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
                let peer_type = if self.origins.peers.contains(&p.address) {
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
                };
                peer_pb(p, peer_type)
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
            if r.detail && !bgp.is_empty() {
                let prefixes = bgp
                    .iter()
                    .filter_map(|&i| routes[i].prefix.parse().ok())
                    .collect();
                for (&i, paths) in bgp.iter().zip(sp.paths(prefixes)) {
                    routes[i].paths = paths.iter().map(path_pb).collect();
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
            paths: Vec::new(),
        }
    }
}

/// One RIB path as the API shows it (`route list --detail`).
fn path_pb(p: &control::speaker::PathDetail) -> pb::Path {
    pb::Path {
        peer: p.peer.to_string(),
        next_hop: p.next_hop.map(|h| h.to_string()).unwrap_or_default(),
        as_path: p.as_path.clone(),
        origin: match p.origin {
            0 => "IGP",
            1 => "EGP",
            _ => "incomplete",
        }
        .into(),
        local_pref: p.local_pref,
        med: p.med,
        communities: (p.communities.iter())
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect(),
        age_seconds: p.age.as_secs(),
        best: p.best,
        stale: p.stale,
    }
}

fn mac_text(m: [u8; 6]) -> String {
    Mac(m).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_rows_show_the_hold_time_and_port_in_use() {
        let status = control::speaker::PeerStatus {
            address: "192.0.2.1".parse().unwrap(),
            asn: 65001,
            ibgp: false,
            state: "Established".into(),
            since: std::time::UNIX_EPOCH + std::time::Duration::from_secs(5),
            info: String::new(),
            prefixes_received: 2,
            prefixes_sent: 1,
            hold_time: 90,
            port: 179,
            passive: false,
            rr_client: true,
            session: Some(control::speaker::SessionInfo {
                hold_time: 30,
                keepalive: 10,
                router_id: "192.0.2.1".parse().unwrap(),
                local_capabilities: vec!["ipv4-unicast".into()],
                peer_capabilities: vec!["route-refresh".into()],
            }),
            counters: Default::default(),
            last_error: "connection closed".into(),
        };
        let row = peer_pb(&status, "api");
        let s = row.session.clone().unwrap();
        assert_eq!(
            (s.hold_time, s.keepalive, s.router_id.as_str()),
            (30, 10, "192.0.2.1")
        );
        assert_eq!(s.peer_capabilities, ["route-refresh"]);
        assert_eq!((s.prefixes_accepted, s.prefixes_advertised), (2, 1));
        assert_eq!(s.last_error, "connection closed");
        assert!(s.uptime_seconds > 0, "established since 1970");
        assert_eq!((row.hold_time, row.port, row.since), (90, 179, 5));
        assert!(row.rr_client && row.password.is_empty());
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["hold_time"], 90);
        assert_eq!(json["port"], 179);
    }
}
