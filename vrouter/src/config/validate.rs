//! Validation of a whole configuration, each error with the path of the value it is
//! about (its line in the file: `spans`).

use super::spans::{invalid, then, Invalid, Seg, Seg::Index, Seg::Key};
use super::{
    parse_mac, Config, ConfigError, EncapMode, Endpoint, EndpointKind, Pool, ALLOWED_USES,
    NAME_LABEL,
};
use datastore::selector::Selector;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

/// Who already has an address an endpoint asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The node itself (`node_ips`).
    Node,
    /// The same endpoint, which lists it twice.
    Itself,
    /// Another endpoint, by name.
    Endpoint(String),
}

/// An endpoint address that is not the endpoint's alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub endpoint: String,
    pub ip: IpAddr,
    pub holder: Holder,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint {}: ips: {} ", self.endpoint, self.ip)?;
        match &self.holder {
            Holder::Node => write!(f, "is the node's own address (node_ips)"),
            Holder::Itself => write!(f, "is listed twice"),
            Holder::Endpoint(other) => write!(f, "is already endpoint {other}'s"),
        }
    }
}

/// The first address among `endpoints` (in order) that is not its endpoint's alone: a
/// node address, or one an earlier endpoint holds. Addresses are compared without their
/// prefix length. One address, one owner: the file, what the API added and the
/// running node all ask this.
pub fn address_clash<'a>(
    node_ips: &[IpNet],
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
) -> Option<Clash> {
    let mut owners: HashMap<IpAddr, &str> = HashMap::new();
    for e in endpoints {
        for ip in &e.ips {
            let addr = ip.addr();
            let holder = if node_ips.iter().any(|n| n.addr() == addr) {
                Some(Holder::Node)
            } else {
                match owners.insert(addr, &e.name) {
                    Some(o) if o == e.name => Some(Holder::Itself),
                    Some(o) => Some(Holder::Endpoint(o.to_string())),
                    None => None,
                }
            };
            if let Some(holder) = holder {
                return Some(Clash {
                    endpoint: e.name.clone(),
                    ip: addr,
                    holder,
                });
            }
        }
    }
    None
}

/// A pool's Calico fields: a node selector that parses, known allowed uses, and
/// LoadBalancer on its own (as Calico: not with Workload or Tunnel, nor encapsulated).
fn validate_calico_fields(p: &Pool, entry: &[Seg]) -> Result<(), Invalid> {
    let fail = |key, m: String| invalid(&then(entry, Key(key)), format!("pool {}: {m}", p.cidr));
    if let Some(s) = &p.node_selector {
        if let Err(e) = Selector::parse(s) {
            return fail("node_selector", format!("node_selector {s:?}: {e}"));
        }
    }
    let Some(uses) = &p.allowed_uses else {
        return Ok(());
    };
    if uses.is_empty() {
        return fail(
            "allowed_uses",
            format!(
                "allowed_uses is empty: list some of {}",
                ALLOWED_USES.join(", ")
            ),
        );
    }
    if let Some(k) = uses
        .iter()
        .position(|u| !ALLOWED_USES.contains(&u.as_str()))
    {
        return invalid(
            &[entry, &[Key("allowed_uses"), Index(k)]].concat(),
            format!(
                "pool {}: allowed_uses {:?} is not one of {}",
                p.cidr,
                uses[k],
                ALLOWED_USES.join(", ")
            ),
        );
    }
    if uses.iter().any(|u| u == "LoadBalancer") {
        if uses.iter().any(|u| u != "LoadBalancer") {
            return fail(
                "allowed_uses",
                "allowed_uses: LoadBalancer cannot be combined with Workload or Tunnel".into(),
            );
        }
        if p.ipip_mode != EncapMode::Never || p.vxlan_mode != EncapMode::Never {
            let key = if p.ipip_mode != EncapMode::Never {
                "ipip_mode"
            } else {
                "vxlan_mode"
            };
            return fail(
                key,
                "allowed_uses: a LoadBalancer pool cannot have ipip_mode or vxlan_mode".into(),
            );
        }
    }
    Ok(())
}

/// A peer's password from `path`: its first line, 1 to 80 bytes (TCP MD5), from a file
/// no one but its owner may read or write (mode 0600 or stricter).
pub fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = control::api_tls::read_secret("password_file", path)?;
    let text = String::from_utf8_lossy(&bytes);
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() || pw.len() > 80 {
        return Err(format!(
            "password_file {}: the password (first line) must be 1 to 80 bytes",
            path.display()
        ));
    }
    Ok(pw)
}

/// The longest name accepted (an endpoint's, a Kubernetes `namespace/pod` fits).
pub const MAX_NAME: usize = 253;

/// A name as it may appear in logs, files and keys: 1 to 253 bytes of letters, digits
/// and `. _ - / : @ + ~ =`; never whitespace, quotes, control characters (a newline
/// would split a log line) or shell metacharacters.
pub fn check_name(what: &str, name: &str) -> Result<(), ConfigError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-/:@+~=".contains(c);
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ConfigError(format!(
            "{what} name {:?}: 1 to {MAX_NAME} bytes",
            truncated(name)
        )));
    }
    if let Some(c) = name.chars().find(|&c| !ok(c)) {
        return Err(ConfigError(format!(
            "{what} name {:?}: {c:?} is not allowed (letters, digits and . _ - / : @ + ~ =)",
            truncated(name)
        )));
    }
    Ok(())
}

/// An interface name the kernel takes: 1 to 15 bytes, no '/', whitespace or ':'.
pub fn check_interface(what: &str, name: &str) -> Result<(), ConfigError> {
    let bad = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.len() > 15 || name.chars().any(bad) {
        return Err(ConfigError(format!(
            "{what}: interface {:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)",
            truncated(name)
        )));
    }
    Ok(())
}

/// The first 40 characters of a name, for a message.
fn truncated(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A prefix with bits set past its length is a typo (`10.244.0.1/16`): said so.
pub fn host_bits(what: &str, net: IpNet) -> Result<(), ConfigError> {
    if net != net.trunc() {
        return Err(ConfigError(format!(
            "{what} {net}: has host bits set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(())
}

/// A BGP peer's address: a unicast address that is not the node's own nor unspecified;
/// loopback only when `loopback` (a file may peer with a feeder on the node itself, as
/// the benchmarks do; the API may not).
pub fn check_peer_address(
    a: std::net::IpAddr,
    node_ips: &[IpNet],
    loopback: bool,
) -> Result<(), ConfigError> {
    let why = if a.is_unspecified() {
        Some("unspecified")
    } else if a.is_loopback() && !loopback {
        Some("loopback")
    } else if a.is_multicast() || a == std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("not unicast")
    } else if node_ips.iter().any(|n| n.addr() == a) {
        Some("the node's own address")
    } else {
        None
    };
    match why {
        Some(w) => Err(ConfigError(format!("bgp peer {a}: {w}"))),
        None => Ok(()),
    }
}

impl Config {
    /// What this machine must have for the file: the worker cores. (`--check` and
    /// start; `validate` holds for any machine.)
    pub fn check_machine(&self) -> Result<(), ConfigError> {
        let have: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(c) = self.workers.cores().into_iter().find(|c| !have.contains(c)) {
            return Err(ConfigError(format!(
                "workers: core {c} is not one this process may run on (it may use {have:?})"
            )));
        }
        if let Some(t) = self.api.tcp()? {
            control::api_tls::server_tls(&t.tls).map_err(ConfigError)?;
        }
        for p in self.bgp.iter().flat_map(|b| &b.peers) {
            if let Some(f) = &p.password_file {
                read_password_file(f)
                    .map_err(|e| ConfigError(format!("bgp peer {}: {e}", p.address)))?;
            }
        }
        Ok(())
    }

    /// The interfaces start opens, looked up by name (a read, nothing changed): the
    /// uplinks and the veth endpoints' host sides (a tap is made at start).
    pub fn check_interfaces(&self, exists: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        let veths = self
            .endpoints
            .iter()
            .filter(|e| e.kind == EndpointKind::Veth)
            .map(|e| ("endpoint", e.name.as_str(), e.interface.as_str()));
        let uplinks = self.uplinks.iter().map(|u| ("uplink", "", u.name.as_str()));
        for (what, name, ifname) in uplinks.chain(veths) {
            if !exists(ifname) {
                let who = if name.is_empty() {
                    String::new()
                } else {
                    format!(" {name}")
                };
                return Err(ConfigError(format!(
                    "{what}{who}: interface {ifname} does not exist here"
                )));
            }
        }
        Ok(())
    }

    /// Every rule a file must keep, on any machine.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at().map_err(|e| ConfigError(e.message))
    }

    /// [`validate`](Self::validate), each error with the path of the value it is
    /// about (for its line in the file: `spans::span_of`).
    pub(super) fn validate_at(&self) -> Result<(), Invalid> {
        if self.node_name.is_empty() {
            return invalid(&[Key("node_name")], "node_name is empty".into());
        }
        if self.node_ips.is_empty() {
            return invalid(
                &[Key("node_ips")],
                "node_ips: at least one address is needed".into(),
            );
        }
        if let Some(d) = &self.datastore {
            d.validate()?;
        }
        self.api.tcp().map_err(at(&[Key("api")]))?;
        self.afxdp
            .validate()
            .map_err(|m| at(&[Key("afxdp")])(ConfigError(m)))?;
        crate::logging::parse_level(&self.log.level)
            .map_err(|m| at(&[Key("log"), Key("level")])(ConfigError(m)))?;
        if let Some(v) = self.node_labels.get(NAME_LABEL) {
            if *v != self.node_name {
                return invalid(
                    &[Key("node_labels"), Key(NAME_LABEL)],
                    format!(
                        "node_labels: {NAME_LABEL} is the node's name ({}), not {v:?}",
                        self.node_name
                    ),
                );
            }
        }
        let mut uplinks = HashSet::new();
        for (i, u) in self.uplinks.iter().enumerate() {
            let name = [Key("uplinks"), Index(i), Key("name")];
            check_interface("uplink", &u.name).map_err(at(&name))?;
            if !uplinks.insert(&u.name) {
                return invalid(&name, format!("uplink {}: listed twice", u.name));
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            let entry = [Key("pools"), Index(i)];
            host_bits("pool", p.cidr).map_err(at(&then(&entry, Key("cidr"))))?;
            let (lo, hi) = match p.cidr {
                IpNet::V4(_) => (20, 32),
                IpNet::V6(_) => (116, 128),
            };
            let b = p.block_size();
            if !(lo..=hi).contains(&b) || b < p.cidr.prefix_len() {
                return invalid(
                    &then(&entry, Key("block_size")),
                    format!(
                        "pool {}: block_size {b} must be in {lo}..={hi} and not shorter than the pool",
                        p.cidr
                    ),
                );
            }
            if p.ipip_mode != EncapMode::Never && p.vxlan_mode != EncapMode::Never {
                return invalid(
                    &then(&entry, Key("vxlan_mode")),
                    format!(
                        "pool {}: ipip_mode and vxlan_mode cannot both be on",
                        p.cidr
                    ),
                );
            }
            validate_calico_fields(p, &entry)?;
        }
        for (i, a) in self.pools.iter().enumerate() {
            for (j, b) in self.pools.iter().enumerate().skip(i + 1) {
                if a.cidr.contains(&b.cidr) || b.cidr.contains(&a.cidr) {
                    return invalid(
                        &[Key("pools"), Index(j), Key("cidr")],
                        format!("pools {} and {} overlap", a.cidr, b.cidr),
                    );
                }
            }
        }
        let cores = self.workers.cores();
        if self.workers.count == 0 || cores.len() != self.workers.count {
            return invalid(
                &[Key("workers"), Key("count")],
                format!(
                    "workers: count {} needs exactly that many cores (got {cores:?})",
                    self.workers.count
                ),
            );
        }
        if cores.iter().collect::<HashSet<_>>().len() != cores.len() {
            return invalid(
                &[Key("workers"), Key("cores")],
                format!("workers: cores {cores:?} repeat a core"),
            );
        }
        self.validate_endpoints()?;
        if let Some(b) = &self.bgp {
            validate_bgp(b, &self.node_ips)?;
        }
        self.validate_tables()?;
        self.validate_routes()
    }

    fn validate_endpoints(&self) -> Result<(), Invalid> {
        let mut names = HashSet::new();
        let mut interfaces = HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let entry = [Key("endpoints"), Index(i)];
            let name = then(&entry, Key("name"));
            let interface = then(&entry, Key("interface"));
            check_name("endpoint", &e.name).map_err(at(&name))?;
            check_interface(&format!("endpoint {}", e.name), &e.interface)
                .map_err(at(&interface))?;
            if e.name.starts_with("ipam:") {
                return invalid(
                    &name,
                    format!(
                        "endpoint {}: names starting ipam: are IPAM handles'",
                        e.name
                    ),
                );
            }
            if !names.insert(&e.name) {
                return invalid(&name, format!("endpoint {}: name used twice", e.name));
            }
            if !interfaces.insert(&e.interface) {
                return invalid(
                    &interface,
                    format!("endpoint {}: interface {} used twice", e.name, e.interface),
                );
            }
            let ips = then(&entry, Key("ips"));
            if e.ips.is_empty() {
                return invalid(&ips, format!("endpoint {}: no ips", e.name));
            }
            for (k, ip) in e.ips.iter().enumerate() {
                let at_ip = then(&ips, Index(k));
                if ip.prefix_len() != ip.max_prefix_len() {
                    return invalid(
                        &at_ip,
                        format!(
                            "endpoint {}: {ip} must be a host address (/32 or /128)",
                            e.name
                        ),
                    );
                }
                if !self.pools.is_empty() && !self.pools.iter().any(|p| p.cidr.contains(ip)) {
                    return invalid(&at_ip, format!("endpoint {}: {ip} is in no pool", e.name));
                }
                if let Some(p) = self
                    .pools
                    .iter()
                    .find(|p| p.cidr.contains(ip) && !p.for_workloads())
                {
                    return invalid(
                        &at_ip,
                        format!(
                            "endpoint {}: {ip} is in pool {}, whose allowed_uses has no Workload",
                            e.name, p.cidr
                        ),
                    );
                }
            }
        }
        if let Some(clash) = address_clash(&self.node_ips, &self.endpoints) {
            // Names are unique by now: the name finds the one entry.
            let i = self.endpoints.iter().position(|e| e.name == clash.endpoint);
            let ips = i.map(|i| &self.endpoints[i].ips);
            let same = |n: &IpNet| n.addr() == clash.ip;
            // Listed twice: the second listing is the one at fault.
            let k = ips.and_then(|ips| match clash.holder {
                Holder::Itself => ips.iter().rposition(same),
                _ => ips.iter().position(same),
            });
            let path = match (i, k) {
                (Some(i), Some(k)) => vec![Key("endpoints"), Index(i), Key("ips"), Index(k)],
                _ => vec![Key("endpoints")],
            };
            return invalid(&path, clash.to_string());
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Some(m) = &e.mac {
                if parse_mac(m).is_none() {
                    return invalid(
                        &[Key("endpoints"), Index(i), Key("mac")],
                        format!("endpoint {}: mac {m:?} is not aa:bb:cc:dd:ee:ff", e.name),
                    );
                }
            }
        }
        Ok(())
    }

    /// `[conntrack]`, the uplinks' queues, `[[nodes]]` and `[vxlan]`.
    fn validate_tables(&self) -> Result<(), Invalid> {
        let nat_ports = [Key("conntrack"), Key("nat_ports")];
        match self.conntrack.nat_range() {
            None => {
                return invalid(
                    &nat_ports,
                    format!(
                        "conntrack: nat_ports {:?} must be \"low-high\" with 1024 <= low <= high",
                        self.conntrack.nat_ports
                    ),
                )
            }
            Some(r) if (*r.end() - *r.start()) as usize + 1 < self.workers.count => {
                return invalid(
                    &nat_ports,
                    format!(
                        "conntrack: nat_ports {:?} must give every worker a port",
                        self.conntrack.nat_ports
                    ),
                )
            }
            Some(_) => {}
        }
        if self.conntrack.max_flows < self.workers.count || self.conntrack.max_flows > 1 << 30 {
            return invalid(
                &[Key("conntrack"), Key("max_flows")],
                format!(
                    "conntrack: max_flows {} must be between the worker count and 2^30",
                    self.conntrack.max_flows
                ),
            );
        }
        for (i, u) in self.uplinks.iter().enumerate() {
            if u.queues.len() != self.workers.count {
                return invalid(
                    &[Key("uplinks"), Index(i), Key("queues")],
                    format!(
                        "uplink {}: queues {:?} must list one queue per worker ({})",
                        u.name, u.queues, self.workers.count
                    ),
                );
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let entry = [Key("nodes"), Index(i)];
            if n.ips.is_empty() {
                return invalid(
                    &then(&entry, Key("ips")),
                    format!("node {}: no ips", n.name),
                );
            }
            if let Some(m) = &n.vtep_mac {
                if parse_mac(m).is_none() {
                    return invalid(
                        &then(&entry, Key("vtep_mac")),
                        format!("node {}: vtep_mac {m:?} is not aa:bb:cc:dd:ee:ff", n.name),
                    );
                }
            }
        }
        if let Some(m) = &self.vxlan.vtep_mac {
            if parse_mac(m).is_none() {
                return invalid(
                    &[Key("vxlan"), Key("vtep_mac")],
                    format!("vxlan: vtep_mac {m:?} is not aa:bb:cc:dd:ee:ff"),
                );
            }
        }
        if self.vxlan.vni >= 1 << 24 {
            return invalid(
                &[Key("vxlan"), Key("vni")],
                format!("vxlan: vni {} does not fit 24 bits", self.vxlan.vni),
            );
        }
        Ok(())
    }

    fn validate_routes(&self) -> Result<(), Invalid> {
        for (i, r) in self.routes.iter().enumerate() {
            let entry = [Key("routes"), Index(i)];
            host_bits("route", r.dst).map_err(at(&then(&entry, Key("dst"))))?;
            match (&r.via, &r.node) {
                (Some(via), None)
                    if via.addrs().is_empty()
                        || via
                            .addrs()
                            .iter()
                            .any(|v| r.dst.addr().is_ipv4() != v.is_ipv4()) =>
                {
                    return invalid(
                        &then(&entry, Key("via")),
                        format!(
                            "route {}: via {:?} is empty or of the other family",
                            r.dst,
                            via.addrs()
                        ),
                    );
                }
                (Some(_), None) => {}
                (None, Some(node)) => {
                    if !self.nodes.iter().any(|n| &n.name == node) {
                        return invalid(
                            &then(&entry, Key("node")),
                            format!("route {}: no node {node} in [[nodes]]", r.dst),
                        );
                    }
                }
                _ => {
                    return invalid(
                        &entry,
                        format!("route {}: give exactly one of via and node", r.dst),
                    )
                }
            }
            match &r.uplink {
                Some(name) if !self.uplinks.iter().any(|u| &u.name == name) => {
                    return invalid(
                        &then(&entry, Key("uplink")),
                        format!("route {}: no uplink {name}", r.dst),
                    );
                }
                None if self.uplinks.is_empty() => {
                    return invalid(&entry, format!("route {}: there is no uplink", r.dst));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `[bgp]` and each `[[bgp.peers]]` entry.
fn validate_bgp(b: &super::BgpSettings, node_ips: &[IpNet]) -> Result<(), Invalid> {
    if b.router_id.is_none() && !node_ips.iter().any(|n| n.addr().is_ipv4()) {
        return invalid(
            &[Key("bgp")],
            "bgp: router_id is needed when node_ips has no IPv4 address".into(),
        );
    }
    for (i, p) in b.peers.iter().enumerate() {
        let entry = [Key("bgp"), Key("peers"), Index(i)];
        let field = |k| then(&entry, Key(k));
        check_peer_address(p.address, node_ips, true).map_err(at(&field("address")))?;
        let a = p.address;
        if p.password.is_some() && p.password_file.is_some() {
            return invalid(
                &field("password_file"),
                format!("bgp peer {a}: give password or password_file, not both"),
            );
        }
        if p.ttl_security.is_some_and(|h| h == 0 || h == 255) {
            return invalid(
                &field("ttl_security"),
                format!("bgp peer {a}: ttl_security is a hop count, 1 to 254"),
            );
        }
        if p.max_prefixes == Some(0) || !(1..=100).contains(&p.max_prefixes_warning) {
            let key = if p.max_prefixes == Some(0) {
                "max_prefixes"
            } else {
                "max_prefixes_warning"
            };
            return invalid(
                &field(key),
                format!(
                    "bgp peer {a}: max_prefixes must be at least 1 and max_prefixes_warning a percentage (1 to 100)"
                ),
            );
        }
        if p.hold_time == 1 || p.hold_time == 2 {
            return invalid(
                &field("hold_time"),
                format!("bgp peer {a}: hold_time must be 0 or at least 3"),
            );
        }
        if p.password
            .as_ref()
            .is_some_and(|pw| pw.is_empty() || pw.len() > 80)
        {
            return invalid(
                &field("password"),
                format!("bgp peer {a}: password must be 1 to 80 bytes (TCP MD5)"),
            );
        }
    }
    Ok(())
}

/// Turns a helper's [`ConfigError`] into an [`Invalid`] at `path`.
fn at(path: &[Seg]) -> impl FnOnce(ConfigError) -> Invalid + '_ {
    move |e| Invalid {
        message: e.0,
        at: path.to_vec(),
    }
}

impl super::DatastoreSettings {
    fn validate(&self) -> Result<(), Invalid> {
        let key = |k| [Key("datastore"), Key(k)];
        if self.kind != "etcdv3" {
            return invalid(
                &key("type"),
                format!(
                    "datastore: type {:?}: only \"etcdv3\" is supported",
                    self.kind
                ),
            );
        }
        if self.endpoints.is_empty() {
            return invalid(
                &key("endpoints"),
                "datastore: endpoints: at least one etcd URL is needed".into(),
            );
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
                return invalid(
                    &then(&key("endpoints"), Index(i)),
                    format!("datastore: endpoints: {e:?} is not a URL like http://127.0.0.1:2379"),
                );
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            let given = if self.cert_file.is_some() {
                "cert_file"
            } else {
                "key_file"
            };
            return invalid(
                &key(given),
                "datastore: cert_file and key_file go together".into(),
            );
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return invalid(
                &key("prefix"),
                format!(
                    "datastore: prefix {:?} must start with '/' and not end with one",
                    self.prefix
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    /// The line of the error `text` is refused with.
    fn line_of(text: &str) -> Option<usize> {
        Config::parse_located(text)
            .unwrap_err()
            .1
            .map(|(line, _)| line)
    }

    const TWO: &str = r#"node_name = "n"
node_ips = ["10.0.0.1/24"]
[[pools]]
cidr = "10.65.0.0/16"
[[pools]]
cidr = "fd65::/48"
[[endpoints]]
name = "a"
kind = "veth"
interface = "c1"
ips = ["10.65.0.5/32", "fd65::5/128"]
[[endpoints]]
name = "b"
kind = "veth"
interface = "c2"
mac = "52:54:00:00:00:01"
ips = ["10.65.0.6/32"]
"#;

    /// TWO with b's `ips` (line 17) replaced.
    fn b_ips(ips: &str) -> String {
        TWO.replace("ips = [\"10.65.0.6/32\"]", &format!("ips = [{ips}]"))
    }

    #[test]
    fn an_address_has_one_owner_and_the_message_points_at_the_second() {
        Config::parse(TWO).unwrap();
        let text = b_ips("\"10.65.0.9/32\", \"10.65.0.5/32\"");
        let e = Config::parse(&text).unwrap_err().0;
        assert_eq!(e, "endpoint b: ips: 10.65.0.5 is already endpoint a's");
        assert_eq!(line_of(&text), Some(17), "b's ips, not a's");
        let dir = std::env::temp_dir().join(format!("vrouter-clash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clash.toml");
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).unwrap_err().0;
        assert_eq!(
            e,
            format!(
                "{}:17:24: endpoint b: ips: 10.65.0.5 is already endpoint a's",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // IPv6 too, however the address is written.
        let e = Config::parse(&b_ips("\"fd65:0:0:0::5/128\""))
            .unwrap_err()
            .0;
        assert_eq!(e, "endpoint b: ips: fd65::5 is already endpoint a's");
    }

    #[test]
    fn an_endpoint_cannot_have_a_node_address_or_one_twice() {
        // The node's 10.0.0.1/24 and an endpoint's 10.0.0.1/32: one address.
        let no_pools = |t: String| {
            t.replace("[[pools]]\ncidr = \"10.65.0.0/16\"\n", "")
                .replace("[[pools]]\ncidr = \"fd65::/48\"\n", "")
        };
        let text = no_pools(b_ips("\"10.0.0.1/32\""));
        let e = Config::parse(&text).unwrap_err().0;
        assert_eq!(
            e,
            "endpoint b: ips: 10.0.0.1 is the node's own address (node_ips)"
        );
        assert_eq!(line_of(&text), Some(13));
        let text = b_ips("\"10.65.0.7/32\", \"10.65.0.7/32\"");
        let e = Config::parse(&text).unwrap_err().0;
        assert_eq!(e, "endpoint b: ips: 10.65.0.7 is listed twice");
        assert_eq!(line_of(&text), Some(17));
    }

    /// Every door of the file closed (issue 19): each of these passed `--check` before.
    #[test]
    fn names_prefixes_uplinks_and_peers_are_checked() {
        let refused = |text: &str, want: &str| {
            let e = Config::parse(text).unwrap_err().0;
            assert!(e.contains(want), "{e:?} should say {want:?}");
        };
        let name = |n: &str| TWO.replace("name = \"b\"", &format!("name = {n:?}"));
        refused(&name(""), "1 to 253 bytes");
        refused(&name("b\nINFO forged"), "'\\n' is not allowed");
        refused(&name("b\"c"), "'\"' is not allowed");
        refused(&name(&"x".repeat(5000)), "1 to 253 bytes");
        assert!(Config::parse(&name("shop/web-0")).is_ok());
        refused(
            &TWO.replace("interface = \"c2\"", "interface = \"a/b\""),
            "not an interface name",
        );
        refused(
            &TWO.replace("cidr = \"10.65.0.0/16\"", "cidr = \"10.65.0.1/16\""),
            "has host bits set (did you mean 10.65.0.0/16?)",
        );
        let up = "[[uplinks]]\nname = \"eth0\"\n";
        refused(&format!("{TWO}{up}{up}"), "uplink eth0: listed twice");
        let route = format!("{TWO}{up}[[routes]]\ndst = \"0.0.0.1/0\"\nvia = \"10.0.0.254\"\n");
        refused(&route, "route 0.0.0.1/0: has host bits set");
        let peer = |a: &str| format!("{TWO}[bgp]\n[[bgp.peers]]\naddress = \"{a}\"\n");
        refused(&peer("10.0.0.1"), "the node's own address");
        refused(&peer("0.0.0.0"), "unspecified");
        refused(&peer("224.0.0.5"), "not unicast");
        assert!(
            Config::parse(&peer("127.0.0.1")).is_ok(),
            "a feeder on the node itself"
        );
        assert!(Config::parse(&peer("10.0.0.254")).is_ok());
    }

    #[test]
    fn worker_cores_the_machine_lacks_are_refused() {
        let c = Config::parse(&format!("{TWO}[workers]\ncount = 1\ncores = [4095]\n")).unwrap();
        let e = c.check_machine().unwrap_err().0;
        assert!(
            e.contains("core 4095 is not one this process may run on"),
            "{e}"
        );
        let c = Config::parse(&format!("{TWO}[workers]\ncount = 1\ncores = [0]\n")).unwrap();
        assert!(c.check_machine().is_ok());
    }

    #[test]
    fn a_password_file_must_be_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vr-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("peer.key");
        std::fs::write(&f, "s3cret\n").unwrap();
        let text = format!(
            "{TWO}[bgp]\n[[bgp.peers]]\naddress = \"10.0.0.254\"\npassword_file = {:?}\n",
            f.display().to_string()
        );
        let c = Config::parse(&text).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = c.check_machine().unwrap_err().0;
        assert!(
            e.contains("mode 644 lets others read it (chmod 600)"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.check_machine().is_ok());
        assert_eq!(super::read_password_file(&f).unwrap(), "s3cret");
        let both = text.replace("password_file", "password = \"x\"\npassword_file");
        let e = Config::parse(&both).unwrap_err().0;
        assert!(e.contains("not both"), "{e}");
        std::fs::remove_file(&f).unwrap();
        assert!(c.check_machine().unwrap_err().0.contains("No such file"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_api_never_listens_on_tcp_without_mutual_tls() {
        let api = |extra: &str| Config::parse(&format!("{TWO}[api]\n{extra}"));
        let e = api("listen = \"127.0.0.1:50051\"\n").unwrap_err().0;
        assert!(
            e.contains("needs cert_file, key_file and client_ca_file"),
            "{e}"
        );
        let e = api("listen = \"127.0.0.1:50051\"\ncert_file = \"/c\"\nkey_file = \"/k\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("client_ca_file"), "{e}");
        let e = api("cert_file = \"/c\"\n").unwrap_err().0;
        assert!(e.contains("not set"), "{e}");
        // All three named: the file is fine, the machine check reads them.
        let c = api(
            "listen = \"127.0.0.1:50051\"\ncert_file = \"/nonexistent/c.pem\"\n\
             key_file = \"/nonexistent/k.pem\"\nclient_ca_file = \"/nonexistent/ca.pem\"\n",
        )
        .unwrap();
        let e = c.check_machine().unwrap_err().0;
        assert!(e.contains("cert_file /nonexistent/c.pem"), "{e}");
    }

    #[test]
    fn check_looks_up_the_uplinks_and_veths() {
        let c = Config::parse(&format!("{TWO}[[uplinks]]\nname = \"up0\"\n")).unwrap();
        assert!(c.check_interfaces(|_| true).is_ok());
        let e = c.check_interfaces(|n| n != "up0").unwrap_err().0;
        assert_eq!(e, "uplink: interface up0 does not exist here");
        let e = c.check_interfaces(|n| n != "c1").unwrap_err().0;
        assert_eq!(e, "endpoint a: interface c1 does not exist here");
    }

    /// The 1-based number of the line marked `# <-` in `text`.
    fn marked(text: &str) -> usize {
        text.lines()
            .position(|l| l.ends_with("# <-"))
            .unwrap_or_else(|| panic!("no marked line in\n{text}"))
            + 1
    }

    /// Every check of `validate`: its error names the line of the value it is about
    /// (the line marked `# <-`), from the parser's spans. The node's two lines come
    /// first unless a case starts with `node_name`.
    #[test]
    fn every_validation_error_names_its_line() {
        let base = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n";
        let ep = |name: &str, ifname: &str, ips: &str| {
            format!("[[endpoints]]\nname = \"{name}\"\nkind = \"veth\"\ninterface = \"{ifname}\"\nips = [{ips}]\n")
        };
        let pool = "[[pools]]\ncidr = \"10.65.0.0/16\"\n";
        let up = "[[uplinks]]\nname = \"eth0\"\n";
        let peer = "[[bgp.peers]]\naddress = \"10.0.0.254\"\n";
        let cases: Vec<(String, &str)> = vec![
            ("node_name = \"\" # <-\nnode_ips = [\"10.0.0.1/24\"]\n".into(), "node_name is empty"),
            ("node_name = \"n\"\nnode_ips = [] # <-\n".into(), "at least one address"),
            ("[api] # <-\ncert_file = \"/c\"\n".into(), "not set"),
            ("[afxdp] # <-\nrx_batch = 0\n".into(), "afxdp.rx_batch"),
            ("[log]\nlevel = \"\" # <-\n".into(), "log level: empty"),
            ("[node_labels]\nzone = \"a\"\n\"projectcalico.org/name\" = \"m\" # <-\n".into(), "is the node's name"),
            ("[[uplinks]]\nname = \"a/b\" # <-\n".into(), "not an interface name"),
            (format!("{up}[[uplinks]]\nname = \"eth0\" # <-\n"), "uplink eth0: listed twice"),
            ("[[pools]]\ncidr = \"10.65.0.1/16\" # <-\n".into(), "has host bits set"),
            (format!("{pool}[[pools]]\ncidr = \"fd65:0::/48\"\nblock_size = 12 # <-\n"), "block_size 12"),
            (format!("{pool}vxlan_mode = \"Always\" # <-\nipip_mode = \"Always\"\n"), "cannot both be on"),
            (format!("{pool}node_selector = \"zone = 'a'\" # <-\n"), "node_selector"),
            (format!("{pool}allowed_uses = [] # <-\n"), "allowed_uses is empty"),
            (format!("{pool}allowed_uses = [\n  \"Workload\",\n  \"Pods\", # <-\n]\n"), "\"Pods\" is not one of"),
            (format!("{pool}allowed_uses = [\"LoadBalancer\", \"Workload\"] # <-\n"), "cannot be combined"),
            (format!("{pool}allowed_uses = [\"LoadBalancer\"]\nvxlan_mode = \"Always\" # <-\n"), "a LoadBalancer pool"),
            (format!("{pool}[[pools]]\ncidr = \"10.65.2.0/24\" # <-\n"), "overlap"),
            ("[workers]\ncount = 2 # <-\ncores = [1]\n".into(), "exactly that many cores"),
            ("[workers]\ncount = 2\ncores = [1, 1] # <-\n".into(), "repeat a core"),
            (format!("{pool}{}", ep("a b", "c1", "\"10.65.0.1/32\"")).replace("name = \"a b\"", "name = \"a b\" # <-"), "' ' is not allowed"),
            (format!("{pool}{}", ep("a", "a/b", "\"10.65.0.1/32\"")).replace("interface = \"a/b\"", "interface = \"a/b\" # <-"), "not an interface name"),
            (format!("{pool}{}", ep("ipam:x", "c1", "\"10.65.0.1/32\"")).replace("name = \"ipam:x\"", "name = \"ipam:x\" # <-"), "IPAM handles'"),
            (format!("{pool}{}{}", ep("b", "c1", "\"10.65.0.5/32\""), ep("b", "c2", "\"10.65.0.6/32\"")).replacen("name = \"b\"\nkind = \"veth\"\ninterface = \"c2\"", "name = \"b\" # <-\nkind = \"veth\"\ninterface = \"c2\"", 1), "name used twice"),
            (format!("{pool}{}{}", ep("a", "c1", "\"10.65.0.5/32\""), ep("b", "c1", "\"10.65.0.6/32\"")).replacen("name = \"b\"\nkind = \"veth\"\ninterface = \"c1\"", "name = \"b\"\nkind = \"veth\"\ninterface = \"c1\" # <-", 1), "interface c1 used twice"),
            (format!("{pool}{}", ep("a", "c1", "")).replace("ips = []", "ips = [] # <-"), "no ips"),
            (format!("{pool}{}", ep("a", "c1", "\n  \"10.65.0.1/32\",\n  \"10.65.0.0/24\", # <-\n")), "must be a host address"),
            (format!("{pool}{}", ep("a", "c1", "\"10.66.0.1/32\" # <-\n")), "is in no pool"),
            (format!("[[pools]]\ncidr = \"10.65.0.0/16\"\nallowed_uses = [\"Tunnel\"]\n{}", ep("a", "c1", "\"10.65.0.1/32\" # <-\n")), "whose allowed_uses has no Workload"),
            (ep("a", "c1", "\"10.0.0.1/32\" # <-\n"), "is the node's own address"),
            (format!("{pool}{}", ep("a", "c1", "\n  \"10.65.0.7/32\",\n  \"10.65.0.7/32\", # <-\n")), "is listed twice"),
            (format!("{pool}{}{}", ep("a", "c1", "\"10.65.0.5/32\""), ep("b", "c2", "\"10.65.0.9/32\", \"10.65.0.5/32\" # <-\n")), "is already endpoint a's"),
            (format!("{pool}{}mac = \"zz\" # <-\n", ep("a", "c1", "\"10.65.0.1/32\"")), "mac \"zz\""),
            ("node_name = \"n\"\nnode_ips = [\"fd00::1/64\"]\n[bgp] # <-\nasn = 64512\n".into(), "router_id is needed"),
            (format!("[bgp]\n{peer}[[bgp.peers]]\naddress = \"10.0.0.1\" # <-\n"), "the node's own address"),
            (format!("[bgp]\n{peer}password = \"x\"\npassword_file = \"/p\" # <-\n"), "not both"),
            (format!("[bgp]\n{peer}{peer}ttl_security = 0 # <-\n"), "ttl_security is a hop count"),
            (format!("[bgp]\n{peer}max_prefixes = 0 # <-\n"), "max_prefixes must be at least 1"),
            (format!("[bgp]\n{peer}max_prefixes_warning = 101 # <-\n"), "max_prefixes must be at least 1"),
            (format!("[bgp]\n{peer}hold_time = 2 # <-\n"), "hold_time must be 0 or at least 3"),
            (format!("[bgp]\n{peer}password = \"\" # <-\n"), "password must be 1 to 80 bytes"),
            ("[conntrack]\nnat_ports = \"80-90\" # <-\n".into(), "must be \"low-high\""),
            ("[workers]\ncount = 2\ncores = [0, 1]\n[conntrack]\nnat_ports = \"2000-2000\" # <-\n".into(), "every worker a port"),
            ("[conntrack]\nmax_flows = 0 # <-\n".into(), "max_flows 0"),
            (format!("{up}queues = [0, 1] # <-\n"), "one queue per worker"),
            ("[[nodes]]\nname = \"b\"\nips = [] # <-\n".into(), "node b: no ips"),
            ("[[nodes]]\nname = \"b\"\nips = [\"10.0.0.2/32\"]\nvtep_mac = \"zz\" # <-\n".into(), "vtep_mac \"zz\""),
            ("[vxlan]\nvtep_mac = \"zz\" # <-\n".into(), "vxlan: vtep_mac"),
            ("[vxlan]\nvni = 16777216 # <-\n".into(), "24 bits"),
            (format!("{up}[[routes]]\ndst = \"0.0.0.1/0\" # <-\nvia = \"10.0.0.254\"\n"), "has host bits set"),
            (format!("{up}[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"fd00::1\" # <-\n"), "other family"),
            (format!("{up}[[routes]]\ndst = \"10.9.0.0/26\"\nnode = \"b\" # <-\n"), "no node b"),
            (format!("{up}[[routes]] # <-\ndst = \"10.9.0.0/26\"\n"), "exactly one of via and node"),
            (format!("{up}[[routes]]\ndst = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\nuplink = \"eth9\" # <-\n"), "no uplink eth9"),
            ("[[routes]] # <-\ndst = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\n".into(), "there is no uplink"),
            ("[datastore]\ntype = \"kubernetes\" # <-\nendpoints = [\"http://a:2379\"]\n".into(), "only \"etcdv3\""),
            ("[datastore]\ntype = \"etcdv3\"\nendpoints = [] # <-\n".into(), "at least one etcd URL"),
            ("[datastore]\ntype = \"etcdv3\"\nendpoints = [\"http://a:2379\",\n  \"a:2379\"] # <-\n".into(), "is not a URL"),
            ("[datastore]\ntype = \"etcdv3\"\nendpoints = [\"http://a:2379\"]\ncert_file = \"/c\" # <-\n".into(), "go together"),
            ("[datastore]\ntype = \"etcdv3\"\nendpoints = [\"http://a:2379\"]\nprefix = \"/calico/\" # <-\n".into(), "must start with '/'"),
        ];
        for (extra, want) in &cases {
            let text = if extra.starts_with("node_name") {
                extra.clone()
            } else {
                format!("{base}{extra}")
            };
            let (e, at) = Config::parse_located(&text).expect_err(&text);
            assert!(e.0.contains(want), "{e} does not say {want:?}\n{text}");
            assert_eq!(at.map(|a| a.0), Some(marked(&text)), "{e}\n{text}");
        }
    }

    /// What the search of the text got wrong (docs/decisions.md): a name used twice
    /// found the first entry, a value written another way or a message without `: `
    /// found nothing, a field named only in the message's words found the entry, and a
    /// comment quoting a name found the comment.
    #[test]
    fn the_parser_finds_what_the_text_search_missed() {
        let base = "node_name = \"n\"\nnode_ips = [\"10.0.0.1/24\"]\n";
        let ep = |name: &str, ifname: &str, ip: &str| {
            format!("[[endpoints]]\nname = \"{name}\"\nkind = \"veth\"\ninterface = \"{ifname}\"\nips = [\"{ip}\"]\n")
        };
        let cases = [
            (
                format!(
                    "{base}{}{}",
                    ep("b", "c1", "10.65.0.5/32"),
                    ep("b", "c2", "10.65.0.6/32")
                ),
                (9, 1),
                "endpoint b: name used twice",
            ),
            (
                format!("{base}[[uplinks]]\nname = \"eth0\"\n[[uplinks]]\nname = \"eth0\"\n"),
                (6, 1),
                "uplink eth0: listed twice",
            ),
            (
                format!(
                    "{base}[[pools]]\ncidr = \"10.1.0.0/16\"\n[[pools]]\ncidr = \"10.1.2.0/24\"\n"
                ),
                (6, 1),
                "pools 10.1.0.0/16 and 10.1.2.0/24 overlap",
            ),
            (
                format!("{base}[[pools]]\ncidr = \"fd65:0::/48\"\nblock_size = 12\n"),
                (5, 1),
                "pool fd65::/48: block_size 12",
            ),
            (
                format!(
                    "{base}[[pools]]\ncidr = \"10.1.0.0/16\"\n{}",
                    ep("a", "c1", "10.2.0.1/32")
                ),
                (9, 8),
                "endpoint a: 10.2.0.1/32 is in no pool",
            ),
            (
                format!(
                    "{base}# the uplink \"c1\" below\n[[uplinks]]\nname = \"c1\"\n{}mac = \"zz\"\n",
                    ep("c1", "c1", "10.2.0.1/32")
                ),
                (11, 1),
                "endpoint c1: mac \"zz\"",
            ),
        ];
        for (text, want, message) in cases {
            let (e, at) = Config::parse_located(&text).expect_err(&text);
            assert!(e.0.starts_with(message), "{e}\n{text}");
            assert_eq!(at, Some(want), "{e}\n{text}");
        }
    }
}
