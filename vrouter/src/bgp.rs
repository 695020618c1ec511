//! Routes learnt by the BGP speaker (the `control` crate) into the dataplane: each
//! changed prefix's next hops become one next hop of ours — a tunnel, a neighbour on
//! the uplink, or an ECMP group of those — made the same way as for the routes of the
//! configuration, and the FIB takes the whole batch in one `apply` while workers go on.

use crate::config::{Config, Node};
use crate::daemon::Plan;
use crate::ecmp::GroupTable;
use crate::nexthop::{Adjacency, NextHopTable};
use crate::tunnel::TunnelTable;
use control::speaker::{PeerConfig, RouteChange, SpeakerConfig};
use fib::{Fib4, Fib6, NextHopId, Update};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tracing::warn;

/// Next hops, tunnels and groups the speaker's routes may add beyond the configuration.
pub const EXTRA_NEXTHOPS: usize = 65_536;
pub const EXTRA_TUNNELS: usize = 4096;
pub const EXTRA_GROUPS: usize = 4096;

/// A `[[bgp.peers]]` entry as the speaker takes it.
pub fn peer_config(b: &crate::config::BgpSettings, p: &crate::config::BgpPeer) -> PeerConfig {
    PeerConfig {
        address: p.address,
        asn: p.asn.unwrap_or(b.asn),
        passive: p.passive,
        hold_time: p.hold_time,
        keepalive: p.keepalive,
        rr_client: p.rr_client,
        port: p.port,
        password: p.password.clone(),
    }
}

/// The speaker's settings from `[bgp]`, `[[nodes]]` (the mesh) and our blocks.
pub fn speaker_config(config: &Config, plan: &Plan) -> Option<SpeakerConfig> {
    let b = config.bgp.as_ref()?;
    let first_v4 = config.node_ips.iter().find_map(|n| match n.addr() {
        IpAddr::V4(a) => Some(a),
        _ => None,
    });
    let first_v6 = config.node_ips.iter().find_map(|n| match n.addr() {
        IpAddr::V6(a) => Some(a),
        _ => None,
    });
    let router_id = b.router_id.or(first_v4).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut peers = Vec::new();
    if b.mesh {
        for n in &config.nodes {
            // One session per node, over IPv4 when it has it; it carries both families.
            let Some(addr) = n
                .ips
                .iter()
                .map(|i| i.addr())
                .find(|a| a.is_ipv4())
                .or(n.ips.first().map(|i| i.addr()))
            else {
                continue;
            };
            let mine = config
                .node_ips
                .iter()
                .map(|i| i.addr())
                .find(|a| a.is_ipv4() == addr.is_ipv4());
            peers.push(PeerConfig {
                address: addr,
                asn: b.asn,
                // Calico's mesh: the lower address waits, the higher one connects.
                passive: mine.is_some_and(|m| addr > m),
                hold_time: 90,
                keepalive: None,
                rr_client: false,
                port: 179,
                password: None,
            });
        }
    }
    peers.extend(b.peers.iter().map(|p| peer_config(b, p)));
    Some(SpeakerConfig {
        asn: b.asn,
        router_id,
        listen: Some(
            b.listen
                .unwrap_or_else(|| "[::]:179".parse().expect("a valid address")),
        ),
        local_address: None,
        peers,
        advertise: plan.own_blocks.clone(),
        next_hop_v4: first_v4,
        next_hop_v6: first_v6,
        batch: Duration::from_millis(b.batch_ms),
        graceful_restart: (b.graceful_restart > 0).then_some(b.graceful_restart),
        restarting: restarted_recently(&b.restart_marker, b.graceful_restart),
        connect_retry: Duration::from_secs(5),
        cluster_id: b.cluster_id,
    })
}

/// Whether the previous run stopped cleanly less than the restart time ago (its marker
/// holds the Unix time of the stop). The marker is consumed.
pub fn restarted_recently(marker: &std::path::Path, restart_time: u16) -> bool {
    let Ok(text) = std::fs::read_to_string(marker) else {
        return false;
    };
    let _ = std::fs::remove_file(marker);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    text.trim()
        .parse::<u64>()
        .is_ok_and(|at| restart_time > 0 && now.saturating_sub(at) < restart_time as u64)
}

/// At a clean stop with graceful restart on: leave the marker for the next start (the
/// sessions close without a NOTIFICATION, so peers keep our routes meanwhile).
pub fn mark_clean_stop(config: &Config) {
    let Some(b) = config.bgp.as_ref().filter(|b| b.graceful_restart > 0) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(dir) = b.restart_marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&b.restart_marker, now.to_string()) {
        warn!(path = %b.restart_marker.display(), error = %e, "cannot leave the restart marker");
    }
}

/// The live tables routes are installed into.
pub struct Tables<'a> {
    pub nexthops: &'a NextHopTable,
    pub tunnels: &'a TunnelTable,
    pub groups: &'a GroupTable,
    pub fib4: &'a mut Fib4,
    pub fib6: &'a mut Fib6,
}

/// What the speaker's routes have added so far. Which prefixes are installed, and with
/// which next hop, is the FIB's own knowledge (`get`): no second per-route map here.
#[derive(Default)]
pub struct Learned {
    /// Routes installed from BGP.
    installed: usize,
    /// ECMP groups by their sorted members.
    groups: HashMap<Vec<u32>, u32>,
    /// Prefixes the configuration routes (they win over BGP).
    configured: HashSet<IpNet>,
    /// BGP's best next hops for configured prefixes (few): installed if the
    /// configuration's route goes away.
    shadowed: HashMap<IpNet, Vec<IpAddr>>,
    /// How many of the plan's tunnels and groups the live tables already have.
    tunnels_applied: usize,
    tunnel_nexthops_applied: usize,
    groups_applied: usize,
    nexthop_capacity: u32,
    tunnel_capacity: usize,
    group_capacity: usize,
}

impl Learned {
    pub fn new(
        plan: &Plan,
        nexthop_capacity: usize,
        tunnel_capacity: usize,
        group_capacity: usize,
    ) -> Learned {
        Learned {
            configured: plan
                .routes4
                .iter()
                .map(|(n, _)| IpNet::V4(*n))
                .chain(plan.routes6.iter().map(|(n, _)| IpNet::V6(*n)))
                .collect(),
            tunnels_applied: plan.tunnels.len(),
            tunnel_nexthops_applied: plan.tunnel_nexthops.len(),
            groups_applied: plan.groups.len(),
            nexthop_capacity: nexthop_capacity as u32,
            tunnel_capacity,
            group_capacity,
            ..Learned::default()
        }
    }

    /// A prefix the configuration (or an endpoint) routes: BGP leaves it alone.
    pub fn set_configured(&mut self, prefix: IpNet, on: bool) {
        if on {
            self.configured.insert(prefix.trunc());
        } else {
            self.configured.remove(&prefix.trunc());
        }
    }

    pub fn is_configured(&self, prefix: IpNet) -> bool {
        self.configured.contains(&prefix.trunc())
    }

    /// Routes installed from BGP.
    pub fn len(&self) -> usize {
        self.installed
    }

    pub fn is_empty(&self) -> bool {
        self.installed == 0
    }

    /// Install a batch of changes: next hops first, then one FIB update per family.
    pub fn apply(
        &mut self,
        config: &Config,
        plan: &mut Plan,
        t: &mut Tables,
        changes: &[RouteChange],
    ) {
        let mut up4 = Vec::new();
        let mut up6 = Vec::new();
        for c in changes {
            let prefix = c.prefix.trunc();
            if self.configured.contains(&prefix) {
                if c.next_hops.is_empty() {
                    self.shadowed.remove(&prefix);
                } else {
                    self.shadowed.insert(prefix, c.next_hops.clone());
                }
                continue;
            }
            let nh = if c.next_hops.is_empty() {
                None
            } else {
                self.next_hop_for(config, plan, prefix, &c.next_hops)
            };
            let now = match prefix {
                IpNet::V4(n) => t.fib4.get(n),
                IpNet::V6(n) => t.fib6.get(n),
            }
            .map(|n| n.0);
            if now == nh {
                continue;
            }
            match (now, nh) {
                (None, Some(_)) => self.installed += 1,
                (Some(_), None) => self.installed -= 1,
                _ => {}
            }
            match (prefix, nh) {
                (IpNet::V4(n), Some(nh)) => up4.push(Update::Insert(n, NextHopId(nh))),
                (IpNet::V4(n), None) => up4.push(Update::Remove(n)),
                (IpNet::V6(n), Some(nh)) => up6.push(Update::Insert(n, NextHopId(nh))),
                (IpNet::V6(n), None) => up6.push(Update::Remove(n)),
            }
        }
        // New tunnels and groups go live before any route points at them.
        self.sync_tables(plan, t);
        if !up4.is_empty() {
            t.fib4.apply(&up4);
        }
        if !up6.is_empty() {
            t.fib6.apply(&up6);
        }
    }

    /// Put the plan's tunnels, groups and their next hops made since the last call into
    /// the live tables (before any route points at them).
    pub fn sync_tables(&mut self, plan: &Plan, t: &mut Tables) {
        for id in self.tunnels_applied..plan.tunnels.len() {
            t.tunnels.set(id as u32, plan.tunnels[id]);
        }
        self.tunnels_applied = plan.tunnels.len();
        for &(nh, id) in &plan.tunnel_nexthops[self.tunnel_nexthops_applied..] {
            t.nexthops.set(nh, Adjacency::Tunnel { id });
        }
        self.tunnel_nexthops_applied = plan.tunnel_nexthops.len();
        for id in self.groups_applied..plan.groups.len() {
            t.groups.set(id as u32, &plan.groups[id]);
        }
        for &(nh, id) in plan
            .group_nexthops
            .iter()
            .filter(|(_, id)| *id as usize >= self.groups_applied)
        {
            t.nexthops.set(nh, Adjacency::Group { id });
        }
        self.groups_applied = plan.groups.len();
    }

    /// The configuration stopped routing `prefix`: BGP's route for it, if any, goes in.
    pub fn unconfigure(&mut self, config: &Config, plan: &mut Plan, t: &mut Tables, prefix: IpNet) {
        let prefix = prefix.trunc();
        self.configured.remove(&prefix);
        if let Some(next_hops) = self.shadowed.remove(&prefix) {
            self.apply(config, plan, t, &[RouteChange { prefix, next_hops }]);
        }
    }

    /// One next hop of ours for `prefix` via `hops` (several: an ECMP group).
    fn next_hop_for(
        &mut self,
        config: &Config,
        plan: &mut Plan,
        prefix: IpNet,
        hops: &[IpAddr],
    ) -> Option<u32> {
        let mut members: Vec<u32> = hops
            .iter()
            .filter_map(|&h| self.one_hop(config, plan, prefix, h))
            .collect();
        members.sort_unstable();
        members.dedup();
        match members.len() {
            0 => None,
            1 => Some(members[0]),
            _ => {
                if let Some(&nh) = self.groups.get(&members) {
                    return Some(nh);
                }
                if plan.groups.len() >= self.group_capacity || !self.room(plan) {
                    warn!(%prefix, "no room for another ECMP group: first next hop only");
                    return Some(members[0]);
                }
                let id = plan.groups.len() as u32;
                plan.groups.push(members.clone());
                let nh = plan.new_nexthop();
                plan.group_nexthops.push((nh, id));
                self.groups.insert(members, nh);
                Some(nh)
            }
        }
    }

    fn room(&self, plan: &Plan) -> bool {
        // A tunnel needs up to two next hops (underlay neighbour and the tunnel).
        plan.nexthop_count + 2 < self.nexthop_capacity
    }

    fn one_hop(
        &mut self,
        config: &Config,
        plan: &mut Plan,
        prefix: IpNet,
        hop: IpAddr,
    ) -> Option<u32> {
        let hop = match hop {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(hop, IpAddr::V4),
            v4 => v4,
        };
        if config.node_ips.iter().any(|n| n.addr() == hop) {
            return None; // our own route, reflected back to us
        }
        if !self.room(plan) || plan.tunnels.len() >= self.tunnel_capacity {
            warn!(%prefix, "no room for more next hops: route not installed");
            return None;
        }
        let known = config
            .nodes
            .iter()
            .find(|n| n.ips.iter().any(|i| i.addr() == hop));
        let node = known.cloned().unwrap_or_else(|| Node {
            name: hop.to_string(),
            ips: vec![IpNet::from(hop)],
            vtep_mac: None,
        });
        let mut by_via = std::mem::take(&mut plan.by_via);
        let mut by_tunnel = std::mem::take(&mut plan.by_tunnel);
        let nh = plan.node_route(
            config,
            &mut by_via,
            &mut by_tunnel,
            0,
            &node,
            prefix,
            known.is_some(),
        );
        plan.by_via = by_via;
        plan.by_tunnel = by_tunnel;
        match nh {
            Ok(nh) => Some(nh),
            Err(e) => {
                warn!(%prefix, next_hop = %hop, error = %e, "route not installed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::tests::info;
    use crate::tunnel::Encap;

    const CONFIG: &str = r#"
node_name = "node-a"
node_ips = ["10.0.0.1/24", "fd00::1/64"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.244.0.0/16"
vxlan_mode = "Always"
[[pools]]
cidr = "10.245.0.0/16"
ipip_mode = "Always"
[[endpoints]]
name = "pod"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32", "10.244.1.9/32", "10.245.7.3/32"]
[[nodes]]
name = "node-b"
ips = ["10.0.0.2/24"]
[[nodes]]
name = "node-c"
ips = ["10.0.0.3/24"]
[bgp]
"#;

    struct Live {
        nexthops: NextHopTable,
        tunnels: TunnelTable,
        groups: GroupTable,
        fib4: Fib4,
        fib6: Fib6,
    }

    impl Live {
        fn tables(&mut self) -> Tables<'_> {
            Tables {
                nexthops: &self.nexthops,
                tunnels: &self.tunnels,
                groups: &self.groups,
                fib4: &mut self.fib4,
                fib6: &mut self.fib6,
            }
        }
    }

    fn change(prefix: &str, hops: &[&str]) -> RouteChange {
        RouteChange {
            prefix: prefix.parse().unwrap(),
            next_hops: hops.iter().map(|h| h.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_recent_clean_stop_is_a_graceful_restart() {
        let dir = std::env::temp_dir().join(format!("vr-marker-{}", std::process::id()));
        let marker = dir.join("m");
        assert!(!restarted_recently(&marker, 120), "no marker");
        let mut config = Config::parse(CONFIG).unwrap();
        config.bgp.as_mut().unwrap().restart_marker = marker.clone();
        mark_clean_stop(&config);
        assert!(restarted_recently(&marker, 120));
        assert!(!marker.exists(), "consumed");
        std::fs::write(&marker, "1000").unwrap();
        assert!(!restarted_recently(&marker, 120), "too old");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn own_blocks_are_announced_and_blackholed_and_the_mesh_is_the_nodes() {
        let config = Config::parse(CONFIG).unwrap();
        let plan = Plan::new(&config, &info).unwrap();
        let blocks: Vec<String> = plan.own_blocks.iter().map(|b| b.to_string()).collect();
        assert_eq!(blocks, ["10.244.1.0/26", "10.245.7.0/26"]);
        let bh = plan.blackhole.unwrap();
        for b in ["10.244.1.0/26", "10.245.7.0/26"] {
            assert!(plan
                .routes4
                .iter()
                .any(|(n, nh)| n.to_string() == b && *nh == bh));
        }
        let s = speaker_config(&config, &plan).unwrap();
        assert_eq!((s.asn, s.router_id), (64512, Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.peers.len(), 2);
        assert!(
            s.peers.iter().all(|p| p.passive),
            "both mesh peers have higher addresses"
        );
        assert_eq!(s.next_hop_v6, Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn learnt_routes_become_tunnels_gateways_and_groups() {
        let config = Config::parse(CONFIG).unwrap();
        let mut plan = Plan::new(&config, &info).unwrap();
        let cap = plan.nexthop_count as usize + 64;
        let mut live = Live {
            nexthops: NextHopTable::new(cap),
            tunnels: TunnelTable::new(16),
            groups: GroupTable::new(16),
            fib4: Fib4::new(),
            fib6: Fib6::new(),
        };
        let mut learned = Learned::new(&plan, cap, 16, 16);
        let batch = vec![
            // node B's VXLAN block, an IPIP block on node C, a block from an unknown
            // router on our subnet in no pool, ECMP over B and C, our own block (ignored:
            // configured), a route with our own address as next hop (ignored).
            change("10.244.2.0/26", &["10.0.0.2"]),
            change("10.245.3.0/26", &["10.0.0.3"]),
            change("192.168.0.0/16", &["10.0.0.254"]),
            change("172.16.0.0/12", &["10.0.0.2", "10.0.0.3"]),
            change("10.244.1.0/26", &["10.0.0.2"]),
            change("10.99.0.0/16", &["10.0.0.1"]),
        ];
        learned.apply(&config, &mut plan, &mut live.tables(), &batch);
        assert_eq!(learned.len(), 4);
        let nh = |live: &Live, a: &str| {
            live.fib4
                .lookup(a.parse::<Ipv4Addr>().unwrap())
                .map(|n| n.0)
        };
        let adj = |live: &Live, a: &str| live.nexthops.get(nh(live, a).unwrap());
        let Some(Adjacency::Tunnel { id }) = adj(&live, "10.244.2.5") else {
            panic!()
        };
        assert!(matches!(
            live.tunnels.get(id).unwrap().encap,
            Encap::Vxlan(_)
        ));
        let Some(Adjacency::Tunnel { id }) = adj(&live, "10.245.3.1") else {
            panic!()
        };
        assert!(matches!(
            live.tunnels.get(id).unwrap().encap,
            Encap::Ipip(_)
        ));
        assert_eq!(
            adj(&live, "192.168.1.1"),
            Some(Adjacency::Incomplete),
            "a neighbour the kernel resolves"
        );
        assert!(plan
            .gateways
            .iter()
            .any(|g| g.via == "10.0.0.254".parse::<IpAddr>().unwrap()));
        assert!(matches!(
            adj(&live, "172.16.0.1"),
            Some(Adjacency::Group { .. })
        ));
        assert_eq!(
            nh(&live, "10.244.1.5"),
            None,
            "our block stays as configured (blackhole, in the daemon's FIB)"
        );
        assert_eq!(nh(&live, "10.99.0.1"), None);

        // Withdrawals remove; an unchanged re-announcement changes nothing.
        let before = plan.nexthop_count;
        learned.apply(
            &config,
            &mut plan,
            &mut live.tables(),
            &[
                change("10.244.2.0/26", &["10.0.0.2"]),
                change("192.168.0.0/16", &[]),
            ],
        );
        assert_eq!(
            plan.nexthop_count, before,
            "tunnels and gateways are shared"
        );
        assert_eq!(nh(&live, "192.168.1.1"), None);
        assert_eq!(learned.len(), 3);
    }
}
