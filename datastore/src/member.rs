//! A node joining the cluster: its Node resource registered or brought up to date (as
//! calico/node does at start), and its VXLAN tunnel address taken from IPAM with
//! Calico's handle, so kernel Calico nodes reach it as they reach each other.

use crate::ipam::{Ipam, IpamPool, IpamResult};
use crate::keys;
use crate::model::{
    Metadata, NodeAddress, NodeBgpSpec, NodeResource, NodeSpec, NodeStatus, API_VERSION,
};
use crate::store::{encode, Store, StoreError, StoreResult};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a node says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    /// Addresses with their subnet prefix ("10.95.0.21/24").
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    /// Set when the node's AS differs from the cluster's (None: the cluster's).
    pub asn: Option<u32>,
    pub vxlan_tunnel_addr: Option<IpAddr>,
    pub vtep_mac: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Calico's handle for a node's VXLAN tunnel address.
pub fn tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// RFC 3339 UTC to the second, as Go's metav1.Time marshals.
pub fn rfc3339_now() -> String {
    rfc3339_at(std::time::SystemTime::now())
}

pub fn rfc3339_at(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A random UUID (v4) for metadata.uid.
pub fn uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn apply(spec: &mut NodeSpec, r: &Registration) {
    let bgp = spec.bgp.get_or_insert_with(NodeBgpSpec::default);
    bgp.ipv4_address = r.ipv4.map(|n| n.to_string()).unwrap_or_default();
    bgp.ipv6_address = r.ipv6.map(|n| n.to_string()).unwrap_or_default();
    if r.asn.is_some() {
        bgp.as_number = r.asn;
    }
    if let Some(a) = r.vxlan_tunnel_addr {
        spec.ipv4_vxlan_tunnel_addr = a.to_string();
    }
    if let Some(m) = &r.vtep_mac {
        spec.vxlan_tunnel_mac_addr = m.clone();
    }
    let mut addresses: Vec<NodeAddress> = [r.ipv4, r.ipv6]
        .into_iter()
        .flatten()
        .map(|n| NodeAddress {
            address: n.to_string(),
            kind: "CalicoNodeIP".into(),
        })
        .collect();
    // Addresses others wrote (InternalIP from Kubernetes...) stay.
    for a in &spec.addresses {
        if a.kind != "CalicoNodeIP" && !addresses.contains(a) {
            addresses.push(a.clone());
        }
    }
    spec.addresses = addresses;
}

/// Create our Node or update the fields we own in it (other fields, labels and status
/// stay as others wrote them). Returns the stored resource.
pub async fn register(store: &Store, r: &Registration) -> StoreResult<NodeResource> {
    let key = keys::resource(&store.prefix, "nodes", &r.name);
    for _ in 0..32 {
        match store.get(&key).await? {
            Some(e) => {
                let mut n: NodeResource = e.decode()?;
                let before = n.clone();
                apply(&mut n.spec, r);
                for (k, v) in &r.labels {
                    n.metadata.labels.insert(k.clone(), v.clone());
                }
                if n == before || store.update(&key, encode(&n), e.mod_revision).await? {
                    return Ok(n);
                }
            }
            None => {
                let mut spec = NodeSpec::default();
                apply(&mut spec, r);
                let n = NodeResource {
                    kind: "Node".into(),
                    api_version: API_VERSION.into(),
                    metadata: Metadata {
                        name: r.name.clone(),
                        uid: uuid(),
                        creation_timestamp: rfc3339_now(),
                        labels: r.labels.clone(),
                        ..Default::default()
                    },
                    spec,
                    status: NodeStatus::default(),
                };
                if store.create(&key, encode(&n)).await? {
                    return Ok(n);
                }
            }
        }
    }
    Err(StoreError::Other(format!(
        "{key}: too many concurrent writers"
    )))
}

/// Our VXLAN tunnel address: the one our handle holds, else a new one from a VXLAN
/// pool (Calico's attributes: `node`, `type: vxlanTunnelAddress`).
pub async fn tunnel_address(ipam: &Ipam, pools: &[IpamPool]) -> IpamResult<Option<IpAddr>> {
    if pools.is_empty() {
        return Ok(None);
    }
    let handle = tunnel_handle(ipam.node());
    if let Some(a) = ipam
        .addresses_of(&handle)
        .await?
        .into_iter()
        .find(|a| a.is_ipv4())
    {
        return Ok(Some(a));
    }
    let secondary: BTreeMap<String, String> = [
        ("node".to_string(), ipam.node().to_string()),
        ("type".to_string(), "vxlanTunnelAddress".to_string()),
    ]
    .into();
    ipam.auto_assign(&handle, &secondary, pools, false)
        .await
        .map(Some)
}

/// Remove a node from the cluster: its Node resource, its affinities and empty blocks
/// (`vrouterctl node delete`; what Calico's node controller does when a node goes).
pub async fn deregister(store: &Store, name: &str) -> StoreResult<()> {
    let key = keys::resource(&store.prefix, "nodes", name);
    if let Some(e) = store.get(&key).await? {
        store.delete(&key, e.mod_revision).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_and_uids_look_like_calicos() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
        let u = super::uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, super::uuid());
    }
}
