//! Network policy through the pipeline: a flow's first packet judged by both
//! endpoints' classifiers, replies and later packets on the conntrack entry, a new
//! generation judging established flows again, the owner worker, per-rule counters.

use super::*;
use crate::policy::set::{LocalEndpoint, PolicySet};
use datastore::policy::{parse_policies, Endpoint, Policy};
use std::net::IpAddr;

const REMOTE: [u8; 4] = [10, 244, 2, 7];
const TCP_SYN: u8 = 0x02;
const TCP_SYN_ACK: u8 = 0x12;
const TCP_ACK: u8 = 0x10;

/// Pod A (app=a, port 0, next hop 0, worker `wa`) and pod B (app=b, port 1, next hop
/// 1, worker `wb`), both in namespace `shop`.
fn set(generation: u32, yaml: &str, (wa, wb): (u16, u16)) -> Arc<PolicySet> {
    let policies: Vec<Policy> = if yaml.is_empty() {
        Vec::new()
    } else {
        parse_policies("test", yaml).expect("test policies parse")
    };
    let ep = |app: &str| Endpoint::new("shop", &[("app", app)], &[]);
    let locals = [
        LocalEndpoint {
            name: "a".into(),
            port: 0,
            nh: 0,
            worker: wa,
            identity: ep("a"),
        },
        LocalEndpoint {
            name: "b".into(),
            port: 1,
            nh: 1,
            worker: wb,
            identity: ep("b"),
        },
    ];
    let workloads: Vec<(IpAddr, Endpoint)> =
        vec![(IpAddr::from(A4), ep("a")), (IpAddr::from(B4), ep("b"))];
    Arc::new(PolicySet::build(generation, &policies, &locals, &workloads))
}

/// B takes TCP 80 from app=a only; A takes nothing new (replies still come back).
const B_TAKES_80_FROM_A: &str = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: b-80, namespace: shop}
spec:
  order: 10
  selector: app == 'b'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'a'}
    destination: {ports: [80]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: a-closed, namespace: shop}
spec:
  selector: app == 'a'
  types: [Ingress]
"#;

const B_CLOSED: &str = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: b-closed, namespace: shop}
spec:
  selector: app == 'b'
  types: [Ingress]
"#;

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(POD_A_MAC, HOST_SIDE_MAC)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 1000);
    let b = match flags {
        TCP_SYN => b.syn(),
        TCP_SYN_ACK => b.syn().ack(1),
        _ => b.ack(1),
    };
    let mut f = Vec::new();
    b.write(&mut f, b"x").unwrap();
    f
}

fn policy_node(workers: usize, w: usize) -> Node {
    let mut n = node_with(&[], workers, w);
    n.pipeline = n.pipeline.with_conntrack(1024, 61000..=65535, workers);
    n
}

fn one(n: &mut Node, rx: PortId, f: Vec<u8>) -> Action {
    run(n, rx, &[f]).0[0]
}

fn denied(a: Action) -> bool {
    a == Action::Drop(DropReason::Policy)
}

#[test]
fn first_packets_are_judged_and_replies_pass_on_the_flow() {
    let mut n = policy_node(1, 0);
    n.pipeline.set_policy(set(1, B_TAKES_80_FROM_A, (0, 0)));
    let to_b = one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_SYN));
    assert!(matches!(to_b, Action::Tx { port: POD_B, .. }), "{to_b:?}");
    assert!(denied(one(&mut n, POD_A, tcp4(A4, B4, 40001, 81, TCP_SYN))));
    // B's reply enters A, whose ingress takes nothing: it passes on the flow.
    let back = one(&mut n, POD_B, tcp4(B4, A4, 80, 40000, TCP_SYN_ACK));
    assert!(matches!(back, Action::Tx { port: POD_A, .. }), "{back:?}");
    assert!(matches!(
        one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_ACK)),
        Action::Tx { .. }
    ));
    // B opening a flow to A is a new flow: A's ingress denies it.
    assert!(denied(one(
        &mut n,
        POD_B,
        tcp4(B4, A4, 80, 40000 + 7, TCP_SYN)
    )));
    // From another node: B's ingress takes only app=a.
    assert!(denied(one(
        &mut n,
        UPLINK,
        tcp4(REMOTE, B4, 5000, 80, TCP_SYN)
    )));
    // UDP to B: no rule allows it.
    let mut u = udp4(A4, B4, 64);
    u[ETH_HDR_LEN + 20 + 2..ETH_HDR_LEN + 20 + 4].copy_from_slice(&80u16.to_be_bytes());
    assert!(denied(one(&mut n, POD_A, u)));
    let drops = n.counters.total().drops[DropReason::Policy as usize];
    assert_eq!(drops, 4);
}

#[test]
fn a_new_generation_cuts_an_established_flow_that_is_now_denied() {
    let mut n = policy_node(1, 0);
    n.pipeline.set_policy(set(1, B_TAKES_80_FROM_A, (0, 0)));
    assert!(matches!(
        one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_SYN)),
        Action::Tx { .. }
    ));
    assert!(matches!(
        one(&mut n, POD_B, tcp4(B4, A4, 80, 40000, TCP_SYN_ACK)),
        Action::Tx { .. }
    ));
    // The same policies again under a new generation: judged again, still allowed.
    n.pipeline.set_policy(set(2, B_TAKES_80_FROM_A, (0, 0)));
    assert!(matches!(
        one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_ACK)),
        Action::Tx { .. }
    ));
    // B closes: the next packet either way is dropped, and so is every one after.
    n.pipeline.set_policy(set(3, B_CLOSED, (0, 0)));
    assert!(denied(one(&mut n, POD_B, tcp4(B4, A4, 80, 40000, TCP_ACK))));
    assert!(denied(one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_ACK))));
    // Policy gone: everything passes, untracked.
    n.pipeline.set_policy(set(4, "", (0, 0)));
    assert!(matches!(
        one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_ACK)),
        Action::Tx { .. }
    ));
}

#[test]
fn a_flow_is_judged_on_its_owners_worker() {
    // B's port is worker 1's; this is worker 0.
    let mut n = policy_node(2, 0);
    n.pipeline.set_policy(set(1, B_TAKES_80_FROM_A, (0, 1)));
    // From the uplink to B: B's worker owns it.
    let a = one(&mut n, UPLINK, tcp4(REMOTE, B4, 5000, 80, TCP_SYN));
    assert!(matches!(a, Action::Handoff { worker: 1, .. }), "{a:?}");
    // A (port 0) to B (port 1): the lower port's worker, A's (us).
    let a = one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_SYN));
    assert!(matches!(a, Action::Tx { port: POD_B, .. }), "{a:?}");
    // B's reply, whichever worker receives it, is A's worker's too (worker 1 hands it
    // back here; worker 0 passes it on the flow).
    let mut w1 = policy_node(2, 1);
    w1.pipeline.set_policy(set(1, B_TAKES_80_FROM_A, (0, 1)));
    let a = one(&mut w1, POD_B, tcp4(B4, A4, 80, 40000, TCP_SYN_ACK));
    assert!(matches!(a, Action::Handoff { worker: 0, .. }), "{a:?}");
    let a = one(&mut n, POD_B, tcp4(B4, A4, 80, 40000, TCP_SYN_ACK));
    assert!(matches!(a, Action::Tx { port: POD_A, .. }), "{a:?}");
}

#[test]
fn rules_count_what_they_decide_and_no_policy_costs_nothing() {
    let mut n = policy_node(1, 0);
    let s = set(1, B_TAKES_80_FROM_A, (0, 0));
    n.pipeline.set_policy(s.clone());
    for p in 0..3 {
        one(&mut n, POD_A, tcp4(A4, B4, 40000 + p, 80, TCP_SYN));
        one(&mut n, POD_A, tcp4(A4, B4, 40000 + p, 80, TCP_ACK));
    }
    let b = s.port(1).unwrap();
    // Three flows' first packets; their second packets pass on the entries.
    assert_eq!(b.policies.ingress.hits(0), 3);
    assert_eq!(b.policies.ingress.rule(0).at.policy, "shop/b-80");
    // No policy anywhere: nothing is tracked or judged.
    let mut n = policy_node(1, 0);
    n.pipeline.set_policy(set(1, "", (0, 0)));
    assert!(!n.pipeline.policy.active());
    one(&mut n, POD_A, tcp4(A4, B4, 40000, 81, TCP_SYN));
    assert!(n.pipeline.nat_mut().table().is_none());
}

#[test]
fn log_rules_count_and_decide_nothing() {
    let logged = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: log-then-80}
spec:
  selector: app == 'b'
  types: [Ingress]
  ingress:
  - action: Log
    protocol: TCP
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
"#;
    let mut n = policy_node(1, 0);
    let s = set(1, logged, (0, 0));
    n.pipeline.set_policy(s.clone());
    assert!(matches!(
        one(&mut n, POD_A, tcp4(A4, B4, 40000, 80, TCP_SYN)),
        Action::Tx { .. }
    ));
    assert!(denied(one(&mut n, POD_A, tcp4(A4, B4, 40001, 81, TCP_SYN))));
    let ingress = &s.port(1).unwrap().policies.ingress;
    // The Log rule met both first packets; the Allow decided one; the other fell off
    // the end (denied, counted by no rule).
    assert_eq!((ingress.hits(0), ingress.hits(1)), (2, 1));
}

#[test]
fn a_pod_may_not_act_as_the_network() {
    use crate::pipeline::headers::pod_forbidden;
    // ICMPv6 router advertisement (134) and redirect (137); a solicitation (133) is fine.
    let icmp6 = |ty: u8| {
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, 58, 255];
        ip.extend_from_slice(&A6);
        ip.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[ty, 0, 0, 0, 0, 0, 0, 0]);
        ip
    };
    assert!(pod_forbidden(&icmp6(134), true));
    assert!(pod_forbidden(&icmp6(137), true));
    assert!(!pod_forbidden(&icmp6(133), true));
    let mut n = policy_node(1, 0);
    let mut frame = vec![0u8; 14];
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    frame.extend(icmp6(134));
    assert_eq!(
        one(&mut n, POD_A, frame),
        Action::Drop(DropReason::PodForbidden)
    );
}
