//! Calico's IPPool fields as the datastore gives them: the pools our tunnel address may
//! come from (allowedUses, nodeSelector), disableBGPExport on our affine blocks, and
//! fields this node does not implement made harmless and named once.

use super::{node_with, state_dir};
use crate::cluster::tunnel_pools;
use crate::config::AssignmentMode;
use crate::node::cluster_state::ClusterState;
use datastore::model::{IpPoolSpec, Resource};
use datastore::sync::ClusterView;
use ipnet::IpNet;
use std::collections::BTreeMap;

const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
[workers]
endpoint_slots = 4
[bgp]
[datastore]
type = "etcdv3"
endpoints = ["http://127.0.0.1:2379"]
"#;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn pool(name: &str, json: &str) -> (String, Resource<IpPoolSpec>) {
    let spec: IpPoolSpec = serde_json::from_str(json).unwrap();
    (name.to_string(), Resource::new(name, spec))
}

#[test]
fn the_tunnel_address_comes_from_tunnel_pools_selecting_this_node() {
    let mut v = ClusterView::default();
    v.pools.extend([
        pool("workload-only", r#"{"cidr":"10.1.0.0/16","vxlanMode":"Always","allowedUses":["Workload"]}"#),
        pool("other-zone", r#"{"cidr":"10.2.0.0/16","vxlanMode":"Always","nodeSelector":"zone == 'us'"}"#),
        pool("ours", r#"{"cidr":"10.3.0.0/16","vxlanMode":"CrossSubnet","nodeSelector":"zone == 'eu'","allowedUses":["Tunnel"],"blockSize":28}"#),
        pool("ipip", r#"{"cidr":"10.4.0.0/16","ipipMode":"Always"}"#),
        pool("disabled", r#"{"cidr":"10.5.0.0/16","vxlanMode":"Always","disabled":true}"#),
        pool("default", r#"{"cidr":"10.6.0.0/16","vxlanMode":"Always"}"#),
        pool("v6", r#"{"cidr":"fd00::/48","vxlanMode":"Always"}"#),
    ]);
    let labels: BTreeMap<String, String> = [("zone".to_string(), "eu".to_string())].into();
    let picked: Vec<(IpNet, u8)> = tunnel_pools(&v, &labels)
        .iter()
        .map(|p| (p.cidr, p.block_size))
        .collect();
    // By pool name: "default" < "ours".
    assert_eq!(picked, [(net("10.6.0.0/16"), 26), (net("10.3.0.0/16"), 28)]);
    // Without labels, the selecting pool is not ours.
    let picked: Vec<IpNet> = tunnel_pools(&v, &BTreeMap::new())
        .iter()
        .map(|p| p.cidr)
        .collect();
    assert_eq!(picked, [net("10.6.0.0/16")]);
}

/// A node of a datastore cluster, and an empty view at revision 3.
fn cluster_node() -> (std::path::PathBuf, crate::node::NodeState, ClusterView) {
    let dir = state_dir();
    let (mut node, _machine) = node_with(CONFIG, &dir);
    node.cluster = Some(ClusterState::default());
    let v = ClusterView {
        revision: 3,
        ..Default::default()
    };
    (dir, node, v)
}

#[test]
fn datastore_pools_with_disable_bgp_export_are_not_announced() {
    let (dir, mut node, mut v) = cluster_node();
    v.pools.extend([
        pool("shown", r#"{"cidr":"10.65.0.0/16","vxlanMode":"Always"}"#),
        pool(
            "hidden",
            r#"{"cidr":"10.66.0.0/16","vxlanMode":"Always","disableBGPExport":true}"#,
        ),
    ]);
    v.affinities
        .insert("n1".into(), vec![net("10.65.1.0/26"), net("10.66.1.0/26")]);
    node.apply_cluster(&v);
    assert_eq!(node.own_blocks, [net("10.65.1.0/26"), net("10.66.1.0/26")]);
    assert_eq!(node.advertised, [net("10.65.1.0/26")], "10.66/16 kept back");
    // Calico turns export back on: announced.
    v.revision = 4;
    v.pools.extend([pool(
        "hidden",
        r#"{"cidr":"10.66.0.0/16","vxlanMode":"Always"}"#,
    )]);
    node.apply_cluster(&v);
    assert_eq!(node.advertised, [net("10.65.1.0/26"), net("10.66.1.0/26")]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unimplemented_fields_are_made_harmless_and_said_once() {
    let (dir, mut node, mut v) = cluster_node();
    v.pools.extend([
        pool(
            "ns",
            r#"{"cidr":"10.65.0.0/16","namespaceSelector":"team == 'a'","futureField":1}"#,
        ),
        pool("bad", r#"{"cidr":"10.66.0.0/16","vxlanMode":"Sometimes"}"#),
    ]);
    node.apply_cluster(&v);
    let p = node
        .config
        .pools
        .iter()
        .find(|p| p.cidr == net("10.65.0.0/16"))
        .expect("the pool is routed all the same");
    assert_eq!(
        p.assignment_mode,
        AssignmentMode::Manual,
        "no addresses from it unasked"
    );
    assert!(
        !node
            .config
            .pools
            .iter()
            .any(|p| p.cidr == net("10.66.0.0/16")),
        "an encapsulation mode not understood: refused"
    );
    let said = |node: &crate::node::NodeState| node.cluster.as_ref().unwrap().pool_warnings.clone();
    let first = said(&node);
    let names: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "bad: unknown encapsulation mode \"Sometimes\"",
            "ns: futureField",
            "ns: namespaceSelector",
        ]
    );
    // The next view: nothing new to say (the set is what was said, unchanged).
    v.revision = 4;
    node.apply_cluster(&v);
    assert_eq!(said(&node), first);
    // Fixed: forgotten, so that breaking it again is said again.
    v.pools.extend([pool("ns", r#"{"cidr":"10.65.0.0/16"}"#)]);
    v.pools.remove("bad");
    node.apply_cluster(&v);
    assert!(said(&node).is_empty(), "{:?}", said(&node));
    let p = node
        .config
        .pools
        .iter()
        .find(|p| p.cidr == net("10.65.0.0/16"))
        .unwrap();
    assert_eq!(p.assignment_mode, AssignmentMode::Automatic);
    let _ = std::fs::remove_dir_all(dir);
}
