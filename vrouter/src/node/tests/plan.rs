//! The start-up plan and the next hops it makes.

use super::*;
use crate::burst::DropReason;
use crate::config::Config;
use crate::counters::Counters;
use crate::nexthop::{NextHopTable, PortId};
use crate::node::nexthops::Gateway;
use crate::node::plan::Plan;
use crate::node::stats::stats_json;
use crate::pipeline::PortKind;
use crate::tunnel::Encap;
use encap::vxlan;
use std::net::IpAddr;

pub(super) const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
queues = [0, 1]
[[pools]]
cidr = "10.244.0.0/16"
[[pools]]
cidr = "fd10::/48"
[workers]
count = 2
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32", "fd10::2/128"]
[[endpoints]]
name = "b"
kind = "veth"
interface = "cali-b"
ips = ["10.244.1.3/32"]
[[endpoints]]
name = "vm"
kind = "tap"
interface = "tap9"
ips = ["10.244.1.4/32"]
mac = "52:54:00:00:00:09"
[[routes]]
dst = "0.0.0.0/0"
via = "10.0.0.254"
[[routes]]
dst = "172.16.0.0/12"
via = "10.0.0.254"
[[routes]]
dst = "::/0"
via = "fd00::fe"
"#;

#[test]
fn the_plan_numbers_ports_next_hops_and_routes() {
    let text = CONFIG.replace(
        "node_ips = [\"10.0.0.1/24\"]",
        "node_ips = [\"10.0.0.1/24\", \"fd00::1/64\"]",
    );
    let config = Config::parse(&text).unwrap();
    let plan = Plan::new(&config, &info).unwrap();
    // A slot per endpoint of the file, then the spare ones.
    let slots = 3 + config.workers.endpoint_slots;
    assert_eq!(plan.ports.names.len(), 1 + slots);
    assert_eq!(plan.ports.names[0], "eth0");
    assert!(plan.ports.names[1..].iter().all(String::is_empty));
    assert_eq!(plan.ports.free_slots.len(), slots);
    assert_eq!(plan.ports.ports[0].mtu, 9000);
    assert_eq!(plan.ports.ports[0].kind, PortKind::Uplink);
    assert_eq!(plan.frame_mtu, 9000, "frames carry the largest MTU");
    assert_eq!(plan.alloc.count as usize, slots, "a next hop per slot");
}

#[test]
fn static_routes_share_their_gateways() {
    let text = CONFIG.replace(
        "node_ips = [\"10.0.0.1/24\"]",
        "node_ips = [\"10.0.0.1/24\", \"fd00::1/64\"]",
    );
    let dir = state_dir();
    let (node, _machine) = node_with(&text, &dir);
    // Two IPv4 routes share one gateway next hop; IPv6 has its own.
    let first = (3 + node.config.workers.endpoint_slots) as u32;
    assert_eq!(
        node.alloc.gateways,
        [
            Gateway {
                nh: first,
                port: PortId(0),
                ifindex: 7,
                via: "10.0.0.254".parse().unwrap()
            },
            Gateway {
                nh: first + 1,
                port: PortId(0),
                ifindex: 7,
                via: "fd00::fe".parse().unwrap()
            },
        ]
    );
    assert_eq!(node.alloc.count, first + 2);
    for (dst, nh) in [
        ("0.0.0.0/0", first),
        ("172.16.0.0/12", first),
        ("::/0", first + 1),
    ] {
        assert_eq!(node.tables.get(dst.parse().unwrap()), Some(nh), "{dst}");
        assert_eq!(node.source_of(dst.parse().unwrap(), nh), "static");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_files_endpoints_take_the_first_slots_in_order() {
    let dir = state_dir();
    let (node, machine) = node_with(CONFIG, &dir);
    assert_eq!(node.ports.names[..4], ["eth0", "cali-a", "cali-b", "tap9"]);
    assert_eq!(
        node.ports
            .endpoints
            .iter()
            .map(|e| (e.port.0, e.nh, e.worker))
            .collect::<Vec<_>>(),
        [(1, 0, 0), (2, 1, 1), (3, 2, 0)],
        "one next hop per pod, pods round robin over workers"
    );
    assert_eq!(
        machine.borrow().ports[&3].mtu,
        1500,
        "a tap that does not exist yet"
    );
    let vm = node.endpoint("vm").unwrap();
    assert_eq!(vm.mac, Some([0x52, 0x54, 0, 0, 0, 9]));
    assert_eq!(
        node.tables.nexthops.get(vm.nh),
        Some(crate::nexthop::Adjacency::Forward {
            port: vm.port,
            mac: [0x52, 0x54, 0, 0, 0, 9]
        }),
        "a configured MAC needs no asking"
    );
    assert_eq!(
        node.endpoint("a").unwrap().v6,
        Some("fd10::2".parse().unwrap())
    );
    for (ip, nh) in [
        ("10.244.1.2/32", 0),
        ("10.244.1.3/32", 1),
        ("10.244.1.4/32", 2),
    ] {
        assert_eq!(node.tables.get(ip.parse().unwrap()), Some(nh));
    }
    assert_eq!(
        node.ports.free_slots.len(),
        node.config.workers.endpoint_slots
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_veth_is_an_error_naming_it() {
    let text = CONFIG.replace("cali-b", "cali-x");
    let e = Plan::new(&Config::parse(&text).unwrap(), &info).unwrap_err();
    assert!(e.to_string().contains("cali-x"), "{e}");
}

#[test]
fn stats_json_has_the_counters_drops_and_backend() {
    let dir = state_dir();
    let (node, _machine) = node_with(CONFIG, &dir);
    let counters = Counters::new(2);
    let mut t = crate::counters::Tally {
        rx: 5,
        tx: 4,
        ..Default::default()
    };
    t.drop(DropReason::Spoofed);
    counters.publish(1, &t);
    counters.publish_backend(0, [0, 0, 0, 0, 0, 3, 0, 0, 0]);
    let nh = NextHopTable::new(8);
    let j = stats_json(&counters, &node.ports.endpoints, &nh);
    assert_eq!((j["rx"].as_u64(), j["tx"].as_u64()), (Some(5), Some(4)));
    assert_eq!(j["drops"]["spoofed"], 1);
    assert_eq!(j["backend"]["mailbox_delivered"], 3);
    assert_eq!(j["endpoints"][0]["resolved"], false);
    assert_eq!(j["endpoints"][2]["name"], "vm");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pool_modes_decide_the_encapsulation_of_remote_blocks() {
    let dir = state_dir();
    let (node, _machine) = node_with(
        r#"
node_name = "node-a"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
[[pools]]
cidr = "10.244.0.0/16"
vxlan_mode = "Always"
[[pools]]
cidr = "10.245.0.0/16"
ipip_mode = "CrossSubnet"
[[pools]]
cidr = "10.246.0.0/16"
[[nodes]]
name = "node-b"
ips = ["10.0.0.2/24"]
[[nodes]]
name = "node-c"
ips = ["10.1.0.3/24"]
vtep_mac = "66:00:00:00:00:0c"
[[routes]]
dst = "10.1.0.0/16"
via = "10.0.0.254"
[[routes]]
dst = "0.0.0.0/0"
via = ["10.0.0.253", "10.0.0.254"]
[[routes]]
dst = "10.244.2.0/26"
node = "node-b"
[[routes]]
dst = "10.244.3.0/26"
node = "node-c"
[[routes]]
dst = "10.245.2.0/26"
node = "node-b"
[[routes]]
dst = "10.245.3.0/26"
node = "node-c"
[[routes]]
dst = "10.246.2.0/26"
node = "node-b"
"#,
        &dir,
    );
    let gw = |ip: &str| {
        node.alloc
            .gateways
            .iter()
            .find(|g| g.via == ip.parse::<IpAddr>().unwrap())
            .unwrap()
            .nh
    };
    let (router, b) = (gw("10.0.0.254"), gw("10.0.0.2"));
    assert!(
        node.alloc
            .gateways
            .iter()
            .all(|g| g.via != "10.1.0.3".parse::<IpAddr>().unwrap()),
        "node C is reached through the router"
    );
    let route = |dst: &str| node.tables.get(dst.parse().unwrap()).unwrap();
    let tunnel = |nh: u32| {
        let id = node
            .alloc
            .tunnel_nexthops
            .iter()
            .find(|(n, _)| *n == nh)
            .map(|p| p.1)?;
        Some(node.alloc.tunnels[id as usize])
    };
    // VXLAN Always: both nodes, node C's VTEP MAC as configured, underlay via router.
    let tb = tunnel(route("10.244.2.0/26")).unwrap();
    let Encap::Vxlan(v) = tb.encap else { panic!() };
    assert_eq!(
        (v.vni, v.remote_vtep_mac, v.local_vtep_mac),
        (4096, vxlan::vtep_mac("node-b"), vxlan::vtep_mac("node-a"))
    );
    assert_eq!(tb.underlay_nh, b);
    let tc = tunnel(route("10.244.3.0/26")).unwrap();
    let Encap::Vxlan(v) = tc.encap else { panic!() };
    assert_eq!(v.remote_vtep_mac, [0x66, 0, 0, 0, 0, 0x0c]);
    assert_eq!(tc.underlay_nh, router);
    // IPIP CrossSubnet: node B (same subnet) plain, node C (other subnet) tunnelled.
    assert_eq!(route("10.245.2.0/26"), b);
    let Encap::Ipip(_) = tunnel(route("10.245.3.0/26")).unwrap().encap else {
        panic!()
    };
    // Never: plain routing to the node.
    assert_eq!(route("10.246.2.0/26"), b);
    assert_eq!(node.alloc.tunnels.len(), 3);
    // ECMP: the default route is a group of both routers' next hops.
    let (nh, id) = node.alloc.group_nexthops[0];
    assert_eq!(route("0.0.0.0/0"), nh);
    assert_eq!(
        node.alloc.groups[id as usize],
        vec![gw("10.0.0.253"), router]
    );
    assert_eq!(node.overlay.local_v4, vec![0x0a00_0001]);
    assert_eq!(node.overlay.pools_v4.len(), 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_tables_have_room_for_every_static_route_of_the_file() {
    // More routes to nodes (each its own VXLAN tunnel) than the room kept for routes
    // added while running: the start still installs them all.
    let mut text = String::from(
        "node_name = \"n1\"\nnode_ips = [\"10.0.0.1/16\"]\n[[uplinks]]\nname = \"eth0\"\n\
         [[pools]]\ncidr = \"10.244.0.0/14\"\nvxlan_mode = \"Always\"\n",
    );
    let nodes = 300;
    for i in 0..nodes {
        text += &format!(
            "[[nodes]]\nname = \"n{i}x\"\nips = [\"10.0.{}.{}/16\"]\n",
            1 + i / 200,
            1 + i % 200
        );
        text += &format!(
            "[[routes]]\ndst = \"10.{}.{}.0/26\"\nnode = \"n{i}x\"\n",
            244 + i / 256,
            i % 256
        );
    }
    let dir = state_dir();
    let (node, _machine) = node_with(&text, &dir);
    assert_eq!(node.alloc.tunnels.len(), nodes);
    assert_eq!(node.tables.len(), nodes);
    let _ = std::fs::remove_dir_all(dir);
}
