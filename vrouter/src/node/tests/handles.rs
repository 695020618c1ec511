//! Addresses held by an IPAM handle (vrouter-ipam): idempotent, distinct from the
//! endpoints', kept across a restart (which frees what no endpoint holds), released once.

use super::state::CONFIG;
use super::{node_with, state_dir};
use crate::node::error::NodeError;

#[test]
fn a_handles_addresses_are_held_until_released_even_across_a_restart() {
    let dir = state_dir();
    let (mut node, _machine) = node_with(CONFIG, &dir);
    let got = node.allocate_for_handle("net.c1", true).unwrap();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ipv4() && got[1].is_ipv6());
    for a in &got {
        assert!(
            !["10.244.1.2", "10.244.1.3"].contains(&a.to_string().as_str()),
            "{a} is an endpoint's"
        );
    }
    assert_eq!(
        node.allocate_for_handle("net.c1", true).unwrap(),
        got,
        "idempotent"
    );
    let other = node.allocate_for_handle("net.c2", false).unwrap();
    assert!(!got.contains(&other[0]));
    assert!(matches!(
        node.allocate_for_handle("", false),
        Err(NodeError::Invalid(_))
    ));
    drop(node);
    // A restart keeps them (what no endpoint holds is otherwise freed at start).
    let (mut node, _machine) = node_with(CONFIG, &dir);
    assert_eq!(node.handle_addresses("net.c1").unwrap(), got);
    assert_eq!(node.release_handle("net.c1").unwrap(), got);
    assert!(node.release_handle("net.c1").unwrap().is_empty(), "once");
    assert!(node.handle_addresses("net.c1").unwrap().is_empty());
    assert_eq!(node.handle_addresses("net.c2").unwrap(), other);
}

#[test]
fn no_endpoint_may_take_a_handles_owner_name() {
    let text = CONFIG.replace(r#"name = "a""#, r#"name = "ipam:net.c1""#);
    let c: crate::config::Config = toml::from_str(&text).expect("parses");
    let e = c.validate().expect_err("refused");
    assert!(e.0.contains("ipam:"), "{e:?}");
}
