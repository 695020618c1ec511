//! The datastore's views applied to a node on the fake host: nodes become `[[nodes]]`
//! (kernel Calico's included, its VTEP MAC honoured), pools come and go, our blocks are
//! our affinities, a borrowed address is announced as a host route, the file wins, and
//! a reload leaves the datastore's part alone.

use super::{node_with, state_dir};
use crate::config::EndpointKind;
use crate::node::cluster_state::ClusterState;
use crate::node::endpoints::EndpointRequest;
use datastore::model::{IpPoolSpec, NodeResource, Resource};
use datastore::sync::ClusterView;
use ipnet::IpNet;

const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.250.0.0/16"
[workers]
endpoint_slots = 4
[datastore]
type = "etcdv3"
endpoints = ["http://127.0.0.1:2379"]
"#;

fn node_json(name: &str, ip: &str, mac: &str) -> NodeResource {
    let mac = if mac.is_empty() {
        String::new()
    } else {
        format!(r#","vxlanTunnelMACAddr":"{mac}""#)
    };
    serde_json::from_str(&format!(
        r#"{{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}"}},"spec":{{"bgp":{{"ipv4Address":"{ip}/24"}}{mac}}},"status":{{}}}}"#
    ))
    .unwrap()
}

fn pool(cidr: &str) -> Resource<IpPoolSpec> {
    Resource::new(
        "p",
        IpPoolSpec {
            cidr: cidr.into(),
            vxlan_mode: "Always".into(),
            ..Default::default()
        },
    )
}

fn view(rev: i64) -> ClusterView {
    let mut v = ClusterView {
        revision: rev,
        ..Default::default()
    };
    v.nodes.insert("n1".into(), node_json("n1", "10.0.0.1", ""));
    v.nodes.insert(
        "kernel-2".into(),
        node_json("kernel-2", "10.0.0.2", "66:aa:bb:cc:dd:ee"),
    );
    v.nodes.insert("n3".into(), node_json("n3", "10.0.0.3", ""));
    v.pools.insert("p".into(), pool("10.65.0.0/16"));
    v.affinities
        .insert("n1".into(), vec!["10.65.1.0/26".parse().unwrap()]);
    v.affinities
        .insert("n3".into(), vec!["10.65.2.0/26".parse().unwrap()]);
    v
}

#[test]
fn views_become_nodes_pools_and_blocks() {
    let dir = state_dir();
    let (mut node, machine) = node_with(CONFIG, &dir);
    node.cluster = Some(ClusterState::default());
    node.apply_cluster(&view(7));
    let names: Vec<&str> = node.config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["kernel-2", "n3"], "every other node, not ourselves");
    let k = node
        .config
        .nodes
        .iter()
        .find(|n| n.name == "kernel-2")
        .unwrap();
    assert_eq!(
        k.vtep_mac.as_deref(),
        Some("66:aa:bb:cc:dd:ee"),
        "kernel Calico's MAC honoured"
    );
    assert_eq!(k.ips, vec!["10.0.0.2/24".parse::<IpNet>().unwrap()]);
    assert!(node
        .config
        .pools
        .iter()
        .any(|p| p.cidr.to_string() == "10.65.0.0/16"));
    assert!(machine
        .borrow()
        .steered
        .contains(&"10.65.0.0/16".parse().unwrap()));
    assert_eq!(
        node.own_blocks,
        vec!["10.65.1.0/26".parse::<IpNet>().unwrap()]
    );
    assert_eq!(node.node_status().datastore, "in sync (revision 7)",);
    // An endpoint whose address was borrowed from n3's block: announced as a /32.
    let req = EndpointRequest {
        name: "pod".into(),
        kind: EndpointKind::Tap,
        interface: "tap-pod".into(),
        ips: vec!["10.65.2.9/32".parse().unwrap()],
        mac: None,
        ipv6: false,
        labels: Default::default(),
        container_id: None,
        workload: None,
    };
    node.add_endpoint(req).unwrap();
    assert!(
        node.advertised.contains(&"10.65.2.9/32".parse().unwrap()),
        "{:?}",
        node.advertised
    );
    assert!(node.advertised.contains(&"10.65.1.0/26".parse().unwrap()));
    assert!(
        !node.own_blocks.contains(&"10.65.2.0/26".parse().unwrap()),
        "not n3's block"
    );
    // n3 goes; the pool is replaced by another.
    let mut v = view(8);
    v.nodes.remove("n3");
    v.pools.clear();
    v.pools.insert("q".into(), pool("10.66.0.0/16"));
    node.apply_cluster(&v);
    let names: Vec<&str> = node.config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["kernel-2"]);
    assert!(
        !node
            .config
            .routes
            .iter()
            .any(|r| r.dst.to_string() == "10.65.2.0/26"),
        "n3 gone: its block's route too"
    );
    // 10.65/16 is in use by the pod: kept (with a warning), the new one added.
    assert!(node
        .config
        .pools
        .iter()
        .any(|p| p.cidr.to_string() == "10.66.0.0/16"));
    assert!(node
        .config
        .pools
        .iter()
        .any(|p| p.cidr.to_string() == "10.65.0.0/16"));
    node.remove_endpoint("pod").unwrap();
    node.apply_cluster(&v);
    assert!(!node
        .config
        .pools
        .iter()
        .any(|p| p.cidr.to_string() == "10.65.0.0/16"));
    // The file's pool is the file's: a datastore pool with its CIDR does not replace it.
    let mut v = view(9);
    v.pools.insert("file".into(), pool("10.250.0.0/16"));
    node.apply_cluster(&v);
    let p = node
        .config
        .pools
        .iter()
        .find(|p| p.cidr.to_string() == "10.250.0.0/16")
        .unwrap();
    assert_eq!(
        p.vxlan_mode,
        crate::config::EncapMode::Never,
        "the file's settings stay"
    );
    // A reload with the same file changes nothing of the datastore's.
    let file = super::config(CONFIG, &dir);
    let changes = node.apply_file(file).unwrap();
    assert_eq!(changes, Default::default(), "{changes:?}");
    assert_eq!(node.config.nodes.len(), 2);
    assert!(node
        .config
        .pools
        .iter()
        .any(|p| p.cidr.to_string() == "10.65.0.0/16"));
    let _ = std::fs::remove_dir_all(dir);
}
