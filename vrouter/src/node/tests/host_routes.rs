//! The node kernel's routes to its pods (issue 16): one per address of every veth
//! endpoint, whoever asked for it (the file at start, the API), gone with the endpoint,
//! and repaired at start (what an earlier run left for endpoints now gone removed).

use super::state::CONFIG;
use super::{node_on, node_with, state_dir, Machine};
use crate::config::EndpointKind;
use crate::node::endpoints::EndpointRequest;
use ipnet::IpNet;
use std::collections::BTreeSet;

fn route(interface: &str, prefix: &str) -> (String, IpNet) {
    (interface.to_string(), prefix.parse().unwrap())
}

fn routes(list: &[(&str, &str)]) -> BTreeSet<(String, IpNet)> {
    list.iter().map(|(i, p)| route(i, p)).collect()
}

#[test]
fn every_veth_endpoint_has_kernel_routes_to_its_addresses_until_it_goes() {
    let dir = state_dir();
    let (mut node, machine) = node_with(CONFIG, &dir);
    // The file's endpoints, at start.
    let file = [("cali-a", "10.244.1.2/32"), ("cali-b", "10.244.1.3/32")];
    assert_eq!(machine.borrow().routes, routes(&file));
    // One added through the API, both families (from IPAM).
    let ep = node
        .add_endpoint(EndpointRequest {
            name: "c".into(),
            kind: EndpointKind::Veth,
            interface: "cali-c".into(),
            ips: Vec::new(),
            mac: None,
            ipv6: true,
            labels: Default::default(),
            container_id: None,
            workload: None,
        })
        .unwrap();
    let (v4, v6) = (ep.v4.unwrap(), ep.v6.unwrap());
    let mut want = routes(&file);
    want.insert(route("cali-c", &format!("{v4}/32")));
    want.insert(route("cali-c", &format!("{v6}/128")));
    assert_eq!(machine.borrow().routes, want);
    // A tap is the pod's own interface: no host side to route to.
    node.add_endpoint(EndpointRequest {
        name: "vm".into(),
        kind: EndpointKind::Tap,
        interface: "vtap9".into(),
        ips: vec!["10.244.1.9/32".parse().unwrap()],
        mac: Some("52:54:00:00:00:09".into()),
        ipv6: false,
        labels: Default::default(),
        container_id: None,
        workload: None,
    })
    .unwrap();
    assert_eq!(machine.borrow().routes, want);
    // Removed with the endpoint.
    node.remove_endpoint("c").unwrap();
    assert_eq!(machine.borrow().routes, routes(&file));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_restart_replaces_its_endpoints_routes_and_removes_the_stale_ones() {
    let dir = state_dir();
    // An earlier run left: pod a's route (still an endpoint), one to a pod gone since,
    // and pod b's address on another interface (the veth was recreated).
    let left = routes(&[
        ("cali-a", "10.244.1.2/32"),
        ("cali-d", "10.244.1.7/32"),
        ("cali-c", "10.244.1.3/32"),
    ]);
    let machine = Machine {
        routes: left,
        ..Machine::default()
    };
    let (_node, machine) = node_on(CONFIG, &dir, machine);
    assert_eq!(
        machine.borrow().routes,
        routes(&[("cali-a", "10.244.1.2/32"), ("cali-b", "10.244.1.3/32")])
    );
    let _ = std::fs::remove_dir_all(dir);
}
