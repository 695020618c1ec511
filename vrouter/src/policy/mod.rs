//! The policy classifier (issue 18): the policies applying to one endpoint in one
//! direction compiled into a tuple-space-search classifier, asked once per flow (its
//! first packet; conntrack answers for the rest). Sans-IO: [`compile`] and
//! [`Compiled::classify`] are plain functions over `datastore::policy` values, and
//! `datastore::policy::verdict` is the oracle they are tested against.
//!
//! # Compiling
//!
//! Everything that depends on labels is resolved by [`compile`]:
//!
//! - the applying policies and their order, exactly as the reference evaluator
//!   (`EndpointMatch` selects the endpoint, rules for the direction, sorted by
//!   (order, key)); none: the classifier always allows (the namespace profile);
//! - every rule gets a *priority*: its position in that walk over all the rules of all
//!   the applying policies (0 first). Crossing from one policy into the next changes
//!   nothing: a policy with no matching rule hands over to the next one, which is what
//!   the flat order does;
//! - the endpoint's own side (destination for ingress, source for egress): `selector`,
//!   `namespaceSelector`, namespace and `notSelector` are checked against the endpoint
//!   once; a rule they refuse is dropped;
//! - the peer's side: as Calico's ipsets, `selector` / `namespaceSelector` / namespace
//!   become the set of addresses of the workloads they select (the owner of an address
//!   is the first workload listed with it), intersected with `nets` and minus the
//!   `notSelector` ones, each a host prefix; a `notSelector` alone becomes a set of
//!   refused addresses checked after the lookup.
//!
//! # Tuple-space search
//!
//! A rule becomes entries: the cross product of its source prefixes, destination
//! prefixes, source-port prefixes and destination-port prefixes (port ranges cut into
//! at most 30 aligned prefixes each, [`range_to_prefixes`]), for each IP version it can
//! match. An entry's *shape* (the tuple) is which fields it constrains and how much:
//! (version, src len, dst len, protocol given, sport len, dport len). One hash table
//! per shape maps the masked fields to the rules having that entry, best priority
//! first:
//!
//! ```text
//!  packet ──► tuple (v4, /24, /0, tcp, /0, /16)   best 0  ──► {10.1.2/24,*,6,*,80}  → [0, 7]
//!        │    tuple (v4, /32, /0, tcp, /0, /10)   best 3  ──► {10.1.2.3,*,6,*,1024/10} → [3]
//!        │    tuple (v4, /0,  /0, any, /0, /0)    best 12 ──► {*}  → [12]
//!        └──► tuples sorted by best; stop when a tuple's best ≥ the best match found
//! ```
//!
//! What the key cannot say is checked on the candidate, after the lookup: `notProtocol`,
//! ICMP type / code and their negations, "ports need TCP, UDP or SCTP", `notNets`,
//! `notPorts` and the peer's `notSelector` set. Log rules decide nothing: they go into
//! a second set of tuples, searched only when the endpoint has some, for the first Log
//! rule ahead of the deciding one (what the dataplane logs).
//!
//! # Cost
//!
//! Per packet: at most one hash lookup per tuple of the packet's IP version, T (the
//! number of distinct shapes, which depends on how many different prefix lengths the
//! rules use, not on how many rules there are), less when the early stop cuts it;
//! then, per hit, the candidates in that bucket in priority order until one passes its
//! post-check (O(not-nets + not-ports) each). Memory: one entry per
//! (src prefix × dst prefix × sport prefix × dport prefix × version) of each rule: a
//! rule with a selector over N workloads, a source and a destination port range
//! 1024..65535 costs N × 6 × 6 entries. Compile time is linear in entries plus rules × workloads for the
//! selectors.
//!
//! # Not done here
//!
//! - Only the first Log rule a packet meets is reported (the reference lists all).
//! - A packet whose source and destination are of different IP versions is looked up
//!   by its source's version only (such a packet does not exist on the wire).

mod prefix;
pub mod set;
#[cfg(test)]
mod tests;

pub use prefix::{range_to_prefixes, PortPrefix};

use datastore::policy::{
    has_ports, Action, Decision, Direction, Endpoint, IcmpMatch, Packet, Peer, Policy, PortRange,
    RuleRef,
};
use ipnet::IpNet;
use prefix::{addr_bits, top_bits, KeyMap};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the classifier decided; rule numbers are priorities ([`Compiled::rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No policy applies: the profile allows.
    NoPolicy,
    /// An Allow or Deny rule matched.
    Rule(usize),
    /// A Pass rule matched: the tier ends and the profile allows.
    Pass(usize),
    /// Policies apply, none of their rules matched: denied.
    EndOfPolicies,
}

/// The classifier's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub decision: Decision,
    pub why: Why,
    /// The first Log rule met before the decision, by priority.
    pub logged: Option<usize>,
}

impl Classification {
    /// The deciding rule's priority, if a rule decided (for per-rule counters).
    pub fn rule(&self) -> Option<usize> {
        match self.why {
            Why::Rule(i) | Why::Pass(i) => Some(i),
            Why::NoPolicy | Why::EndOfPolicies => None,
        }
    }
}

/// One rule of the walk, by priority.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// Its policy and index there, as the reference reports it.
    pub at: RuleRef,
    pub action: Action,
    /// `None`: it can never match (dropped at compile time).
    check: Option<Check>,
}

impl RuleInfo {
    /// Whether the rule is in the tables (it can decide, or log).
    pub fn indexed(&self) -> bool {
        self.check.is_some()
    }
}

/// What a rule asks that the hash key cannot: checked on each candidate.
#[derive(Debug, Clone, Default)]
struct Check {
    not_protocol: Option<u8>,
    icmp: Option<IcmpMatch>,
    not_icmp: Option<IcmpMatch>,
    /// Ports are matched: only TCP, UDP and SCTP.
    needs_ports: bool,
    src_not_nets: Vec<IpNet>,
    dst_not_nets: Vec<IpNet>,
    src_not_ports: Vec<PortRange>,
    dst_not_ports: Vec<PortRange>,
    /// The peer's address must not be one of these (its `notSelector`).
    not_peer: Option<HashSet<IpAddr>>,
}

fn icmp_matches((t, code): IcmpMatch, pkt: Option<(u8, u8)>) -> bool {
    pkt.is_some_and(|(pt, pc)| pt == t && code.is_none_or(|c| c == pc))
}

fn in_ranges(ranges: &[PortRange], port: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
}

impl Check {
    fn passes(&self, pkt: &Packet, peer_addr: IpAddr) -> bool {
        !(self.not_protocol.is_some_and(|p| p == pkt.proto)
            || self.icmp.is_some_and(|m| !icmp_matches(m, pkt.icmp))
            || self.not_icmp.is_some_and(|m| icmp_matches(m, pkt.icmp))
            || (self.needs_ports && !has_ports(pkt.proto))
            || self.src_not_nets.iter().any(|n| n.contains(&pkt.src))
            || self.dst_not_nets.iter().any(|n| n.contains(&pkt.dst))
            || in_ranges(&self.src_not_ports, pkt.sport)
            || in_ranges(&self.dst_not_ports, pkt.dport)
            || self
                .not_peer
                .as_ref()
                .is_some_and(|s| s.contains(&peer_addr)))
    }
}

/// Which fields a tuple constrains, and how many bits of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    src_len: u8,
    dst_len: u8,
    proto: bool,
    sport_len: u8,
    dport_len: u8,
}

/// The packet's fields masked to a shape (top bits, shifted down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: u128,
    dst: u128,
    proto: u8,
    sport: u16,
    dport: u16,
}

#[derive(Debug)]
struct Tuple {
    shape: Shape,
    /// The best (lowest) priority in the table.
    best: usize,
    /// Each key's rules, ascending priority, no duplicates.
    table: KeyMap<Key, Vec<usize>>,
}

/// An address prefix of one IP version, value already shifted down to `len` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrPrefix {
    version: u8,
    value: u128,
    len: u8,
}

impl AddrPrefix {
    fn of_net(n: &IpNet) -> AddrPrefix {
        let (version, v, width) = addr_bits(n.addr());
        let len = n.prefix_len();
        AddrPrefix {
            version,
            value: top_bits(v, width, len),
            len,
        }
    }

    fn host(a: IpAddr) -> AddrPrefix {
        let (version, value, len) = addr_bits(a);
        AddrPrefix {
            version,
            value,
            len,
        }
    }
}

/// The policies for one endpoint and direction, compiled.
#[derive(Debug)]
pub struct Compiled {
    /// No policy applies: allow everything.
    no_policy: bool,
    /// The peer is the packet's source (ingress) or destination (egress).
    peer_is_src: bool,
    /// By priority.
    rules: Vec<RuleInfo>,
    /// `[v4, v6]`, each sorted by best priority.
    tuples: [Vec<Tuple>; 2],
    /// The Log rules' tuples, the same way (empty: no Log rule).
    log_tuples: [Vec<Tuple>; 2],
    /// Packets each rule decided or logged (per-rule counters; shared by the workers,
    /// bumped only for a flow's first packet and for packets denied).
    hits: Box<[AtomicU64]>,
}

/// A workload and the labels its selectors see, computed once per compile.
struct Seen<'a> {
    ep: &'a Endpoint,
    labels: BTreeMap<String, String>,
    namespace_labels: BTreeMap<String, String>,
}

impl<'a> Seen<'a> {
    fn new(ep: &'a Endpoint) -> Seen<'a> {
        Seen {
            ep,
            labels: ep.selector_labels(),
            namespace_labels: ep.namespace_selector_labels(),
        }
    }
}

/// Whether workload `w` meets a side's endpoint conditions (all but `notSelector`).
fn endpoint_conds(p: &Peer, w: &Seen) -> bool {
    p.namespace.as_ref().is_none_or(|ns| *ns == w.ep.namespace)
        && p.namespace_selector
            .as_ref()
            .is_none_or(|s| s.matches(&w.namespace_labels))
        && p.selector.as_ref().is_none_or(|s| s.matches(&w.labels))
}

/// One side's address alternatives (`None`: any address) and, for the peer's side,
/// the addresses its `notSelector` refuses. `None` when the side can never match.
type SideAddrs = (Vec<Option<AddrPrefix>>, Option<HashSet<IpAddr>>);

fn side_addrs(
    p: &Peer,
    peer_side: bool,
    ep: &Seen,
    owners: &[(IpAddr, Seen)],
) -> Option<SideAddrs> {
    let nets: Vec<Option<AddrPrefix>> = if p.nets.is_empty() {
        vec![None]
    } else {
        p.nets.iter().map(|n| Some(AddrPrefix::of_net(n))).collect()
    };
    let not_sel = |w: &Seen| {
        p.not_selector
            .as_ref()
            .is_some_and(|s| s.matches(&w.labels))
    };
    if !peer_side {
        if (p.needs_endpoint() && !endpoint_conds(p, ep)) || not_sel(ep) {
            return None;
        }
        return Some((nets, None));
    }
    if p.needs_endpoint() {
        let hosts: Vec<Option<AddrPrefix>> = owners
            .iter()
            .filter(|(a, w)| {
                endpoint_conds(p, w)
                    && !not_sel(w)
                    && (p.nets.is_empty() || p.nets.iter().any(|n| n.contains(a)))
            })
            .map(|(a, _)| Some(AddrPrefix::host(*a)))
            .collect();
        if hosts.is_empty() {
            return None;
        }
        return Some((hosts, None));
    }
    let refused = p.not_selector.as_ref().map(|_| {
        owners
            .iter()
            .filter(|(_, w)| not_sel(w))
            .map(|(a, _)| *a)
            .collect()
    });
    Some((nets, refused))
}

/// A side's port prefixes: every port when none is given; `None` when the ranges
/// given are all empty (the rule can never match).
fn side_ports(p: &Peer) -> Option<Vec<PortPrefix>> {
    if p.ports.is_empty() {
        return Some(vec![PortPrefix { value: 0, len: 0 }]);
    }
    let v: Vec<PortPrefix> = p
        .ports
        .iter()
        .flat_map(|&(lo, hi)| range_to_prefixes(lo, hi))
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Builds the tables, grouping entries by shape.
#[derive(Default)]
struct Builder {
    shapes: [HashMap<Shape, KeyMap<Key, Vec<usize>>>; 2],
}

impl Builder {
    fn insert(&mut self, version: u8, shape: Shape, key: Key, prio: usize) {
        let slot = usize::from(version == 6);
        let v = self.shapes[slot]
            .entry(shape)
            .or_default()
            .entry(key)
            .or_default();
        // Rules come in priority order: a duplicate can only be the last one.
        if v.last() != Some(&prio) {
            v.push(prio);
        }
    }

    fn finish(self) -> [Vec<Tuple>; 2] {
        self.shapes.map(|m| {
            let mut ts: Vec<Tuple> = m
                .into_iter()
                .map(|(shape, table)| Tuple {
                    shape,
                    best: table.values().map(|v| v[0]).min().unwrap_or(usize::MAX),
                    table,
                })
                .collect();
            ts.sort_by_key(|t| t.best);
            ts
        })
    }
}

/// Compiles the `policies` that apply to `ep` in `dir`. `workloads` is every known
/// workload endpoint with its address: what peer selectors are resolved against.
pub fn compile(
    policies: &[Policy],
    ep: &Endpoint,
    dir: Direction,
    workloads: &[(IpAddr, Endpoint)],
) -> Compiled {
    let peer_is_src = dir == Direction::Ingress;
    let mut applying: Vec<&Policy> = policies
        .iter()
        .filter(|p| p.applies_to.matches(ep) && p.rules(dir).is_some())
        .collect();
    applying.sort_by(|a, b| {
        a.order
            .total_cmp(&b.order)
            .then_with(|| a.key().cmp(&b.key()))
    });
    // The first workload listed with an address owns it.
    let mut seen = HashSet::new();
    let needs_owners = applying.iter().any(|p| {
        p.rules(dir).unwrap_or_default().iter().any(|r| {
            r.src.needs_endpoint()
                || r.dst.needs_endpoint()
                || r.src.not_selector.is_some()
                || r.dst.not_selector.is_some()
        })
    });
    let owners: Vec<(IpAddr, Seen)> = workloads
        .iter()
        .filter(|_| needs_owners)
        .filter(|(a, _)| seen.insert(*a))
        .map(|(a, w)| (*a, Seen::new(w)))
        .collect();
    let me = Seen::new(ep);
    let mut rules = Vec::new();
    let mut b = Builder::default();
    let mut logs = Builder::default();
    for p in &applying {
        let key = p.key();
        for (i, r) in p.rules(dir).unwrap_or_default().iter().enumerate() {
            let prio = rules.len();
            let at = RuleRef {
                policy: key.clone(),
                rule: i,
            };
            let into = if r.action == Action::Log {
                &mut logs
            } else {
                &mut b
            };
            let check = enter(into, r, prio, peer_is_src, &me, &owners);
            rules.push(RuleInfo {
                at,
                action: r.action,
                check,
            });
        }
    }
    let hits = rules.iter().map(|_| AtomicU64::new(0)).collect();
    Compiled {
        no_policy: applying.is_empty(),
        peer_is_src,
        rules,
        tuples: b.finish(),
        log_tuples: logs.finish(),
        hits,
    }
}

/// Enters rule `r` at priority `prio`; its post-check, or `None` if it can never match
/// (then nothing is entered).
fn enter(
    b: &mut Builder,
    r: &datastore::policy::Rule,
    prio: usize,
    peer_is_src: bool,
    ep: &Seen,
    owners: &[(IpAddr, Seen)],
) -> Option<Check> {
    let (src, src_refused) = side_addrs(&r.src, peer_is_src, ep, owners)?;
    let (dst, dst_refused) = side_addrs(&r.dst, !peer_is_src, ep, owners)?;
    let sports = side_ports(&r.src)?;
    let dports = side_ports(&r.dst)?;
    let versions: Vec<u8> = [4u8, 6]
        .into_iter()
        .filter(|v| r.ip_version.is_none_or(|x| x == *v))
        .collect();
    let check = Check {
        not_protocol: r.not_protocol,
        icmp: r.icmp,
        not_icmp: r.not_icmp,
        needs_ports: r.matches_ports(),
        src_not_nets: r.src.not_nets.clone(),
        dst_not_nets: r.dst.not_nets.clone(),
        src_not_ports: r.src.not_ports.clone(),
        dst_not_ports: r.dst.not_ports.clone(),
        not_peer: src_refused.or(dst_refused),
    };
    let fits = |a: &Option<AddrPrefix>, v: u8| a.is_none_or(|a| a.version == v);
    let mut any = false;
    for &v in &versions {
        for s in src.iter().filter(|s| fits(s, v)) {
            for d in dst.iter().filter(|d| fits(d, v)) {
                for sp in &sports {
                    for dp in &dports {
                        let shape = Shape {
                            src_len: s.map_or(0, |a| a.len),
                            dst_len: d.map_or(0, |a| a.len),
                            proto: r.protocol.is_some(),
                            sport_len: sp.len,
                            dport_len: dp.len,
                        };
                        let key = Key {
                            src: s.map_or(0, |a| a.value),
                            dst: d.map_or(0, |a| a.value),
                            proto: r.protocol.unwrap_or(0),
                            sport: sp.value,
                            dport: dp.value,
                        };
                        b.insert(v, shape, key, prio);
                        any = true;
                    }
                }
            }
        }
    }
    any.then_some(check)
}

impl Compiled {
    /// The rule at priority `i` (from [`Classification::rule`]).
    pub fn rule(&self, i: usize) -> &RuleInfo {
        &self.rules[i]
    }

    /// How many rules (of every applying policy, Log and never-matching ones too).
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    /// How many tuples (hash tables) a packet of each version may probe: `[v4, v6]`.
    pub fn tuples(&self) -> [usize; 2] {
        [self.tuples[0].len(), self.tuples[1].len()]
    }

    /// Count one packet for rule `i` (a flow's first packet, or a packet denied).
    #[inline]
    pub fn hit(&self, i: usize) {
        if let Some(h) = self.hits.get(i) {
            h.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Packets counted for rule `i`.
    pub fn hits(&self, i: usize) -> u64 {
        self.hits.get(i).map_or(0, |h| h.load(Ordering::Relaxed))
    }

    /// The decision for a flow's first packet.
    pub fn classify(&self, pkt: &Packet) -> Classification {
        if self.no_policy {
            return Classification {
                decision: Decision::Allow,
                why: Why::NoPolicy,
                logged: None,
            };
        }
        let slot = usize::from(pkt.src.is_ipv6());
        let best = self.search(&self.tuples[slot], pkt, usize::MAX);
        let logged = if self.log_tuples[slot].is_empty() {
            None
        } else {
            Some(self.search(&self.log_tuples[slot], pkt, best)).filter(|&l| l < best)
        };
        let Some(r) = self.rules.get(best) else {
            return Classification {
                decision: Decision::Deny,
                why: Why::EndOfPolicies,
                logged,
            };
        };
        let (decision, why) = match r.action {
            Action::Allow => (Decision::Allow, Why::Rule(best)),
            Action::Pass => (Decision::Allow, Why::Pass(best)),
            // Log rules are in their own tuples.
            Action::Deny | Action::Log => (Decision::Deny, Why::Rule(best)),
        };
        Classification {
            decision,
            why,
            logged,
        }
    }

    /// The best (lowest) priority below `best` among `tuples`' rules that `pkt`
    /// matches; `best` if none.
    fn search(&self, tuples: &[Tuple], pkt: &Packet, mut best: usize) -> usize {
        let (_, src, width) = addr_bits(pkt.src);
        let (_, dst, _) = addr_bits(pkt.dst);
        let peer = if self.peer_is_src { pkt.src } else { pkt.dst };
        for t in tuples {
            if t.best >= best {
                break;
            }
            let s = t.shape;
            let key = Key {
                src: top_bits(src, width, s.src_len),
                dst: top_bits(dst, width, s.dst_len),
                proto: if s.proto { pkt.proto } else { 0 },
                sport: (u32::from(pkt.sport) >> (16 - s.sport_len)) as u16,
                dport: (u32::from(pkt.dport) >> (16 - s.dport_len)) as u16,
            };
            let Some(cands) = t.table.get(&key) else {
                continue;
            };
            for &i in cands.iter().take_while(|&&i| i < best) {
                if self.rules[i]
                    .check
                    .as_ref()
                    .is_some_and(|c| c.passes(pkt, peer))
                {
                    best = i;
                    break;
                }
            }
        }
        best
    }
}
