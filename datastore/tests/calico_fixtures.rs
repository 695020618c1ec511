//! Records written exactly as Calico writes them parse; what we write has Calico's
//! documented shape, field for field (libcalico-go's Go structs and json tags).

use datastore::block;
use datastore::model::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

// As calicoctl stores them (kernel Calico v3.2x, compact JSON, Go field order).
const IPPOOL: &str = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":"1c0d6a2e-2b59-4b0a-9d5c-3f1d7c9a8e11","creationTimestamp":"2026-11-30T10:00:00Z"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}"#;
const NODE: &str = r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"kernel-1","uid":"5b0c","creationTimestamp":"2026-11-30T10:00:01Z","labels":{"kubernetes.io/hostname":"kernel-1"}},"spec":{"bgp":{"ipv4Address":"10.95.0.11/24","ipv4IPIPTunnelAddr":"10.244.3.1"},"ipv4VXLANTunnelAddr":"10.244.3.0","vxlanTunnelMACAddr":"66:1a:2b:3c:4d:5e","orchRefs":[{"nodeName":"kernel-1","orchestrator":"k8s"}],"addresses":[{"address":"10.95.0.11/24","type":"CalicoNodeIP"},{"address":"10.95.0.11","type":"InternalIP"}]},"status":{"podCIDRs":["10.244.3.0/24"]}}"#;
const PEER: &str = r#"{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"rr-global"},"spec":{"peerIP":"10.95.0.250","asNumber":"64512","nodeSelector":"all()","password":{"secretKeyRef":{"name":"bgp-secrets","key":"rr"}}}}"#;
const BGPCONF: &str = r#"{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":false,"asNumber":64513}}"#;
// A block of kernel-1 with its tunnel address and a pod, and one address borrowed by
// another host.
const BLOCK: &str = r#"{"cidr":"10.244.3.0/30","affinity":"host:kernel-1","allocations":[0,1,null,2],"unallocated":[2],"attributes":[{"handle_id":"vxlan-tunnel-addr-kernel-1","secondary":{"node":"kernel-1","type":"vxlanTunnelAddress"}},{"handle_id":"k8s-pod-network.4f1c","secondary":{"namespace":"default","node":"kernel-1","pod":"web-0","timestamp":"2026-11-30 10:02:03.0 +0000 UTC"}},{"handle_id":"k8s-pod-network.9a2b","secondary":{"namespace":"default","node":"kernel-2","pod":"db-0","timestamp":"2026-11-30 10:03:04.0 +0000 UTC"}}],"sequenceNumber":1764496800000000003,"sequenceNumberForAllocation":{"0":1764496800000000000,"1":1764496800000000001,"3":1764496800000000002},"deleted":false}"#;

#[test]
fn calicos_records_parse() {
    let p: Resource<IpPoolSpec> = serde_json::from_str(IPPOOL).unwrap();
    assert_eq!(p.spec.cidr, "10.244.0.0/16");
    assert_eq!(p.spec.vxlan_mode, "Always");
    assert!(p.spec.nat_outgoing && p.spec.for_workloads());
    assert_eq!(p.spec.block_size(), 26);
    assert_eq!(p.spec.node_selector, "all()");

    let n: NodeResource = serde_json::from_str(NODE).unwrap();
    let bgp = n.spec.bgp.as_ref().unwrap();
    assert_eq!(bgp.ipv4_address, "10.95.0.11/24");
    assert_eq!(bgp.as_number, None);
    assert_eq!(n.spec.ipv4_vxlan_tunnel_addr, "10.244.3.0");
    assert_eq!(n.spec.vxlan_tunnel_mac_addr, "66:1a:2b:3c:4d:5e");
    assert_eq!(n.metadata.labels["kubernetes.io/hostname"], "kernel-1");
    // Calico's own Node round-trips unchanged (what it stores is what we would).
    assert_eq!(serde_json::to_string(&n).unwrap(), NODE);

    let peer: Resource<BgpPeerSpec> = serde_json::from_str(PEER).unwrap();
    assert_eq!(
        peer.spec.as_number,
        Some(64512),
        "ASNumber as a quoted string"
    );
    assert_eq!(peer.spec.peer_ip, "10.95.0.250");
    let r = peer.spec.password.unwrap().secret_key_ref.unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("bgp-secrets", "rr"));

    let c: Resource<BgpConfigurationSpec> = serde_json::from_str(BGPCONF).unwrap();
    assert_eq!(c.spec.node_to_node_mesh_enabled, Some(false));
    assert_eq!(c.spec.as_number, Some(64513));
    assert_eq!(serde_json::to_string(&c).unwrap(), BGPCONF);

    let b: AllocationBlock = serde_json::from_str(BLOCK).unwrap();
    let cidr = "10.244.3.0/30".parse().unwrap();
    assert!(block::well_formed(&b, cidr));
    assert_eq!(b.host(), Some("kernel-1"));
    let alloc = block::allocated(&b, cidr);
    assert_eq!(alloc.len(), 3);
    assert_eq!(
        alloc[2].2.as_deref(),
        Some("kernel-2"),
        "borrowed by kernel-2"
    );
    assert_eq!(
        serde_json::to_string(&b).unwrap(),
        BLOCK,
        "a block round-trips byte for byte"
    );
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn what_we_write_has_calicos_shape() {
    // A fresh block, as calico-ipam's newBlock: every field present, affinity set.
    let b = block::new_block("10.244.9.0/26".parse().unwrap(), Some("vr-1"), 42);
    let v: Value = serde_json::to_value(&b).unwrap();
    let text = serde_json::to_string(&b).unwrap();
    assert!(
        text.starts_with(r#"{"cidr":"10.244.9.0/26","affinity":"host:vr-1","allocations":[null,"#),
        "{text}"
    );
    let mut want = vec![
        "affinity",
        "allocations",
        "attributes",
        "cidr",
        "deleted",
        "sequenceNumber",
        "sequenceNumberForAllocation",
        "unallocated",
    ];
    want.sort();
    assert_eq!(keys_of(&v), want);
    assert_eq!(v["unallocated"].as_array().unwrap().len(), 64);
    // An allocation: attribute with handle_id and secondary.
    let mut b = b;
    let sec: BTreeMap<String, String> = [("node".to_string(), "vr-1".to_string())].into();
    block::take_next(&mut b, "vrouter.vr-1.web", &sec).unwrap();
    let v: Value = serde_json::to_value(&b).unwrap();
    assert_eq!(
        v["attributes"][0],
        json!({"handle_id": "vrouter.vr-1.web", "secondary": {"node": "vr-1"}})
    );
    assert_eq!(v["allocations"][0], json!(0));
    assert_eq!(v["sequenceNumberForAllocation"]["0"], json!(43));

    // Our Node: Calico's field names, status present even when empty.
    let node = NodeResource {
        kind: "Node".into(),
        api_version: API_VERSION.into(),
        metadata: Metadata {
            name: "vr-1".into(),
            ..Default::default()
        },
        spec: NodeSpec {
            bgp: Some(NodeBgpSpec {
                as_number: Some(64512),
                ipv4_address: "10.95.0.21/24".into(),
                ipv6_address: "fd95::21/64".into(),
                ..Default::default()
            }),
            ipv4_vxlan_tunnel_addr: "10.244.9.0".into(),
            vxlan_tunnel_mac_addr: "66:01:02:03:04:05".into(),
            addresses: vec![NodeAddress {
                address: "10.95.0.21/24".into(),
                kind: "CalicoNodeIP".into(),
            }],
            ..Default::default()
        },
        status: NodeStatus::default(),
    };
    let text = serde_json::to_string(&node).unwrap();
    assert_eq!(
        text,
        r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"vr-1"},"spec":{"bgp":{"asNumber":64512,"ipv4Address":"10.95.0.21/24","ipv6Address":"fd95::21/64"},"ipv4VXLANTunnelAddr":"10.244.9.0","vxlanTunnelMACAddr":"66:01:02:03:04:05","addresses":[{"address":"10.95.0.21/24","type":"CalicoNodeIP"}]},"status":{}}"#
    );
    // Affinity and handle records.
    let a = BlockAffinity {
        state: "confirmed".into(),
        deleted: false,
    };
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"state":"confirmed","deleted":false}"#
    );
    let h = IpamHandle {
        block: [("10.244.9.0/26".to_string(), 2)].into(),
        deleted: false,
    };
    assert_eq!(
        serde_json::to_string(&h).unwrap(),
        r#"{"block":{"10.244.9.0/26":2},"deleted":false}"#
    );
    // A pool we store: Calico's names, disableBGPExport spelled as Calico does.
    let p = Resource::new(
        "p",
        IpPoolSpec {
            cidr: "10.1.0.0/16".into(),
            vxlan_mode: "Always".into(),
            ipip_mode: "Never".into(),
            disable_bgp_export: true,
            block_size: Some(26),
            node_selector: "all()".into(),
            ..Default::default()
        },
    );
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"cidr":"10.1.0.0/16","vxlanMode":"Always","ipipMode":"Never","disableBGPExport":true,"blockSize":26,"nodeSelector":"all()"}}"#
    );
}

#[test]
fn random_json_never_panics() {
    // Truncations and byte flips of real records: an error or a value, never a panic.
    for text in [IPPOOL, NODE, PEER, BGPCONF, BLOCK] {
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let _ = serde_json::from_slice::<NodeResource>(&bytes[..cut]);
            let _ = serde_json::from_slice::<AllocationBlock>(&bytes[..cut]);
            let mut flipped = bytes.to_vec();
            flipped[cut] ^= 0x5a;
            if let Ok(b) = serde_json::from_slice::<AllocationBlock>(&flipped) {
                let _ = block::well_formed(&b, "10.244.3.0/30".parse().unwrap());
            }
            let _ = serde_json::from_slice::<Resource<IpPoolSpec>>(&flipped);
            let _ = serde_json::from_slice::<Resource<BgpPeerSpec>>(&flipped);
        }
    }
}
