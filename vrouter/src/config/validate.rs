//! Validation of a whole configuration, and the line a message is about.

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
        // Entry, field, what: `locate` finds the endpoint's `ips` line.
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
fn validate_calico_fields(p: &Pool) -> Result<(), ConfigError> {
    let err = |m: String| Err(ConfigError(format!("pool {}: {m}", p.cidr)));
    if let Some(s) = &p.node_selector {
        if let Err(e) = Selector::parse(s) {
            return err(format!("node_selector {s:?}: {e}"));
        }
    }
    let Some(uses) = &p.allowed_uses else {
        return Ok(());
    };
    if uses.is_empty() {
        return err(format!(
            "allowed_uses is empty: list some of {}",
            ALLOWED_USES.join(", ")
        ));
    }
    if let Some(u) = uses.iter().find(|u| !ALLOWED_USES.contains(&u.as_str())) {
        return err(format!(
            "allowed_uses {u:?} is not one of {}",
            ALLOWED_USES.join(", ")
        ));
    }
    if uses.iter().any(|u| u == "LoadBalancer") {
        if uses.iter().any(|u| u != "LoadBalancer") {
            return err(
                "allowed_uses: LoadBalancer cannot be combined with Workload or Tunnel".into(),
            );
        }
        if p.ipip_mode != EncapMode::Never || p.vxlan_mode != EncapMode::Never {
            return err(
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

/// The line (1-based) a validation message is about. Messages name the entry and the
/// field ("pool 10.0.0.0/8: block_size ...", "endpoint web: mac ...", "workers: count
/// ..."): the entry is found by its quoted value (or its `[table]`), then the field's
/// `key =` line within that entry; the entry's line when the field is not written.
pub fn locate(text: &str, message: &str) -> Option<usize> {
    let (head, rest) = message.split_once(": ")?;
    let field = rest
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    let lines: Vec<&str> = text.lines().collect();
    let key_of = |l: &str| {
        l.trim_start()
            .split(['=', ' '])
            .next()
            .unwrap_or("")
            .to_string()
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    // The entry: a quoted identifying value, else a [table] of that name, else top level.
    let anchor = match words.as_slice() {
        [] => return None,
        [table] => lines
            .iter()
            .position(|l| l.trim() == format!("[{table}]"))
            .or_else(|| lines.iter().position(|l| key_of(l) == *table)),
        [.., id] => {
            let quoted = format!("\"{id}\"");
            lines.iter().position(|l| l.contains(&quoted))
        }
    }?;
    // The entry's table starts at the last header at or before the anchor.
    let start = (0..=anchor)
        .rev()
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(0);
    let end = (anchor + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let hit = (start..end).find(|&i| !field.is_empty() && key_of(lines[i]) == field);
    Some(hit.unwrap_or(anchor) + 1)
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

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.node_name.is_empty() {
            return err("node_name is empty".into());
        }
        if self.node_ips.is_empty() {
            return err("node_ips: at least one address is needed".into());
        }
        if let Some(d) = &self.datastore {
            d.validate()?;
        }
        self.api.tcp()?;
        self.afxdp.validate().map_err(ConfigError)?;
        crate::logging::parse_level(&self.log.level).map_err(ConfigError)?;
        if let Some(v) = self.node_labels.get(NAME_LABEL) {
            if *v != self.node_name {
                return err(format!(
                    "node_labels: {NAME_LABEL} is the node's name ({}), not {v:?}",
                    self.node_name
                ));
            }
        }
        let mut uplinks = HashSet::new();
        for u in &self.uplinks {
            check_interface("uplink", &u.name)?;
            if !uplinks.insert(&u.name) {
                return err(format!("uplink {}: listed twice", u.name));
            }
        }
        for p in &self.pools {
            host_bits("pool", p.cidr)?;
            let (lo, hi) = match p.cidr {
                IpNet::V4(_) => (20, 32),
                IpNet::V6(_) => (116, 128),
            };
            let b = p.block_size();
            if !(lo..=hi).contains(&b) || b < p.cidr.prefix_len() {
                return err(format!(
                    "pool {}: block_size {b} must be in {lo}..={hi} and not shorter than the pool",
                    p.cidr
                ));
            }
            if p.ipip_mode != EncapMode::Never && p.vxlan_mode != EncapMode::Never {
                return err(format!(
                    "pool {}: ipip_mode and vxlan_mode cannot both be on",
                    p.cidr
                ));
            }
            validate_calico_fields(p)?;
        }
        for (i, a) in self.pools.iter().enumerate() {
            for b in &self.pools[i + 1..] {
                if a.cidr.contains(&b.cidr) || b.cidr.contains(&a.cidr) {
                    return err(format!("pools {} and {} overlap", a.cidr, b.cidr));
                }
            }
        }
        let cores = self.workers.cores();
        if self.workers.count == 0 || cores.len() != self.workers.count {
            return err(format!(
                "workers: count {} needs exactly that many cores (got {cores:?})",
                self.workers.count
            ));
        }
        if cores.iter().collect::<HashSet<_>>().len() != cores.len() {
            return err(format!("workers: cores {cores:?} repeat a core"));
        }
        let mut names = HashSet::new();
        let mut interfaces = HashSet::new();
        for e in &self.endpoints {
            check_name("endpoint", &e.name)?;
            check_interface(&format!("endpoint {}", e.name), &e.interface)?;
            if e.name.starts_with("ipam:") {
                return err(format!(
                    "endpoint {}: names starting ipam: are IPAM handles'",
                    e.name
                ));
            }
            if !names.insert(&e.name) {
                return err(format!("endpoint {}: name used twice", e.name));
            }
            if !interfaces.insert(&e.interface) {
                return err(format!(
                    "endpoint {}: interface {} used twice",
                    e.name, e.interface
                ));
            }
            if e.ips.is_empty() {
                return err(format!("endpoint {}: no ips", e.name));
            }
            for ip in &e.ips {
                if ip.prefix_len() != ip.max_prefix_len() {
                    return err(format!(
                        "endpoint {}: {ip} must be a host address (/32 or /128)",
                        e.name
                    ));
                }
                if !self.pools.is_empty() && !self.pools.iter().any(|p| p.cidr.contains(ip)) {
                    return err(format!("endpoint {}: {ip} is in no pool", e.name));
                }
                if let Some(p) = self
                    .pools
                    .iter()
                    .find(|p| p.cidr.contains(ip) && !p.for_workloads())
                {
                    return err(format!(
                        "endpoint {}: {ip} is in pool {}, whose allowed_uses has no Workload",
                        e.name, p.cidr
                    ));
                }
            }
        }
        if let Some(clash) = address_clash(&self.node_ips, &self.endpoints) {
            return err(clash.to_string());
        }
        if let Some(b) = &self.bgp {
            if b.router_id.is_none() && !self.node_ips.iter().any(|n| n.addr().is_ipv4()) {
                return err("bgp: router_id is needed when node_ips has no IPv4 address".into());
            }
            for p in &b.peers {
                check_peer_address(p.address, &self.node_ips, true)?;
                if p.password.is_some() && p.password_file.is_some() {
                    return err(format!(
                        "bgp peer {}: give password or password_file, not both",
                        p.address
                    ));
                }
                if p.ttl_security.is_some_and(|h| h == 0 || h == 255) {
                    return err(format!(
                        "bgp peer {}: ttl_security is a hop count, 1 to 254",
                        p.address
                    ));
                }
                if p.max_prefixes == Some(0) || !(1..=100).contains(&p.max_prefixes_warning) {
                    return err(format!(
                        "bgp peer {}: max_prefixes must be at least 1 and max_prefixes_warning a percentage (1 to 100)",
                        p.address
                    ));
                }
                if p.hold_time == 1 || p.hold_time == 2 {
                    return err(format!(
                        "bgp peer {}: hold_time must be 0 or at least 3",
                        p.address
                    ));
                }
                if p.password
                    .as_ref()
                    .is_some_and(|pw| pw.is_empty() || pw.len() > 80)
                {
                    return err(format!(
                        "bgp peer {}: password must be 1 to 80 bytes (TCP MD5)",
                        p.address
                    ));
                }
            }
        }
        for e in &self.endpoints {
            if let Some(m) = &e.mac {
                if parse_mac(m).is_none() {
                    return err(format!(
                        "endpoint {}: mac {m:?} is not aa:bb:cc:dd:ee:ff",
                        e.name
                    ));
                }
            }
        }
        match self.conntrack.nat_range() {
            None => {
                return err(format!(
                    "conntrack: nat_ports {:?} must be \"low-high\" with 1024 <= low <= high",
                    self.conntrack.nat_ports
                ))
            }
            Some(r) if (*r.end() - *r.start()) as usize + 1 < self.workers.count => {
                return err(format!(
                    "conntrack: nat_ports {:?} must give every worker a port",
                    self.conntrack.nat_ports
                ))
            }
            Some(_) => {}
        }
        if self.conntrack.max_flows < self.workers.count || self.conntrack.max_flows > 1 << 30 {
            return err(format!(
                "conntrack: max_flows {} must be between the worker count and 2^30",
                self.conntrack.max_flows
            ));
        }
        for u in &self.uplinks {
            if u.queues.len() != self.workers.count {
                return err(format!(
                    "uplink {}: queues {:?} must list one queue per worker ({})",
                    u.name, u.queues, self.workers.count
                ));
            }
        }
        for n in &self.nodes {
            if n.ips.is_empty() {
                return err(format!("node {}: no ips", n.name));
            }
            if let Some(m) = &n.vtep_mac {
                if parse_mac(m).is_none() {
                    return err(format!(
                        "node {}: vtep_mac {m:?} is not aa:bb:cc:dd:ee:ff",
                        n.name
                    ));
                }
            }
        }
        if let Some(m) = &self.vxlan.vtep_mac {
            if parse_mac(m).is_none() {
                return err(format!("vxlan: vtep_mac {m:?} is not aa:bb:cc:dd:ee:ff"));
            }
        }
        if self.vxlan.vni >= 1 << 24 {
            return err(format!(
                "vxlan: vni {} does not fit 24 bits",
                self.vxlan.vni
            ));
        }
        for r in &self.routes {
            host_bits("route", r.dst)?;
            match (&r.via, &r.node) {
                (Some(via), None)
                    if via.addrs().is_empty()
                        || via
                            .addrs()
                            .iter()
                            .any(|v| r.dst.addr().is_ipv4() != v.is_ipv4()) =>
                {
                    return err(format!(
                        "route {}: via {:?} is empty or of the other family",
                        r.dst,
                        via.addrs()
                    ));
                }
                (Some(_), None) => {}
                (None, Some(node)) => {
                    if !self.nodes.iter().any(|n| &n.name == node) {
                        return err(format!("route {}: no node {node} in [[nodes]]", r.dst));
                    }
                }
                _ => return err(format!("route {}: give exactly one of via and node", r.dst)),
            }
            match &r.uplink {
                Some(name) if !self.uplinks.iter().any(|u| &u.name == name) => {
                    return err(format!("route {}: no uplink {name}", r.dst));
                }
                None if self.uplinks.is_empty() => {
                    return err(format!("route {}: there is no uplink", r.dst));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl super::DatastoreSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.kind != "etcdv3" {
            return err(format!(
                "datastore: type {:?}: only \"etcdv3\" is supported",
                self.kind
            ));
        }
        if self.endpoints.is_empty() {
            return err("datastore: endpoints: at least one etcd URL is needed".into());
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
                return err(format!(
                    "datastore: endpoints: {e:?} is not a URL like http://127.0.0.1:2379"
                ));
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return err("datastore: cert_file and key_file go together".into());
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return err(format!(
                "datastore: prefix {:?} must start with '/' and not end with one",
                self.prefix
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::locate;

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
        assert_eq!(locate(&text, &e), Some(17), "b's ips, not a's");
        let dir = std::env::temp_dir().join(format!("vrouter-clash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clash.toml");
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).unwrap_err().0;
        assert_eq!(
            e,
            format!(
                "{}:17: endpoint b: ips: 10.65.0.5 is already endpoint a's",
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
        assert_eq!(locate(&text, &e), Some(13));
        let text = b_ips("\"10.65.0.7/32\", \"10.65.0.7/32\"");
        let e = Config::parse(&text).unwrap_err().0;
        assert_eq!(e, "endpoint b: ips: 10.65.0.7 is listed twice");
        assert_eq!(locate(&text, &e), Some(17));
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
}
