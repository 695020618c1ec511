//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, refused by name when a field is
//! unknown, checked as the API server checks it, and converted as Calico's
//! `K8sNetworkPolicyToCalico` (libcalico-go `backend/k8s/conversion`) does:
//!
//! - Name `knp.default.<name>`, order 1000, applies to the pods of its namespace that
//!   `podSelector` selects (`{}` or absent: all of them).
//! - `policyTypes` absent: Ingress, plus Egress when `egress` has rules (the API
//!   server's defaulting). A direction not in the types is not applied, its rules
//!   ignored.
//! - Every rule becomes Allow rules: one per protocol named in its `ports` (sorted by
//!   name, SCTP < TCP < UDP) times one per peer in `from` / `to`, in that order. No
//!   `ports`: one rule for any protocol and port; a port entry without `port`: every
//!   port of its protocol (TCP when not given); `port` + `endPort`: a range. Named
//!   ports are refused. The ports are destination ports, for ingress and egress alike.
//! - Peers: none (`from` / `to` absent or empty) = any source / destination.
//!   `podSelector` alone: pods of the policy's namespace it selects.
//!   `namespaceSelector` alone: every pod of the namespaces it selects (`{}`: all
//!   namespaces). Both: the pods it selects in the namespaces selected. `ipBlock`:
//!   `cidr` becomes `nets`, `except` becomes `not_nets` (addresses, pods or not).
//! - Label selectors become Calico selectors: `matchLabels` `k: v` is `k == 'v'`;
//!   `In` / `NotIn` are `in` / `not in` (NotIn matches a pod without the label, as in
//!   Kubernetes); `Exists` / `DoesNotExist` are `has(k)` / `!has(k)`; all ANDed.

use super::common::{self, NumOrStr, ObjectMeta, PolicyType};
use super::model::{
    Action, EndpointMatch, Peer, Policy, PortRange, Rule, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
};
use crate::selector::Selector;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The order Calico gives every Kubernetes NetworkPolicy.
pub const K8S_ORDER: f64 = 1000.0;
/// The prefix Calico gives their names.
pub const K8S_NAME_PREFIX: &str = "knp.default.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Checked by the loader before this is read.
    #[allow(dead_code)]
    pub api_version: String,
    #[allow(dead_code)]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Spec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub policy_types: Option<Vec<PolicyType>>,
    #[serde(default)]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default)]
    pub egress: Option<Vec<EgressRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default)]
    pub from: Option<Vec<PeerSpec>>,
    #[serde(default)]
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default)]
    pub to: Option<Vec<PeerSpec>>,
    #[serde(default)]
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerSpec {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<NumOrStr>,
    #[serde(default)]
    pub end_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<Requirement>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl NetworkPolicy {
    pub fn into_policy(self) -> Result<Policy, String> {
        let name = self.metadata.name()?;
        let ns = self.metadata.namespace();
        let s = &self.spec;
        let selector = label_selector(s.pod_selector.as_ref(), "spec.podSelector")?;
        let ingress = s.ingress.as_deref().unwrap_or_default();
        let egress = s.egress.as_deref().unwrap_or_default();
        let (has_in, has_out) =
            common::directions(s.policy_types.as_deref(), "spec.policyTypes", || {
                (true, !egress.is_empty())
            })?;
        let mut in_rules = Vec::new();
        for (i, r) in ingress.iter().enumerate() {
            let at = format!("spec.ingress[{i}]");
            in_rules.extend(rules(
                r.from.as_deref().unwrap_or_default(),
                r.ports.as_deref().unwrap_or_default(),
                &ns,
                true,
                (&at, "from"),
            )?);
        }
        let mut out_rules = Vec::new();
        for (i, r) in egress.iter().enumerate() {
            let at = format!("spec.egress[{i}]");
            out_rules.extend(rules(
                r.to.as_deref().unwrap_or_default(),
                r.ports.as_deref().unwrap_or_default(),
                &ns,
                false,
                (&at, "to"),
            )?);
        }
        Ok(Policy {
            name: format!("{K8S_NAME_PREFIX}{name}"),
            namespace: Some(ns.clone()),
            order: K8S_ORDER,
            applies_to: EndpointMatch {
                namespace: Some(ns),
                namespace_selector: None,
                selector,
            },
            ingress: has_in.then_some(in_rules),
            egress: has_out.then_some(out_rules),
            apply_on_forward: false,
        })
    }
}

/// The Allow rules of one ingress (`from`) or egress (`to`) rule; `at` is the rule's
/// path and the name of its peers' field.
fn rules(
    peers: &[PeerSpec],
    ports: &[PortSpec],
    ns: &str,
    ingress: bool,
    (at, peers_field): (&str, &str),
) -> Result<Vec<Rule>, String> {
    let peers: Vec<Peer> = if peers.is_empty() {
        vec![Peer::default()]
    } else {
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| peer(p, ns, &format!("{at}.{peers_field}[{i}]")))
            .collect::<Result<_, _>>()?
    };
    // Protocol name -> its number and ports (None: every port), as Calico groups them.
    let mut by_name: BTreeMap<&str, (u8, Option<Vec<PortRange>>)> = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let e = port(p, &format!("{at}.ports[{i}]"))?;
        let g = by_name.entry(e.name).or_insert((e.proto, Some(Vec::new())));
        match (e.range, &mut g.1) {
            (None, all) => *all = None,
            (Some(r), Some(v)) => v.push(r),
            (Some(_), None) => {}
        }
    }
    let groups: Vec<Group> = if by_name.is_empty() {
        vec![Group {
            protocol: None,
            ports: Vec::new(),
        }]
    } else {
        by_name
            .into_values()
            .map(|(proto, ports)| Group {
                protocol: Some(proto),
                ports: ports.unwrap_or_default(),
            })
            .collect()
    };
    let mut out = Vec::new();
    for g in &groups {
        for p in &peers {
            let mut r = Rule::new(Action::Allow);
            r.protocol = g.protocol;
            if ingress {
                r.src = p.clone();
                r.dst.ports = g.ports.clone();
            } else {
                r.dst = Peer {
                    ports: g.ports.clone(),
                    ..p.clone()
                };
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// The rules of one protocol (None: any) have these destination ports (none: any).
struct Group {
    protocol: Option<u8>,
    ports: Vec<PortRange>,
}

/// One `ports` entry: its protocol's name (Calico sorts by it) and number, and its
/// range (None: every port).
struct PortEntry {
    name: &'static str,
    proto: u8,
    range: Option<PortRange>,
}

fn port(p: &PortSpec, at: &str) -> Result<PortEntry, String> {
    let (name, proto) = match p.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => ("TCP", PROTO_TCP),
        "UDP" => ("UDP", PROTO_UDP),
        "SCTP" => ("SCTP", PROTO_SCTP),
        other => return Err(format!("{at}.protocol: {other:?} is not TCP, UDP or SCTP")),
    };
    let Some(port) = &p.port else {
        if p.end_port.is_some() {
            return Err(format!("{at}.endPort: needs a port"));
        }
        return Ok(PortEntry {
            name,
            proto,
            range: None,
        });
    };
    let lo = match port {
        NumOrStr::Num(n) => match u16::try_from(*n) {
            Ok(n) if n != 0 => n,
            _ => return Err(format!("{at}.port: {n} is not in 1..65535")),
        },
        NumOrStr::Str(s) => {
            return Err(format!(
            "{at}.port: named port {s:?} is not supported (use a number, and endPort for a range)"
        ))
        }
    };
    let hi = match p.end_port {
        None => lo,
        Some(e) => match u16::try_from(e) {
            Ok(e) if e >= lo => e,
            _ => {
                return Err(format!(
                    "{at}.endPort: {e} is not in {lo}..65535 (port..65535)"
                ))
            }
        },
    };
    Ok(PortEntry {
        name,
        proto,
        range: Some((lo, hi)),
    })
}

/// One peer of a rule in a policy of namespace `ns`.
fn peer(p: &PeerSpec, ns: &str, at: &str) -> Result<Peer, String> {
    if let Some(b) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err(format!(
                "{at}: ipBlock cannot be combined with podSelector or namespaceSelector"
            ));
        }
        let cidr = common::cidr(&b.cidr, false, &format!("{at}.ipBlock.cidr"))?;
        let mut not_nets = Vec::new();
        for (i, e) in b.except.as_deref().unwrap_or_default().iter().enumerate() {
            let at = format!("{at}.ipBlock.except[{i}]");
            let e: IpNet = common::cidr(e, false, &at)?;
            if !cidr.contains(&e) || e.prefix_len() <= cidr.prefix_len() {
                return Err(format!("{at}: {e} is not a strict subset of cidr {cidr}"));
            }
            not_nets.push(e);
        }
        return Ok(Peer {
            nets: vec![cidr],
            not_nets,
            ..Peer::default()
        });
    }
    let pods = |s: &LabelSelector| label_selector(Some(s), &format!("{at}.podSelector"));
    match (&p.pod_selector, &p.namespace_selector) {
        (None, None) => Err(format!(
            "{at}: a peer needs a podSelector, a namespaceSelector or an ipBlock"
        )),
        (Some(ps), None) => Ok(Peer {
            selector: Some(pods(ps)?),
            namespace: Some(ns.to_string()),
            ..Peer::default()
        }),
        (ps, Some(nss)) => Ok(Peer {
            selector: ps.as_ref().map(pods).transpose()?,
            namespace_selector: Some(label_selector(
                Some(nss),
                &format!("{at}.namespaceSelector"),
            )?),
            ..Peer::default()
        }),
    }
}

/// A label's name part: 1..63 characters, alphanumerics at both ends, `-`, `_`, `.`
/// inside.
fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: `name` or `prefix/name`, the prefix a DNS subdomain.
fn valid_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
                && valid_name(name)
        }
        None => valid_name(k),
    }
}

fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name(v)
}

/// A Kubernetes label selector as a Calico selector (absent or empty: `all()`).
pub fn label_selector(s: Option<&LabelSelector>, at: &str) -> Result<Selector, String> {
    let Some(s) = s else {
        return Ok(Selector::all());
    };
    let mut terms = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        if !valid_key(k) {
            return Err(format!("{at}.matchLabels: {k:?} is not a valid label key"));
        }
        if !valid_value(v) {
            return Err(format!(
                "{at}.matchLabels.{k}: {v:?} is not a valid label value"
            ));
        }
        terms.push(format!("{k} == '{v}'"));
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let k = &e.key;
        if !valid_key(k) {
            return Err(format!("{at}.key: {k:?} is not a valid label key"));
        }
        let values = e.values.as_deref().unwrap_or_default();
        if let Some(v) = values.iter().find(|v| !valid_value(v)) {
            return Err(format!("{at}.values: {v:?} is not a valid label value"));
        }
        let set = || {
            let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            format!("{{{}}}", quoted.join(", "))
        };
        match e.operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(format!(
                    "{at}.values: must be given with operator {:?}",
                    e.operator
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!(
                    "{at}.values: must be empty with operator {:?}",
                    e.operator
                ))
            }
            Operator::In => terms.push(format!("{k} in {}", set())),
            Operator::NotIn => terms.push(format!("{k} not in {}", set())),
            Operator::Exists => terms.push(format!("has({k})")),
            Operator::DoesNotExist => terms.push(format!("!has({k})")),
        }
    }
    if terms.is_empty() {
        return Ok(Selector::all());
    }
    let text = terms.join(" && ");
    Selector::parse(&text).map_err(|e| format!("{at}: {text:?}: {e}"))
}
