//! Policies on the node: a set is built and published when policies or endpoints
//! change (not when nothing did), a new endpoint's policies are in force before its
//! port opens, and labels and namespaces reach the compiled set.

use super::state::{request, CONFIG};
use super::{node_with, state_dir};
use crate::config::WorkloadIdentity;
use crate::node::endpoints::EndpointRequest;
use control::api::pb;

const DENY_SHOP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"#;

fn web(name: &str, interface: &str) -> EndpointRequest {
    let mut r = request(name, interface);
    r.ipv6 = false;
    r.labels = [("app".to_string(), "web".to_string())].into();
    r.workload = Some(WorkloadIdentity {
        orchestrator: "k8s".into(),
        namespace: "shop".into(),
        pod: name.into(),
        endpoint: "eth0".into(),
        profiles: vec!["kns.shop".into()],
    });
    r
}

#[test]
fn a_new_endpoints_policies_are_in_force_before_its_port_opens() {
    let dir = state_dir();
    let (mut node, machine) = node_with(CONFIG, &dir);
    let apply = pb::ApplyPoliciesRequest {
        file_name: "deny.yaml".into(),
        text: DENY_SHOP.into(),
    };
    node.apply_policies(apply.clone()).unwrap();
    let published = machine.borrow().policy_sets.len();
    // No endpoint of shop yet: a set, but nothing to check.
    assert!(!machine.borrow().policy_sets.last().unwrap().active());
    // The same policies again: nothing new to publish.
    node.apply_policies(apply).unwrap();
    assert_eq!(machine.borrow().policy_sets.len(), published);

    let ep = node.add_endpoint(web("shop/web-0", "cali-c")).unwrap();
    let m = machine.borrow();
    let at_open = m.sets_at_open[&ep.port.0];
    let before_open = m.policy_sets[at_open - 1].clone();
    assert!(
        before_open.active(),
        "the set in force when the port opened"
    );
    let p = before_open
        .port(ep.port.0 as usize)
        .expect("the new endpoint's port");
    assert_eq!(p.worker as usize, ep.worker);
    assert_eq!(
        p.policies.ingress.rules(),
        0,
        "deny-all: no rule, default deny"
    );
    assert!(before_open.port(ep.port.0 as usize).is_some());
    assert_eq!(before_open.port_of_nh(ep.nh), Some(ep.port.0 as usize));
    drop(m);

    // Gone: the endpoint leaves the set.
    node.remove_endpoint("shop/web-0").unwrap();
    let m = machine.borrow();
    let last = m.policy_sets.last().unwrap();
    assert!(last.port(ep.port.0 as usize).is_none());
    assert!(!last.active());
    assert!(last.generation > before_open.generation);
}
