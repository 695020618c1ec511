//! One address, one owner: an address an endpoint holds is refused to any other at
//! start (api.json against the file), on reload and through the API, with nothing
//! changed; the holder keeps every address it has in IPAM, its IPv6 one too.
//!
//! Before, start-up's IPAM pass took a clashing address back by releasing its holder
//! whole (`release(owner)`), then gave the newcomer that one address: the holder's
//! other addresses (its IPv6 one) were gone from `ipam.json` though it still used them.

use super::{config, node_with, state_dir};
use crate::config::{Endpoint, EndpointKind};
use crate::node::endpoints::EndpointRequest;
use crate::node::error::NodeError;
use crate::node::persist::{effective_config, ipam_pools, open_ipam, ApiState};
use control::ipam::Ipam;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;

/// The state tests' node, a with an IPv6 address too.
fn text() -> String {
    super::state::CONFIG.replace(
        "ips = [\"10.244.1.2/32\"]",
        "ips = [\"10.244.1.2/32\", \"fd10::2/128\"]",
    )
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn endpoint(name: &str, interface: &str, ips: &[&str]) -> Endpoint {
    Endpoint {
        name: name.into(),
        kind: EndpointKind::Veth,
        interface: interface.into(),
        ips: ips.iter().map(|i| net(i)).collect(),
        mac: None,
        labels: Default::default(),
        container_id: None,
        workload: None,
    }
}

/// IPAM as `ipam.json` has it now.
fn ipam_on_disk(text: &str, dir: &Path) -> Ipam {
    let c = config(text, dir);
    Ipam::open(ipam_pools(&c), Some(dir.join("ipam.json"))).unwrap()
}

fn a_has_both(ipam: &Ipam) {
    let mut held = ipam.addresses_of("a");
    held.sort();
    assert_eq!(held, [ip("10.244.1.2"), ip("fd10::2")], "a keeps v4 and v6");
}

#[test]
fn start_refuses_an_api_endpoint_on_a_file_address() {
    let dir = state_dir();
    drop(node_with(&text(), &dir));
    a_has_both(&ipam_on_disk(&text(), &dir));
    // api.json (what the API added before) has c on a's address.
    let api = ApiState {
        endpoints: vec![endpoint("c", "cali-c", &["10.244.1.2/32"])],
        ..Default::default()
    };
    api.save(&dir).unwrap();
    let file = config(&text(), &dir);
    let err = effective_config(&file).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}/api.json with the file: endpoint c: ips: 10.244.1.2 is already endpoint a's",
            dir.display()
        )
    );
    // IPAM is never reached; were it handed the clash anyway, it refuses too and
    // leaves its file as it was (it used to release a whole and give c the address).
    let mut merged = file.clone();
    api.merge_into(&mut merged);
    let err = open_ipam(&merged).err().unwrap().to_string();
    assert!(
        err.contains("10.244.1.2 is already allocated to a"),
        "{err}"
    );
    let ipam = ipam_on_disk(&text(), &dir);
    a_has_both(&ipam);
    assert!(ipam.addresses_of("c").is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_address_moved_between_endpoints_while_stopped_costs_nothing_else() {
    let dir = state_dir();
    drop(node_with(&text(), &dir));
    // Edited while stopped: a gives 10.244.1.2 to b and takes 10.244.1.7.
    let text = text()
        .replace(
            "\"10.244.1.2/32\", \"fd10::2",
            "\"10.244.1.7/32\", \"fd10::2",
        )
        .replace("[\"10.244.1.3/32\"]", "[\"10.244.1.2/32\"]");
    let ipam = open_ipam(&config(&text, &dir)).unwrap();
    let mut a = ipam.addresses_of("a");
    a.sort();
    assert_eq!(a, [ip("10.244.1.7"), ip("fd10::2")], "a lost nothing");
    assert_eq!(ipam.addresses_of("b"), [ip("10.244.1.2")]);
    assert_eq!(
        ipam.owner(ip("10.244.1.3")),
        None,
        "b's old address is free"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_api_refuses_a_held_address_and_touches_nothing() {
    let dir = state_dir();
    let (mut node, machine) = node_with(&text(), &dir);
    let open = machine.borrow().open.clone();
    let slots = node.ports.free_slots.len();
    let blocks = node.ipam.blocks();
    let request = |ips: &[&str]| EndpointRequest {
        name: "c".into(),
        kind: EndpointKind::Veth,
        interface: "cali-c".into(),
        ips: ips.iter().map(|i| net(i)).collect(),
        mac: None,
        ipv6: false,
        labels: Default::default(),
        container_id: None,
        workload: None,
    };
    // A free address first, then a's: neither is taken.
    let err = node
        .add_endpoint(request(&["10.244.1.20/32", "10.244.1.2/32"]))
        .unwrap_err();
    assert_eq!(
        err,
        NodeError::AlreadyExists("endpoint c: ips: 10.244.1.2 is already endpoint a's".into())
    );
    // Its IPv6 address, and the node's own.
    let err = node.add_endpoint(request(&["fd10::2/128"])).unwrap_err();
    assert_eq!(
        err,
        NodeError::AlreadyExists("endpoint c: ips: fd10::2 is already endpoint a's".into())
    );
    let err = node.add_endpoint(request(&["10.0.0.1/32"])).unwrap_err();
    assert!(
        matches!(&err, NodeError::Invalid(m) if m.contains("node's own address")),
        "{err}"
    );
    assert!(node.endpoint("c").is_none());
    assert!(!node.config.endpoints.iter().any(|e| e.name == "c"));
    assert_eq!(machine.borrow().open, open, "no port opened");
    assert_eq!(node.ports.free_slots.len(), slots, "no slot used");
    assert_eq!(node.ipam.blocks(), blocks);
    assert_eq!(node.ipam.owner(ip("10.244.1.20")), None);
    assert!(node.ipam.addresses_of("c").is_empty());
    a_has_both(&node.ipam);
    a_has_both(&ipam_on_disk(&text(), &dir));
    assert_eq!(
        node.tables.get(net("10.244.1.2/32")),
        Some(node.endpoint("a").unwrap().nh)
    );
    // A free address is still fine.
    node.add_endpoint(request(&["10.244.1.20/32"])).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_reload_that_would_share_an_address_is_refused_whole() {
    let dir = state_dir();
    let (mut node, machine) = node_with(&text(), &dir);
    let mut c = EndpointRequest {
        name: "c".into(),
        kind: EndpointKind::Veth,
        interface: "cali-c".into(),
        ips: vec![net("10.244.1.9/32")],
        mac: None,
        ipv6: false,
        labels: Default::default(),
        container_id: None,
        workload: None,
    };
    node.add_endpoint(c.clone()).unwrap();
    let before = node.config.clone();
    let open = machine.borrow().open.clone();
    // The new file drops its route (a change that must not happen) and gives d b's
    // address: the file clashes with itself.
    let mut file = config(
        &text().replace(
            "[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\n",
            "",
        ),
        &dir,
    );
    file.endpoints
        .push(endpoint("d", "cali-d", &["10.244.1.3/32"]));
    let err = node.apply_file(file.clone()).unwrap_err();
    assert_eq!(
        err,
        NodeError::Invalid(
            "reload refused, nothing changed: endpoint d: ips: 10.244.1.3 is already endpoint b's"
                .into()
        )
    );
    // d on the address the API gave c.
    file.endpoints.last_mut().unwrap().ips = vec![net("10.244.1.9/32")];
    let err = node.apply_file(file).unwrap_err();
    assert_eq!(
        err.message(),
        "reload refused, nothing changed: endpoint d: ips: 10.244.1.9 is already endpoint c's (added through the API)"
    );
    assert_eq!(node.config, before, "nothing changed");
    assert_eq!(machine.borrow().open, open);
    assert!(node.endpoint("d").is_none());
    assert_eq!(node.ipam.owner(ip("10.244.1.9")), Some("c"));
    a_has_both(&node.ipam);
    // Moving an address between the file's endpoints in one reload is no clash.
    let moved = text()
        .replace(
            "\"10.244.1.2/32\", \"fd10::2",
            "\"10.244.1.7/32\", \"fd10::2",
        )
        .replace("[\"10.244.1.3/32\"]", "[\"10.244.1.2/32\"]");
    node.apply_file(config(&moved, &dir)).unwrap();
    assert_eq!(node.ipam.owner(ip("10.244.1.2")), Some("b"));
    // And the API still refuses what the file now holds.
    c.name = "e".into();
    c.interface = "cali-d".into();
    c.ips = vec![net("10.244.1.7/32")];
    assert!(matches!(
        node.add_endpoint(c),
        Err(NodeError::AlreadyExists(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}
