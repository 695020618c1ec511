//! Learnt routes, the speaker's settings, the restart marker.

use super::{node_with, state_dir};
use crate::config::Config;
use crate::nexthop::Adjacency;
use crate::node::bgp_config::{mark_clean_stop, restarted_recently, speaker_config};
use crate::node::plan::own_blocks;
use crate::node::tables::Tables;
use crate::tunnel::Encap;
use control::speaker::RouteChange;
use std::net::{IpAddr, Ipv4Addr};

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
    config.bgp.as_mut().unwrap().restart_marker = Some(marker.clone());
    mark_clean_stop(&config);
    assert!(restarted_recently(&marker, 120));
    assert!(!marker.exists(), "consumed");
    std::fs::write(&marker, "1000").unwrap();
    assert!(!restarted_recently(&marker, 120), "too old");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_restart_marker_defaults_to_the_state_dir() {
    let dir = std::env::temp_dir().join(format!("vr-marker-state-{}", std::process::id()));
    let mut config = Config::parse(CONFIG).unwrap();
    config.state_dir = dir.clone();
    assert_eq!(config.restart_marker(), dir.join("bgp-restart"));
    mark_clean_stop(&config);
    assert!(dir.join("bgp-restart").exists(), "written under state_dir");
    assert!(restarted_recently(&config.restart_marker(), 120));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn own_blocks_are_announced_and_blackholed_and_the_mesh_is_the_nodes() {
    let dir = state_dir();
    let (node, _machine) = node_with(CONFIG, &dir);
    let blocks: Vec<String> = node.own_blocks.iter().map(|b| b.to_string()).collect();
    assert_eq!(blocks, ["10.244.1.0/26", "10.245.7.0/26"]);
    assert_eq!(own_blocks(&node.config), node.own_blocks);
    let bh = node.blackhole.unwrap();
    for b in ["10.244.1.0/26", "10.245.7.0/26"] {
        assert_eq!(node.tables.get(b.parse().unwrap()), Some(bh));
        assert_eq!(node.tables.nexthops.get(bh), Some(Adjacency::Blackhole));
    }
    let s = speaker_config(&node.config, &node.own_blocks).unwrap();
    assert_eq!(s.advertise, node.own_blocks);
    assert_eq!((s.asn, s.router_id), (64512, Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(s.peers.len(), 2);
    assert!(
        s.peers.iter().all(|p| p.passive),
        "both mesh peers have higher addresses"
    );
    assert_eq!(s.next_hop_v6, Some("fd00::1".parse().unwrap()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn learnt_routes_become_tunnels_gateways_and_groups() {
    let dir = state_dir();
    let (mut node, _machine) = node_with(CONFIG, &dir);
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
    node.apply_bgp(&batch);
    assert_eq!(node.bgp.len(), 4);
    let nh = |live: &Tables, a: &str| {
        live.fib4
            .lookup(a.parse::<Ipv4Addr>().unwrap())
            .map(|n| n.0)
    };
    let adj = |live: &Tables, a: &str| live.nexthops.get(nh(live, a).unwrap());
    let Some(Adjacency::Tunnel { id }) = adj(&node.tables, "10.244.2.5") else {
        panic!()
    };
    assert!(matches!(
        node.tables.tunnels.get(id).unwrap().encap,
        Encap::Vxlan(_)
    ));
    let Some(Adjacency::Tunnel { id }) = adj(&node.tables, "10.245.3.1") else {
        panic!()
    };
    assert!(matches!(
        node.tables.tunnels.get(id).unwrap().encap,
        Encap::Ipip(_)
    ));
    assert_eq!(
        adj(&node.tables, "192.168.1.1"),
        Some(Adjacency::Incomplete),
        "a neighbour the kernel resolves"
    );
    assert!(node
        .alloc
        .gateways
        .iter()
        .any(|g| g.via == "10.0.0.254".parse::<IpAddr>().unwrap()));
    assert!(matches!(
        adj(&node.tables, "172.16.0.1"),
        Some(Adjacency::Group { .. })
    ));
    assert_eq!(
        nh(&node.tables, "10.244.1.5"),
        node.blackhole,
        "our block stays as configured (blackhole)"
    );
    assert_eq!(nh(&node.tables, "10.99.0.1"), None);

    // Withdrawals remove; an unchanged re-announcement changes nothing.
    let before = node.alloc.count;
    node.apply_bgp(&[
        change("10.244.2.0/26", &["10.0.0.2"]),
        change("192.168.0.0/16", &[]),
    ]);
    assert_eq!(node.alloc.count, before, "tunnels and gateways are shared");
    assert_eq!(nh(&node.tables, "192.168.1.1"), None);
    assert_eq!(node.bgp.len(), 3);

    // 10.0.0.254 no longer carries a route: its next hop is freed (the kernel is not
    // asked to resolve it any more) and its number is the next one handed out.
    let via = |a: &str| a.parse::<IpAddr>().unwrap();
    let gateway = |node: &crate::node::NodeState, a: &str| {
        node.alloc
            .gateways
            .iter()
            .find(|g| g.via == via(a))
            .map(|g| g.nh)
    };
    assert_eq!(gateway(&node, "10.0.0.254"), None, "freed");
    node.apply_bgp(&[change("192.168.0.0/16", &["10.0.0.253"])]);
    assert_eq!(node.alloc.count, before, "the freed number reused");
    let reused = gateway(&node, "10.0.0.253").unwrap();
    assert_eq!(nh(&node.tables, "192.168.1.1"), Some(reused));
    assert_eq!(
        node.tables.nexthops.get(reused),
        Some(Adjacency::Incomplete)
    );
    // The ECMP group over B and C goes; B and C stay (the tunnels' underlay).
    node.apply_bgp(&[change("172.16.0.0/12", &[])]);
    assert!(gateway(&node, "10.0.0.2").is_some() && gateway(&node, "10.0.0.3").is_some());
    // Churn does not grow the table: the same route through ever new neighbours.
    for i in 0..50 {
        node.apply_bgp(&[change("192.168.0.0/16", &[&format!("10.0.0.{}", 100 + i)])]);
    }
    // (The new neighbour's next hop is made before the old one is freed: one number
    // more at most, then two take turns.)
    assert_eq!(node.alloc.count, before + 1, "churn reuses numbers");
    let learnt: Vec<_> = node
        .alloc
        .gateways
        .iter()
        .filter(|g| g.via.to_string().starts_with("10.0.0.1"))
        .collect();
    assert_eq!(
        learnt.len(),
        1,
        "only the last neighbour is live: {learnt:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn routes_with_the_same_hops_in_a_batch_still_follow_their_pool() {
    // Consecutive changes with one next hop: the daemon reuses the last next hop made
    // only for the same pool and family.
    let dir = state_dir();
    let (mut node, _machine) = node_with(CONFIG, &dir);
    node.apply_bgp(&[
        change("10.244.5.0/26", &["10.0.0.2"]),
        change("10.244.6.0/26", &["10.0.0.2"]),
        change("10.245.5.0/26", &["10.0.0.2"]),
        change("10.246.0.0/26", &["10.0.0.2"]),
        change("10.244.7.0/26", &["10.0.0.2"]),
    ]);
    assert_eq!(node.bgp.len(), 5);
    let nh = |a: &str| {
        node.tables
            .fib4
            .lookup(a.parse::<Ipv4Addr>().unwrap())
            .map(|n| n.0)
            .unwrap()
    };
    let encap = |a: &str| match node.tables.nexthops.get(nh(a)) {
        Some(Adjacency::Tunnel { id }) => Some(node.tables.tunnels.get(id).unwrap().encap),
        _ => None,
    };
    assert!(matches!(encap("10.244.5.1"), Some(Encap::Vxlan(_))));
    assert_eq!(nh("10.244.6.1"), nh("10.244.5.1"));
    assert_eq!(nh("10.244.7.1"), nh("10.244.5.1"));
    assert!(matches!(encap("10.245.5.1"), Some(Encap::Ipip(_))));
    assert_eq!(encap("10.246.0.1"), None, "no pool: routed plainly");
    assert_ne!(nh("10.246.0.1"), nh("10.244.5.1"));
}
