//! What the datastore contributed to the running node, and how its records read as
//! the node's own types (`[[nodes]]` entries, pools, BGP peers). Data only: the
//! operations that apply a view are in `cluster`.

use crate::config::{AssignmentMode, BgpPeer, EncapMode, Node, Pool};
use datastore::model::{BgpPeerSpec, IpPoolSpec, NodeResource};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use tracing::warn;

/// Whether the datastore answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatastoreStatus {
    #[default]
    Connecting,
    InSync {
        revision: i64,
    },
    Unreachable {
        since: SystemTime,
        error: String,
    },
}

impl DatastoreStatus {
    /// One line for `node status` and /readyz.
    pub fn describe(&self) -> String {
        match self {
            DatastoreStatus::Connecting => "connecting".into(),
            DatastoreStatus::InSync { revision } => format!("in sync (revision {revision})"),
            DatastoreStatus::Unreachable { since, error } => format!(
                "datastore unreachable since {} ({error})",
                datastore::member::rfc3339_at(*since)
            ),
        }
    }
}

/// What the datastore contributed.
#[derive(Debug, Default)]
pub struct ClusterState {
    pub status: DatastoreStatus,
    /// Our Node resource's labels (with Calico's implicit `projectcalico.org/name`).
    pub labels: BTreeMap<String, String>,
    pub nodes: BTreeMap<String, Node>,
    /// Mesh sessions opened for datastore nodes.
    pub mesh: BTreeSet<IpAddr>,
    pub pools: BTreeMap<IpNet, Pool>,
    pub peers: BTreeMap<IpAddr, BgpPeer>,
    /// Blocks whose affinity is ours.
    pub affine: Vec<IpNet>,
    /// Without BGP: other nodes' blocks routed to them from their affinities (block →
    /// node), as Felix does in Calico's VXLAN-only mode.
    pub routes: BTreeMap<IpNet, String>,
    pub secrets_dir: std::path::PathBuf,
    /// The last view applied.
    pub revision: i64,
    /// Every node's workload endpoints and the namespaces' labels (what policies'
    /// selectors see).
    pub workloads: std::sync::Arc<BTreeMap<String, datastore::sync::ViewedWorkload>>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// What was logged about the datastore's pools (`pool: message`), so each thing is
    /// said once, not at every view; forgotten when it no longer holds.
    pub pool_warnings: BTreeSet<String>,
}

/// `[[nodes]]` entry for a registered node: its BGP addresses (else its addresses) and
/// its VTEP MAC if it wrote one (else Calico's derivation from its name).
pub fn node_entry(name: &str, n: &NodeResource) -> Option<Node> {
    let mut ips: Vec<IpNet> = Vec::new();
    if let Some(b) = &n.spec.bgp {
        for a in [&b.ipv4_address, &b.ipv6_address] {
            if let Some(net) = parse_net(a) {
                ips.push(net);
            }
        }
    }
    if ips.is_empty() {
        ips = n
            .spec
            .addresses
            .iter()
            .filter_map(|a| parse_net(&a.address))
            .collect();
    }
    if ips.is_empty() {
        return None;
    }
    let mac = &n.spec.vxlan_tunnel_mac_addr;
    Some(Node {
        name: name.to_string(),
        ips,
        vtep_mac: (!mac.is_empty()).then(|| mac.clone()),
    })
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn mode(s: &str) -> Result<EncapMode, String> {
    match s {
        "" | "Never" => Ok(EncapMode::Never),
        "Always" => Ok(EncapMode::Always),
        "CrossSubnet" => Ok(EncapMode::CrossSubnet),
        other => Err(format!("unknown encapsulation mode {other:?}")),
    }
}

/// A pool as the node takes it. Fields it cannot honour are made harmless as
/// [`IpPoolSpec::unsupported`] says (the caller logs them); a value it cannot read
/// (an encapsulation or assignment mode it does not know) refuses the pool, since
/// guessing how to reach its addresses could send them the wrong way.
pub fn pool_of(p: &IpPoolSpec) -> Result<Pool, String> {
    let cidr: IpNet = p
        .cidr
        .parse()
        .map_err(|e| format!("cidr {:?}: {e}", p.cidr))?;
    Ok(Pool {
        cidr,
        block_size: p.block_size,
        ipip_mode: mode(&p.ipip_mode)?,
        vxlan_mode: mode(&p.vxlan_mode)?,
        nat_outgoing: p.nat_outgoing,
        disabled: p.disabled,
        node_selector: (!p.node_selector.is_empty()).then(|| p.node_selector.clone()),
        disable_bgp_export: p.disable_bgp_export,
        allowed_uses: (!p.allowed_uses.is_empty()).then(|| p.allowed_uses.clone()),
        assignment_mode: match p.assignment_mode.as_str() {
            "" | "Automatic" if p.automatic_here() => AssignmentMode::Automatic,
            "" | "Automatic" | "Manual" => AssignmentMode::Manual,
            other => return Err(format!("assignmentMode {other:?}: Automatic or Manual")),
        },
    })
}

/// "10.0.0.1", "10.0.0.1:1790", "[fd00::1]:1790" → address and port.
fn peer_address(s: &str) -> Option<(IpAddr, u16)> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some((a, 179));
    }
    s.parse::<SocketAddr>().ok().map(|sa| (sa.ip(), sa.port()))
}

impl ClusterState {
    /// Whether a BGPPeer applies to this node: named for it, global (no node, no
    /// selector), or selecting its labels.
    pub fn applies(&self, me: &str, p: &BgpPeerSpec) -> bool {
        if !p.node.is_empty() {
            return p.node == me;
        }
        match datastore::selector::Selector::parse(&p.node_selector) {
            Ok(sel) => sel.matches(&self.labels),
            Err(e) => {
                warn!(selector = %p.node_selector, error = %e, "BGPPeer nodeSelector: skipped");
                false
            }
        }
    }

    pub fn peer_of(&self, name: &str, p: &BgpPeerSpec) -> Option<BgpPeer> {
        let Some((address, port)) = peer_address(&p.peer_ip) else {
            warn!(peer = name, ip = %p.peer_ip, "BGPPeer peerIP does not parse: skipped");
            return None;
        };
        let password = match p.password.as_ref().and_then(|x| x.secret_key_ref.as_ref()) {
            None => None,
            Some(r) if !(one_component(&r.name) && one_component(&r.key)) => {
                // From the datastore, so anyone who may write BGPPeers: a name or key
                // that climbs out of secrets_dir ("..", "/etc/shadow") is refused.
                warn!(peer = name, secret = %r.name, key = %r.key,
                    "BGPPeer secretKeyRef is not a plain name and key: skipped");
                return None;
            }
            Some(r) => {
                let path = self.secrets_dir.join(&r.name).join(&r.key);
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(s.trim_end_matches('\n').to_string()),
                    Err(e) => {
                        warn!(peer = name, path = %path.display(), error = %e, "BGPPeer password unreadable: skipped");
                        return None;
                    }
                }
            }
        };
        Some(BgpPeer {
            address,
            asn: p.as_number,
            password,
            password_file: None,
            rr_client: false,
            hold_time: 90,
            keepalive: None,
            port,
            passive: false,
            enforce_first_as: true,
            max_prefixes: None,
            max_prefixes_warning: 75,
            ttl_security: None,
        })
    }
}

/// A secret's name or key as one plain file name under secrets_dir: not empty, no
/// separator, not `.` or `..`.
fn one_component(s: &str) -> bool {
    let mut c = std::path::Path::new(s).components();
    matches!(c.next(), Some(std::path::Component::Normal(_)))
        && c.next().is_none()
        && !s.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_ref_cannot_leave_the_secrets_dir() {
        let dir = std::env::temp_dir().join(format!("vr-secrets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bgp")).unwrap();
        std::fs::write(dir.join("bgp/peer1"), "s3cret\n").unwrap();
        std::fs::write(dir.join("outside"), "not yours\n").unwrap();
        let cs = ClusterState {
            secrets_dir: dir.join("mounted"),
            ..Default::default()
        };
        std::fs::create_dir_all(dir.join("mounted/bgp")).unwrap();
        std::fs::write(dir.join("mounted/bgp/peer1"), "s3cret\n").unwrap();
        let peer = |name: &str, key: &str| {
            let spec: BgpPeerSpec = serde_json::from_value(serde_json::json!({
                "peerIP": "10.0.0.9", "asNumber": 64512,
                "password": {"secretKeyRef": {"name": name, "key": key}}
            }))
            .unwrap();
            cs.peer_of("p", &spec).map(|p| p.password)
        };
        assert_eq!(peer("bgp", "peer1"), Some(Some("s3cret".into())));
        for (name, key) in [
            ("..", "outside"),
            ("bgp", "../../outside"),
            ("/", "etc"),
            ("", "x"),
            ("bgp/..", "peer1"),
            (".", "outside"),
        ] {
            assert_eq!(peer(name, key), None, "{name:?} / {key:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
