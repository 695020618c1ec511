//! What Calico's and Kubernetes' resources share on the wire: object metadata, policy
//! types, numbers-or-strings (protocols, ports), and the parsing of CIDRs and selectors
//! with errors that say where.

use super::model::{
    PortRange, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
};
use crate::selector::Selector;
use ipnet::IpNet;
use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::IpAddr;

/// `metadata`: the name (and namespace) are used; what `kubectl` / `calicoctl` print
/// besides is tolerated (read, never used); anything else is refused by name.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<IgnoredAny>,
    #[serde(default)]
    pub annotations: Option<IgnoredAny>,
    #[serde(default)]
    pub uid: Option<IgnoredAny>,
    #[serde(default)]
    pub resource_version: Option<IgnoredAny>,
    #[serde(default)]
    pub creation_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    pub generation: Option<IgnoredAny>,
    #[serde(default)]
    pub managed_fields: Option<IgnoredAny>,
}

/// The namespace a namespaced resource without one lands in, as `kubectl` and
/// `calicoctl` do.
pub const DEFAULT_NAMESPACE: &str = "default";

impl ObjectMeta {
    /// The name, required.
    pub fn name(&self) -> Result<&str, String> {
        if self.name.is_empty() {
            Err("metadata.name: missing".into())
        } else {
            Ok(&self.name)
        }
    }

    /// The namespace of a namespaced resource (`default` when absent or empty).
    pub fn namespace(&self) -> String {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ => DEFAULT_NAMESPACE.to_string(),
        }
    }
}

/// `types` / `policyTypes` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

/// Which directions a policy applies to, from its explicit types (duplicates refused)
/// or, when there are none, `default`'s answer.
pub fn directions(
    types: Option<&[PolicyType]>,
    at: &str,
    default: impl FnOnce() -> (bool, bool),
) -> Result<(bool, bool), String> {
    let Some(types) = types.filter(|t| !t.is_empty()) else {
        return Ok(default());
    };
    let (mut ingress, mut egress) = (false, false);
    for t in types {
        let seen = match t {
            PolicyType::Ingress => std::mem::replace(&mut ingress, true),
            PolicyType::Egress => std::mem::replace(&mut egress, true),
        };
        if seen {
            return Err(format!("{at}: {t:?} given more than once"));
        }
    }
    Ok((ingress, egress))
}

/// A YAML / JSON value that is a number or a string (Go's `intstr`, Calico's
/// `numorstring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumOrStr {
    Num(i64),
    Str(String),
}

impl fmt::Display for NumOrStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumOrStr::Num(n) => write!(f, "{n}"),
            NumOrStr::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrStr, E> {
                i64::try_from(v)
                    .map(NumOrStr::Num)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Calico's protocol names (`numorstring.Protocol`, v3 spelling) and their numbers.
const PROTOCOLS: [(&str, u8); 6] = [
    ("TCP", PROTO_TCP),
    ("UDP", PROTO_UDP),
    ("ICMP", PROTO_ICMP),
    ("ICMPv6", PROTO_ICMPV6),
    ("SCTP", PROTO_SCTP),
    ("UDPLite", PROTO_UDPLITE),
];

/// A protocol: one of Calico's names or a number 1..=255.
pub fn protocol(p: &NumOrStr, at: &str) -> Result<u8, String> {
    let bad = || {
        format!("{at}: protocol {p} is neither TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite nor a number 1..255")
    };
    let n = match p {
        NumOrStr::Num(n) => *n,
        NumOrStr::Str(s) => {
            if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| name == s) {
                return Ok(*n);
            }
            s.parse::<i64>().map_err(|_| bad())?
        }
    };
    match u8::try_from(n) {
        Ok(n) if n != 0 => Ok(n),
        _ => Err(bad()),
    }
}

/// A port or port range: a number, or a string `"80"` or `"1000:2000"`. Named ports
/// are refused: vrouterd does not resolve them.
pub fn port_range(p: &NumOrStr, at: &str) -> Result<PortRange, String> {
    let num = |n: i64| u16::try_from(n).map_err(|_| format!("{at}: port {n} is not in 0..65535"));
    let text = match p {
        NumOrStr::Num(n) => {
            let n = num(*n)?;
            return Ok((n, n));
        }
        NumOrStr::Str(s) => s.trim(),
    };
    let parse = |s: &str| -> Result<u16, String> {
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{at}: port range {text:?} is not \"min:max\" with numbers"))?;
        num(n)
    };
    if let Some((lo, hi)) = text.split_once(':') {
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(format!(
                "{at}: port range {text:?} has its minimum above its maximum"
            ));
        }
        return Ok((lo, hi));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n = parse(text)?;
        return Ok((n, n));
    }
    Err(format!(
        "{at}: named port {text:?} is not supported (use a number or a range \"min:max\")"
    ))
}

/// A CIDR (host bits cleared, as Calico stores it); with `bare_ip`, an address alone is
/// taken as a /32 or /128 (Calico's `nets`), otherwise it is refused (Kubernetes'
/// `ipBlock`).
pub fn cidr(s: &str, bare_ip: bool, at: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if bare_ip {
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(IpNet::from(a));
        }
    }
    Err(format!("{at}: {s:?} is not a CIDR"))
}

/// A selector in Calico's syntax; `None` for an absent or empty one (Calico's
/// `omitempty`: unset).
pub fn selector(s: Option<&str>, at: &str) -> Result<Option<Selector>, String> {
    let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    if s.contains("global()") {
        return Err(format!(
            "{at} {s:?}: global() selects host endpoints and global network sets, which vrouterd does not have"
        ));
    }
    Selector::parse(s)
        .map(Some)
        .map_err(|e| format!("{at} {s:?}: {e}"))
}
