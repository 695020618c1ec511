//! Calico's IPPool resource (projectcalico.org/v3) as calicoctl reads and prints it:
//! Calico's own field names (`disableBGPExport`, `nodeSelector`, ...), every field
//! either honoured or refused with a message naming it, never dropped silently; and the
//! YAML `vrouterctl pool list -o yaml` prints, which `pool apply -f` takes back.

use crate::api::pb;
use datastore::selector::Selector;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

const API_VERSION: &str = "projectcalico.org/v3";

/// A resource in the file: an IPPool, or an IPPoolList with `items`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpPoolResource {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Vec<IpPoolResource>,
    #[serde(default)]
    spec: Option<IpPoolSpec>,
}

/// Calico's IPPoolSpec (api/pkg/apis/projectcalico/v3/ippool.go), field for field.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpPoolSpec {
    cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vxlan_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipip_mode: Option<String>,
    #[serde(default)]
    nat_outgoing: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default, rename = "disableBGPExport")]
    disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_selector: Option<String>,
    /// Accepted only empty: vrouterd has no namespaces.
    #[serde(default, skip_serializing)]
    namespace_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_uses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    assignment_mode: Option<String>,
    /// Calico's v1 leftovers, which must be unset.
    #[serde(default, rename = "ipip", skip_serializing)]
    ipip_v1: Option<IgnoredAny>,
    #[serde(default, rename = "nat-outgoing", skip_serializing)]
    nat_outgoing_v1: bool,
}

/// The values Calico's IPPool fields take (the daemon checks them again).
const ENCAP_MODES: [&str; 3] = ["Always", "CrossSubnet", "Never"];
const ASSIGNMENT_MODES: [&str; 2] = ["Automatic", "Manual"];
const ALLOWED_USES: [&str; 3] = ["Workload", "Tunnel", "LoadBalancer"];

/// `value` is one of `allowed`, else a message naming the pool and the field.
fn one_of(cidr: &str, field: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(format!(
        "pool {cidr}: {field} {value:?} is not one of {}",
        allowed.join(", ")
    ))
}

impl IpPoolSpec {
    /// The API's pool, or why this spec is refused.
    fn into_pool(self) -> Result<pb::Pool, String> {
        let cidr = &self.cidr;
        if self.ipip_v1.is_some() {
            return Err(format!(
                "pool {cidr}: ipip is Calico's v1 field: use ipipMode"
            ));
        }
        if self.nat_outgoing_v1 {
            return Err(format!(
                "pool {cidr}: nat-outgoing is Calico's v1 field: use natOutgoing"
            ));
        }
        if let Some(ns) = self.namespace_selector.as_deref() {
            if !ns.trim().is_empty() && ns.trim() != "all()" {
                return Err(format!(
                    "pool {cidr}: namespaceSelector {ns:?}: vrouterd does not implement namespace selection (leave it empty)"
                ));
            }
        }
        if let Some(s) = &self.node_selector {
            Selector::parse(s).map_err(|e| format!("pool {cidr}: nodeSelector {s:?}: {e}"))?;
        }
        for (field, value) in [
            ("vxlanMode", &self.vxlan_mode),
            ("ipipMode", &self.ipip_mode),
        ] {
            if let Some(v) = value {
                one_of(cidr, field, v, &ENCAP_MODES)?;
            }
        }
        if let Some(v) = &self.assignment_mode {
            one_of(cidr, "assignmentMode", v, &ASSIGNMENT_MODES)?;
        }
        if let Some(uses) = &self.allowed_uses {
            if uses.is_empty() {
                return Err(format!(
                    "pool {cidr}: allowedUses is empty: list some of {}",
                    ALLOWED_USES.join(", ")
                ));
            }
            for u in uses {
                one_of(cidr, "allowedUses", u, &ALLOWED_USES)?;
            }
            // As Calico's validation: a LoadBalancer pool is for nothing else.
            if uses.iter().any(|u| u == "LoadBalancer") && uses.iter().any(|u| u != "LoadBalancer")
            {
                return Err(format!(
                    "pool {cidr}: allowedUses: LoadBalancer cannot be combined with Workload or Tunnel"
                ));
            }
        }
        Ok(pb::Pool {
            cidr: self.cidr,
            block_size: self.block_size.unwrap_or(0),
            ipip_mode: self.ipip_mode.unwrap_or_default(),
            vxlan_mode: self.vxlan_mode.unwrap_or_default(),
            nat_outgoing: self.nat_outgoing,
            disabled: self.disabled,
            node_selector: self.node_selector.unwrap_or_default(),
            disable_bgp_export: self.disable_bgp_export,
            allowed_uses: self.allowed_uses.unwrap_or_default(),
            assignment_mode: self.assignment_mode.unwrap_or_default(),
            ..Default::default()
        })
    }

    /// The spec of a pool as the daemon reports it (defaults spelt out).
    fn of(p: &pb::Pool) -> IpPoolSpec {
        let or = |s: &str, default: &str| Some(if s.is_empty() { default } else { s }.to_string());
        IpPoolSpec {
            cidr: p.cidr.clone(),
            vxlan_mode: or(&p.vxlan_mode, "Never"),
            ipip_mode: or(&p.ipip_mode, "Never"),
            nat_outgoing: p.nat_outgoing,
            disabled: p.disabled,
            disable_bgp_export: p.disable_bgp_export,
            block_size: (p.block_size != 0).then_some(p.block_size),
            node_selector: or(&p.node_selector, "all()"),
            allowed_uses: Some(if p.allowed_uses.is_empty() {
                vec!["Workload".into(), "Tunnel".into()]
            } else {
                p.allowed_uses.clone()
            }),
            assignment_mode: or(&p.assignment_mode, "Automatic"),
            ..Default::default()
        }
    }
}

/// The columns of `pool list`: Calico's fields, defaults spelt out.
pub const POOL_COLUMNS: [&str; 10] = [
    "CIDR",
    "BLOCK SIZE",
    "IPIP",
    "VXLAN",
    "NAT OUTGOING",
    "DISABLED",
    "DISABLE BGP EXPORT",
    "NODE SELECTOR",
    "ALLOWED USES",
    "ASSIGNMENT",
];

/// A pool's cells under [`POOL_COLUMNS`].
pub fn pool_row(p: &pb::Pool) -> Vec<String> {
    let spec = IpPoolSpec::of(p);
    vec![
        p.cidr.clone(),
        spec.block_size
            .map_or_else(|| "default".into(), |b| b.to_string()),
        spec.ipip_mode.unwrap_or_default(),
        spec.vxlan_mode.unwrap_or_default(),
        p.nat_outgoing.to_string(),
        p.disabled.to_string(),
        p.disable_bgp_export.to_string(),
        spec.node_selector.unwrap_or_default(),
        spec.allowed_uses.unwrap_or_default().join(","),
        spec.assignment_mode.unwrap_or_default(),
    ]
}

/// Parse an IPPool file: YAML (`.yaml`/`.yml`, or anything not `.toml`) or TOML; one
/// resource, a `kind: IPPoolList` with `items`, or several YAML documents.
pub fn parse_pool_file(name: &str, text: &str) -> Result<Vec<pb::Pool>, String> {
    let resources: Vec<IpPoolResource> = if name.ends_with(".toml") {
        vec![toml::from_str(text).map_err(|e| format!("{name}: {e}"))?]
    } else {
        let mut v = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            v.push(IpPoolResource::deserialize(doc).map_err(|e| format!("{name}: {e}"))?);
        }
        v
    };
    let mut pools = Vec::new();
    // A stack, so documents and items come out in the file's order.
    let mut flatten: Vec<IpPoolResource> = resources.into_iter().rev().collect();
    while let Some(r) = flatten.pop() {
        if let Some(k) = &r.kind {
            if k != "IPPool" && k != "IPPoolList" {
                return Err(format!("{name}: kind {k}: only IPPool is understood"));
            }
        }
        flatten.extend(r.items.into_iter().rev());
        if let Some(s) = r.spec {
            pools.push(s.into_pool().map_err(|e| format!("{name}: {e}"))?);
        }
    }
    if pools.is_empty() {
        return Err(format!("{name}: no IPPool spec in it"));
    }
    Ok(pools)
}

/// Calico's name for a pool that has none: its CIDR, spelt as a resource name
/// (`10.65.0.0/16` is `pool-10-65-0-0-16`).
pub fn pool_name(cidr: &str) -> String {
    let spelt: String = cidr
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("pool-{spelt}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpPoolOut {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: IpPoolSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpPoolListOut {
    api_version: &'static str,
    kind: &'static str,
    items: Vec<IpPoolOut>,
}

/// The pools as calicoctl prints `get ippools -o yaml`: an IPPoolList.
pub fn pools_yaml(pools: &[pb::Pool]) -> String {
    let list = IpPoolListOut {
        api_version: API_VERSION,
        kind: "IPPoolList",
        items: pools
            .iter()
            .map(|p| IpPoolOut {
                api_version: API_VERSION,
                kind: "IPPool",
                metadata: Metadata {
                    name: pool_name(&p.cidr),
                },
                spec: IpPoolSpec::of(p),
            })
            .collect(),
    };
    serde_yaml_ng::to_string(&list).expect("pools serialise")
}

#[cfg(test)]
mod tests;
