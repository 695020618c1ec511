//! Calico's `projectcalico.org/v3` NetworkPolicy and GlobalNetworkPolicy, field for
//! field as `api/pkg/apis/projectcalico/v3` spells them, refused by name when unknown,
//! checked as libcalico-go's validator checks them, and normalized as libcalico-go's
//! `updateprocessors/rules.go` hands them to Felix:
//!
//! - `order` absent: after every ordered policy (`f64::INFINITY`).
//! - `types` absent: Ingress when there are no egress rules; Egress alone when there
//!   are egress rules and no ingress rules; both when there are both
//!   (`defaultPolicyTypesField`).
//! - A namespaced policy applies only to endpoints of its namespace; in its rules, a
//!   `selector` or `notSelector` without a `namespaceSelector` is limited to endpoints
//!   of its namespace too ([`Peer::namespace`]). In a global policy they match
//!   endpoints of any namespace.
//! - Refused as not supported (vrouterd has no host endpoints, service accounts,
//!   Services or an L7 proxy): `preDNAT`, `doNotTrack`, a `serviceAccountSelector`,
//!   rules' `http`, `services` and `serviceAccounts`, tiers other than `default`,
//!   `global()`, and named ports.

use super::common::{self, NumOrStr, ObjectMeta, PolicyType};
use super::model::{
    has_ports, Action, EndpointMatch, IcmpMatch, Peer, Policy, PortRange, Rule, PROTO_ICMP,
    PROTO_ICMPV6,
};
use crate::selector::Selector;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A `NetworkPolicy` (namespaced).
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
    pub spec: NetworkPolicySpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub order: Option<f64>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub types: Option<Vec<PolicyType>>,
    #[serde(default)]
    pub ingress: Option<Vec<RuleSpec>>,
    #[serde(default)]
    pub egress: Option<Vec<RuleSpec>>,
    #[serde(default)]
    pub service_account_selector: Option<String>,
    /// Hints to Felix's calculation graph; no effect on verdicts.
    #[serde(default)]
    #[allow(dead_code)]
    pub performance_hints: Option<Vec<String>>,
}

/// A `GlobalNetworkPolicy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicy {
    /// Checked by the loader before this is read.
    #[allow(dead_code)]
    pub api_version: String,
    #[allow(dead_code)]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GlobalNetworkPolicySpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicySpec {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub order: Option<f64>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub namespace_selector: Option<String>,
    #[serde(default)]
    pub types: Option<Vec<PolicyType>>,
    #[serde(default)]
    pub ingress: Option<Vec<RuleSpec>>,
    #[serde(default)]
    pub egress: Option<Vec<RuleSpec>>,
    #[serde(default)]
    pub service_account_selector: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub performance_hints: Option<Vec<String>>,
    #[serde(default)]
    pub do_not_track: bool,
    #[serde(default, rename = "preDNAT")]
    pub pre_dnat: bool,
    #[serde(default)]
    pub apply_on_forward: bool,
}

/// Calico's `Rule`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub action: ActionSpec,
    #[serde(default)]
    pub ip_version: Option<u8>,
    #[serde(default)]
    pub protocol: Option<NumOrStr>,
    #[serde(default)]
    pub not_protocol: Option<NumOrStr>,
    #[serde(default)]
    pub icmp: Option<IcmpFields>,
    #[serde(default, rename = "notICMP")]
    pub not_icmp: Option<IcmpFields>,
    #[serde(default)]
    pub source: EntityRule,
    #[serde(default)]
    pub destination: EntityRule,
    #[serde(default)]
    pub http: Option<IgnoredAny>,
    /// `annotations`, for people.
    #[serde(default)]
    #[allow(dead_code)]
    pub metadata: Option<RuleMetadata>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub enum ActionSpec {
    Allow,
    Deny,
    Pass,
    Log,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    #[serde(default)]
    #[allow(dead_code)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpFields {
    #[serde(default, rename = "type")]
    pub icmp_type: Option<u8>,
    #[serde(default)]
    pub code: Option<u8>,
}

/// Calico's `EntityRule`: one side of a rule.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    #[serde(default)]
    pub nets: Vec<String>,
    #[serde(default)]
    pub not_nets: Vec<String>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub not_selector: Option<String>,
    #[serde(default)]
    pub namespace_selector: Option<String>,
    #[serde(default)]
    pub ports: Vec<NumOrStr>,
    #[serde(default)]
    pub not_ports: Vec<NumOrStr>,
    #[serde(default)]
    pub services: Option<IgnoredAny>,
    #[serde(default)]
    pub service_accounts: Option<IgnoredAny>,
}

/// What both kinds' specs share, borrowed.
struct Common<'a> {
    tier: Option<&'a str>,
    order: Option<f64>,
    selector: Option<&'a str>,
    types: Option<&'a [PolicyType]>,
    ingress: &'a [RuleSpec],
    egress: &'a [RuleSpec],
    service_account_selector: Option<&'a str>,
}

impl NetworkPolicy {
    pub fn into_policy(self) -> Result<Policy, String> {
        let s = &self.spec;
        let ns = self.metadata.namespace();
        convert(
            self.metadata.name()?,
            Some(ns),
            None,
            false,
            &Common {
                tier: s.tier.as_deref(),
                order: s.order,
                selector: s.selector.as_deref(),
                types: s.types.as_deref(),
                ingress: s.ingress.as_deref().unwrap_or_default(),
                egress: s.egress.as_deref().unwrap_or_default(),
                service_account_selector: s.service_account_selector.as_deref(),
            },
        )
    }
}

impl GlobalNetworkPolicy {
    pub fn into_policy(self) -> Result<Policy, String> {
        let s = &self.spec;
        if self
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(
                "metadata.namespace: a GlobalNetworkPolicy has no namespace (use a NetworkPolicy)"
                    .into(),
            );
        }
        if s.pre_dnat {
            return Err("spec.preDNAT: pre-DNAT policy is not supported by vrouterd".into());
        }
        if s.do_not_track {
            return Err("spec.doNotTrack: untracked policy is not supported by vrouterd".into());
        }
        let ns_sel = common::selector(s.namespace_selector.as_deref(), "spec.namespaceSelector")?;
        convert(
            self.metadata.name()?,
            None,
            ns_sel,
            s.apply_on_forward,
            &Common {
                tier: s.tier.as_deref(),
                order: s.order,
                selector: s.selector.as_deref(),
                types: s.types.as_deref(),
                ingress: s.ingress.as_deref().unwrap_or_default(),
                egress: s.egress.as_deref().unwrap_or_default(),
                service_account_selector: s.service_account_selector.as_deref(),
            },
        )
    }
}

fn convert(
    name: &str,
    namespace: Option<String>,
    namespace_selector: Option<Selector>,
    apply_on_forward: bool,
    s: &Common<'_>,
) -> Result<Policy, String> {
    if let Some(t) = s.tier.filter(|t| !t.is_empty() && *t != "default") {
        return Err(format!(
            "spec.tier: tier {t:?} is not supported (vrouterd has the default tier only)"
        ));
    }
    if let Some(sa) = s.service_account_selector.filter(|s| !s.trim().is_empty()) {
        return Err(format!(
            "spec.serviceAccountSelector {sa:?}: service accounts are not supported by vrouterd"
        ));
    }
    let order = match s.order {
        None => f64::INFINITY,
        Some(o) if o.is_finite() => o,
        Some(o) => return Err(format!("spec.order: {o} is not a finite number")),
    };
    let selector = common::selector(s.selector, "spec.selector")?.unwrap_or_default();
    let (has_in, has_out) = common::directions(s.types, "spec.types", || {
        match (s.ingress.is_empty(), s.egress.is_empty()) {
            (_, true) => (true, false),
            (true, false) => (false, true),
            (false, false) => (true, true),
        }
    })?;
    let ns = namespace.as_deref();
    let rules = |v: &[RuleSpec], dir: &str| -> Result<Vec<Rule>, String> {
        v.iter()
            .enumerate()
            .map(|(i, r)| rule(r, ns, &format!("spec.{dir}[{i}]")))
            .collect()
    };
    // Rules of a direction the policy does not apply to are checked all the same.
    let ingress = rules(s.ingress, "ingress")?;
    let egress = rules(s.egress, "egress")?;
    Ok(Policy {
        name: name.to_string(),
        applies_to: EndpointMatch {
            namespace: namespace.clone(),
            namespace_selector,
            selector,
        },
        namespace,
        order,
        ingress: has_in.then_some(ingress),
        egress: has_out.then_some(egress),
        apply_on_forward,
    })
}

fn is_icmp(p: Option<u8>) -> bool {
    matches!(p, Some(PROTO_ICMP | PROTO_ICMPV6))
}

/// One rule of a policy in namespace `ns` (`None`: global), at `at`.
fn rule(r: &RuleSpec, ns: Option<&str>, at: &str) -> Result<Rule, String> {
    if r.http.is_some() {
        return Err(format!(
            "{at}.http: HTTP match is not supported by vrouterd"
        ));
    }
    let ip_version = match r.ip_version {
        None => None,
        Some(v @ (4 | 6)) => Some(v),
        Some(v) => return Err(format!("{at}.ipVersion: {v} is neither 4 nor 6")),
    };
    let proto = |p: &Option<NumOrStr>, f: &str| {
        p.as_ref()
            .map(|p| common::protocol(p, &format!("{at}.{f}")))
            .transpose()
    };
    let protocol = proto(&r.protocol, "protocol")?;
    let not_protocol = proto(&r.not_protocol, "notProtocol")?;
    let icmp = |f: &Option<IcmpFields>, name: &str| -> Result<Option<IcmpMatch>, String> {
        let Some(f) = f else { return Ok(None) };
        if !is_icmp(protocol) {
            return Err(format!(
                "{at}.{name}: rules that specify ICMP fields must set protocol to ICMP or ICMPv6"
            ));
        }
        match (f.icmp_type, f.code) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(format!("{at}.{name}.code: an ICMP code needs an ICMP type")),
            (Some(255), _) => Err(format!(
                "{at}.{name}.type: 255 is not an ICMP type (0..254)"
            )),
            (Some(t), c) => Ok(Some((t, c))),
        }
    };
    let icmp_m = icmp(&r.icmp, "icmp")?;
    let not_icmp = icmp(&r.not_icmp, "notICMP")?;
    for p in [protocol, not_protocol].into_iter().flatten() {
        let (need, name) = match p {
            PROTO_ICMP => (4, "ICMP"),
            PROTO_ICMPV6 => (6, "ICMPv6"),
            _ => continue,
        };
        if ip_version.is_some_and(|v| v != need) {
            return Err(format!(
                "{at}.ipVersion: must be {need} with protocol {name}"
            ));
        }
    }
    let src = entity(&r.source, ns, &format!("{at}.source"))?;
    let dst = entity(&r.destination, ns, &format!("{at}.destination"))?;
    let out = Rule {
        action: match r.action {
            ActionSpec::Allow => Action::Allow,
            ActionSpec::Deny => Action::Deny,
            ActionSpec::Pass => Action::Pass,
            ActionSpec::Log => Action::Log,
        },
        ip_version,
        protocol,
        not_protocol,
        icmp: icmp_m,
        not_icmp,
        src,
        dst,
    };
    if out.matches_ports() && !protocol.is_some_and(has_ports) {
        return Err(format!(
            "{at}: rules that specify ports must set protocol to TCP, UDP or SCTP"
        ));
    }
    // Calico: one IP version per rule, agreeing with ipVersion.
    let mut seen: Option<(u8, &str)> = ip_version.map(|v| (v, "ipVersion"));
    for (nets, field) in [
        (&out.src.nets, "source.nets"),
        (&out.src.not_nets, "source.notNets"),
        (&out.dst.nets, "destination.nets"),
        (&out.dst.not_nets, "destination.notNets"),
    ] {
        for n in nets {
            let v = if matches!(n, ipnet::IpNet::V4(_)) {
                4
            } else {
                6
            };
            match seen {
                Some((w, by)) if w != v => {
                    return Err(format!(
                        "{at}.{field}: {n} is IPv{v} but {by} makes the rule IPv{w}"
                    ))
                }
                None => seen = Some((v, field)),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// One side of a rule (`at` is `spec.ingress[0].source` and so on).
fn entity(e: &EntityRule, ns: Option<&str>, at: &str) -> Result<Peer, String> {
    if e.services.is_some() {
        return Err(format!(
            "{at}.services: Service match is not supported by vrouterd"
        ));
    }
    if e.service_accounts.is_some() {
        return Err(format!(
            "{at}.serviceAccounts: service accounts are not supported by vrouterd"
        ));
    }
    let nets = |v: &[String], f: &str| -> Result<Vec<ipnet::IpNet>, String> {
        v.iter()
            .enumerate()
            .map(|(i, n)| common::cidr(n, true, &format!("{at}.{f}[{i}]")))
            .collect()
    };
    let ports = |v: &[NumOrStr], f: &str| -> Result<Vec<PortRange>, String> {
        v.iter()
            .enumerate()
            .map(|(i, p)| common::port_range(p, &format!("{at}.{f}[{i}]")))
            .collect()
    };
    let selector = common::selector(e.selector.as_deref(), &format!("{at}.selector"))?;
    let not_selector = common::selector(e.not_selector.as_deref(), &format!("{at}.notSelector"))?;
    let namespace_selector = common::selector(
        e.namespace_selector.as_deref(),
        &format!("{at}.namespaceSelector"),
    )?;
    // rules.go: a namespaced policy's selectors without a namespaceSelector are
    // limited to its own namespace.
    let namespace = match ns {
        Some(ns)
            if namespace_selector.is_none() && (selector.is_some() || not_selector.is_some()) =>
        {
            Some(ns.to_string())
        }
        _ => None,
    };
    Ok(Peer {
        nets: nets(&e.nets, "nets")?,
        not_nets: nets(&e.not_nets, "notNets")?,
        selector,
        not_selector,
        namespace_selector,
        namespace,
        ports: ports(&e.ports, "ports")?,
        not_ports: ports(&e.not_ports, "notPorts")?,
    })
}
