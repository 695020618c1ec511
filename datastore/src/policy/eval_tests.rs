//! The reference evaluator: hand-written truth tables for the documents of `tests.rs`
//! (each expected verdict worked out from Calico's and Kubernetes' documentation, not
//! from the code), and proptests: no input panics, a verdict's reason is consistent
//! with the policies, and nothing applying means allowed.

use super::tests::{
    parse, CALICO_DENY_ALL, CALICO_TIERED, K8S_DB_ACCESS, K8S_DENY_INGRESS, K8S_EGRESS,
    K8S_FROM_NAMESPACE,
};
use super::*;
use crate::selector::Selector;
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::IpAddr;

/// The test cluster's namespaces and their labels.
fn ns_labels(ns: &str) -> &'static [(&'static str, &'static str)] {
    match ns {
        "prod" => &[("env", "prod")],
        "staging" => &[("env", "staging")],
        "dev" => &[("env", "dev")],
        "monitoring" => &[("team", "monitoring")],
        _ => &[],
    }
}

fn pod(ns: &str, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint::new(ns, labels, ns_labels(ns))
}

/// The endpoint policies are evaluated at, and the other end.
const LOCAL: &str = "10.65.0.10";
const REMOTE: &str = "10.65.1.20";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[derive(Clone, Copy)]
enum L4 {
    Tcp(u16),
    Udp(u16),
    Sctp(u16),
    Ping,
}

/// A packet between the endpoint and `remote` (its address), in `dir`.
fn packet(dir: Direction, remote: &str, l4: L4) -> Packet {
    let (proto, dport, icmp) = match l4 {
        L4::Tcp(p) => (PROTO_TCP, p, None),
        L4::Udp(p) => (PROTO_UDP, p, None),
        L4::Sctp(p) => (PROTO_SCTP, p, None),
        L4::Ping => (PROTO_ICMP, 0, Some((8, 0))),
    };
    let (src, dst) = match dir {
        Direction::Ingress => (ip(remote), ip(LOCAL)),
        Direction::Egress => (ip(LOCAL), ip(remote)),
    };
    Packet {
        src,
        dst,
        proto,
        sport: 40000,
        dport,
        icmp,
    }
}

use Decision::{Allow, Deny};
use Direction::{Egress, Ingress};

/// One row of a truth table.
struct Case<'a> {
    what: &'a str,
    ep: Endpoint,
    dir: Direction,
    /// The other end: a workload endpoint, or None for a plain address.
    peer: Option<Endpoint>,
    remote: &'a str,
    l4: L4,
    want: Decision,
}

fn case<'a>(
    what: &'a str,
    ep: Endpoint,
    dir: Direction,
    peer: Option<Endpoint>,
    remote: &'a str,
    l4: L4,
    want: Decision,
) -> Case<'a> {
    Case {
        what,
        ep,
        dir,
        peer,
        remote,
        l4,
        want,
    }
}

fn check(policies: &[Policy], cases: &[Case<'_>]) -> Vec<Verdict> {
    cases
        .iter()
        .map(|c| {
            let pkt = packet(c.dir, c.remote, c.l4);
            let v = verdict(policies, &c.ep, c.dir, &pkt, c.peer.as_ref());
            assert_eq!(v.decision, c.want, "{}: {v:?}", c.what);
            v
        })
        .collect()
}

fn rule_ref(policy: &str, rule: usize) -> RuleRef {
    RuleRef {
        policy: policy.into(),
        rule,
    }
}

#[test]
fn calico_deny_all_truth_table() {
    let p = parse(CALICO_DENY_ALL);
    let web = pod("prod", &[("app", "web")]);
    let dns = pod("kube-system", &[("k8s-app", "kube-dns")]);
    let v = check(
        &p,
        &[
            case(
                "prod ingress",
                web.clone(),
                Ingress,
                Some(dns.clone()),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
            case(
                "prod egress",
                web.clone(),
                Egress,
                None,
                "8.8.8.8",
                L4::Udp(53),
                Deny,
            ),
            case(
                "kube-system ingress",
                dns.clone(),
                Ingress,
                Some(web.clone()),
                REMOTE,
                L4::Udp(53),
                Allow,
            ),
            case(
                "kube-system egress",
                dns,
                Egress,
                None,
                "8.8.8.8",
                L4::Udp(53),
                Allow,
            ),
        ],
    );
    assert_eq!(v[0].reason, Reason::EndOfPolicies);
    assert_eq!(v[2].reason, Reason::NoPolicy);
}

#[test]
fn k8s_deny_ingress_truth_table() {
    let p = parse(K8S_DENY_INGRESS);
    let web = pod("prod", &[("app", "web")]);
    let other = pod("dev", &[("app", "web")]);
    check(
        &p,
        &[
            case(
                "prod ingress from a pod",
                web.clone(),
                Ingress,
                Some(other.clone()),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
            case(
                "prod ingress from outside",
                web.clone(),
                Ingress,
                None,
                "203.0.113.9",
                L4::Ping,
                Deny,
            ),
            case(
                "prod egress: not an egress policy",
                web.clone(),
                Egress,
                Some(other.clone()),
                REMOTE,
                L4::Tcp(80),
                Allow,
            ),
            case(
                "another namespace",
                other,
                Ingress,
                Some(web),
                REMOTE,
                L4::Tcp(80),
                Allow,
            ),
        ],
    );
}

#[test]
fn k8s_from_namespace_truth_table() {
    let p = parse(K8S_FROM_NAMESPACE);
    let web = pod("prod", &[("app", "web")]);
    let prom = pod("monitoring", &[("app", "prometheus")]);
    let v = check(
        &p,
        &[
            case(
                "from a pod of a team=monitoring namespace",
                web.clone(),
                Ingress,
                Some(prom.clone()),
                REMOTE,
                L4::Tcp(9090),
                Allow,
            ),
            case(
                "any protocol from there",
                web.clone(),
                Ingress,
                Some(prom.clone()),
                REMOTE,
                L4::Ping,
                Allow,
            ),
            case(
                "from a pod of dev",
                web.clone(),
                Ingress,
                Some(pod("dev", &[("app", "prometheus")])),
                REMOTE,
                L4::Tcp(9090),
                Deny,
            ),
            case(
                "from the same namespace",
                web.clone(),
                Ingress,
                Some(pod("prod", &[])),
                REMOTE,
                L4::Tcp(9090),
                Deny,
            ),
            case(
                "from a bare address",
                web.clone(),
                Ingress,
                None,
                REMOTE,
                L4::Tcp(9090),
                Deny,
            ),
            case(
                "to a pod it does not select",
                pod("prod", &[("app", "api")]),
                Ingress,
                None,
                REMOTE,
                L4::Tcp(9090),
                Allow,
            ),
            case(
                "to app=web of another namespace",
                pod("dev", &[("app", "web")]),
                Ingress,
                None,
                REMOTE,
                L4::Tcp(9090),
                Allow,
            ),
            case("egress", web, Egress, None, REMOTE, L4::Tcp(9090), Allow),
        ],
    );
    assert_eq!(
        v[0].reason,
        Reason::Rule(rule_ref("prod/knp.default.allow-from-monitoring", 0))
    );
}

#[test]
fn k8s_db_access_truth_table() {
    let p = parse(K8S_DB_ACCESS);
    let db = pod("prod", &[("role", "db")]);
    let api = pod("prod", &[("role", "api")]);
    let batch_staging = pod("staging", &[("tier", "batch")]);
    let v = check(
        &p,
        &[
            case(
                "api TCP 5432 (TCP by default)",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Tcp(5432),
                Allow,
            ),
            case(
                "api TCP 6000 (range start)",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Tcp(6000),
                Allow,
            ),
            case(
                "api TCP 6010 (range end)",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Tcp(6010),
                Allow,
            ),
            case(
                "api TCP 6011",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Tcp(6011),
                Deny,
            ),
            case(
                "api UDP 53",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Udp(53),
                Allow,
            ),
            case(
                "api UDP 5432",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Udp(5432),
                Deny,
            ),
            case(
                "api SCTP 5432",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Sctp(5432),
                Deny,
            ),
            case(
                "api ping",
                db.clone(),
                Ingress,
                Some(api.clone()),
                REMOTE,
                L4::Ping,
                Deny,
            ),
            case(
                "role=api of staging",
                db.clone(),
                Ingress,
                Some(pod("staging", &[("role", "api")])),
                REMOTE,
                L4::Tcp(5432),
                Deny,
            ),
            case(
                "tier=batch of staging",
                db.clone(),
                Ingress,
                Some(batch_staging.clone()),
                REMOTE,
                L4::Tcp(5432),
                Allow,
            ),
            case(
                "tier=backend of staging, UDP 53",
                db.clone(),
                Ingress,
                Some(pod("staging", &[("tier", "backend")])),
                REMOTE,
                L4::Udp(53),
                Allow,
            ),
            case(
                "tier=batch of prod",
                db.clone(),
                Ingress,
                Some(pod("prod", &[("tier", "batch")])),
                REMOTE,
                L4::Tcp(5432),
                Deny,
            ),
            case(
                "tier=web of staging",
                db.clone(),
                Ingress,
                Some(pod("staging", &[("tier", "web")])),
                REMOTE,
                L4::Tcp(5432),
                Deny,
            ),
            case(
                "an address",
                db.clone(),
                Ingress,
                None,
                REMOTE,
                L4::Tcp(5432),
                Deny,
            ),
            case(
                "db egress",
                db,
                Egress,
                Some(api),
                REMOTE,
                L4::Tcp(80),
                Allow,
            ),
        ],
    );
    let key = "prod/knp.default.db-access";
    assert_eq!(v[0].reason, Reason::Rule(rule_ref(key, 0)));
    assert_eq!(v[4].reason, Reason::Rule(rule_ref(key, 2)));
    assert_eq!(v[9].reason, Reason::Rule(rule_ref(key, 1)));
    assert_eq!(v[10].reason, Reason::Rule(rule_ref(key, 3)));
}

#[test]
fn k8s_egress_truth_table() {
    let p = parse(K8S_EGRESS);
    let web = pod("prod", &[("app", "web")]);
    let dns = pod("kube-system", &[("k8s-app", "kube-dns")]);
    check(
        &p,
        &[
            case(
                "TCP 443 in 10/8",
                web.clone(),
                Egress,
                None,
                "10.2.3.4",
                L4::Tcp(443),
                Allow,
            ),
            case(
                "TCP 443 in the except",
                web.clone(),
                Egress,
                None,
                "10.1.2.3",
                L4::Tcp(443),
                Deny,
            ),
            case(
                "a pod's address in 10/8 (ipBlock matches pods too)",
                web.clone(),
                Egress,
                Some(pod("dev", &[])),
                "10.2.3.4",
                L4::Tcp(443),
                Allow,
            ),
            case(
                "TCP 80 in 10/8",
                web.clone(),
                Egress,
                None,
                "10.2.3.4",
                L4::Tcp(80),
                Deny,
            ),
            case(
                "UDP 443 in 10/8",
                web.clone(),
                Egress,
                None,
                "10.2.3.4",
                L4::Udp(443),
                Deny,
            ),
            case(
                "TCP 443 outside",
                web.clone(),
                Egress,
                None,
                "8.8.8.8",
                L4::Tcp(443),
                Deny,
            ),
            case(
                "kube-dns UDP 53",
                web.clone(),
                Egress,
                Some(dns.clone()),
                "10.1.0.10",
                L4::Udp(53),
                Allow,
            ),
            case(
                "kube-dns TCP 53",
                web.clone(),
                Egress,
                Some(dns.clone()),
                "10.1.0.10",
                L4::Tcp(53),
                Deny,
            ),
            case(
                "UDP 53 to an address",
                web.clone(),
                Egress,
                None,
                "10.1.0.10",
                L4::Udp(53),
                Deny,
            ),
            case(
                "UDP 53 to another pod",
                web.clone(),
                Egress,
                Some(pod("kube-system", &[("k8s-app", "x")])),
                "10.1.0.11",
                L4::Udp(53),
                Deny,
            ),
            case(
                "ingress untouched",
                web.clone(),
                Ingress,
                None,
                "8.8.8.8",
                L4::Tcp(80),
                Allow,
            ),
            case(
                "not app=web",
                pod("prod", &[]),
                Egress,
                None,
                "8.8.8.8",
                L4::Tcp(80),
                Allow,
            ),
        ],
    );
}

#[test]
fn calico_order_pass_log_and_deny_above_allow_truth_table() {
    let p = parse(CALICO_TIERED);
    let web = pod("prod", &[("app", "web")]);
    let front = pod("prod", &[("role", "frontend")]);
    let admin = pod("dev", &[("role", "admin")]);
    let v = check(
        &p,
        &[
            case(
                "ssh from a frontend: logged, then denied",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(22),
                Deny,
            ),
            case(
                "from 192.0.2.0/24: denied before web allows",
                web.clone(),
                Ingress,
                None,
                "192.0.2.5",
                L4::Tcp(80),
                Deny,
            ),
            case(
                "from an admin of any namespace: pass, profile allows",
                web.clone(),
                Ingress,
                Some(admin.clone()),
                REMOTE,
                L4::Tcp(9999),
                Allow,
            ),
            case(
                "ping from anywhere",
                web.clone(),
                Ingress,
                None,
                "198.51.100.1",
                L4::Ping,
                Allow,
            ),
            case(
                "frontend TCP 80",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(80),
                Allow,
            ),
            case(
                "frontend TCP 8005 (range)",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(8005),
                Allow,
            ),
            case(
                "frontend TCP 8008 (notPorts)",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(8008),
                Deny,
            ),
            case(
                "frontend TCP 9000",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(9000),
                Deny,
            ),
            case(
                "frontend of dev (namespaced selector)",
                web.clone(),
                Ingress,
                Some(pod("dev", &[("role", "frontend")])),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
            case(
                "UDP: web denies",
                web.clone(),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Udp(80),
                Deny,
            ),
            case(
                "web egress allowed",
                web.clone(),
                Egress,
                None,
                "8.8.8.8",
                L4::Tcp(443),
                Allow,
            ),
            case(
                "another pod: baseline applies, no allow",
                pod("prod", &[]),
                Ingress,
                Some(front.clone()),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
            case(
                "another pod: ping",
                pod("dev", &[]),
                Ingress,
                None,
                REMOTE,
                L4::Ping,
                Allow,
            ),
            case(
                "another pod: egress has no policy",
                pod("dev", &[]),
                Egress,
                None,
                REMOTE,
                L4::Tcp(1),
                Allow,
            ),
        ],
    );
    let base = "security-baseline";
    assert_eq!(v[0].reason, Reason::Rule(rule_ref(base, 1)));
    assert_eq!(v[0].logged, vec![rule_ref(base, 0)]);
    assert_eq!(v[1].reason, Reason::Rule(rule_ref(base, 2)));
    assert!(v[1].logged.is_empty());
    assert_eq!(v[2].reason, Reason::Pass(rule_ref(base, 3)));
    assert_eq!(v[4].reason, Reason::Rule(rule_ref("prod/web", 0)));
    assert_eq!(v[6].reason, Reason::EndOfPolicies);
    assert_eq!(v[9].reason, Reason::Rule(rule_ref("prod/web", 1)));
}

/// A Calico policy denying TCP 22 at `order` (absent: none), and a Kubernetes policy
/// allowing everything (order 1000).
fn deny_ssh_and_k8s_allow(order: Option<&str>) -> Vec<Policy> {
    let order = order.map(|o| format!("  order: {o}\n")).unwrap_or_default();
    parse(&format!(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: knp.default.allow-all, namespace: prod}}
spec:
{order}  ingress:
  - action: Deny
    protocol: TCP
    destination: {{ports: [22]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-all, namespace: prod}}
spec:
  ingress: [{{}}]
"
    ))
}

#[test]
fn order_decides_and_equal_orders_go_by_name() {
    let web = pod("prod", &[("app", "web")]);
    let ssh = packet(Ingress, REMOTE, L4::Tcp(22));
    let run = |order: Option<&str>| {
        let mut p = deny_ssh_and_k8s_allow(order);
        // Renamed so that, at equal orders, the Calico one sorts first by name.
        p[0].name = "a-deny-ssh".into();
        verdict(&p, &web, Ingress, &ssh, None)
    };
    assert_eq!(run(Some("999.5")).decision, Deny, "deny above allow");
    assert_eq!(
        run(Some("1000")).decision,
        Deny,
        "equal order: prod/a-deny-ssh first"
    );
    assert_eq!(run(Some("1000.5")).decision, Allow, "allow above deny");
    assert_eq!(
        run(None).decision,
        Allow,
        "no order: after every ordered policy"
    );
    assert_eq!(run(Some("-5")).decision, Deny);
    // Equal orders, the Kubernetes policy's key sorting first.
    let mut p = deny_ssh_and_k8s_allow(Some("1000"));
    p[0].name = "z-deny-ssh".into();
    assert_eq!(verdict(&p, &web, Ingress, &ssh, None).decision, Allow);
    // The order of the slice does not matter.
    p.reverse();
    assert_eq!(verdict(&p, &web, Ingress, &ssh, None).decision, Allow);
}

#[test]
fn kubernetes_policies_add_up() {
    // A default deny plus an allow from monitoring: the deny has no rule to match, so
    // the walk goes on to the allow.
    let mut p = parse(K8S_DENY_INGRESS);
    p.extend(parse(K8S_FROM_NAMESPACE));
    let web = pod("prod", &[("app", "web")]);
    let prom = pod("monitoring", &[]);
    check(
        &p,
        &[
            case(
                "from monitoring",
                web.clone(),
                Ingress,
                Some(prom.clone()),
                REMOTE,
                L4::Tcp(80),
                Allow,
            ),
            case(
                "from dev",
                web.clone(),
                Ingress,
                Some(pod("dev", &[])),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
            case(
                "not web: deny-all only",
                pod("prod", &[]),
                Ingress,
                Some(prom),
                REMOTE,
                L4::Tcp(80),
                Deny,
            ),
        ],
    );
}

#[test]
fn namespace_labels_seen_by_selectors() {
    // Kubernetes' own namespace label, Calico's, and namespace labels through pcns.
    let p = parse(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-ns-name, namespace: prod}
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: tools
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pcns}
spec:
  selector: pcns.env == 'staging'
  ingress:
  - action: Allow
    source:
      namespaceSelector: projectcalico.org/name == 'tools'
",
    );
    let tools = Endpoint::new("tools", &[], &[]);
    check(
        &p,
        &[
            case(
                "prod from tools",
                pod("prod", &[]),
                Ingress,
                Some(tools.clone()),
                REMOTE,
                L4::Tcp(1),
                Allow,
            ),
            case(
                "prod from dev",
                pod("prod", &[]),
                Ingress,
                Some(pod("dev", &[])),
                REMOTE,
                L4::Tcp(1),
                Deny,
            ),
            case(
                "staging from tools",
                pod("staging", &[]),
                Ingress,
                Some(tools),
                REMOTE,
                L4::Tcp(1),
                Allow,
            ),
            case(
                "staging from dev",
                pod("staging", &[]),
                Ingress,
                Some(pod("dev", &[])),
                REMOTE,
                L4::Tcp(1),
                Deny,
            ),
            case(
                "dev: no policy",
                pod("dev", &[]),
                Ingress,
                None,
                REMOTE,
                L4::Tcp(1),
                Allow,
            ),
        ],
    );
    let l = pod("prod", &[("app", "web")]).selector_labels();
    assert_eq!(
        l.get("projectcalico.org/namespace").map(String::as_str),
        Some("prod")
    );
    assert_eq!(l.get("pcns.env").map(String::as_str), Some("prod"));
    assert_eq!(
        l.get("pcns.kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("prod")
    );
    assert_eq!(l.get("app").map(String::as_str), Some("web"));
}

#[test]
fn rule_fields_one_by_one() {
    let ep = pod("prod", &[("app", "web")]);
    let other = pod("prod", &[("app", "x")]);
    let tcp = packet(Ingress, REMOTE, L4::Tcp(80));
    let ping = packet(Ingress, REMOTE, L4::Ping);
    let m =
        |r: &Rule, pkt: &Packet, peer: Option<&Endpoint>| rule_matches(r, &ep, Ingress, pkt, peer);

    let mut r = Rule::new(Action::Allow);
    assert!(m(&r, &tcp, None) && m(&r, &ping, None));
    // Ports without a protocol (which Calico refuses to load) never match ICMP.
    r.dst.ports = vec![(0, 65535)];
    assert!(m(&r, &tcp, None) && !m(&r, &ping, None));
    let mut r = Rule::new(Action::Allow);
    r.src.not_ports = vec![(1, 2)];
    assert!(m(&r, &tcp, None) && !m(&r, &ping, None));

    let mut r = Rule::new(Action::Allow);
    r.ip_version = Some(6);
    assert!(!m(&r, &tcp, None));
    r.ip_version = Some(4);
    assert!(m(&r, &tcp, None));

    let mut r = Rule::new(Action::Allow);
    r.not_protocol = Some(PROTO_TCP);
    assert!(!m(&r, &tcp, None) && m(&r, &ping, None));

    let mut r = Rule::new(Action::Allow);
    r.icmp = Some((8, None));
    assert!(m(&r, &ping, None) && !m(&r, &tcp, None));
    r.icmp = Some((8, Some(1)));
    assert!(!m(&r, &ping, None));
    let mut r = Rule::new(Action::Allow);
    r.not_icmp = Some((8, Some(0)));
    assert!(!m(&r, &ping, None) && m(&r, &tcp, None));

    // Destination selectors match the endpoint itself on ingress.
    let mut r = Rule::new(Action::Allow);
    r.dst.selector = Some(Selector::parse("app == 'web'").unwrap());
    assert!(m(&r, &tcp, None));
    r.dst.selector = Some(Selector::parse("app == 'x'").unwrap());
    assert!(!m(&r, &tcp, None));

    // notSelector: a bare address passes, a selected workload does not.
    let mut r = Rule::new(Action::Allow);
    r.src.not_selector = Some(Selector::parse("app == 'x'").unwrap());
    assert!(m(&r, &tcp, None));
    assert!(!m(&r, &tcp, Some(&other)));
    assert!(m(&r, &tcp, Some(&ep)));
    // Limited to a namespace, it also needs a workload of that namespace.
    r.src.namespace = Some("prod".into());
    assert!(!m(&r, &tcp, None));
    assert!(m(&r, &tcp, Some(&ep)));
    assert!(!m(&r, &tcp, Some(&pod("dev", &[]))));

    let mut r = Rule::new(Action::Allow);
    r.src.not_nets = vec!["10.65.0.0/16".parse().unwrap()];
    assert!(!m(&r, &tcp, None));
    r.src.not_nets = vec!["::/0".parse().unwrap()];
    assert!(
        m(&r, &tcp, None),
        "an IPv6 notNet does not exclude an IPv4 source"
    );
    r.src.nets = vec!["::/0".parse().unwrap()];
    assert!(!m(&r, &tcp, None));
}

// ---- proptests ----

const SELECTORS: &[&str] = &[
    "all()",
    "!all()",
    "app == 'web'",
    "has(role)",
    "role in {'db', 'api'}",
    "app != 'web' && has(tier)",
    "pcns.env == 'prod'",
    "projectcalico.org/namespace == 'dev'",
    "env == 'prod' || kubernetes.io/metadata.name == 'kube-system'",
];

fn arb_selector() -> impl Strategy<Value = Selector> {
    prop::sample::select(SELECTORS).prop_map(|s| Selector::parse(s).unwrap())
}

const NETS: &[&str] = &[
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.65.0.0/16",
    "10.65.0.10/32",
    "192.0.2.0/24",
    "::/0",
    "2001:db8::/32",
];

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop::sample::select(NETS).prop_map(|s| s.parse().unwrap())
}

const NAMESPACES: &[&str] = &["prod", "dev", "kube-system"];

/// Mostly absent (an empty list), so that random rules match often enough for every
/// outcome to come up (`generators_reach_every_outcome` checks it).
fn sparse<T: std::fmt::Debug>(
    p: f64,
    s: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = Vec<T>> {
    prop::option::weighted(p, s).prop_map(Option::unwrap_or_default)
}

fn arb_ranges(p: f64) -> impl Strategy<Value = Vec<PortRange>> {
    // Unsorted pairs too: an inverted range is empty, never a panic.
    sparse(p, prop::collection::vec((0u16..100, 0u16..100), 1..3))
}

fn arb_peer() -> impl Strategy<Value = Peer> {
    (
        sparse(0.25, prop::collection::vec(arb_net(), 1..3)),
        sparse(0.1, prop::collection::vec(arb_net(), 1..2)),
        prop::option::weighted(0.15, arb_selector()),
        prop::option::weighted(0.1, arb_selector()),
        prop::option::weighted(0.1, arb_selector()),
        prop::option::weighted(0.1, prop::sample::select(NAMESPACES)),
        arb_ranges(0.15),
        arb_ranges(0.1),
    )
        .prop_map(
            |(nets, not_nets, selector, not_selector, namespace_selector, ns, ports, not_ports)| {
                Peer {
                    nets,
                    not_nets,
                    selector,
                    not_selector,
                    namespace_selector,
                    namespace: ns.map(str::to_string),
                    ports,
                    not_ports,
                }
            },
        )
}

fn arb_icmp() -> impl Strategy<Value = Option<IcmpMatch>> {
    prop::option::weighted(0.1, (0u8..10, prop::option::of(0u8..3)))
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(&[Action::Allow, Action::Deny, Action::Pass, Action::Log][..]),
        prop::option::weighted(0.1, prop::sample::select(&[4u8, 6][..])),
        prop::option::weighted(0.25, prop::sample::select(&[1u8, 6, 17, 58, 132, 47][..])),
        prop::option::weighted(0.05, any::<u8>()),
        arb_icmp(),
        arb_icmp(),
        arb_peer(),
        arb_peer(),
    )
        .prop_map(
            |(action, ip_version, protocol, not_protocol, icmp, not_icmp, src, dst)| Rule {
                action,
                ip_version,
                protocol,
                not_protocol,
                icmp,
                not_icmp,
                src,
                dst,
            },
        )
}

fn arb_rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    prop::option::weighted(0.7, prop::collection::vec(arb_rule(), 0..4))
}

/// Policies named apart by their index.
fn arb_policies() -> impl Strategy<Value = Vec<Policy>> {
    prop::collection::vec(
        (
            prop::option::of(prop::sample::select(NAMESPACES)),
            prop::sample::select(&[f64::INFINITY, -1.0, 0.0, 10.0, 10.0, 1000.0][..]),
            prop::option::weighted(0.2, arb_selector()),
            prop_oneof![Just(Selector::all()), arb_selector()],
            arb_rules(),
            arb_rules(),
        ),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(
                |(i, (ns, order, ns_sel, selector, ingress, egress))| Policy {
                    name: format!("p{i}"),
                    namespace: ns.map(str::to_string),
                    order,
                    applies_to: EndpointMatch {
                        namespace: ns.map(str::to_string),
                        namespace_selector: ns_sel,
                        selector,
                    },
                    ingress,
                    egress,
                    apply_on_forward: false,
                },
            )
            .collect()
    })
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    let kv = prop::sample::select(
        &[
            ("app", "web"),
            ("app", "api"),
            ("role", "db"),
            ("role", "api"),
            ("tier", "x"),
            ("env", "prod"),
        ][..],
    );
    (
        prop::sample::select(NAMESPACES),
        prop::collection::vec(kv.clone(), 0..3),
        prop::collection::vec(kv, 0..2),
    )
        .prop_map(|(ns, l, nl)| Endpoint::new(ns, &l, &nl))
}

const ADDRS: &[&str] = &[
    "10.65.0.10",
    "10.1.2.3",
    "192.0.2.7",
    "8.8.8.8",
    "2001:db8::1",
    "fe80::1",
];

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        prop::sample::select(ADDRS),
        prop::sample::select(ADDRS),
        prop::sample::select(&[1u8, 6, 17, 58, 132, 0, 255][..]),
        0u16..100,
        0u16..100,
        prop::option::of((0u8..10, 0u8..3)),
    )
        .prop_map(|(s, d, proto, sport, dport, icmp)| Packet {
            src: ip(s),
            dst: ip(d),
            proto,
            sport,
            dport,
            icmp,
        })
}

fn arb_case() -> impl Strategy<Value = (Vec<Policy>, Endpoint, Option<Endpoint>, Direction, Packet)>
{
    (
        arb_policies(),
        arb_endpoint(),
        prop::option::of(arb_endpoint()),
        arb_dir(),
        arb_packet(),
    )
}

fn arb_dir() -> impl Strategy<Value = Direction> {
    prop::sample::select(&[Ingress, Egress][..])
}

/// The rule a reference points at, found by the policy's key.
fn rule_at<'a>(policies: &'a [Policy], dir: Direction, r: &RuleRef) -> &'a Rule {
    let p = policies
        .iter()
        .find(|p| p.key() == r.policy)
        .expect("policy exists");
    &p.rules(dir).expect("applies in this direction")[r.rule]
}

/// The generators are worth something only if every kind of verdict comes up, and
/// often enough: Allow, Deny and Pass rules, Log rules on the way, the end of the
/// policies, no policy at all.
#[test]
fn generators_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_case();
    let mut counts = [0usize; 6];
    let n = 4000;
    for _ in 0..n {
        let (policies, ep, peer, dir, pkt) = strategy.new_tree(&mut runner).unwrap().current();
        let v = verdict(&policies, &ep, dir, &pkt, peer.as_ref());
        let i = match &v.reason {
            Reason::NoPolicy => 0,
            Reason::EndOfPolicies => 1,
            Reason::Pass(_) => 2,
            Reason::Rule(_) if v.allowed() => 3,
            Reason::Rule(_) => 4,
        };
        counts[i] += 1;
        if !v.logged.is_empty() {
            counts[5] += 1;
        }
    }
    // No policy, end of policies, Pass, Allow, Deny, something logged.
    for (i, c) in counts.iter().enumerate() {
        assert!(
            *c >= n / 50,
            "outcome {i} came up {c} times in {n}: {counts:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verdicts_are_consistent_with_the_policies(
        policies in arb_policies(),
        ep in arb_endpoint(),
        peer in prop::option::of(arb_endpoint()),
        dir in arb_dir(),
        pkt in arb_packet(),
    ) {
        let v = verdict(&policies, &ep, dir, &pkt, peer.as_ref());
        let applying = policies
            .iter()
            .any(|p| p.rules(dir).is_some() && p.applies_to.matches(&ep));
        prop_assert_eq!(v.reason == Reason::NoPolicy, !applying);
        match &v.reason {
            Reason::NoPolicy => prop_assert!(v.allowed() && v.logged.is_empty()),
            Reason::EndOfPolicies => prop_assert!(!v.allowed()),
            Reason::Pass(r) => {
                prop_assert!(v.allowed());
                prop_assert_eq!(rule_at(&policies, dir, r).action, Action::Pass);
            }
            Reason::Rule(r) => {
                let rule = rule_at(&policies, dir, r);
                prop_assert!(rule_matches(rule, &ep, dir, &pkt, peer.as_ref()));
                let want = if rule.action == Action::Allow { Decision::Allow } else { Decision::Deny };
                prop_assert!(matches!(rule.action, Action::Allow | Action::Deny));
                prop_assert_eq!(v.decision, want);
            }
        }
        for r in &v.logged {
            prop_assert_eq!(rule_at(&policies, dir, r).action, Action::Log);
        }
        // The order policies come in does not matter: they are sorted.
        let mut rev = policies.clone();
        rev.reverse();
        prop_assert_eq!(&verdict(&rev, &ep, dir, &pkt, peer.as_ref()), &v);
    }

    #[test]
    fn nothing_applying_allows(
        mut policies in arb_policies(),
        ep in arb_endpoint(),
        peer in prop::option::of(arb_endpoint()),
        dir in arb_dir(),
        pkt in arb_packet(),
        how in 0..3u8,
    ) {
        for p in &mut policies {
            match how {
                // Policies of a namespace no endpoint is in.
                0 => p.applies_to.namespace = Some("elsewhere".into()),
                // Selecting nothing.
                1 => p.applies_to.selector = Selector::parse("!all()").unwrap(),
                // Not for this direction.
                _ => match dir {
                    Ingress => p.ingress = None,
                    Egress => p.egress = None,
                },
            }
        }
        let v = verdict(&policies, &ep, dir, &pkt, peer.as_ref());
        prop_assert_eq!(v, Verdict { decision: Decision::Allow, reason: Reason::NoPolicy, logged: vec![] });
    }
}
