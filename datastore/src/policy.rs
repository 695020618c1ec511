//! Network policy (issue 18, first piece): Calico's `NetworkPolicy` and
//! `GlobalNetworkPolicy` (`projectcalico.org/v3`) and Kubernetes' `NetworkPolicy`
//! (`networking.k8s.io/v1`) read from YAML or JSON, normalized into one model
//! ([`Policy`], [`Rule`], [`Peer`]), and a deliberately plain reference evaluator
//! ([`verdict`]) giving Calico's verdict for a packet at an endpoint. No I/O.
//!
//! # The model
//!
//! A [`Policy`] applies to the endpoints its [`EndpointMatch`] selects (a namespaced
//! policy: only endpoints of its namespace), in the directions it has rules for
//! (`ingress` / `egress` `None`: not that direction). A [`Rule`] matches when every
//! field it gives matches; its [`Peer`]s are the packet's source and destination: for
//! ingress the source is the other end and the destination the endpoint, for egress
//! the other way round. Endpoint selectors see an endpoint's labels plus Calico's
//! `projectcalico.org/namespace` and its namespace's labels as `pcns.<key>`; namespace
//! selectors see the namespace's labels plus `kubernetes.io/metadata.name` and
//! `projectcalico.org/name` (see [`Endpoint`]). A selector only ever matches a known
//! workload endpoint, never a bare address.
//!
//! # From Calico (`calico.rs`)
//!
//! Field for field, with libcalico-go's defaults and checks: `order` absent is
//! `f64::INFINITY`; `types` absent is Ingress, or Egress alone when there are only
//! egress rules, or both; in a namespaced policy a rule's `selector` / `notSelector`
//! without `namespaceSelector` is limited to the policy's namespace
//! ([`Peer::namespace`]); ports need protocol TCP, UDP or SCTP, ICMP fields need ICMP
//! or ICMPv6. Not supported, and refused with a message saying so: `preDNAT`,
//! `doNotTrack`, service accounts, Services, `http`, tiers other than `default`,
//! `global()` and named ports.
//!
//! # From Kubernetes (`k8s.rs`)
//!
//! As Calico converts them: named `knp.default.<name>`, order 1000, applying to the
//! pods `podSelector` selects in the policy's namespace; every ingress / egress rule
//! becomes Allow rules, one per protocol of its `ports` times one per peer (no peer:
//! any; no ports: any protocol and port; protocol TCP when not given; `endPort`: a
//! range); a `podSelector` peer is limited to the policy's namespace, a
//! `namespaceSelector` peer is every pod of the selected namespaces, both is the
//! selected pods of the selected namespaces; `ipBlock.cidr` is `nets` and
//! `ipBlock.except` is `not_nets`. Label selectors become Calico selectors
//! (`matchLabels` `==`, `In` / `NotIn` / `Exists` / `DoesNotExist` as `in` / `not in`
//! / `has()` / `!has()`).
//!
//! # The verdict
//!
//! See `eval.rs`: no policy applying allows (the namespace profile); otherwise, by
//! (order, [`Policy::key`]), the first matching rule of each policy decides (Pass:
//! allow, with one tier; Log: recorded, go on), and nothing matching denies.

mod calico;
mod common;
mod eval;
mod k8s;
mod model;

pub use eval::{rule_matches, verdict};
pub use model::*;

use serde::Deserialize;
use serde_yaml_ng::{Deserializer, Mapping, Value};
use std::fmt::Display;

const CALICO_API: &str = "projectcalico.org/v3";
const K8S_API: &str = "networking.k8s.io/v1";

/// The resources understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// projectcalico.org/v3 NetworkPolicy.
    Calico,
    /// projectcalico.org/v3 GlobalNetworkPolicy.
    CalicoGlobal,
    /// networking.k8s.io/v1 NetworkPolicy.
    Kubernetes,
}

/// What a document's apiVersion and kind say it is.
enum Found {
    One(Kind),
    /// A list whose items default to this apiVersion and kind (None: each says).
    List(Option<(&'static str, &'static str)>),
}

fn kind_of(api: &str, kind: &str) -> Result<Found, String> {
    Ok(match (api, kind) {
        (CALICO_API, "NetworkPolicy") => Found::One(Kind::Calico),
        (CALICO_API, "GlobalNetworkPolicy") => Found::One(Kind::CalicoGlobal),
        (K8S_API, "NetworkPolicy") => Found::One(Kind::Kubernetes),
        (CALICO_API, "NetworkPolicyList") => Found::List(Some((CALICO_API, "NetworkPolicy"))),
        (CALICO_API, "GlobalNetworkPolicyList") => {
            Found::List(Some((CALICO_API, "GlobalNetworkPolicy")))
        }
        (K8S_API, "NetworkPolicyList") => Found::List(Some((K8S_API, "NetworkPolicy"))),
        ("v1", "List") => Found::List(None),
        ("crd.projectcalico.org/v1", _) => {
            return Err(format!(
                "apiVersion crd.projectcalico.org/v1 is Calico's storage form: write {CALICO_API}"
            ))
        }
        _ => {
            return Err(format!(
                "apiVersion {api:?} kind {kind:?} is not a network policy (expected {CALICO_API} \
                 NetworkPolicy or GlobalNetworkPolicy, {K8S_API} NetworkPolicy, or a list of them)"
            ))
        }
    })
}

/// Deserialize and normalize one resource of kind `k` from `d`.
fn load<'de, D>(k: Kind, d: D) -> Result<Policy, String>
where
    D: serde::Deserializer<'de>,
    D::Error: Display,
{
    let de = |e: D::Error| e.to_string();
    match k {
        Kind::Calico => calico::NetworkPolicy::deserialize(d)
            .map_err(de)?
            .into_policy(),
        Kind::CalicoGlobal => calico::GlobalNetworkPolicy::deserialize(d)
            .map_err(de)?
            .into_policy(),
        Kind::Kubernetes => k8s::NetworkPolicy::deserialize(d)
            .map_err(de)?
            .into_policy(),
    }
}

fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(Value::String(key.into()))
}

/// A string field of a resource's top level, required.
fn string_field<'a>(m: &'a Mapping, key: &str) -> Result<&'a str, String> {
    match get(m, key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{key}: not a string")),
        None => Err(format!("{key}: missing")),
    }
}

/// ` (NetworkPolicy ns/name)`, for error messages, from what the document says.
fn describe(m: &Mapping, kind: &str) -> String {
    let meta = get(m, "metadata").and_then(Value::as_mapping);
    let field = |k: &str| meta.and_then(|m| get(m, k)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(n)) => format!(" ({kind} {ns}/{n})"),
        (None, Some(n)) => format!(" ({kind} {n})"),
        _ => format!(" ({kind})"),
    }
}

/// The policies of a list's `items`.
fn load_list(
    m: &Mapping,
    default: Option<(&str, &str)>,
    out: &mut Vec<Policy>,
) -> Result<(), String> {
    for key in m.keys() {
        match key.as_str() {
            Some("apiVersion" | "kind" | "metadata" | "items") => {}
            _ => {
                return Err(format!(
                    "unknown field {key:?} in a list (expected apiVersion, kind, metadata, items)"
                ))
            }
        }
    }
    let items = match get(m, "items") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Sequence(v)) => v,
        Some(_) => return Err("items: not a list".into()),
    };
    for (j, item) in items.iter().enumerate() {
        let at = format!("items[{j}]");
        let Some(im) = item.as_mapping() else {
            return Err(format!("{at}: not a mapping"));
        };
        let mut im = im.clone();
        if let Some((api, kind)) = default {
            for (k, v) in [("apiVersion", api), ("kind", kind)] {
                if get(&im, k).is_none() {
                    im.insert(Value::String(k.into()), Value::String(v.into()));
                }
            }
        }
        let api = string_field(&im, "apiVersion").map_err(|e| format!("{at}: {e}"))?;
        let kind = string_field(&im, "kind").map_err(|e| format!("{at}: {e}"))?;
        let what = describe(&im, kind);
        match kind_of(api, kind).map_err(|e| format!("{at}{what}: {e}"))? {
            Found::One(k) => {
                out.push(load(k, Value::Mapping(im)).map_err(|e| format!("{at}{what}: {e}"))?)
            }
            Found::List(_) => return Err(format!("{at}{what}: a list inside a list")),
        }
    }
    Ok(())
}

/// Parse a file of policies: YAML with one or more documents (`---`), or JSON; each
/// document a Calico NetworkPolicy or GlobalNetworkPolicy, a Kubernetes NetworkPolicy,
/// or a list of them (`kind: List`, `NetworkPolicyList`, ...). Empty documents are
/// skipped. Errors start with `name` and say which document and which field.
pub fn parse_policies(name: &str, text: &str) -> Result<Vec<Policy>, String> {
    // A first pass reads each document as a plain value, to find its kind; the second
    // deserializes it again straight from the text, so errors carry the field's path
    // and its line.
    let mut values = Vec::new();
    for (i, doc) in Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| format!("{name}: document {}: {e}", i + 1))?;
        values.push(v);
    }
    let mut out = Vec::new();
    for (i, (doc, value)) in Deserializer::from_str(text).zip(values).enumerate() {
        let at = format!("{name}: document {}", i + 1);
        let m = match &value {
            Value::Null => continue,
            Value::Mapping(m) => m,
            _ => {
                return Err(format!(
                    "{at}: not a mapping (a resource with apiVersion and kind)"
                ))
            }
        };
        let api = string_field(m, "apiVersion").map_err(|e| format!("{at}: {e}"))?;
        let kind = string_field(m, "kind").map_err(|e| format!("{at}: {e}"))?;
        let at = format!("{at}{}", describe(m, kind));
        match kind_of(api, kind).map_err(|e| format!("{at}: {e}"))? {
            Found::One(k) => out.push(load(k, doc).map_err(|e| format!("{at}: {e}"))?),
            Found::List(default) => {
                load_list(m, default, &mut out).map_err(|e| format!("{at}: {e}"))?
            }
        }
    }
    Ok(out)
}

/// The documents of a policy file, each as YAML text with the policies it defines, for
/// storing them as written (`vrouterctl policy apply -f`, `list -o yaml`). The whole
/// file is read first: any error refuses it all, with its line.
pub fn documents(name: &str, text: &str) -> Result<Vec<(String, Vec<Policy>)>, String> {
    parse_policies(name, text)?;
    let mut out = Vec::new();
    for (i, doc) in Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| format!("{name}: document {}: {e}", i + 1))?;
        if v.is_null() {
            continue;
        }
        let yaml =
            serde_yaml_ng::to_string(&v).map_err(|e| format!("{name}: document {}: {e}", i + 1))?;
        let policies = parse_policies(name, &yaml)?;
        out.push((yaml, policies));
    }
    Ok(out)
}

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod tests;
