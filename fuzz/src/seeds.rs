//! The seed corpus, built from the project's own encoders and examples: frames a pod,
//! a tap and the network send; BGP messages our speaker writes; the shipped config and
//! CNI files; Calico's records as the datastore tests hold them; one API request of
//! each kind.

use crate::frames::*;
use control::api::pb;
use control::bgp::wire::{self, Family, Notification, PathAttrs};
use prost::Message;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

type Seeds = Vec<(&'static str, Vec<u8>)>;

fn pipeline() -> Seeds {
    const UP: u8 = 0;
    const POD: u8 = 1;
    const TAP: u8 = 2;
    const NAT: u8 = 4;
    const POLICY: u8 = 8;
    const ICMP: u8 = 16;
    const AGAIN: u8 = 32;
    const UNRESOLVED: u8 = 64;
    vec![
        ("pod-to-tap", burst(POD, &[pod_udp4(TAP4, 53, 64)])),
        (
            "pod-nat-world",
            burst(
                POD | NAT | AGAIN,
                &[pod_udp4(WORLD4, 53, 64), pod_tcp4(WORLD4, 443)],
            ),
        ),
        (
            "nat-reply",
            burst(UP | NAT, &[world_udp4(61000), world_udp4(63000)]),
        ),
        (
            "tap-replies",
            burst(
                TAP | POLICY | NAT | AGAIN,
                &[tap_udp4(POD4, 53), tap_udp4(WORLD4, 53)],
            ),
        ),
        (
            "policy",
            burst(
                POD | POLICY | NAT | AGAIN,
                &[
                    pod_tcp4(TAP4, 80),
                    pod_udp4(TAP4, 53, 64),
                    pod_ping4(REMOTE4),
                    pod_udp4([10, 244, 9, 1], 9, 64),
                ],
            ),
        ),
        ("tap-policy", burst(TAP | POLICY, &[tap_udp4(POD4, 53)])),
        (
            "overlay-out",
            burst(
                POD,
                &[pod_udp4(REMOTE4, 80, 64), pod_udp4([10, 244, 3, 9], 80, 64)],
            ),
        ),
        ("overlay-in", burst(UP | POLICY, &[vxlan_in(), ipip_in()])),
        (
            "arp-v6",
            burst(
                POD,
                &[
                    pod_arp(),
                    pod_udp6([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
                ],
            ),
        ),
        (
            "ttl-icmp",
            burst(
                POD | ICMP,
                &[pod_udp4(WORLD4, 53, 1), pod_udp4([10, 244, 1, 40], 53, 64)],
            ),
        ),
        (
            "unresolved",
            burst(
                POD | UNRESOLVED,
                &[
                    pod_udp4([10, 244, 1, 9], 53, 64),
                    pod_udp4([198, 51, 100, 1], 53, 64),
                ],
            ),
        ),
        (
            "big-df-tunnel",
            burst(
                POD | ICMP,
                &[{
                    let mut f = pod_udp4(REMOTE4, 80, 64);
                    f.resize(1514, 0);
                    let total = (1514 - 14) as u16;
                    f[16..18].copy_from_slice(&total.to_be_bytes());
                    f[20] = 0; // no DF: fragmented, then encapsulated
                    f[24..26].copy_from_slice(&[0, 0]);
                    let c = encap::rewrite::ipv4_checksum(&f[14..34]);
                    f[24..26].copy_from_slice(&c.to_be_bytes());
                    f
                }],
            ),
        ),
    ]
}

fn attrs() -> PathAttrs {
    PathAttrs {
        origin: 0,
        as_path: vec![65001, 65002],
        as_path_len: 2,
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
        med: Some(10),
        local_pref: Some(100),
        communities: vec![0xfde8_0001],
        ..PathAttrs::default()
    }
}

fn bgp_messages() -> Seeds {
    let v4: Vec<ipnet::IpNet> = vec![
        "10.244.2.0/26".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
    ];
    let v6: Vec<ipnet::IpNet> = vec!["fd00:20::/64".parse().unwrap()];
    let nh4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let nh6: IpAddr = "fd00::2".parse().unwrap();
    vec![
        ("open", crate::bgp::peer_open(65001)),
        ("keepalive", wire::keepalive()),
        (
            "notification",
            wire::notification(&Notification {
                code: 6,
                subcode: 2,
                data: b"shutdown".to_vec(),
            }),
        ),
        ("route-refresh", wire::route_refresh(Family::Ipv6)),
        (
            "update-v4",
            wire::announce(&v4, &attrs(), nh4, false).remove(0),
        ),
        (
            "update-v6",
            wire::announce(&v6, &attrs(), nh6, true).remove(0),
        ),
        ("withdraw", wire::withdraw(&v4).remove(0)),
        ("end-of-rib-v6", wire::end_of_rib(Family::Ipv6)),
    ]
}

fn bgp_session() -> Seeds {
    let v4: Vec<ipnet::IpNet> = (0..12)
        .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
        .collect();
    let nh4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut ebgp = attrs();
    ebgp.local_pref = None;
    let stream = |flags: u8, msgs: Vec<Vec<u8>>| {
        let mut s = vec![flags];
        for m in msgs {
            s.extend(m);
        }
        s
    };
    vec![
        (
            "ibgp-updates",
            stream(
                0x30,
                vec![
                    wire::announce(&v4[..3], &attrs(), nh4, true).remove(0),
                    wire::keepalive(),
                    wire::withdraw(&v4[..1]).remove(0),
                    wire::end_of_rib(Family::Ipv4),
                ],
            ),
        ),
        (
            "ebgp-limit",
            stream(
                0x03,
                vec![
                    wire::announce(&v4, &ebgp, nh4, false).remove(0),
                    wire::keepalive(),
                ],
            ),
        ),
        (
            "notification",
            stream(
                0xf0,
                vec![
                    wire::route_refresh(Family::Ipv4),
                    wire::notification(&Notification {
                        code: 6,
                        subcode: 4,
                        data: vec![],
                    }),
                ],
            ),
        ),
    ]
}

fn config() -> Seeds {
    vec![
        (
            "vrouter.toml",
            include_bytes!("../../configs/vrouter.toml").to_vec(),
        ),
        ("api.toml", crate::api::CONFIG.as_bytes().to_vec()),
        ("cluster.toml", crate::datastore::CONFIG.as_bytes().to_vec()),
        (
            "peers.toml",
            br#"node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.244.0.0/16"
block_size = 24
ipip_mode = "CrossSubnet"
nat_outgoing = true
node_selector = "zone == 'a'"
[node_labels]
zone = "a"
[conntrack]
max_flows = 1024
[[routes]]
dst = "192.0.2.0/24"
via = ["10.0.0.254", "10.0.0.253"]
[bgp]
asn = 64512
cluster_id = "1.1.1.1"
[[bgp.peers]]
address = "10.0.0.254"
asn = 65001
hold_time = 30
max_prefixes = 100
"#
            .to_vec(),
        ),
    ]
}

fn api_call(kind: u8, m: &impl Message) -> Vec<u8> {
    let b = m.encode_to_vec();
    let mut out = vec![kind];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend(b);
    out
}

fn api() -> Seeds {
    let ep = pb::Endpoint {
        name: "b".into(),
        kind: "veth".into(),
        interface: "cali-b".into(),
        ipv6: true,
        labels: [("app".to_string(), "db".to_string())].into(),
        ..Default::default()
    };
    let tap = pb::Endpoint {
        name: "vm".into(),
        kind: "tap".into(),
        interface: "tap1".into(),
        addresses: vec!["10.244.7.7".into()],
        mac: "52:54:00:12:34:56".into(),
        ..Default::default()
    };
    let route = pb::AddRouteRequest {
        prefix: "192.0.2.0/24".into(),
        via: vec!["10.0.0.254".into()],
        ..Default::default()
    };
    let pool = pb::Pool {
        cidr: "10.99.0.0/16".into(),
        block_size: 26,
        vxlan_mode: "Always".into(),
        ipip_mode: "Never".into(),
        nat_outgoing: true,
        ..Default::default()
    };
    let peer = pb::Peer {
        address: "10.0.0.9".into(),
        asn: 65009,
        hold_time: 30,
        ..Default::default()
    };
    let policy = pb::ApplyPoliciesRequest {
        file_name: "p.yaml".into(),
        text: crate::pipeline::POLICY.into(),
    };
    vec![
        (
            "status",
            [
                api_call(0, &pb::NodeStatusRequest {}),
                api_call(15, &pb::StatsRequest {}),
            ]
            .concat(),
        ),
        (
            "endpoints",
            [
                api_call(2, &ep),
                api_call(2, &tap),
                api_call(1, &pb::ListEndpointsRequest {}),
                api_call(3, &pb::RemoveEndpointRequest { name: "a".into() }),
            ]
            .concat(),
        ),
        (
            "ipam",
            [
                api_call(
                    4,
                    &pb::AllocateAddressesRequest {
                        handle: "k8s-pod-network.4f1c".into(),
                        ipv6: true,
                        lookup: false,
                    },
                ),
                api_call(
                    4,
                    &pb::AllocateAddressesRequest {
                        handle: "k8s-pod-network.4f1c".into(),
                        ipv6: false,
                        lookup: true,
                    },
                ),
                api_call(
                    5,
                    &pb::ReleaseAddressesRequest {
                        handle: "k8s-pod-network.4f1c".into(),
                    },
                ),
            ]
            .concat(),
        ),
        (
            "routes",
            [
                api_call(7, &route),
                api_call(
                    6,
                    &pb::ListRoutesRequest {
                        filter: "192.0.2.0/24".into(),
                        limit: 10,
                        detail: true,
                    },
                ),
                api_call(
                    8,
                    &pb::RemoveRouteRequest {
                        prefix: "192.0.2.0/24".into(),
                    },
                ),
            ]
            .concat(),
        ),
        (
            "pools",
            [
                api_call(9, &pool),
                api_call(10, &pb::ListPoolsRequest {}),
                api_call(
                    11,
                    &pb::RemovePoolRequest {
                        cidr: "10.99.0.0/16".into(),
                    },
                ),
            ]
            .concat(),
        ),
        (
            "peers",
            [
                api_call(13, &peer),
                api_call(12, &pb::ListPeersRequest {}),
                api_call(
                    14,
                    &pb::RemovePeerRequest {
                        address: "10.0.0.9".into(),
                    },
                ),
            ]
            .concat(),
        ),
        (
            "policies-flows",
            [
                api_call(20, &policy),
                api_call(21, &pb::ListPoliciesRequest {}),
                api_call(
                    22,
                    &pb::RemovePolicyRequest {
                        key: "shop/pod-in".into(),
                    },
                ),
                api_call(
                    17,
                    &pb::ListFlowsRequest {
                        filter: "proto=udp".into(),
                        limit: 5,
                    },
                ),
                api_call(18, &pb::FlushFlowsRequest { filter: "".into() }),
                api_call(19, &pb::ConntrackStatsRequest {}),
                api_call(16, &pb::ReloadRequest {}),
            ]
            .concat(),
        ),
    ]
}

fn cni() -> Seeds {
    const ADD: u8 = 0;
    const DEL: u8 = 1;
    const CHECK: u8 = 2;
    const GC: u8 = 3;
    const STATUS: u8 = 4;
    const VERSION: u8 = 5;
    const AS_IPAM: u8 = 0x80;
    let with = |sel: u8, json: &str| {
        let mut v = vec![sel];
        v.extend_from_slice(json.as_bytes());
        v
    };
    let conf = r#"{"cniVersion":"1.0.0","name":"vrouter","type":"vrouter-cni","vrouter_socket":"/run/vrouter/vrouter.sock","ipv6":false,"ipam":{"type":"vrouter-ipam"}}"#;
    let delegated = r#"{"cniVersion":"0.4.0","name":"vrouter","type":"vrouter-cni","ipam":{"type":"host-local","subnet":"10.66.0.0/24"},"args":{"cni":{"labels":[{"key":"app","value":"web"}]}}}"#;
    let check = r#"{"cniVersion":"1.1.0","name":"vrouter","type":"vrouter-cni","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"ee:ee:ee:ee:ee:ee","sandbox":"/proc/self/ns/net"}],"ips":[{"address":"10.65.0.1/32","gateway":"169.254.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}]}}"#;
    let old = r#"{"cniVersion":"0.3.1","name":"vrouter","type":"vrouter-cni","prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.65.0.1/32"}]}}"#;
    let gc = r#"{"cniVersion":"1.1.0","name":"vrouter","type":"vrouter-cni","cni.dev/valid-attachments":[{"containerID":"4f1c2d","ifname":"eth0"}]}"#;
    let ipam = r#"{"cniVersion":"1.0.0","name":"vrouter","type":"bridge","ipam":{"type":"vrouter-ipam","ipv6":true,"vrouter_socket":"/run/x.sock"}}"#;
    vec![
        ("add", with(ADD, conf)),
        ("add-delegated", with(ADD, delegated)),
        ("del", with(DEL, conf)),
        ("check", with(CHECK, check)),
        ("check-0.3.1", with(CHECK, old)),
        ("gc", with(GC, gc)),
        ("status", with(STATUS, conf)),
        ("version", with(VERSION, r#"{"cniVersion":"0.4.0"}"#)),
        ("ipam-add", with(ADD | AS_IPAM, ipam)),
        ("ipam-check", with(CHECK | AS_IPAM, ipam)),
        (
            "conflist",
            with(ADD, include_str!("../../configs/10-vrouter.conflist")),
        ),
    ]
}

// Calico's records, as the datastore's fixtures hold them.
const IPPOOL: &str = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}"#;
const NODE: &str = r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"n2","labels":{"kubernetes.io/hostname":"n2"}},"spec":{"bgp":{"ipv4Address":"10.0.0.2/24","ipv4IPIPTunnelAddr":"10.244.3.1"},"ipv4VXLANTunnelAddr":"10.244.3.0","vxlanTunnelMACAddr":"66:1a:2b:3c:4d:5e","addresses":[{"address":"10.0.0.2/24","type":"CalicoNodeIP"}]},"status":{"podCIDRs":["10.244.3.0/24"]}}"#;
const SELF: &str = r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"n1","labels":{"zone":"a"}},"spec":{"bgp":{"ipv4Address":"10.0.0.1/24","asNumber":"64512"}}}"#;
const PEER: &str = r#"{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"rr-global"},"spec":{"peerIP":"10.0.0.250","asNumber":"64512","nodeSelector":"all()","password":{"secretKeyRef":{"name":"bgp-secrets","key":"rr"}}}}"#;
const BGPCONF: &str = r#"{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":false,"asNumber":64513}}"#;
const BLOCK: &str = r#"{"cidr":"10.244.3.0/30","affinity":"host:kernel-1","allocations":[0,1,null,2],"unallocated":[2],"attributes":[{"handle_id":"vxlan-tunnel-addr-kernel-1","secondary":{"node":"kernel-1","type":"vxlanTunnelAddress"}},{"handle_id":"k8s-pod-network.4f1c","secondary":{"namespace":"default","node":"kernel-1","pod":"web-0"}},{"handle_id":"k8s-pod-network.9a2b","secondary":{"namespace":"default","node":"kernel-2","pod":"db-0"}}],"sequenceNumber":1764496800000000003,"sequenceNumberForAllocation":{"0":1764496800000000000,"1":1764496800000000001,"3":1764496800000000002},"deleted":false}"#;
const BLOCK6: &str = r#"{"cidr":"fd00:10::/126","affinity":"host:n1","allocations":[null,0,null,null],"unallocated":[0,2,3],"attributes":[{"handle_id":"h","secondary":null}],"sequenceNumber":7}"#;
const WEP: &str = r#"{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"n2-k8s-db--0-eth0","namespace":"shop","labels":{"app":"db","projectcalico.org/namespace":"shop"}},"spec":{"orchestrator":"k8s","node":"n2","pod":"db-0","endpoint":"eth0","interfaceName":"cali12345","ipNetworks":["10.244.3.5/32"],"profiles":["kns.shop"]}}"#;
const PROFILE: &str = r#"{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"kns.shop"},"spec":{"labelsToApply":{"pcns.team":"red","pcns.projectcalico.org/name":"shop"}}}"#;
const NETPOL: &str = r#"{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"db","namespace":"shop"},"spec":{"order":100,"selector":"app == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"app == 'web'","namespaceSelector":"team == 'red'"},"destination":{"ports":[5432]}}]}}"#;
const GNP: &str = r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-world"},"spec":{"selector":"all()","types":["Egress"],"egress":[{"action":"Deny","destination":{"nets":["0.0.0.0/0"],"notNets":["10.0.0.0/8"]}},{"action":"Allow"}]}}"#;
const AFFINITY: &str = r#"{"state":"confirmed","deleted":false}"#;

fn datastore() -> Seeds {
    let rec = |kind: usize, json: &str| {
        let mut v = vec![kind as u8];
        v.extend_from_slice(&(json.len() as u16).to_be_bytes());
        v.extend_from_slice(json.as_bytes());
        v
    };
    vec![
        (
            "node-pool-affinity",
            [rec(0, SELF), rec(0, NODE), rec(1, IPPOOL), rec(8, AFFINITY)].concat(),
        ),
        (
            "peer-bgpconf",
            [rec(0, SELF), rec(2, PEER), rec(3, BGPCONF)].concat(),
        ),
        (
            "policy",
            [rec(4, WEP), rec(5, PROFILE), rec(6, NETPOL), rec(7, GNP)].concat(),
        ),
        ("blocks", [rec(9, BLOCK), rec(9, BLOCK6)].concat()),
    ]
}

/// Write every target's seeds under `dir/<target>/`. Returns how many files.
pub fn write(dir: &Path) -> std::io::Result<usize> {
    let all: [(&str, Seeds); 7] = [
        ("pipeline", pipeline()),
        ("bgp_message", bgp_messages()),
        ("bgp_session", bgp_session()),
        ("config", config()),
        ("api", api()),
        ("cni_stdin", cni()),
        ("datastore_json", datastore()),
    ];
    let mut n = 0;
    for (target, seeds) in all {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in seeds {
            std::fs::write(d.join(name), bytes)?;
            n += 1;
        }
    }
    Ok(n)
}
