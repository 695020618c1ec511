//! The normalized policy model: what Calico `NetworkPolicy`, `GlobalNetworkPolicy` and
//! Kubernetes `NetworkPolicy` resources all become, and what the reference evaluator
//! (`super::eval`) and, later, the dataplane's classifier read. Plain data, sans-IO.

use crate::selector::Selector;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_UDPLITE: u8 = 136;

/// Calico's label on every workload endpoint naming its namespace.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Calico's label on a namespace's profile naming the namespace (seen by namespace
/// selectors as `projectcalico.org/name`, by endpoint selectors as `pcns.` + it).
pub const LABEL_NAME: &str = "projectcalico.org/name";
/// The label Kubernetes puts on every namespace (1.21+), naming it.
pub const LABEL_K8S_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// Prefix under which Calico shows a namespace's labels to endpoint selectors.
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";

/// Whether ports can be matched for this IP protocol (Calico: TCP, UDP and SCTP).
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_SCTP)
}

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    /// Skip the rest of the tier: with one tier, the profile decides (it allows).
    Pass,
    /// Record the packet and go on to the next rule.
    Log,
}

/// The direction of traffic relative to the endpoint a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Toward the endpoint: the rule's source is the peer, its destination the endpoint.
    Ingress,
    /// From the endpoint: the rule's source is the endpoint, its destination the peer.
    Egress,
}

/// Which endpoints a policy applies to: all three conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointMatch {
    /// A namespaced policy applies only to endpoints of its namespace.
    pub namespace: Option<String>,
    /// A GlobalNetworkPolicy's `namespaceSelector`: only endpoints whose namespace's
    /// labels it selects (see [`Endpoint::namespace_selector_labels`]).
    pub namespace_selector: Option<Selector>,
    /// The policy's `selector` (Kubernetes: `podSelector`), over
    /// [`Endpoint::selector_labels`]. `all()` when empty.
    pub selector: Selector,
}

/// One policy, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// As written for Calico policies; `knp.default.<name>` for a Kubernetes policy, as
    /// Calico names it.
    pub name: String,
    /// `None` for a GlobalNetworkPolicy.
    pub namespace: Option<String>,
    /// Lower first. Absent in a Calico policy: `f64::INFINITY` (after every ordered
    /// one); a Kubernetes policy: 1000, as Calico gives them.
    pub order: f64,
    pub applies_to: EndpointMatch,
    /// `None`: the policy does not apply to traffic toward its endpoints (`types` lacks
    /// Ingress). `Some(empty)`: it applies and, having no rule, denies.
    pub ingress: Option<Vec<Rule>>,
    /// The same for traffic from its endpoints.
    pub egress: Option<Vec<Rule>>,
    /// GlobalNetworkPolicy `applyOnForward`, kept for the dataplane; it only matters to
    /// host endpoints, which vrouterd does not have, so the evaluator ignores it.
    pub apply_on_forward: bool,
}

impl Policy {
    /// The rules for `dir`, or `None` when the policy does not apply in that direction.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// The name Calico's dataplane sorts policies of equal order by, and reports them
    /// by: `<namespace>/<name>` for a namespaced policy, `<name>` for a global one.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// An inclusive range of ports.
pub type PortRange = (u16, u16);

/// ICMP type and, optionally, code.
pub type IcmpMatch = (u8, Option<u8>);

/// One rule: it matches a packet when every field that is given matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// 4 or 6.
    pub ip_version: Option<u8>,
    /// The IP protocol number.
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub src: Peer,
    pub dst: Peer,
}

impl Rule {
    /// A rule with only an action: it matches every packet.
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            src: Peer::default(),
            dst: Peer::default(),
        }
    }

    /// Whether any side matches ports: such a rule matches only TCP, UDP and SCTP.
    pub fn matches_ports(&self) -> bool {
        [&self.src, &self.dst]
            .iter()
            .any(|p| !p.ports.is_empty() || !p.not_ports.is_empty())
    }
}

/// One side of a rule (Calico's EntityRule): the packet's address and port on that
/// side, and the endpoint there when it is a known workload.
///
/// Endpoint conditions (`selector`, `namespace_selector`, `namespace`): when any is
/// given, that side must be a workload endpoint meeting all of them; a plain address
/// never matches. `not_selector` refuses a workload endpoint it selects (a plain
/// address passes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The address is in one of them (none given: any address).
    pub nets: Vec<IpNet>,
    /// The address is in none of them.
    pub not_nets: Vec<IpNet>,
    /// Over [`Endpoint::selector_labels`].
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    /// Over [`Endpoint::namespace_selector_labels`].
    pub namespace_selector: Option<Selector>,
    /// The endpoint is in this namespace: what a namespaced policy's `selector` or
    /// `notSelector` without a `namespaceSelector` implies (Calico adds
    /// `projectcalico.org/namespace == '<ns>'`).
    pub namespace: Option<String>,
    /// Inclusive port ranges; the port is in one of them (none given: any port).
    pub ports: Vec<PortRange>,
    /// The port is in none of them.
    pub not_ports: Vec<PortRange>,
}

impl Peer {
    /// Whether the side must be a workload endpoint.
    pub fn needs_endpoint(&self) -> bool {
        self.selector.is_some() || self.namespace_selector.is_some() || self.namespace.is_some()
    }
}

/// A workload endpoint's identity, as policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub namespace: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// Its namespace's labels.
    pub namespace_labels: BTreeMap<String, String>,
}

impl Endpoint {
    /// An endpoint from `(key, value)` pairs.
    pub fn new(
        namespace: &str,
        labels: &[(&str, &str)],
        namespace_labels: &[(&str, &str)],
    ) -> Self {
        let map = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Endpoint {
            namespace: namespace.to_string(),
            labels: map(labels),
            namespace_labels: map(namespace_labels),
        }
    }

    /// What namespace selectors see: the namespace's labels, plus
    /// `kubernetes.io/metadata.name` and `projectcalico.org/name`, both the namespace's
    /// name (Kubernetes and Calico set them; they win over a label of the same key).
    pub fn namespace_selector_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.namespace_labels.clone();
        l.insert(LABEL_K8S_NAMESPACE_NAME.into(), self.namespace.clone());
        l.insert(LABEL_NAME.into(), self.namespace.clone());
        l
    }

    /// What endpoint selectors see, as in Calico: the pod's labels, its namespace's
    /// labels (those of [`Self::namespace_selector_labels`]) prefixed `pcns.`, and
    /// `projectcalico.org/namespace`.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        for (k, v) in self.namespace_selector_labels() {
            l.insert(format!("{NAMESPACE_LABEL_PREFIX}{k}"), v);
        }
        l.insert(LABEL_NAMESPACE.into(), self.namespace.clone());
        l
    }
}

/// The packet as policy sees it. `sport` / `dport` mean something only for TCP, UDP
/// and SCTP; `icmp` is (type, code) for ICMP and ICMPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub icmp: Option<(u8, u8)>,
}

/// A rule by its policy's [`Policy::key`] and its index in that direction's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub policy: String,
    pub rule: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.policy, self.rule)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// Why the decision was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No policy applies to the endpoint in this direction: the profile allows.
    NoPolicy,
    /// An Allow or Deny rule matched.
    Rule(RuleRef),
    /// A Pass rule matched: the tier ends and the profile allows.
    Pass(RuleRef),
    /// Policies applied but none of their rules matched: denied.
    EndOfPolicies,
}

/// The evaluator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: Reason,
    /// The Log rules that matched on the way, in order.
    pub logged: Vec<RuleRef>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}
