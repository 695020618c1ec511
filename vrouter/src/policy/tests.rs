//! The classifier against the reference evaluator (`datastore::policy::verdict`):
//! random policies, endpoints, workloads and packets, both directions; range-to-prefix
//! exhaustively; 10,000 rules.

use super::*;
use datastore::policy::{verdict, EndpointMatch, Reason, Rule, Verdict};
use datastore::selector::Selector;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::RefCell;

// ---------------------------------------------------------------------------------
// range_to_prefixes
// ---------------------------------------------------------------------------------

fn covers(ps: &[PortPrefix], port: u16) -> usize {
    ps.iter()
        .filter(|p| (u32::from(port) >> (16 - p.len)) as u16 == p.value)
        .count()
}

#[test]
fn range_to_prefixes_is_exact_and_disjoint() {
    let edges = [
        0u16, 1, 2, 3, 79, 80, 81, 1023, 1024, 1025, 32767, 32768, 65534, 65535,
    ];
    let mut ranges = vec![];
    for &lo in &edges {
        for &hi in &edges {
            ranges.push((lo, hi));
        }
    }
    for (lo, hi) in ranges {
        let ps = range_to_prefixes(lo, hi);
        assert!(ps.len() <= 30, "{lo}-{hi}: {}", ps.len());
        let near = edges
            .iter()
            .flat_map(|&e| e.saturating_sub(2)..=e.saturating_add(2));
        for port in (0..=65535u16).step_by(97).chain(near) {
            let want = usize::from(lo <= port && port <= hi);
            assert_eq!(covers(&ps, port), want, "{lo}-{hi} at {port}: {ps:?}");
        }
    }
}

#[test]
fn range_to_prefixes_known_answers() {
    let p = |value, len| PortPrefix { value, len };
    assert_eq!(range_to_prefixes(0, 65535), vec![p(0, 0)]);
    assert_eq!(range_to_prefixes(80, 80), vec![p(80, 16)]);
    assert_eq!(
        range_to_prefixes(1024, 65535),
        vec![p(1, 6), p(1, 5), p(1, 4), p(1, 3), p(1, 2), p(1, 1)]
    );
    assert_eq!(range_to_prefixes(2, 1), vec![]);
    assert_eq!(range_to_prefixes(1, 65534).len(), 30);
}

// ---------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------

const SELECTORS: &[&str] = &[
    "all()",
    "app == 'a'",
    "app == 'b'",
    "has(role)",
    "role == 'db' || app == 'a'",
    "!has(app)",
    "pcns.team == 'x'",
    "projectcalico.org/namespace == 'ns1'",
];

const NS_SELECTORS: &[&str] = &[
    "all()",
    "team == 'x'",
    "projectcalico.org/name == 'ns2'",
    "!has(team)",
];

const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/30",
    "10.0.0.4/30",
    "10.0.0.1/32",
    "10.0.0.5/32",
    "0.0.0.0/0",
    "fd00::/64",
    "fd00::2/127",
];

/// Workload addresses come from here; packets also use the last ones (not workloads).
const ADDRS: &[&str] = &[
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "fd00::1", "fd00::2",
    "fd00::3",
];
const STRANGERS_V4: &[&str] = &["10.0.0.9", "192.168.1.1"];
const STRANGERS_V6: &[&str] = &["fd00::9", "2001:db8::1"];

const PORTS: &[u16] = &[0, 1, 79, 80, 81, 443, 1024, 65535];

fn sel(list: &'static [&'static str]) -> impl Strategy<Value = Selector> {
    proptest::sample::select(list).prop_map(|s| Selector::parse(s).unwrap())
}

/// `Some` one time in `n`.
fn rarely<T: std::fmt::Debug + Clone>(
    n: u32,
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![n - 1 => Just(None), 1 => s.prop_map(Some)]
}

fn net() -> impl Strategy<Value = IpNet> {
    proptest::sample::select(NETS).prop_map(|s| s.parse().unwrap())
}

fn range() -> impl Strategy<Value = PortRange> {
    (
        proptest::sample::select(PORTS),
        proptest::sample::select(PORTS),
    )
}

fn ns() -> impl Strategy<Value = String> {
    prop_oneof![Just("ns1".to_string()), Just("ns2".to_string())]
}

fn peer() -> impl Strategy<Value = Peer> {
    (
        rarely(4, proptest::collection::vec(net(), 1..3)),
        rarely(8, proptest::collection::vec(net(), 1..2)),
        rarely(4, sel(SELECTORS)),
        rarely(8, sel(SELECTORS)),
        rarely(8, sel(NS_SELECTORS)),
        rarely(8, ns()),
        rarely(5, proptest::collection::vec(range(), 1..3)),
        rarely(10, proptest::collection::vec(range(), 1..2)),
    )
        .prop_map(
            |(
                nets,
                not_nets,
                selector,
                not_selector,
                namespace_selector,
                namespace,
                ports,
                not_ports,
            )| Peer {
                nets: nets.unwrap_or_default(),
                not_nets: not_nets.unwrap_or_default(),
                selector,
                not_selector,
                namespace_selector,
                namespace,
                ports: ports.unwrap_or_default(),
                not_ports: not_ports.unwrap_or_default(),
            },
        )
}

fn icmp() -> impl Strategy<Value = IcmpMatch> {
    prop_oneof![Just((8, None)), Just((8, Some(0))), Just((0, None))]
}

fn proto() -> impl Strategy<Value = u8> {
    proptest::sample::select(&[1u8, 6, 17, 58, 132, 47][..])
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop_oneof![
            4 => Just(Action::Allow),
            4 => Just(Action::Deny),
            3 => Just(Action::Pass),
            1 => Just(Action::Log),
        ],
        rarely(8, prop_oneof![Just(4u8), Just(6u8)]),
        rarely(4, proto()),
        rarely(10, proto()),
        rarely(10, icmp()),
        rarely(12, icmp()),
        peer(),
        peer(),
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

fn rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    prop_oneof![
        1 => Just(None),
        4 => proptest::collection::vec(rule(), 0..5).prop_map(Some),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        proptest::sample::select(&["p1", "p2", "p3"][..]),
        rarely(2, ns()),
        prop_oneof![Just(f64::INFINITY), Just(1.0), Just(2.0), Just(1000.0)],
        rarely(6, sel(NS_SELECTORS)),
        prop_oneof![3 => Just(Selector::all()), 2 => sel(SELECTORS)],
        rules(),
        rules(),
    )
        .prop_map(
            |(name, namespace, order, ns_sel, selector, ingress, egress)| Policy {
                name: name.to_string(),
                applies_to: EndpointMatch {
                    namespace: namespace.clone(),
                    namespace_selector: if namespace.is_none() { ns_sel } else { None },
                    selector,
                },
                namespace,
                order,
                ingress,
                egress,
                apply_on_forward: false,
            },
        )
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        ns(),
        rarely(2, prop_oneof![Just("a"), Just("b")]),
        rarely(3, Just("db")),
        rarely(2, prop_oneof![Just("x"), Just("y")]),
    )
        .prop_map(|(ns, app, role, team)| {
            let mut labels = vec![];
            if let Some(a) = app {
                labels.push(("app", a));
            }
            if let Some(r) = role {
                labels.push(("role", r));
            }
            let nsl: Vec<(&str, &str)> = team.map(|t| ("team", t)).into_iter().collect();
            Endpoint::new(&ns, &labels, &nsl)
        })
}

fn workloads() -> impl Strategy<Value = Vec<(IpAddr, Endpoint)>> {
    proptest::collection::vec(
        (proptest::sample::select(ADDRS), endpoint())
            .prop_map(|(a, e)| (a.parse::<IpAddr>().unwrap(), e)),
        0..8,
    )
}

fn packet() -> impl Strategy<Value = Packet> {
    let v4: Vec<&str> = ADDRS[..6].iter().chain(STRANGERS_V4).copied().collect();
    let v6: Vec<&str> = ADDRS[6..].iter().chain(STRANGERS_V6).copied().collect();
    let pair = prop_oneof![
        3 => (proptest::sample::select(v4.clone()), proptest::sample::select(v4)),
        1 => (proptest::sample::select(v6.clone()), proptest::sample::select(v6)),
    ];
    (
        pair,
        proto(),
        proptest::sample::select(PORTS),
        proptest::sample::select(PORTS),
        prop_oneof![Just((8u8, 0u8)), Just((8, 1)), Just((0, 0))],
    )
        .prop_map(|((s, d), proto, sport, dport, icmp)| Packet {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto,
            sport,
            dport,
            icmp: matches!(proto, 1 | 58).then_some(icmp),
        })
}

// ---------------------------------------------------------------------------------
// Against the reference
// ---------------------------------------------------------------------------------

/// The reference's verdict, the peer being the first workload with the peer address.
fn reference(
    policies: &[Policy],
    ep: &Endpoint,
    dir: Direction,
    pkt: &Packet,
    workloads: &[(IpAddr, Endpoint)],
) -> Verdict {
    let peer_addr = match dir {
        Direction::Ingress => pkt.src,
        Direction::Egress => pkt.dst,
    };
    let peer = workloads
        .iter()
        .find(|(a, _)| *a == peer_addr)
        .map(|(_, w)| w);
    verdict(policies, ep, dir, pkt, peer)
}

/// The classifier agrees with the reference on the decision and on its reason.
fn agree(c: &Compiled, got: Classification, want: &Verdict) -> Result<(), String> {
    let same = match (got.why, &want.reason) {
        (Why::NoPolicy, Reason::NoPolicy) | (Why::EndOfPolicies, Reason::EndOfPolicies) => true,
        (Why::Rule(i), Reason::Rule(r)) | (Why::Pass(i), Reason::Pass(r)) => c.rule(i).at == *r,
        _ => false,
    };
    let logged = got.logged.map(|i| c.rule(i).at.clone());
    if same && got.decision == want.decision && logged.as_ref() == want.logged.first() {
        Ok(())
    } else {
        Err(format!("classifier {got:?}, reference {want:?}"))
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    total: usize,
    allow: usize,
    deny: usize,
    pass: usize,
    default_deny: usize,
    no_policy: usize,
}

#[test]
fn classify_agrees_with_reference() {
    let outcomes = RefCell::new(Outcomes::default());
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        ..Config::default()
    });
    let input = (
        proptest::collection::vec(policy(), 0..5),
        endpoint(),
        workloads(),
        proptest::collection::vec(packet(), 1..4),
    );
    runner
        .run(&input, |(policies, ep, workloads, packets)| {
            for dir in [Direction::Ingress, Direction::Egress] {
                let c = compile(&policies, &ep, dir, &workloads);
                for pkt in &packets {
                    let want = reference(&policies, &ep, dir, pkt, &workloads);
                    let got = c.classify(pkt);
                    prop_assert!(
                        agree(&c, got, &want).is_ok(),
                        "{dir:?} {pkt:?}: {}",
                        agree(&c, got, &want).unwrap_err()
                    );
                    let mut o = outcomes.borrow_mut();
                    o.total += 1;
                    match want.reason {
                        Reason::NoPolicy => o.no_policy += 1,
                        Reason::Rule(_) if want.allowed() => o.allow += 1,
                        Reason::Rule(_) => o.deny += 1,
                        Reason::Pass(_) => o.pass += 1,
                        Reason::EndOfPolicies => o.default_deny += 1,
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let o = outcomes.into_inner();
    eprintln!("outcomes: {o:?}");
    for (name, n) in [
        ("allow", o.allow),
        ("deny", o.deny),
        ("pass", o.pass),
        ("default deny", o.default_deny),
        ("no policy", o.no_policy),
    ] {
        assert!(n * 50 >= o.total, "{name}: {n} of {}", o.total);
    }
}

// ---------------------------------------------------------------------------------
// Many rules
// ---------------------------------------------------------------------------------

/// 10,000 rules: 9,999 Allow / Deny rules over 280 source /24s, TCP or UDP, one
/// destination port or a 101-port range each, some with notPorts; then Allow
/// everything from 10.0.0.0/8.
#[test]
fn ten_thousand_rules() {
    let mut rules = Vec::new();
    for i in 0..9_999u32 {
        let mut r = Rule::new(if i % 3 == 0 {
            Action::Allow
        } else {
            Action::Deny
        });
        r.protocol = Some(if i % 2 == 0 { 6 } else { 17 });
        r.src.nets = vec![format!("10.{}.{}.0/24", i % 40, i % 7).parse().unwrap()];
        let p = (1000 + i) as u16;
        r.dst.ports = vec![if i % 5 == 0 { (p, p + 100) } else { (p, p) }];
        if i % 11 == 0 {
            r.src.not_ports = vec![(0, 1023)];
        }
        rules.push(r);
    }
    let mut last = Rule::new(Action::Allow);
    last.src.nets = vec!["10.0.0.0/8".parse().unwrap()];
    rules.push(last);
    let policies = vec![Policy {
        name: "many".into(),
        namespace: Some("ns1".into()),
        order: 1.0,
        applies_to: EndpointMatch {
            namespace: Some("ns1".into()),
            namespace_selector: None,
            selector: Selector::all(),
        },
        ingress: Some(rules),
        egress: None,
        apply_on_forward: false,
    }];
    let ep = Endpoint::new("ns1", &[("app", "a")], &[]);
    let c = compile(&policies, &ep, Direction::Ingress, &[]);
    assert_eq!(c.rules(), 10_000);
    assert!(c.tuples()[0] < 64, "{:?}", c.tuples());
    eprintln!("tuples: {:?}", c.tuples());
    let pkt = |src: &str, proto, sport, dport| Packet {
        src: src.parse().unwrap(),
        dst: "10.200.0.1".parse().unwrap(),
        proto,
        sport,
        dport,
        icmp: None,
    };
    let packets = [
        pkt("10.3.3.7", 6, 40000, 1003),
        pkt("10.3.3.7", 17, 40000, 1003),
        pkt("10.0.0.1", 6, 40000, 1000),
        pkt("10.0.0.1", 6, 80, 1000),
        pkt("10.5.5.9", 17, 5, 1005),
        pkt("10.39.1.1", 17, 999, 10999),
        pkt("10.39.1.1", 6, 999, 10998),
        pkt("10.1.1.1", 6, 1, 1),
        pkt("192.168.0.1", 6, 1, 1003),
        pkt("10.20.6.4", 6, 5000, 1060),
    ];
    for p in &packets {
        let want = reference(&policies, &ep, Direction::Ingress, p, &[]);
        let got = c.classify(p);
        agree(&c, got, &want).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
}

#[test]
fn no_policy_allows_and_empty_policy_denies() {
    let ep = Endpoint::new("ns1", &[], &[]);
    let pkt = Packet {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        proto: 6,
        sport: 1,
        dport: 2,
        icmp: None,
    };
    let c = compile(&[], &ep, Direction::Ingress, &[]);
    assert_eq!(c.classify(&pkt).why, Why::NoPolicy);
    let p = Policy {
        name: "deny-all".into(),
        namespace: None,
        order: f64::INFINITY,
        applies_to: EndpointMatch {
            namespace: None,
            namespace_selector: None,
            selector: Selector::all(),
        },
        ingress: Some(vec![Rule::new(Action::Log)]),
        egress: None,
        apply_on_forward: false,
    };
    let c = compile(std::slice::from_ref(&p), &ep, Direction::Ingress, &[]);
    assert_eq!(c.classify(&pkt).why, Why::EndOfPolicies);
    assert_eq!(c.classify(&pkt).logged, Some(0));
    let c = compile(&[p], &ep, Direction::Egress, &[]);
    assert_eq!(c.classify(&pkt).why, Why::NoPolicy);
}
