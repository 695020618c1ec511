//! Calico resources and IPAM records as stored in etcd. Field names, their order and
//! which ones are left out when empty follow libcalico-go's Go structs (Go's
//! `encoding/json`: struct order, `omitempty` drops empty strings, slices, maps and nil
//! pointers but never a struct), so what we write is what Calico writes and reads.
//! Reading is lenient (fields we do not know are ignored, as Calico's newer fields
//! must be; an IPPool keeps them, for the node to name); `vrouterctl pool apply` is
//! where unknown fields are refused.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const API_VERSION: &str = "projectcalico.org/v3";

fn is_false(b: &bool) -> bool {
    !*b
}

/// `metadata` of a v3 resource (the fields Calico sets; `resourceVersion` is the etcd
/// mod revision on read and never stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub creation_timestamp: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A v3 resource: `kind`, `apiVersion`, `metadata`, `spec` (Go's TypeMeta is inlined
/// first, then ObjectMeta, then the spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource<S> {
    pub kind: String,
    pub api_version: String,
    pub metadata: Metadata,
    pub spec: S,
}

/// A Node also carries `status`, always written (a struct, never omitted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResource {
    pub kind: String,
    pub api_version: String,
    pub metadata: Metadata,
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}

/// The kinds we read and write, with their plural (the key's path element).
pub trait Kind {
    const KIND: &'static str;
    const PLURAL: &'static str;
}

impl Kind for IpPoolSpec {
    const KIND: &'static str = "IPPool";
    const PLURAL: &'static str = "ippools";
}
impl Kind for NodeSpec {
    const KIND: &'static str = "Node";
    const PLURAL: &'static str = "nodes";
}
impl Kind for BgpPeerSpec {
    const KIND: &'static str = "BGPPeer";
    const PLURAL: &'static str = "bgppeers";
}
impl Kind for BgpConfigurationSpec {
    const KIND: &'static str = "BGPConfiguration";
    const PLURAL: &'static str = "bgpconfigurations";
}
impl Kind for WorkloadEndpointSpec {
    const KIND: &'static str = "WorkloadEndpoint";
    const PLURAL: &'static str = "workloadendpoints";
}
impl Kind for ProfileSpec {
    const KIND: &'static str = "Profile";
    const PLURAL: &'static str = "profiles";
}

/// Profile spec: what vrouterd reads of it. Calico's kube-controllers keep one profile
/// per namespace, `kns.<namespace>`, whose `labelsToApply` are the namespace's labels
/// prefixed `pcns.` (rules are not read: a profile's rules allow, as Calico's do for
/// namespace profiles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<serde_json::Value>,
}

impl<S: Kind> Resource<S> {
    pub fn new(name: &str, spec: S) -> Resource<S> {
        Resource {
            kind: S::KIND.into(),
            api_version: API_VERSION.into(),
            metadata: Metadata {
                name: name.into(),
                ..Default::default()
            },
            spec,
        }
    }
}

/// IPPool spec (`api/pkg/apis/projectcalico/v3/ippool.go`), in Go's field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vxlan_mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipip_mode: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, rename = "disableBGPExport", skip_serializing_if = "is_false")]
    pub disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assignment_mode: String,
    /// Fields Calico's IPPoolSpec of today does not have (a newer Calico's), or its v1
    /// leftovers (`ipip`, `nat-outgoing`): kept, so that nothing is dropped unseen;
    /// [`IpPoolSpec::unsupported`] names them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A field of a stored IPPool this node cannot honour, and what it does instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Calico's name of the field (`namespaceSelector`, `ipip`, ...).
    pub field: String,
    /// What the node does about it, for the log.
    pub effect: &'static str,
}

impl IpPoolSpec {
    /// Whether a node may take its tunnel address from it (allowedUses, default
    /// Workload+Tunnel, has Tunnel), as calico/node's `allocateip` asks.
    pub fn for_tunnels(&self) -> bool {
        self.allowed_uses.is_empty() || self.allowed_uses.iter().any(|u| u == "Tunnel")
    }

    /// Whether its nodeSelector (empty: `all()`) matches a node with `labels`; one that
    /// does not parse selects no node.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let s = self.node_selector.trim();
        if s.is_empty() {
            return true;
        }
        crate::selector::Selector::parse(s).is_ok_and(|sel| sel.matches(labels))
    }

    /// The fields set in it that this node does not implement. None of them is a
    /// reason to refuse the pool: its addresses are other nodes' pods all the same, and
    /// routing to them must go on. Each is made harmless instead:
    /// - `namespaceSelector` (which pods may take addresses from it): this node cannot
    ///   tell, so it gives addresses from the pool only when asked for one (as
    ///   assignmentMode Manual) rather than to any pod;
    /// - `ipip`, `nat-outgoing`: Calico's v1 fields, which Calico's own validation
    ///   refuses in a v3 pool (ipipMode, natOutgoing are read instead): ignored;
    /// - any other field (a newer Calico's): its meaning is unknown here, ignored.
    pub fn unsupported(&self) -> Vec<Unsupported> {
        let mut v = Vec::new();
        let ns = self.namespace_selector.trim();
        if !ns.is_empty() && ns != "all()" {
            v.push(Unsupported {
                field: "namespaceSelector".into(),
                effect: "no namespaces here: addresses from it only when asked for",
            });
        }
        for k in self.other.keys() {
            v.push(Unsupported {
                field: k.clone(),
                effect: match k.as_str() {
                    "ipip" | "nat-outgoing" => "Calico's v1 field: ignored",
                    _ => "not a field this node knows: ignored",
                },
            });
        }
        v
    }

    /// Whether this node may hand out its addresses unasked: not with a
    /// namespaceSelector it cannot apply (see [`IpPoolSpec::unsupported`]).
    pub fn automatic_here(&self) -> bool {
        let ns = self.namespace_selector.trim();
        (ns.is_empty() || ns == "all()") && self.assignment_mode != "Manual"
    }

    /// blockSize with Calico's default (26 / 122).
    pub fn block_size(&self) -> u8 {
        self.block_size
            .unwrap_or(if self.cidr.contains(':') { 122 } else { 26 })
    }
    /// Whether endpoints may get addresses from it (allowedUses, default Workload+Tunnel).
    pub fn for_workloads(&self) -> bool {
        self.allowed_uses.is_empty() || self.allowed_uses.iter().any(|u| u == "Workload")
    }
}

/// Node spec (`libcalico-go/lib/apis/v3/node.go`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_vxlan_tunnel_addr: String,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr: String,
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_vxlan_tunnel_addr: String,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr_v6: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrchRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    pub orchestrator: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    pub address: String,
    /// "CalicoNodeIP", "InternalIP" or "ExternalIP".
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// `spec.bgp` of a Node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// numorstring.ASNumber: written as a number, read as a number or a quoted one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "as_number::de"
    )]
    pub as_number: Option<u32>,
    /// "10.95.0.11/24": the address with its subnet prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_ipip_tunnel_addr: String,
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "String::is_empty"
    )]
    pub route_reflector_cluster_id: String,
}

/// `status` of a Node: empty (`{}`) from us; kept as Calico wrote it otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wireguard_public_key: String,
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
}

/// BGPPeer spec (`api/pkg/apis/projectcalico/v3/bgppeer.go`): the fields we honour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// The node that peers; empty: every node (with nodeSelector, those it selects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// "10.0.0.1", "10.0.0.1:1790" or "[fd00::1]:1790".
    #[serde(default, rename = "peerIP", skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "as_number::de"
    )]
    pub as_number: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keepalive_time: String,
}

/// `password: {secretKeyRef: {name, key}}`: outside Kubernetes, the secret is a file
/// `<secrets_dir>/<name>/<key>` (as a Secret volume mounts it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPassword {
    #[serde(default)]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// BGPConfiguration spec (`bgpconfig.go`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_severity_screen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "as_number::de"
    )]
    pub as_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
}

/// numorstring.ASNumber: a JSON number, or a string holding one ("64512", or the
/// dotted "1.10" form = 1 * 65536 + 10).
mod as_number {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(u32),
        Str(String),
    }

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let v: Option<NumOrString> = Option::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(NumOrString::Num(n)) => Ok(Some(n)),
            Some(NumOrString::Str(s)) => parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("bad AS number {s:?}"))),
        }
    }

    pub fn parse(s: &str) -> Option<u32> {
        match s.split_once('.') {
            Some((hi, lo)) => {
                let (hi, lo) = (hi.parse::<u16>().ok()?, lo.parse::<u16>().ok()?);
                Some((hi as u32) << 16 | lo as u32)
            }
            None => s.parse().ok(),
        }
    }
}

/// IPAM block (`libcalico-go/lib/backend/model/block.go`): one entry per address in
/// `allocations` (null = free, else an index into `attributes`), free ordinals in
/// `unallocated` in the order they are handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationBlock {
    pub cidr: String,
    /// "host:<node>" (or "virtual:<name>"); null when the block has no affinity.
    pub affinity: Option<String>,
    pub allocations: Vec<Option<u32>>,
    pub unallocated: Vec<u32>,
    pub attributes: Vec<AllocationAttribute>,
    pub sequence_number: u64,
    /// Ordinal (as a string) → the block's sequence number when it was allocated.
    #[serde(default)]
    pub sequence_number_for_allocation: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_affinity: Option<String>,
}

/// What an allocation is for: its handle and Calico's secondary attributes (`node`,
/// `pod`, `namespace`, `type`, `timestamp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationAttribute {
    pub handle_id: Option<String>,
    pub secondary: Option<BTreeMap<String, String>>,
}

impl AllocationBlock {
    /// The host of a `host:` affinity.
    pub fn host(&self) -> Option<&str> {
        self.affinity.as_deref()?.strip_prefix("host:")
    }
}

/// `/calico/ipam/v2/host/<node>/ipv4/block/<cidr>` (`block_affinity.go`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAffinity {
    /// "pending", "confirmed" or "pendingDeletion".
    pub state: String,
    #[serde(default)]
    pub deleted: bool,
}

/// `/calico/ipam/v2/handle/<id>` (`ipam_handle.go`): block CIDR → addresses held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamHandle {
    pub block: BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted: bool,
}

/// WorkloadEndpoint spec (`libcalico-go/lib/apis/internalapi/workloadendpoint.go`), in
/// Go's field order. A namespaced resource: its key ends `<namespace>/<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// "10.244.1.5/32", "fd00::5/128".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<String>,
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6_gateway: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The host side of the veth.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    /// The pod side's MAC.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<String>,
}

/// "66:xx:.." lowercase, as Calico prints it.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(json: &str) -> IpPoolSpec {
        serde_json::from_str(json).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn allowed_uses_default_to_workload_and_tunnel() {
        let p = spec(r#"{"cidr":"10.1.0.0/16"}"#);
        assert!(p.for_workloads() && p.for_tunnels());
        let p = spec(r#"{"cidr":"10.1.0.0/16","allowedUses":["Workload"]}"#);
        assert!(p.for_workloads() && !p.for_tunnels());
        let p = spec(r#"{"cidr":"10.1.0.0/16","allowedUses":["Tunnel"]}"#);
        assert!(!p.for_workloads() && p.for_tunnels());
        let p = spec(r#"{"cidr":"10.1.0.0/16","allowedUses":["LoadBalancer"]}"#);
        assert!(!p.for_workloads() && !p.for_tunnels());
    }

    #[test]
    fn node_selector_against_labels() {
        let zone_a = labels(&[("zone", "a")]);
        let none = labels(&[]);
        for (sel, a, empty) in [
            ("", true, true),
            ("all()", true, true),
            ("zone == 'a'", true, false),
            ("zone != 'a'", false, true),
            ("!has(zone)", false, true),
            ("has(zone)", true, false),
            ("!all()", false, false),
            ("zone = 'a'", false, false), // does not parse: selects nothing
        ] {
            let p = IpPoolSpec {
                cidr: "10.1.0.0/16".into(),
                node_selector: sel.into(),
                ..Default::default()
            };
            assert_eq!(p.selects(&zone_a), a, "{sel:?} on zone=a");
            assert_eq!(p.selects(&none), empty, "{sel:?} on no labels");
        }
    }

    #[test]
    fn unknown_and_unimplemented_fields_are_named_and_kept() {
        let text = r#"{"cidr":"10.1.0.0/16","namespaceSelector":"team == 'x'","ipip":{"enabled":true},"futureField":3}"#;
        let p = spec(text);
        let fields: Vec<String> = p.unsupported().into_iter().map(|u| u.field).collect();
        assert_eq!(fields, ["namespaceSelector", "futureField", "ipip"]);
        assert!(
            !p.automatic_here(),
            "namespaceSelector: only asked-for addresses"
        );
        // Written back, nothing is lost.
        let back: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        // Calico's own pool has none.
        let calico = spec(
            r#"{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"namespaceSelector":"all()","assignmentMode":"Automatic"}"#,
        );
        assert!(
            calico.unsupported().is_empty(),
            "{:?}",
            calico.unsupported()
        );
        assert!(calico.automatic_here());
        let manual = spec(r#"{"cidr":"10.1.0.0/16","assignmentMode":"Manual"}"#);
        assert!(!manual.automatic_here() && manual.unsupported().is_empty());
    }

    proptest! {
        /// `k == 'v'` selects exactly the nodes whose label k is v; its negation the
        /// others; `all()` and the empty selector every node.
        #[test]
        fn equality_selectors_match_a_plain_model(
            node in proptest::collection::btree_map("[a-c]", "[x-z]", 0..3),
            k in "[a-c]",
            v in "[x-z]",
        ) {
            let with = |sel: String| IpPoolSpec { node_selector: sel, ..Default::default() };
            let model = node.get(&k) == Some(&v);
            prop_assert_eq!(with(format!("{k} == '{v}'")).selects(&node), model);
            prop_assert_eq!(with(format!("!({k} == '{v}')")).selects(&node), !model);
            prop_assert_eq!(with(format!("has({k})")).selects(&node), node.contains_key(&k));
            prop_assert!(with("all()".into()).selects(&node));
            prop_assert!(with(String::new()).selects(&node));
        }
    }
}
