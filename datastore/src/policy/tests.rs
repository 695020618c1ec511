//! Parsing and normalization: realistic Calico and Kubernetes documents, the model
//! they become, and the errors for what is refused (by name, with the document and the
//! field).

use super::*;
use crate::selector::Selector;
use ipnet::IpNet;

pub(super) fn parse(text: &str) -> Vec<Policy> {
    parse_policies("test.yaml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match parse_policies("test.yaml", text) {
        Ok(p) => panic!("parsed, expected an error: {p:#?}"),
        Err(e) => e,
    }
}

fn assert_err(text: &str, wants: &[&str]) {
    let e = err(text);
    assert!(e.starts_with("test.yaml: "), "{e}");
    for w in wants {
        assert!(e.contains(w), "error {e:?} lacks {w:?}");
    }
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) const CALICO_DENY_ALL: &str = "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: default-deny
spec:
  selector: projectcalico.org/namespace not in {'kube-system', 'calico-system'}
  types:
  - Ingress
  - Egress
";

pub(super) const K8S_DENY_INGRESS: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: prod
spec:
  podSelector: {}
  policyTypes:
  - Ingress
";

pub(super) const K8S_FROM_NAMESPACE: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-monitoring
  namespace: prod
  labels:
    owner: sre
  annotations:
    note: scrape
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          team: monitoring
";

pub(super) const K8S_DB_ACCESS: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-access
  namespace: prod
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: api
    - podSelector:
        matchExpressions:
        - {key: tier, operator: In, values: [backend, batch]}
      namespaceSelector:
        matchLabels:
          env: staging
    ports:
    - port: 5432
    - protocol: TCP
      port: 6000
      endPort: 6010
    - protocol: UDP
      port: 53
";

pub(super) const K8S_EGRESS: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-egress
  namespace: prod
spec:
  podSelector:
    matchLabels:
      app: web
  policyTypes:
  - Egress
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/8
        except:
        - 10.1.0.0/16
    ports:
    - protocol: TCP
      port: 443
  - to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    ports:
    - protocol: UDP
      port: 53
";

pub(super) const CALICO_TIERED: &str = "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security-baseline
spec:
  order: 10
  selector: all()
  types: [Ingress]
  ingress:
  - action: Log
    protocol: TCP
    destination:
      ports: [22]
  - action: Deny
    protocol: TCP
    destination:
      ports: [22]
  - action: Deny
    source:
      nets: [192.0.2.0/24]
  - action: Pass
    source:
      selector: role == 'admin'
  - action: Allow
    protocol: ICMP
    icmp:
      type: 8
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  order: 100
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == 'frontend'
    destination:
      ports: [80, \"8000:8080\"]
      notPorts: [8008]
  - action: Deny
    protocol: UDP
  egress:
  - action: Allow
";

#[test]
fn calico_deny_all() {
    let p = parse(CALICO_DENY_ALL);
    assert_eq!(p.len(), 1);
    let p = &p[0];
    assert_eq!(p.name, "default-deny");
    assert_eq!(p.namespace, None);
    assert_eq!(p.key(), "default-deny");
    assert_eq!(p.order, f64::INFINITY);
    assert_eq!(
        p.applies_to,
        EndpointMatch {
            namespace: None,
            namespace_selector: None,
            selector: sel("projectcalico.org/namespace not in {'kube-system', 'calico-system'}"),
        }
    );
    assert_eq!(p.ingress, Some(vec![]));
    assert_eq!(p.egress, Some(vec![]));
}

#[test]
fn k8s_deny_ingress() {
    let p = &parse(K8S_DENY_INGRESS)[0];
    assert_eq!(p.name, "knp.default.default-deny-ingress");
    assert_eq!(p.key(), "prod/knp.default.default-deny-ingress");
    assert_eq!(p.namespace.as_deref(), Some("prod"));
    assert_eq!(p.order, 1000.0);
    assert_eq!(p.applies_to.namespace.as_deref(), Some("prod"));
    assert_eq!(p.applies_to.selector, Selector::all());
    assert_eq!(p.ingress, Some(vec![]));
    assert_eq!(p.egress, None);
}

#[test]
fn k8s_from_namespace_is_one_allow_rule_needing_a_pod_of_those_namespaces() {
    let p = &parse(K8S_FROM_NAMESPACE)[0];
    assert_eq!(p.applies_to.selector, sel("app == 'web'"));
    // No policyTypes, no egress: ingress only.
    assert_eq!(p.egress, None);
    let mut want = Rule::new(Action::Allow);
    want.src.namespace_selector = Some(sel("team == 'monitoring'"));
    assert_eq!(p.ingress, Some(vec![want]));
}

#[test]
fn k8s_ports_group_by_protocol_times_peers() {
    let p = &parse(K8S_DB_ACCESS)[0];
    let rules = p.ingress.as_ref().unwrap();
    let api = Peer {
        selector: Some(sel("role == 'api'")),
        namespace: Some("prod".into()),
        ..Peer::default()
    };
    let staging = Peer {
        selector: Some(sel("tier in {'backend', 'batch'}")),
        namespace_selector: Some(sel("env == 'staging'")),
        ..Peer::default()
    };
    let rule = |proto: u8, src: &Peer, ports: Vec<(u16, u16)>| {
        let mut r = Rule::new(Action::Allow);
        r.protocol = Some(proto);
        r.src = src.clone();
        r.dst.ports = ports;
        r
    };
    let tcp = vec![(5432, 5432), (6000, 6010)];
    assert_eq!(
        rules,
        &vec![
            rule(PROTO_TCP, &api, tcp.clone()),
            rule(PROTO_TCP, &staging, tcp),
            rule(PROTO_UDP, &api, vec![(53, 53)]),
            rule(PROTO_UDP, &staging, vec![(53, 53)]),
        ]
    );
}

#[test]
fn k8s_ip_block_except_is_not_nets_and_egress_peers_go_to_the_destination() {
    let p = &parse(K8S_EGRESS)[0];
    assert_eq!(p.ingress, None);
    let rules = p.egress.as_ref().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].protocol, Some(PROTO_TCP));
    assert_eq!(rules[0].src, Peer::default());
    assert_eq!(
        rules[0].dst,
        Peer {
            nets: vec![net("10.0.0.0/8")],
            not_nets: vec![net("10.1.0.0/16")],
            ports: vec![(443, 443)],
            ..Peer::default()
        }
    );
    assert_eq!(
        rules[1].dst,
        Peer {
            selector: Some(sel("k8s-app == 'kube-dns'")),
            namespace_selector: Some(Selector::all()),
            ports: vec![(53, 53)],
            ..Peer::default()
        }
    );
}

#[test]
fn k8s_empty_rule_allows_everything_and_port_without_number_is_all_ports() {
    let p = &parse(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: dev}
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: Exists}
    - {key: legacy, operator: DoesNotExist}
    - {key: stage, operator: NotIn, values: [old]}
  ingress:
  - {}
  - ports:
    - protocol: SCTP
    - protocol: SCTP
      port: 9
    - protocol: UDP
      port: 7
  egress:
  - to: []
",
    )[0];
    assert_eq!(
        p.applies_to.selector,
        sel("has(app) && !has(legacy) && stage not in {'old'}")
    );
    let rules = p.ingress.as_ref().unwrap();
    assert_eq!(rules[0], Rule::new(Action::Allow));
    assert_eq!(rules[1].protocol, Some(PROTO_SCTP));
    assert!(
        rules[1].dst.ports.is_empty(),
        "SCTP without a port: all ports"
    );
    assert_eq!(rules[2].protocol, Some(PROTO_UDP));
    assert_eq!(rules[2].dst.ports, vec![(7, 7)]);
    // `egress` given: Egress applies too; an empty `to` is any destination.
    assert_eq!(p.egress, Some(vec![Rule::new(Action::Allow)]));
}

#[test]
fn k8s_policy_types_decide_over_rules() {
    let p = &parse(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg}
spec:
  policyTypes: [Egress]
  ingress:
  - {}
  egress: []
",
    )[0];
    assert_eq!(p.namespace.as_deref(), Some("default"), "kubectl's default");
    assert_eq!(p.ingress, None);
    assert_eq!(p.egress, Some(vec![]));
    // Without policyTypes, an empty egress list does not make it an egress policy.
    let p = &parse(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  egress: []
",
    )[0];
    assert_eq!((p.ingress.is_some(), p.egress.is_some()), (true, false));
}

#[test]
fn calico_rules_order_and_namespace_scoping() {
    let p = parse(CALICO_TIERED);
    assert_eq!(p.len(), 2);
    let (base, web) = (&p[0], &p[1]);
    assert_eq!(base.order, 10.0);
    assert_eq!(base.egress, None);
    let rules = base.ingress.as_ref().unwrap();
    assert_eq!(
        rules.iter().map(|r| r.action).collect::<Vec<_>>(),
        [
            Action::Log,
            Action::Deny,
            Action::Deny,
            Action::Pass,
            Action::Allow
        ]
    );
    // A global policy's selector matches endpoints of every namespace.
    assert_eq!(rules[3].src.selector, Some(sel("role == 'admin'")));
    assert_eq!(rules[3].src.namespace, None);
    assert_eq!(rules[4].protocol, Some(PROTO_ICMP));
    assert_eq!(rules[4].icmp, Some((8, None)));

    assert_eq!(web.order, 100.0);
    assert_eq!(web.applies_to.namespace.as_deref(), Some("prod"));
    // Both ingress and egress rules, no types: both directions.
    assert!(web.ingress.is_some() && web.egress.is_some());
    let r = &web.ingress.as_ref().unwrap()[0];
    // A namespaced policy's selector is limited to its namespace.
    assert_eq!(r.src.namespace.as_deref(), Some("prod"));
    assert_eq!(r.dst.ports, vec![(80, 80), (8000, 8080)]);
    assert_eq!(r.dst.not_ports, vec![(8008, 8008)]);
}

#[test]
fn calico_types_default_as_libcalico_go() {
    let doc = |rules: &str| {
        parse(&format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: n}}\nspec:\n{rules}"
        ))
        .remove(0)
    };
    let dirs = |p: &Policy| (p.ingress.is_some(), p.egress.is_some());
    assert_eq!(dirs(&doc("  selector: all()\n")), (true, false));
    assert_eq!(dirs(&doc("  ingress: [{action: Allow}]\n")), (true, false));
    assert_eq!(dirs(&doc("  egress: [{action: Allow}]\n")), (false, true));
    assert_eq!(
        dirs(&doc(
            "  ingress: [{action: Deny}]\n  egress: [{action: Allow}]\n"
        )),
        (true, true)
    );
    assert_eq!(
        dirs(&doc("  types: [Egress]\n  ingress: [{action: Deny}]\n")),
        (false, true)
    );
}

#[test]
fn calico_scoping_of_not_selector() {
    let p = &parse(
        "
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p, namespace: prod}
spec:
  egress:
  - action: Allow
    destination:
      namespaceSelector: team == 'data'
      selector: app == 'kafka'
  - action: Deny
    destination:
      notSelector: app == 'x'
  - action: Allow
    ipVersion: 6
    destination:
      nets: [2001:db8::1/64, '2001:db8:1::7']
",
    )[0];
    let r = p.egress.as_ref().unwrap();
    assert_eq!(r[0].dst.namespace, None);
    assert_eq!(r[0].dst.namespace_selector, Some(sel("team == 'data'")));
    assert_eq!(r[1].dst.namespace.as_deref(), Some("prod"));
    assert_eq!(r[1].dst.not_selector, Some(sel("app == 'x'")));
    // Host bits cleared; a bare address is a /128.
    assert_eq!(
        r[2].dst.nets,
        vec![net("2001:db8::/64"), net("2001:db8:1::7/128")]
    );
}

#[test]
fn calico_global_namespace_selector_and_apply_on_forward() {
    let p = &parse(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g, labels: {a: b}, uid: x, resourceVersion: '7', creationTimestamp: null}
spec:
  namespaceSelector: env == 'prod'
  selector: app == 'web'
  applyOnForward: true
  doNotTrack: false
  preDNAT: false
  tier: default
  performanceHints: [AssumeNeededOnEveryNode]
  ingress:
  - action: Allow
    metadata: {annotations: {why: because}}
    protocol: 58
    notICMP: {type: 128, code: 0}
",
    )[0];
    assert_eq!(p.applies_to.namespace, None);
    assert_eq!(p.applies_to.namespace_selector, Some(sel("env == 'prod'")));
    assert!(p.apply_on_forward);
    let r = &p.ingress.as_ref().unwrap()[0];
    assert_eq!(r.protocol, Some(PROTO_ICMPV6));
    assert_eq!(r.not_icmp, Some((128, Some(0))));
}

#[test]
fn protocols_by_name_and_number() {
    for (text, want) in [
        ("TCP", 6),
        ("UDP", 17),
        ("ICMP", 1),
        ("ICMPv6", 58),
        ("SCTP", 132),
        ("UDPLite", 136),
        ("47", 47),
        ("'47'", 47),
    ] {
        let p = &parse(&format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: g}}\nspec:\n  ingress: [{{action: Allow, protocol: {text}, notProtocol: 255}}]\n"
        ))[0];
        let r = &p.ingress.as_ref().unwrap()[0];
        assert_eq!(
            (r.protocol, r.not_protocol),
            (Some(want), Some(255)),
            "{text}"
        );
    }
    for bad in ["tcp", "0", "256", "GRE", "-1"] {
        assert_err(
            &format!(
                "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: g}}\nspec:\n  ingress: [{{action: Allow, protocol: {bad}}}]\n"
            ),
            &["spec.ingress[0].protocol", "is neither TCP"],
        );
    }
}

#[test]
fn multi_document_yaml_lists_and_empty_documents() {
    let text =
        format!("---\n{CALICO_DENY_ALL}---\n---\n{K8S_DENY_INGRESS}\n---\n{K8S_EGRESS}\n...\n");
    let p = parse(&text);
    assert_eq!(
        p.iter().map(Policy::key).collect::<Vec<_>>(),
        [
            "default-deny",
            "prod/knp.default.default-deny-ingress",
            "prod/knp.default.web-egress"
        ]
    );
    // kubectl get -o yaml prints a v1 List; calicoctl a typed list whose items may
    // leave apiVersion and kind out.
    let list = "
apiVersion: v1
kind: List
metadata: {resourceVersion: ''}
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: a, namespace: n, generation: 1, managedFields: []}
  spec: {podSelector: {}}
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: b}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicyList
items:
- metadata: {name: c, namespace: m}
  spec: {order: 5}
";
    let p = parse(list);
    assert_eq!(
        p.iter().map(Policy::key).collect::<Vec<_>>(),
        ["n/knp.default.a", "b", "m/c"]
    );
    assert_eq!(p[2].order, 5.0);
    assert_eq!(parse(""), vec![]);
    assert_eq!(parse("---\n---\n"), vec![]);
}

#[test]
fn json_documents() {
    let text = "{\n\t\"apiVersion\": \"networking.k8s.io/v1\",\n\t\"kind\": \"NetworkPolicy\",\n\t\"metadata\": {\"name\": \"j\", \"namespace\": \"n\"},\n\t\"spec\": {\n\t\t\"podSelector\": {\"matchLabels\": {\"app\": \"x\"}},\n\t\t\"ingress\": [{\"ports\": [{\"port\": 80}]}]\n\t}\n}\n";
    let p = parse_policies("p.json", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p[0].key(), "n/knp.default.j");
    assert_eq!(p[0].ingress.as_ref().unwrap()[0].dst.ports, vec![(80, 80)]);
    let e = parse_policies("p.json", &text.replace("\"ports\"", "\"portz\"")).unwrap_err();
    assert!(
        e.starts_with("p.json: document 1") && e.contains("portz"),
        "{e}"
    );
}

#[test]
fn unknown_fields_are_refused_by_name() {
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  selectr: all()\n",
        &["document 1 (NetworkPolicy p)", "unknown field `selectr`"],
    );
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  ingress:\n  - action: Allow\n    source:\n      nett: [10.0.0.0/8]\n",
        &["spec.ingress[0].source", "unknown field `nett`", "line 8"],
    );
    // namespaceSelector / doNotTrack are GlobalNetworkPolicy fields only, as in Calico.
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  namespaceSelector: all()\n",
        &["unknown field `namespaceSelector`"],
    );
    assert_err(
        &format!("{K8S_DENY_INGRESS}  podSelectr: {{}}\n"),
        &["unknown field `podSelectr`"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespac: x}\n",
        &["metadata", "unknown field `namespac`"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, exception: []}\n",
        &["spec.ingress[0].from[0].ipBlock", "unknown field `exception`"],
    );
    assert_err(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: GlobalNetworkPolicy\n  metadata: {name: g}\n  spek: {}\n",
        &["items[0] (GlobalNetworkPolicy g)", "unknown field `spek`"],
    );
    assert_err(
        "apiVersion: v1\nkind: List\nitemz: []\n",
        &["unknown field", "itemz"],
    );
}

#[test]
fn bad_selectors_are_refused_with_the_selectors_error() {
    for (field, text) in [
        ("spec.selector", "spec:\n  selector: app = 'x'\n"),
        (
            "spec.egress[0].destination.notSelector",
            "spec:\n  egress:\n  - action: Deny\n    destination:\n      notSelector: app = 'x'\n",
        ),
    ] {
        let want = Selector::parse("app = 'x'").unwrap_err().to_string();
        assert_err(
            &format!(
                "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: n}}\n{text}"
            ),
            &[field, "\"app = 'x'\"", &want],
        );
    }
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  ingress:\n  - action: Allow\n    source: {namespaceSelector: global()}\n",
        &["spec.ingress[0].source.namespaceSelector", "global()"],
    );
    // Kubernetes label keys and values that are not labels (no injection into the
    // Calico selector they become).
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchLabels: {\"a == 'b' || c\": x}\n",
        &["spec.podSelector.matchLabels", "not a valid label key"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: In, values: [\"x'\"]}]\n",
        &["spec.podSelector.matchExpressions[0].values", "not a valid label value"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: In}]\n",
        &["matchExpressions[0].values", "must be given"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: Exists, values: [b]}]\n",
        &["must be empty"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: Has}]\n",
        &["unknown variant `Has`"],
    );
}

#[test]
fn named_ports_are_refused() {
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [80, http]}\n",
        &["spec.ingress[0].destination.ports[1]", "named port \"http\"", "not supported"],
    );
    assert_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - ports: [{port: metrics}]\n",
        &["spec.ingress[0].ports[0].port", "named port \"metrics\"", "not supported"],
    );
}

#[test]
fn invalid_rules_are_refused_saying_where() {
    let gnp = |rule: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: g}}\nspec:\n  egress:\n  - {rule}\n"
        )
    };
    for (rule, wants) in [
        (
            "{action: Allow, destination: {ports: [80]}}",
            &["spec.egress[0]", "must set protocol to TCP, UDP or SCTP"][..],
        ),
        (
            "{action: Allow, protocol: ICMP, destination: {notPorts: [1]}}",
            &["must set protocol to TCP, UDP or SCTP"],
        ),
        (
            "{action: Allow, protocol: TCP, icmp: {type: 8}}",
            &["spec.egress[0].icmp", "ICMP or ICMPv6"],
        ),
        (
            "{action: Allow, protocol: ICMP, icmp: {code: 0}}",
            &["spec.egress[0].icmp.code", "needs an ICMP type"],
        ),
        (
            "{action: Allow, protocol: ICMP, icmp: {type: 255}}",
            &["not an ICMP type"],
        ),
        (
            "{action: Allow, protocol: ICMP, ipVersion: 6}",
            &["spec.egress[0].ipVersion", "must be 4"],
        ),
        (
            "{action: Allow, ipVersion: 5}",
            &["spec.egress[0].ipVersion", "neither 4 nor 6"],
        ),
        ("{action: allow}", &["unknown variant `allow`", "`Allow`"]),
        ("{protocol: TCP}", &["missing field `action`"]),
        (
            "{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {notNets: ['::/0']}}",
            &[
                "spec.egress[0].destination.notNets",
                "IPv6",
                "source.nets makes the rule IPv4",
            ],
        ),
        (
            "{action: Allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}",
            &["source.nets", "ipVersion"],
        ),
        (
            "{action: Allow, source: {nets: [10.0.0.300/8]}}",
            &["spec.egress[0].source.nets[0]", "not a CIDR"],
        ),
        (
            "{action: Allow, protocol: UDP, source: {ports: ['2000:1000']}}",
            &[
                "spec.egress[0].source.ports[0]",
                "minimum above its maximum",
            ],
        ),
        (
            "{action: Allow, protocol: UDP, source: {ports: [70000]}}",
            &["not in 0..65535"],
        ),
        (
            "{action: Allow, http: {methods: [GET]}}",
            &["spec.egress[0].http", "not supported"],
        ),
        (
            "{action: Allow, destination: {services: {name: s}}}",
            &["destination.services", "not supported"],
        ),
        (
            "{action: Allow, source: {serviceAccounts: {names: [a]}}}",
            &["source.serviceAccounts", "not supported"],
        ),
    ] {
        assert_err(&gnp(rule), wants);
    }
}

#[test]
fn unsupported_policy_features_are_refused_clearly() {
    let gnp = |spec: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: g}}\nspec:\n{spec}")
    };
    assert_err(
        &gnp("  preDNAT: true\n  applyOnForward: true\n"),
        &["spec.preDNAT", "not supported"],
    );
    assert_err(
        &gnp("  doNotTrack: true\n  applyOnForward: true\n"),
        &["spec.doNotTrack", "not supported"],
    );
    assert_err(
        &gnp("  serviceAccountSelector: role == 'x'\n"),
        &["spec.serviceAccountSelector", "not supported"],
    );
    assert_err(&gnp("  tier: security\n"), &["spec.tier", "\"security\""]);
    assert_err(&gnp("  order: .nan\n"), &["spec.order", "finite"]);
    assert_err(
        &gnp("  types: [Ingress, Ingress]\n"),
        &["spec.types", "more than once"],
    );
    assert_err(&gnp("  types: [ingress]\n"), &["unknown variant `ingress`"]);
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g, namespace: x}\n",
        &["metadata.namespace", "no namespace"],
    );
    assert_err(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {namespace: ''}\n",
        &["metadata.name: missing"],
    );
}

#[test]
fn invalid_kubernetes_peers_and_ports_are_refused() {
    let np = |rule: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: n}}\nspec:\n  egress:\n  - {rule}\n"
        )
    };
    for (rule, wants) in [
        (
            "{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}",
            &["spec.egress[0].to[0]", "ipBlock cannot be combined"][..],
        ),
        (
            "{to: [{}]}",
            &["spec.egress[0].to[0]", "needs a podSelector"],
        ),
        (
            "{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}",
            &[
                "spec.egress[0].to[0].ipBlock.except[0]",
                "not a strict subset",
            ],
        ),
        (
            "{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}",
            &["not a strict subset"],
        ),
        (
            "{to: [{ipBlock: {cidr: 10.0.0.1}}]}",
            &["ipBlock.cidr", "not a CIDR"],
        ),
        (
            "{ports: [{protocol: ICMP}]}",
            &["spec.egress[0].ports[0].protocol", "not TCP, UDP or SCTP"],
        ),
        (
            "{ports: [{port: 0}]}",
            &["spec.egress[0].ports[0].port", "not in 1..65535"],
        ),
        (
            "{ports: [{port: 90, endPort: 80}]}",
            &["spec.egress[0].ports[0].endPort"],
        ),
        ("{ports: [{endPort: 80}]}", &["endPort", "needs a port"]),
        (
            "{ports: [{port: 1.5}]}",
            &["spec.egress[0].ports[0].port", "an integer or a string"],
        ),
    ] {
        assert_err(&np(rule), wants);
    }
}

#[test]
fn documents_that_are_not_policies_are_refused() {
    assert_err(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        &["document 1 (Namespace x)", "not a network policy"],
    );
    assert_err(
        "apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n",
        &["storage form"],
    );
    assert_err(
        "kind: NetworkPolicy\n",
        &["document 1", "apiVersion: missing"],
    );
    assert_err("- a\n- b\n", &["document 1", "not a mapping"]);
    assert_err("a: [\n", &["test.yaml: document 1"]);
    // The document an error is in is named.
    let text = format!(
        "{CALICO_DENY_ALL}---\n{}",
        K8S_DENY_INGRESS.replace("podSelector", "podselector")
    );
    assert_err(
        &text,
        &[
            "document 2 (NetworkPolicy prod/default-deny-ingress)",
            "podselector",
        ],
    );
}

#[test]
fn documents_keep_each_resource_as_written() {
    let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  selector: all()\n  types: [Ingress]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  podSelector:\n    matchLabels:\n      app: web\n";
    let docs = super::documents("p.yaml", text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].1[0].key(), "deny-all");
    assert_eq!(docs[1].1[0].key(), "shop/knp.default.web");
    // Each document parses back to the same policies.
    for (yaml, policies) in &docs {
        assert_eq!(&super::parse_policies("again", yaml).unwrap(), policies);
    }
    // One bad document refuses the file.
    let bad = format!("{text}---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: x\nspec:\n  colour: red\n");
    assert!(super::documents("p.yaml", &bad)
        .unwrap_err()
        .contains("colour"));
}
