//! `datastore_json`: records as Calico stores them in etcd (JSON values under their
//! keys) made into a `ClusterView` the way the syncer's list does, applied to a node in
//! cluster mode (its pools, nodes, peers, policies), then taken away again; and IPAM
//! blocks read and allocated from as `datastore::ipam` does.
//!
//! Input: records, each `kind len_hi len_lo json...` (at most 8); `kind` picks the key.

use datastore::block;
use datastore::keys;
use datastore::model::AllocationBlock;
use datastore::store::Entry;
use datastore::sync::{view_of, ClusterView};
use ipnet::IpNet;
use std::collections::BTreeMap;
use vrouter::node::cluster_state::ClusterState;

pub const PREFIX: &str = "/calico";

/// Kinds of record, by the first byte of each (modulo their number).
pub const KINDS: [&str; 10] = [
    "nodes",
    "ippools",
    "bgppeers",
    "bgpconfigurations",
    "workloadendpoints",
    "profiles",
    "networkpolicies",
    "globalnetworkpolicies",
    "affinity",
    "block",
];

pub const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24", "fd00::1/64"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.250.0.0/16"
[workers]
endpoint_slots = 4
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.250.1.2/32"]
[bgp]
asn = 64512
[datastore]
type = "etcdv3"
endpoints = ["http://127.0.0.1:2379"]
"#;

/// Split the input into (kind, value), at most 8 records.
pub fn split(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && out.len() < 8 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let take = len.min(rest.len() - 3);
        out.push((rest[0] as usize % KINDS.len(), &rest[3..3 + take]));
        rest = &rest[3 + take..];
    }
    out
}

/// The key record `i` of `kind` is stored under.
fn key(kind: &str, i: usize) -> String {
    let name = ["n1", "n2", "kns.shop", "default"][i % 4];
    match kind {
        "bgpconfigurations" => keys::resource(PREFIX, kind, "default"),
        "profiles" => keys::resource(PREFIX, kind, name),
        "workloadendpoints" | "networkpolicies" => {
            keys::namespaced(PREFIX, kind, "shop", &format!("r{i}"))
        }
        "nodes" => keys::resource(PREFIX, kind, name),
        "affinity" => {
            let cidr: IpNet = format!("10.65.{i}.0/26").parse().unwrap();
            keys::affinity(PREFIX, name, cidr)
        }
        _ => keys::resource(PREFIX, kind, &format!("r{i}")),
    }
}

/// A block from etcd: read as `IpamSnapshot::read` and `Ipam` do, then allocated from
/// and freed.
fn block(value: &[u8]) {
    let Ok(mut b) = serde_json::from_slice::<AllocationBlock>(value) else {
        return;
    };
    let Ok(cidr) = b.cidr.parse::<IpNet>() else {
        return;
    };
    let _ = b.host();
    if !block::well_formed(&b, cidr) {
        return;
    }
    let held = block::allocated(&b, cidr);
    for (ip, _, _) in &held {
        let ord = block::ordinal(cidr, *ip).expect("an allocated address is in its block");
        assert!(block::holder(&b, ord).is_some());
    }
    let secondary = BTreeMap::from([("node".to_string(), "n1".to_string())]);
    if let Some(ord) = block::take_next(&mut b, "fuzz", &secondary) {
        let _ = block::nth(cidr, ord as u128);
        assert!(block::ordinals_of(&b, "fuzz").contains(&ord));
        let _ = block::free(&mut b, ord);
    }
    let _ = block::take(&mut b, 0, "fuzz", &secondary);
    for ord in block::ordinals_of(&b, "fuzz") {
        let _ = block::free(&mut b, ord);
    }
    assert!(
        block::well_formed(&b, cidr),
        "allocating kept the block well formed"
    );
}

pub fn run(data: &[u8]) {
    let records = split(data);
    if records.is_empty() {
        return;
    }
    let (mut resources, mut affinities) = (Vec::new(), Vec::new());
    for (i, &(kind, value)) in records.iter().enumerate() {
        let kind = KINDS[kind];
        if kind == "block" {
            block(value);
            continue;
        }
        let e = Entry {
            key: key(kind, i),
            value: value.to_vec(),
            mod_revision: 1 + i as i64,
        };
        if kind == "affinity" {
            affinities.push(e);
        } else {
            resources.push(e);
        }
    }
    let view = view_of(PREFIX, resources, affinities);
    if crate::debug() {
        eprintln!("{view:#?}");
    }
    let dir = crate::api::state_dir();
    let mut n = crate::api::node_from(CONFIG, &dir);
    n.cluster = Some(ClusterState::default());
    n.apply_cluster(&view);
    if crate::debug() {
        eprintln!("nodes {:?} pools {:?}", n.config.nodes, n.config.pools);
    }
    // Everything gone again.
    n.apply_cluster(&ClusterView {
        revision: 2,
        ..ClusterView::default()
    });
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}
