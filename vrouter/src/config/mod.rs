//! `vrouterd --config FILE`: the TOML configuration, parsed and validated up front so a
//! bad file fails at start with a message naming the field, never later in a worker.
//! The commented example is `configs/vrouter.toml`.

use datastore::selector::Selector;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The label Calico gives every node: its name.
pub const NAME_LABEL: &str = "projectcalico.org/name";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node_name: String,
    /// The node's addresses with their subnet prefix.
    #[serde(deserialize_with = "net::many")]
    pub node_ips: Vec<IpNet>,
    /// The node's labels, which pools' `node_selector` match (with the implicit
    /// `projectcalico.org/name = node_name` every Calico node carries).
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub uplinks: Vec<Uplink>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub workers: Workers,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Namespaces' labels (`[namespaces.<name>.labels]`), which policies' namespace
    /// selectors see; with a datastore its `kns.<name>` profiles add theirs (the file
    /// wins on a key). An endpoint's namespace is its workload's, else `default`.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Namespace>,
    /// Static routes out of an uplink (until BGP learns them), e.g. the default route.
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    /// How our XDP program is attached: "native" (driver), "generic" (skb), or "auto"
    /// (native, falling back to generic where the driver refuses).
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// ICMP errors each worker may send per second.
    #[serde(default = "default_icmp_rate")]
    pub icmp_rate: u32,
    /// Remote nodes whose blocks `routes` name.
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub vxlan: VxlanSettings,
    /// The embedded BGP speaker (absent: routes come from this file only).
    pub bgp: Option<BgpSettings>,
    /// The gRPC API (`vrouterctl`).
    #[serde(default)]
    pub api: ApiSettings,
    /// The Prometheus endpoint (absent: none).
    pub metrics: Option<MetricsSettings>,
    /// IPAM state and what was added through the API, kept across restarts.
    #[serde(default = "default_state_dir")]
    pub state_dir: std::path::PathBuf,
    /// The cluster datastore (absent: this node alone, IPAM in `state_dir`).
    pub datastore: Option<DatastoreSettings>,
    /// Connection tracking and NAT outgoing.
    #[serde(default)]
    pub conntrack: ConntrackSettings,
    /// AF_XDP socket options (fill depth, batch, busy polling): `io::afxdp::Tuning`.
    #[serde(default)]
    pub afxdp: crate::io::afxdp::Tuning,
    /// `[log]`: level (changeable while running) and format (text or JSON lines).
    #[serde(default)]
    pub log: crate::logging::LogSettings,
}

/// `[conntrack]`: the workers' flow tables and NAT outgoing's ports.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConntrackSettings {
    /// Flows tracked at most, over all workers (each worker holds its share). Memory is
    /// taken once, when a pool first asks for NAT: about 128 bytes per flow.
    #[serde(default = "default_max_flows")]
    pub max_flows: usize,
    /// NAT outgoing's source ports on the node's address, "low-high". vrouterd reserves
    /// them from the kernel (`net.ipv4.ip_local_reserved_ports`) so the node's own
    /// connections never use one, and steers packets to them (and nothing else) to
    /// itself. Each worker draws from its own slice.
    #[serde(default = "default_nat_ports")]
    pub nat_ports: String,
}

fn default_max_flows() -> usize {
    1 << 20
}

fn default_nat_ports() -> String {
    "61000-65535".into()
}

impl Default for ConntrackSettings {
    fn default() -> Self {
        ConntrackSettings {
            max_flows: default_max_flows(),
            nat_ports: default_nat_ports(),
        }
    }
}

impl ConntrackSettings {
    /// `nat_ports` as a range, if it is "low-high" with 1024 <= low <= high.
    pub fn nat_range(&self) -> Option<std::ops::RangeInclusive<u16>> {
        let (lo, hi) = self.nat_ports.split_once('-')?;
        let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        (lo >= 1024 && lo <= hi).then_some(lo..=hi)
    }
}

/// `[datastore]`: the cluster's shared state in etcd, in Calico's data model (nodes,
/// pools, BGP peers and configuration, IPAM). Names as Calico's `ETCD_*` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatastoreSettings {
    /// "etcdv3" (Calico's name for it; the only one).
    #[serde(rename = "type")]
    pub kind: String,
    /// Client URLs, e.g. ["http://127.0.0.1:2379"].
    pub endpoints: Vec<String>,
    pub ca_cert_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    #[serde(default = "calico_prefix")]
    pub prefix: String,
    /// Where BGPPeer passwords (`secretKeyRef {name, key}`) are read: `<dir>/<name>/<key>`.
    #[serde(default = "default_secrets_dir")]
    pub secrets_dir: std::path::PathBuf,
}

fn calico_prefix() -> String {
    "/calico".into()
}

fn default_secrets_dir() -> std::path::PathBuf {
    "/etc/vrouter/secrets".into()
}

fn default_state_dir() -> std::path::PathBuf {
    "/var/lib/vrouter".into()
}

/// `[api]`: where the gRPC API is served.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Unix socket, mode 0600 (root only).
    #[serde(default = "default_socket")]
    pub socket: std::path::PathBuf,
    /// Also TCP, with mutual TLS only: `cert_file`, `key_file` and `client_ca_file`
    /// are required with it.
    pub listen: Option<std::net::SocketAddr>,
    /// The node's certificate (PEM, chain first) for the TCP listener.
    pub cert_file: Option<std::path::PathBuf>,
    /// Its private key (PEM, mode 0600).
    pub key_file: Option<std::path::PathBuf>,
    /// The CA that signs the certificates of the clients allowed in.
    pub client_ca_file: Option<std::path::PathBuf>,
}

impl ApiSettings {
    /// The TCP listener with its TLS files; an error when `listen` comes without them
    /// (the API has no other authentication, so it never listens on TCP in clear).
    pub fn tcp(&self) -> Result<Option<control::api::TcpServe>, ConfigError> {
        let Some(addr) = self.listen else {
            if self.cert_file.is_some() || self.key_file.is_some() || self.client_ca_file.is_some()
            {
                return Err(ConfigError(
                    "api: cert_file, key_file and client_ca_file are for listen, which is not set"
                        .into(),
                ));
            }
            return Ok(None);
        };
        match (&self.cert_file, &self.key_file, &self.client_ca_file) {
            (Some(c), Some(k), Some(ca)) => Ok(Some(control::api::TcpServe {
                addr,
                tls: control::api::ServerTlsFiles {
                    cert_file: c.clone(),
                    key_file: k.clone(),
                    client_ca_file: ca.clone(),
                },
            })),
            _ => Err(ConfigError(format!(
                "api: listen = \"{addr}\" needs cert_file, key_file and client_ca_file: \
                 the TCP listener takes only clients with a certificate (mutual TLS)"
            ))),
        }
    }
}

fn default_socket() -> std::path::PathBuf {
    control::api::DEFAULT_SOCKET.into()
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            socket: default_socket(),
            listen: None,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
        }
    }
}

/// `[metrics]`: Prometheus text format at /metrics, health at /livez and /readyz.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: std::net::SocketAddr,
}

/// `[bgp]`: the node's speaker. With `mesh`, every `[[nodes]]` entry is a peer (the
/// node-to-node full mesh, Calico's default); `[[bgp.peers]]` adds route reflectors,
/// top-of-rack routers or other speakers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpSettings {
    #[serde(default = "default_asn")]
    pub asn: u32,
    /// Default: the node's first IPv4 address.
    pub router_id: Option<std::net::Ipv4Addr>,
    #[serde(default = "yes")]
    pub mesh: bool,
    /// Default: port 179 on every address.
    pub listen: Option<std::net::SocketAddr>,
    /// Restart time offered to peers (RFC 4724); 0 turns graceful restart off.
    #[serde(default = "default_restart_time")]
    pub graceful_restart: u16,
    /// Milliseconds of route changes collected before the FIB is updated.
    #[serde(default = "default_batch_ms")]
    pub batch_ms: u64,
    /// Act as a route reflector with this cluster id (peers with `rr_client` are its
    /// clients).
    pub cluster_id: Option<std::net::Ipv4Addr>,
    /// Written at a clean stop; found at start within the restart time, it makes this a
    /// graceful restart (the R bit in our OPEN, RFC 4724). Default: `bgp-restart` in
    /// `state_dir` ([`Config::restart_marker`]).
    #[serde(default)]
    pub restart_marker: Option<std::path::PathBuf>,
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    pub address: std::net::IpAddr,
    /// Default: ours (iBGP).
    pub asn: Option<u32>,
    /// TCP MD5 signature (RFC 2385).
    pub password: Option<String>,
    /// The same, read from this file (its first line), which must be the owner's
    /// alone (mode 0600), as Calico takes a BGPPeer's password from a secret. Never
    /// copied anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<std::path::PathBuf>,
    /// We reflect routes to it (route-reflector role).
    #[serde(default)]
    pub rr_client: bool,
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// Seconds between keepalives; default a third of the hold time.
    pub keepalive: Option<u16>,
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// Only accept its connection.
    #[serde(default)]
    pub passive: bool,
    /// eBGP: announcements whose AS_PATH is empty or does not start with the peer's
    /// AS are withdrawals (BIRD's and FRR's default); off for a route server.
    #[serde(default = "yes")]
    pub enforce_first_as: bool,
    /// At most this many prefixes from it (both families together); one more ends the
    /// session (Cease / Maximum Number of Prefixes Reached, RFC 4486) for a minute.
    /// Absent: no limit.
    pub max_prefixes: Option<u32>,
    /// Warn when it holds this share (percent) of `max_prefixes`.
    #[serde(default = "default_max_prefixes_warning")]
    pub max_prefixes_warning: u8,
    /// TTL security (GTSM, RFC 5082): send with TTL 255 and accept only segments
    /// with TTL ≥ 255 - this many hops (1: directly connected). Absent: off.
    pub ttl_security: Option<u8>,
}

fn default_max_prefixes_warning() -> u8 {
    75
}

fn default_asn() -> u32 {
    64512
}
fn yes() -> bool {
    true
}
fn default_restart_time() -> u16 {
    120
}
fn default_batch_ms() -> u64 {
    5
}
fn default_hold() -> u16 {
    90
}
fn default_bgp_port() -> u16 {
    179
}

fn default_icmp_rate() -> u32 {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    #[default]
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    #[serde(deserialize_with = "net::one")]
    pub dst: IpNet,
    /// The next hop, on the uplink's subnet (its MAC comes from the kernel's
    /// neighbours); a list makes an ECMP route (flows spread by a 5-tuple hash).
    pub via: Option<Via>,
    /// Or: a remote node's block. The pool holding `dst` decides the encapsulation.
    pub node: Option<String>,
    /// Which uplink (default: the first).
    pub uplink: Option<String>,
}

/// One next hop, or several (ECMP).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Via {
    One(std::net::IpAddr),
    Many(Vec<std::net::IpAddr>),
}

impl Via {
    pub fn addrs(&self) -> Vec<std::net::IpAddr> {
        match self {
            Via::One(a) => vec![*a],
            Via::Many(v) => v.clone(),
        }
    }
}

/// A remote node (static until BGP learns them): where its blocks are reached.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// Its underlay addresses (the prefix length is not used).
    #[serde(deserialize_with = "net::many")]
    pub ips: Vec<IpNet>,
    /// Its VTEP MAC if configured; else Calico's derivation from the name.
    pub vtep_mac: Option<String>,
}

/// VXLAN settings of this node.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VxlanSettings {
    #[serde(default = "calico_vni")]
    pub vni: u32,
    /// Our VTEP MAC; default: 0x66 + sha1(node_name)[0..5], as Calico.
    pub vtep_mac: Option<String>,
    /// Outer UDP source port: a fixed port (Calico VPP uses 4789); default: per flow.
    pub source_port: Option<u16>,
}

fn calico_vni() -> u32 {
    4096
}

impl Default for VxlanSettings {
    fn default() -> Self {
        VxlanSettings {
            vni: calico_vni(),
            vtep_mac: None,
            source_port: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    pub name: String,
    #[serde(default = "default_queues")]
    pub queues: Vec<u32>,
}

fn default_queues() -> Vec<u32> {
    vec![0]
}

/// Calico's IPPool encapsulation modes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    #[default]
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    #[serde(deserialize_with = "net::one")]
    pub cidr: IpNet,
    /// Default: 26 for IPv4, 122 for IPv6 (Calico's).
    pub block_size: Option<u8>,
    #[serde(default)]
    pub ipip_mode: EncapMode,
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    /// Calico's natOutgoing: pods' packets to outside every pool (and every node) leave
    /// from the node's address (IPv4, and IPv6 for an IPv6 pool), replies come back.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// No new blocks or addresses from it; those given out stay.
    #[serde(default)]
    pub disabled: bool,
    /// Calico's nodeSelector: this node takes addresses from the pool only when it
    /// matches the node's labels. Default: all().
    pub node_selector: Option<String>,
    /// Calico's disableBGPExport: the pool's blocks are not announced over BGP (they
    /// are still routed here).
    #[serde(default)]
    pub disable_bgp_export: bool,
    /// Calico's allowedUses: "Workload", "Tunnel", "LoadBalancer". Default: Workload
    /// and Tunnel. Endpoints get addresses only from a Workload pool; LoadBalancer is
    /// kept, not used.
    pub allowed_uses: Option<Vec<String>>,
    /// Calico's assignmentMode: Manual pools give only the addresses asked for.
    #[serde(default)]
    pub assignment_mode: AssignmentMode,
}

/// Calico's IPPool assignment modes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum AssignmentMode {
    /// Addresses are handed out without being asked for.
    #[default]
    Automatic,
    /// Only addresses asked for explicitly.
    Manual,
}

/// Calico's IPPool allowed uses.
pub const ALLOWED_USES: [&str; 3] = ["Workload", "Tunnel", "LoadBalancer"];

impl Pool {
    /// A pool of `cidr` with Calico's defaults.
    pub fn new(cidr: IpNet) -> Pool {
        Pool {
            cidr,
            block_size: None,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            node_selector: None,
            disable_bgp_export: false,
            allowed_uses: None,
            assignment_mode: AssignmentMode::Automatic,
        }
    }

    pub fn block_size(&self) -> u8 {
        self.block_size.unwrap_or(match self.cidr {
            IpNet::V4(_) => 26,
            IpNet::V6(_) => 122,
        })
    }

    /// Its allowed uses, Calico's default (Workload and Tunnel) when not set.
    pub fn allowed_uses(&self) -> Vec<String> {
        self.allowed_uses
            .clone()
            .unwrap_or_else(|| vec!["Workload".into(), "Tunnel".into()])
    }

    /// Whether endpoints may get addresses from it.
    pub fn for_workloads(&self) -> bool {
        self.allowed_uses().iter().any(|u| u == "Workload")
    }

    /// Whether its node selector matches a node with `labels` (one that does not parse,
    /// which validation refuses, matches nothing).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.node_selector {
            None => true,
            Some(s) => Selector::parse(s).is_ok_and(|s| s.matches(labels)),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin on the rings: lowest latency, one core always busy.
    Busy,
    /// Back off to poll/wakeup when idle, so an idle node does not burn a core.
    #[default]
    Adaptive,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    #[serde(default = "one")]
    pub count: usize,
    /// One core per worker; default: cores 1, 2, … (core 0 left to the kernel and control).
    pub cores: Option<Vec<usize>>,
    #[serde(default)]
    pub poll_mode: PollMode,
    /// Endpoints that may be added while running (API or reload), beyond those in
    /// the file: each reserves a port and about 5 MiB of AF_XDP frames in its worker.
    #[serde(default = "default_endpoint_slots")]
    pub endpoint_slots: usize,
}

fn default_endpoint_slots() -> usize {
    16
}

fn one() -> usize {
    1
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            count: 1,
            cores: None,
            poll_mode: PollMode::default(),
            endpoint_slots: default_endpoint_slots(),
        }
    }
}

impl Workers {
    pub fn cores(&self) -> Vec<usize> {
        self.cores
            .clone()
            .unwrap_or_else(|| (1..=self.count).collect())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Veth,
    Tap,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub kind: EndpointKind,
    pub interface: String,
    #[serde(deserialize_with = "net::many")]
    pub ips: Vec<IpNet>,
    /// The pod's MAC if known (a VM's tap); otherwise learnt from its ARP / ND.
    pub mac: Option<String>,
    /// The pod's labels (network policy selects on them).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The container a CNI plugin made this endpoint for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Who it is for, as Calico's WorkloadEndpoint names it (set by the CNI plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadIdentity>,
}

/// A namespace's labels.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The orchestrator's names for an endpoint (see `pb::Workload`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIdentity {
    pub orchestrator: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    pub endpoint: String,
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// Parse "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A configuration error, naming what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The node's labels as selectors see them: `node_labels` and Calico's implicit
    /// `projectcalico.org/name`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.node_labels.clone();
        labels.insert(NAME_LABEL.into(), self.node_name.clone());
        labels
    }

    /// Where the BGP restart marker goes: `[bgp] restart_marker`, else `bgp-restart`
    /// in `state_dir` (this instance's, never a fixed path another may share).
    pub fn restart_marker(&self) -> std::path::PathBuf {
        self.bgp
            .as_ref()
            .and_then(|b| b.restart_marker.clone())
            .unwrap_or_else(|| self.state_dir.join("bgp-restart"))
    }

    /// Parse and validate.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Self::parse_located(text).map_err(|(e, _)| e)
    }

    /// Parse and validate; a validation error comes with the line and column (1-based)
    /// in `text` of the value it is about, from the parser's spans, when that value or
    /// its entry is written there. (toml's own errors name their line in the message.)
    pub fn parse_located(text: &str) -> Result<Config, (ConfigError, Option<(usize, usize)>)> {
        let config: Config =
            toml::from_str(text).map_err(|e| (ConfigError(e.to_string()), None))?;
        match config.validate_at() {
            Ok(()) => Ok(config),
            Err(e) => {
                let at = spans::span_of(text, &e.at).map(|s| spans::line_col(text, s.start));
                Err((ConfigError(e.message), at))
            }
        }
    }

    /// Read, parse and validate a file. Validation errors read `FILE:LINE:COLUMN: what`
    /// ([`parse_located`](Self::parse_located)); toml's own carry their line and
    /// column in the text.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse_located(&text).map_err(|(e, at)| match at {
            Some((line, col)) => ConfigError(format!("{}:{line}:{col}: {e}", path.display())),
            None => ConfigError(format!("{}: {e}", path.display())),
        })
    }
}

mod net;
mod spans;
mod validate;
pub use net::parse_net;
pub use validate::{
    address_clash, check_interface, check_name, check_peer_address, host_bits, read_password_file,
    Clash, Holder,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_prefix_length_is_named_with_its_key() {
        let text = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n[[pools]]\ncidr = \"10.244.0.0/33\"\n";
        let err = Config::parse(text).unwrap_err().0;
        assert!(err.contains("prefix length 33 is longer than 32"), "{err}");
        assert!(err.contains("cidr"), "{err}");
        assert!(!err.contains("invalid IP address syntax"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn validation_errors_name_their_line() {
        let text = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n[[pools]]\ncidr = \"10.65.0.0/16\"\n\n[[pools]]\ncidr = \"10.66.0.0/16\"\nblock_size = 40\n[workers]\ncount = 2\n[[endpoints]]\nname = \"web\"\nkind = \"veth\"\ninterface = \"c1\"\nips = [\"10.65.0.1/32\"]\nmac = \"zz\"\n";
        let (err, at) = Config::parse_located(text).unwrap_err();
        assert!(err.0.starts_with("pool 10.66.0.0/16: block_size"), "{err}");
        assert_eq!(at, Some((8, 1)));
        // Each fixed in turn, the next error names its line.
        let fixed = text.replace("block_size = 40\n", "\n");
        let (err, at) = Config::parse_located(&fixed).unwrap_err();
        assert!(err.0.starts_with("endpoint web: mac \"zz\""), "{err}");
        assert_eq!(at, Some((16, 1)));
        let fixed = fixed
            .replace("\"zz\"", "\"52:54:00:00:00:01\"")
            .replace("count = 2\n", "count = 2\ncores = [1]\n");
        let (err, at) = Config::parse_located(&fixed).unwrap_err();
        assert!(err.0.starts_with("workers: count 2"), "{err}");
        assert_eq!(at, Some((10, 1)));
        let dir = std::env::temp_dir().join(format!("vrouter-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let e = Config::load(&path).unwrap_err().0;
        assert!(
            e.starts_with(&format!(
                "{}:8:1: pool 10.66.0.0/16: block_size",
                path.display()
            )),
            "{e}"
        );
        std::fs::write(&path, "node_name = \"n\"\nnode_ips = 3\n").unwrap();
        let e = Config::load(&path).unwrap_err().0;
        assert!(e.contains("line 2") && e.contains("node_ips"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const EXAMPLE: &str = include_str!("../../../configs/vrouter.toml");

    #[test]
    fn the_example_parses_with_its_defaults() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.node_name, "node-a");
        assert_eq!(c.node_ips.len(), 2);
        assert_eq!(c.uplinks[0].queues, vec![0]);
        assert_eq!(c.pools[0].block_size(), 26);
        assert_eq!(c.pools[0].vxlan_mode, EncapMode::Always);
        assert_eq!(c.pools[1].block_size(), 122);
        assert_eq!(c.pools[1].ipip_mode, EncapMode::Never);
        assert_eq!(c.workers.cores(), vec![1]);
        assert_eq!(c.workers.poll_mode, PollMode::Adaptive);
        assert_eq!(c.endpoints[1].kind, EndpointKind::Tap);
    }

    #[test]
    fn the_packaged_config_names_no_interface() {
        // The Debian package's /etc/vrouter/vrouter.toml must pass `vrouterd --check` on
        // any machine: nothing in it may depend on this machine's interfaces.
        let c = Config::parse(include_str!("../../../configs/vrouter-package.toml")).unwrap();
        c.check_interfaces(|_| false).unwrap();
        assert!(c.uplinks.is_empty() && c.endpoints.is_empty());
    }

    #[test]
    fn afxdp_table_parses_and_is_checked() {
        // The example's commented [afxdp] block, uncommented, is a valid table.
        let block: String = EXAMPLE
            .lines()
            .skip_while(|l| *l != "# [afxdp]")
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", l[2..].split(" #").next().unwrap()))
            .collect();
        assert!(block.contains("busy_poll_us"), "{block}");
        let base = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n";
        // Its busy-poll keys need busy_poll_us > 0; with it they are accepted.
        let text = format!(
            "{base}{}",
            block.replace("busy_poll_us = 0", "busy_poll_us = 50")
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.afxdp.busy_poll_us, 50);
        assert_eq!(c.afxdp.gro_flush_timeout_ns, Some(200_000));
        let e = Config::parse(&format!("{base}[afxdp]\nrx_batch = 0\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("afxdp.rx_batch"), "{e}");
        assert!(Config::parse(&format!("{base}[afxdp]\nrx_bach = 8\n")).is_err());
        assert_eq!(Config::parse(base).unwrap().afxdp, Default::default());
    }

    #[test]
    fn calico_pool_fields_and_node_labels() {
        let text = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n[node_labels]\nzone = \"eu\"\n\"kubernetes.io/hostname\" = \"n\"\n[[pools]]\ncidr = \"10.1.0.0/16\"\nnode_selector = \"zone == 'eu'\"\ndisable_bgp_export = true\nallowed_uses = [\"Workload\"]\nassignment_mode = \"Manual\"\n[[pools]]\ncidr = \"10.2.0.0/16\"\nallowed_uses = [\"LoadBalancer\"]\n[[pools]]\ncidr = \"10.3.0.0/16\"\n";
        let c = Config::parse(text).unwrap();
        let labels = c.labels();
        assert_eq!(labels.get("zone").map(String::as_str), Some("eu"));
        assert_eq!(labels.get(NAME_LABEL).map(String::as_str), Some("n"));
        let [p, lb, plain] = &c.pools[..] else {
            panic!("three pools")
        };
        assert!(p.selects(&labels) && p.disable_bgp_export && p.for_workloads());
        assert_eq!(p.assignment_mode, AssignmentMode::Manual);
        assert!(!lb.for_workloads(), "LoadBalancer: kept, not for endpoints");
        assert_eq!(lb.allowed_uses(), ["LoadBalancer"]);
        assert_eq!(plain.allowed_uses(), ["Workload", "Tunnel"]);
        assert_eq!(plain.assignment_mode, AssignmentMode::Automatic);
        assert!(plain.selects(&BTreeMap::new()) && !plain.disable_bgp_export);
        let mut other = labels.clone();
        other.insert("zone".into(), "us".into());
        assert!(!p.selects(&other));
        // A message about a pool's field finds the field's line.
        let bad = text.replace("zone == 'eu'", "zone === 'eu'");
        let e = Config::parse(&bad).unwrap_err().0;
        assert!(e.starts_with("pool 10.1.0.0/16: node_selector"), "{e}");
        assert_eq!(Config::parse_located(&bad).unwrap_err().1, Some((8, 1)));
    }

    fn with(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(
            "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n{extra}"
        ))
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let cases = [
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\nipip_mode = \"Always\"\nvxlan_mode = \"Always\"\n", "both"),
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\nblock_size = 19\n", "block_size 19"),
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\n[[pools]]\ncidr = \"10.1.2.0/24\"\n", "overlap"),
            ("[workers]\ncount = 2\ncores = [1]\n", "exactly that many cores"),
            ("[workers]\ncount = 2\ncores = [1, 1]\n", "repeat"),
            ("[[endpoints]]\nname = \"a\"\nkind = \"veth\"\ninterface = \"x\"\nips = [\"10.1.0.0/24\"]\n", "host address"),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\n[[endpoints]]\nname = \"a\"\nkind = \"veth\"\ninterface = \"x\"\nips = [\"10.2.0.1/32\"]\n",
                "in no pool",
            ),
            ("[[endpoints]]\nname = \"a\"\nkind = \"pipe\"\ninterface = \"x\"\nips = []\n", "unknown variant"),
            ("[workers]\nthreads = 2\n", "unknown field"),
            ("[[uplinks]]\nname = \"eth0\"\nqueues = [0, 1]\n", "one queue per worker"),
            ("[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\n", "no uplink"),
            ("[[uplinks]]\nname = \"eth0\"\n[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"fd00::1\"\n", "other family"),
            ("[[uplinks]]\nname = \"eth0\"\n[[routes]]\ndst = \"10.9.0.0/26\"\nnode = \"b\"\n", "no node b"),
            ("[[uplinks]]\nname = \"eth0\"\n[[routes]]\ndst = \"10.9.0.0/26\"\n", "exactly one of via and node"),
            ("[vxlan]\nvni = 16777216\n", "24 bits"),
            ("[[uplinks]]\nname = \"eth0\"\n[[routes]]\ndst = \"0.0.0.0/0\"\nvia = []\n", "empty"),
            ("[[endpoints]]\nname = \"a\"\nkind = \"tap\"\ninterface = \"x\"\nips = [\"10.1.0.1/32\"]\nmac = \"zz\"\n", "mac"),
            ("[[pools]]\ncidr = \"10.1.0.0/33\"\n", "prefix length 33 is longer than 32"),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\nnode_selector = \"zone = 'a'\"\n",
                "pool 10.1.0.0/16: node_selector \"zone = 'a'\": selector: at position 5: expected ==",
            ),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\nallowed_uses = [\"Workload\", \"Pods\"]\n",
                "pool 10.1.0.0/16: allowed_uses \"Pods\" is not one of Workload, Tunnel, LoadBalancer",
            ),
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\nallowed_uses = []\n", "allowed_uses is empty"),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\nallowed_uses = [\"LoadBalancer\", \"Workload\"]\n",
                "LoadBalancer cannot be combined with Workload or Tunnel",
            ),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\nallowed_uses = [\"LoadBalancer\"]\nvxlan_mode = \"Always\"\n",
                "a LoadBalancer pool cannot have ipip_mode or vxlan_mode",
            ),
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\nassignment_mode = \"Sometimes\"\n", "unknown variant"),
            ("[[pools]]\ncidr = \"10.1.0.0/16\"\nnamespace_selector = \"\"\n", "unknown field"),
            (
                "[[pools]]\ncidr = \"10.1.0.0/16\"\nallowed_uses = [\"Tunnel\"]\n[[endpoints]]\nname = \"a\"\nkind = \"veth\"\ninterface = \"x\"\nips = [\"10.1.0.1/32\"]\n",
                "endpoint a: 10.1.0.1/32 is in pool 10.1.0.0/16, whose allowed_uses has no Workload",
            ),
            (
                "[node_labels]\n\"projectcalico.org/name\" = \"m\"\n",
                "node_labels: projectcalico.org/name is the node's name (n), not \"m\"",
            ),
        ];
        for (text, why) in cases {
            let e = with(text).expect_err(text);
            assert!(e.0.contains(why), "{text:?}: {e} does not say {why:?}");
        }
        assert!(
            Config::parse("node_ips = [\"10.0.0.1/24\"]\n").is_err(),
            "node_name is required"
        );
        assert!(with("").is_ok());
    }
}
