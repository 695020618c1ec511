//! Calico's IPPool fields on a running node: nodeSelector against the node's labels,
//! assignmentMode Manual, allowedUses without Workload, disableBGPExport.

use super::{node_with, state_dir};
use crate::config::EndpointKind;
use crate::config::{AssignmentMode, Pool};
use crate::node::bgp_config::speaker_config;
use crate::node::endpoints::EndpointRequest;
use crate::node::error::NodeError;
use crate::node::NodeState;
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn node(pools: &str) -> NodeState {
    let text = format!(
        "node_name = \"n1\"\nnode_ips = [\"10.0.0.1/24\"]\n[node_labels]\nzone = \"eu\"\n{pools}\n[workers]\nendpoint_slots = 4\n[bgp]\n"
    );
    node_with(&text, &state_dir()).0
}

fn ask(name: &str, interface: &str, ips: &[&str]) -> EndpointRequest {
    EndpointRequest {
        name: name.into(),
        kind: EndpointKind::Veth,
        interface: interface.into(),
        ips: ips.iter().map(|i| net(i)).collect(),
        mac: None,
        ipv6: false,
        labels: Default::default(),
        container_id: None,
        workload: None,
    }
}

fn allocated(node: &mut NodeState, name: &str, interface: &str) -> Result<IpNet, NodeError> {
    node.add_endpoint(ask(name, interface, &[]))
        .map(|ep| IpNet::from(std::net::IpAddr::V4(ep.v4.unwrap())))
}

/// No address for an endpoint asking for none: the pools are exhausted for it.
fn refused(node: &mut NodeState, name: &str, interface: &str) -> bool {
    matches!(
        allocated(node, name, interface),
        Err(NodeError::Exhausted(_))
    )
}

#[test]
fn a_pool_selecting_no_node_hands_out_nothing() {
    let mut n = node("[[pools]]\ncidr = \"10.244.0.0/16\"\nnode_selector = \"!all()\"\n");
    assert!(refused(&mut n, "a", "cali-a"));
    assert!(n.ipam.blocks().is_empty(), "no block claimed");
    // Kept, listed as it is.
    let listed = n.pool_pb(&n.config.pools[0]);
    assert_eq!(listed.node_selector, "!all()");
}

#[test]
fn a_selector_matching_the_nodes_labels_hands_out_addresses() {
    let mut n = node("[[pools]]\ncidr = \"10.244.0.0/16\"\nnode_selector = \"zone == 'us'\"\n");
    assert!(refused(&mut n, "a", "cali-a"));
    // node_labels, and Calico's implicit projectcalico.org/name.
    let mut pool = Pool {
        node_selector: Some("zone == 'eu' && projectcalico.org/name == 'n1'".into()),
        ..Pool::new(net("10.245.0.0/16"))
    };
    n.apply_pool(pool.clone()).unwrap();
    let a = allocated(&mut n, "a", "cali-a").unwrap();
    assert!(net("10.245.0.0/16").contains(&a), "{a}");
    // Re-applied so that it selects another node only: nothing more from it here, not
    // even from the block already held.
    pool.node_selector = Some("projectcalico.org/name == 'n2'".into());
    n.apply_pool(pool).unwrap();
    assert!(refused(&mut n, "b", "cali-b"));
    assert_eq!(
        n.ipam.addresses_of("a"),
        vec![a.addr()],
        "what was given stays"
    );
}

#[test]
fn manual_pools_give_only_addresses_asked_for() {
    let mut n = node(
        "[[pools]]\ncidr = \"10.250.0.0/16\"\nassignment_mode = \"Manual\"\n\
         [[pools]]\ncidr = \"10.244.0.0/16\"\n",
    );
    assert_eq!(n.config.pools[0].assignment_mode, AssignmentMode::Manual);
    let a = allocated(&mut n, "a", "cali-a").unwrap();
    assert!(
        net("10.244.0.0/16").contains(&a),
        "skips the Manual pool: {a}"
    );
    let ep = n
        .add_endpoint(ask("b", "cali-b", &["10.250.0.9/32"]))
        .unwrap();
    assert_eq!(
        ep.v4,
        Some("10.250.0.9".parse().unwrap()),
        "asked for: given"
    );
    assert_eq!(n.pool_pb(&n.config.pools[0]).assignment_mode, "Manual");
}

#[test]
fn a_pool_without_workload_gives_endpoints_nothing() {
    let mut n = node("[[pools]]\ncidr = \"10.244.0.0/16\"\nallowed_uses = [\"Tunnel\"]\n");
    assert!(refused(&mut n, "a", "cali-a"));
    let e = n
        .add_endpoint(ask("b", "cali-b", &["10.244.0.9/32"]))
        .unwrap_err();
    assert!(
        matches!(&e, NodeError::Invalid(m) if m.contains("allowed_uses has no Workload")),
        "{e:?}"
    );
    assert!(n.ipam.addresses_of("b").is_empty(), "nothing left taken");
}

#[test]
fn blocks_of_a_pool_with_disable_bgp_export_are_routed_not_announced() {
    let mut n = node(
        "[[pools]]\ncidr = \"10.244.0.0/16\"\n\
         [[pools]]\ncidr = \"10.245.0.0/16\"\ndisable_bgp_export = true\n\
         [[endpoints]]\nname = \"a\"\nkind = \"veth\"\ninterface = \"cali-a\"\nips = [\"10.244.1.2/32\", \"10.245.1.2/32\"]\n",
    );
    let (shown, hidden) = (net("10.244.1.0/26"), net("10.245.1.0/26"));
    assert_eq!(n.own_blocks, vec![shown, hidden]);
    assert_eq!(n.advertised, vec![shown]);
    let bh = n.blackhole.unwrap();
    assert_eq!(n.tables.get(hidden), Some(bh), "still blackholed here");
    let s = speaker_config(&n.config, &n.own_blocks).unwrap();
    assert_eq!(s.advertise, vec![shown]);
    // An API pool toggled: what is announced follows.
    let ep = n.add_endpoint(ask("b", "cali-b", &["10.246.0.5/32"]));
    assert!(ep.is_err(), "10.246/16 is in no pool yet");
    n.apply_pool(Pool {
        disable_bgp_export: true,
        ..Pool::new(net("10.246.0.0/16"))
    })
    .unwrap();
    n.add_endpoint(ask("b", "cali-b", &["10.246.0.5/32"]))
        .unwrap();
    let third = net("10.246.0.0/26");
    assert!(n.own_blocks.contains(&third) && !n.advertised.contains(&third));
    n.apply_pool(Pool::new(net("10.246.0.0/16"))).unwrap();
    assert_eq!(n.advertised, vec![shown, third]);
    assert!(n.pool_pb(&n.config.pools[1]).disable_bgp_export);
}

#[test]
fn a_file_pool_applied_back_unchanged_is_accepted_changed_refused() {
    let mut n = node("[[pools]]\ncidr = \"10.244.0.0/16\"\n");
    // As `pool list -o yaml` prints it: Calico's defaults spelt out.
    let listed = Pool {
        block_size: Some(26),
        node_selector: Some("all()".into()),
        allowed_uses: Some(vec!["Workload".into(), "Tunnel".into()]),
        ..Pool::new(net("10.244.0.0/16"))
    };
    n.apply_pool(listed.clone()).unwrap();
    assert!(n.origins.pools.is_empty(), "still the file's");
    assert_eq!(n.config.pools[0], Pool::new(net("10.244.0.0/16")));
    let changed = Pool {
        disable_bgp_export: true,
        ..listed
    };
    assert!(matches!(
        n.apply_pool(changed),
        Err(NodeError::Precondition(_))
    ));
}
