//! The RIB: every peer's paths per prefix (Adj-RIB-In), the RFC 4271 §9.1 decision
//! process, and the best paths (Loc-RIB) as the set of equal-cost paths the FIB should
//! spread traffic over.
//!
//! Sized for full tables (the control-plane issue asks ≤ 100 bytes per route with the
//! FIB): path attributes are interned and a path is 8 bytes (peer, stale flag, attribute
//! index); a prefix with one path keeps it packed in the map value, so an IPv4 route is
//! a 12-byte map entry (4-byte address in its length's map, 8-byte value). Best paths are
//! not stored: they are computed from the few paths of a prefix when asked.
//!
//! Sans-IO like the sessions: `update` / `withdraw` / `peer_down` return the prefixes
//! whose best paths changed, for the FIB sync to batch.

use crate::bgp::wire::PathAttrs;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A peer, as the decision process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub ibgp: bool,
}

pub type PeerId = u16;

/// One peer's path to a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    /// Kept from before the peer restarted (graceful restart helper), until refreshed.
    pub stale: bool,
    attrs: u32,
}

/// What the decision process needs to know about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Our cluster id when we reflect routes (RFC 4456).
    pub cluster_id: Option<Ipv4Addr>,
}

/// A prefix's paths as one `u64` map value: a single path packed inline (attribute
/// index, peer, stale flag), or the index of a slot of several.
const MANY: u64 = 1 << 63;

fn pack(p: Path) -> u64 {
    p.attrs as u64 | (p.peer as u64) << 32 | (p.stale as u64) << 48
}

fn unpack(v: u64) -> Path {
    Path {
        attrs: v as u32,
        peer: (v >> 32) as u16,
        stale: v >> 48 & 1 == 1,
    }
}

/// A prefix's paths, borrowed from the RIB.
enum PathList<'a> {
    None,
    One(Path),
    Many(&'a [Path]),
}

impl PathList<'_> {
    fn as_slice(&self) -> &[Path] {
        match self {
            PathList::None => &[],
            PathList::One(p) => std::slice::from_ref(p),
            PathList::Many(v) => v,
        }
    }
}

/// Interned attribute sets, by index, with use counts.
#[derive(Default)]
struct AttrTable {
    sets: Vec<Option<(Arc<PathAttrs>, u32)>>,
    /// When each set was interned (seconds since the RIB was made): a path's age in
    /// `route list --detail` (4 bytes per set, not per path).
    born: Vec<u32>,
    index: HashMap<Arc<PathAttrs>, u32>,
    free: Vec<u32>,
}

impl AttrTable {
    fn intern(&mut self, a: PathAttrs, now_s: u32) -> u32 {
        if let Some(&i) = self.index.get(&a) {
            return i;
        }
        let a = Arc::new(a);
        let i = match self.free.pop() {
            Some(i) => {
                self.sets[i as usize] = Some((a.clone(), 0));
                self.born[i as usize] = now_s;
                i
            }
            None => {
                self.sets.push(Some((a.clone(), 0)));
                self.born.push(now_s);
                (self.sets.len() - 1) as u32
            }
        };
        self.index.insert(a, i);
        i
    }

    fn get(&self, i: u32) -> &PathAttrs {
        &self.sets[i as usize]
            .as_ref()
            .expect("a path's attributes are live")
            .0
    }

    fn retain(&mut self, i: u32) {
        if let Some((_, n)) = self.sets[i as usize].as_mut() {
            *n += 1;
        }
    }

    fn release(&mut self, i: u32) {
        let slot = &mut self.sets[i as usize];
        if let Some((a, n)) = slot.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.index.remove(&**a);
                *slot = None;
                self.free.push(i);
            }
        }
    }

    /// Drop a set interned for an update whose prefixes all failed to use it.
    fn release_if_unused(&mut self, i: u32) {
        if matches!(self.sets[i as usize], Some((_, 0))) {
            let (a, _) = self.sets[i as usize].take().unwrap();
            self.index.remove(&*a);
            self.free.push(i);
        }
    }

    fn live(&self) -> usize {
        self.index.len()
    }
}

#[derive(Default)]
pub struct Rib {
    peers: HashMap<PeerId, PeerInfo>,
    /// IPv4 prefixes by length (12-byte entries), and IPv6 ones.
    v4: V4Map,
    v6: HashMap<(u128, u8), u64, PrefixHash>,
    /// Prefixes with several paths keep them here (index in the map value).
    many: Vec<Box<[Path]>>,
    many_free: Vec<u32>,
    attrs: AttrTable,
    local: Option<Local>,
    /// Paths held per peer (prefixes received).
    counts: HashMap<PeerId, usize>,
    /// When the RIB was made (attribute sets' times count from it).
    made: Option<std::time::Instant>,
}

fn key4(n: Ipv4Net) -> (u8, u32) {
    (n.prefix_len(), u32::from(n.network()))
}

fn key6(n: Ipv6Net) -> (u128, u8) {
    (u128::from(n.network()), n.prefix_len())
}

fn net6(&(a, l): &(u128, u8)) -> IpNet {
    IpNet::V6(Ipv6Net::new(a.into(), l).expect("a stored prefix"))
}

fn net4(len: u8, addr: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).expect("a stored prefix"))
}

/// A `u64` map value as the IPv4 maps store it: two `u32`s, so that an entry is 12
/// bytes aligned to 4 rather than 16.
fn split(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn join([lo, hi]: [u32; 2]) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// The hasher of the RIB's per-prefix maps: SipHash was a fifth of the speaker
/// thread's time on a full table. foldhash (hashbrown's own default) with a random seed
/// per map, so that a peer cannot aim prefixes at one bucket without knowing it.
pub(crate) type PrefixHash = foldhash::fast::RandomState;

/// IPv4 prefixes, one map per prefix length keyed by the address. A single map of
/// 1.08M routes sits just past a growth threshold (2^21 buckets at load 0.51, 33 B per
/// route); per length, the entries are smaller and the maps cross their thresholds at
/// different sizes (about 23 B per route at the same table).
struct V4Map {
    by_len: Vec<HashMap<u32, [u32; 2], PrefixHash>>,
    len: usize,
}

impl Default for V4Map {
    fn default() -> V4Map {
        V4Map {
            by_len: (0..=32).map(|_| HashMap::default()).collect(),
            len: 0,
        }
    }
}

impl V4Map {
    fn get(&self, (len, addr): (u8, u32)) -> Option<u64> {
        self.by_len[len as usize].get(&addr).copied().map(join)
    }

    fn insert(&mut self, (len, addr): (u8, u32), v: u64) {
        if self.by_len[len as usize].insert(addr, split(v)).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, (len, addr): (u8, u32)) {
        let map = &mut self.by_len[len as usize];
        if map.remove(&addr).is_some() {
            self.len -= 1;
            if map.is_empty() {
                // A length withdrawn entirely gives its table back.
                *map = HashMap::default();
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (IpNet, u64)> + '_ {
        self.by_len.iter().enumerate().flat_map(|(len, m)| {
            m.iter()
                .map(move |(&addr, &v)| (net4(len as u8, addr), join(v)))
        })
    }

    /// Each value, to be rewritten by `f`.
    fn update_values(&mut self, mut f: impl FnMut(&mut u64)) {
        for v in self.by_len.iter_mut().flat_map(|m| m.values_mut()) {
            let mut x = join(*v);
            f(&mut x);
            *v = split(x);
        }
    }
}

impl Rib {
    pub fn new(local: Local) -> Rib {
        Rib {
            local: Some(local),
            made: Some(std::time::Instant::now()),
            ..Rib::default()
        }
    }

    pub fn add_peer(&mut self, id: PeerId, info: PeerInfo) {
        self.peers.insert(id, info);
    }

    /// Prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.v4.len + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prefixes `peer` has a path for.
    pub fn received_from(&self, peer: PeerId) -> usize {
        self.counts.get(&peer).copied().unwrap_or(0)
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.attrs.live()
    }

    /// What we know of a peer.
    pub fn peer_info(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(&id)
    }

    /// Every prefix with a path (the route reflector's full advertisement).
    pub fn prefixes(&self) -> Vec<IpNet> {
        let v4 = self.v4.iter().map(|(n, _)| n);
        let v6 = self.v6.keys().map(net6);
        v4.chain(v6).collect()
    }

    /// A path's attributes.
    pub fn attrs(&self, p: &Path) -> &PathAttrs {
        self.attrs.get(p.attrs)
    }

    /// Every path to `prefix`, in the decision process's order (the best first).
    pub fn ranked(&self, prefix: IpNet) -> Vec<Path> {
        let mut paths = self.paths(prefix).as_slice().to_vec();
        paths.sort_by(|a, b| self.compare(a, b));
        paths
    }

    /// How long ago a path's attribute set was first held: the path's age, or more
    /// when an earlier path had the same attributes.
    pub fn attrs_age(&self, p: &Path) -> std::time::Duration {
        let made = self.made.map_or(0, |m| m.elapsed().as_secs());
        let born = self.attrs.born.get(p.attrs as usize).copied().unwrap_or(0);
        std::time::Duration::from_secs(made.saturating_sub(born as u64))
    }

    /// A path's next hop (MP_REACH's for IPv6 and when present).
    pub fn next_hop(&self, p: &Path) -> Option<IpAddr> {
        let a = self.attrs(p);
        a.mp_next_hop.or(a.next_hop.map(IpAddr::V4))
    }

    fn list(&self, v: Option<u64>) -> PathList<'_> {
        match v {
            None => PathList::None,
            Some(v) if v & MANY != 0 => PathList::Many(&self.many[v as u32 as usize]),
            Some(v) => PathList::One(unpack(v)),
        }
    }

    /// The map value of `prefix` (truncated).
    fn value(&self, prefix: IpNet) -> Option<u64> {
        match prefix.trunc() {
            IpNet::V4(n) => self.v4.get(key4(n)),
            IpNet::V6(n) => self.v6.get(&key6(n)).copied(),
        }
    }

    fn paths(&self, prefix: IpNet) -> PathList<'_> {
        self.list(self.value(prefix))
    }

    /// Replace the paths of `prefix` by what `f` makes of them.
    fn edit(&mut self, prefix: IpNet, f: impl FnOnce(&mut Vec<Path>)) {
        let mut v = self.paths(prefix).as_slice().to_vec();
        f(&mut v);
        let old = self.value(prefix);
        let old_slot = old.filter(|o| o & MANY != 0).map(|o| o as u32);
        let new = match v.len() {
            0 => None,
            1 => Some(pack(v[0])),
            _ => {
                let slot = match old_slot {
                    Some(i) => i,
                    None => match self.many_free.pop() {
                        Some(i) => i,
                        None => {
                            self.many.push(Box::new([]));
                            (self.many.len() - 1) as u32
                        }
                    },
                };
                self.many[slot as usize] = v.into_boxed_slice();
                Some(MANY | slot as u64)
            }
        };
        if let Some(i) = old_slot.filter(|_| new.is_none_or(|n| n & MANY == 0)) {
            self.many[i as usize] = Box::new([]);
            self.many_free.push(i);
        }
        self.set(prefix, new);
    }

    /// Store (or with `None` remove) the map value of `prefix`.
    fn set(&mut self, prefix: IpNet, v: Option<u64>) {
        match (prefix.trunc(), v) {
            (IpNet::V4(n), Some(p)) => self.v4.insert(key4(n), p),
            (IpNet::V4(n), None) => self.v4.remove(key4(n)),
            (IpNet::V6(n), Some(p)) => {
                self.v6.insert(key6(n), p);
            }
            (IpNet::V6(n), None) => {
                self.v6.remove(&key6(n));
            }
        }
    }

    /// Whether a path must be ignored (RFC 4271 §9.1.2 AS loop; RFC 4456 ORIGINATOR_ID /
    /// CLUSTER_LIST loops).
    fn looped(&self, attrs: &PathAttrs) -> bool {
        let Some(l) = &self.local else { return false };
        attrs.as_path.contains(&l.asn)
            || attrs.originator_id == Some(l.router_id)
            || l.cluster_id
                .is_some_and(|c| attrs.cluster_list.contains(&c))
    }

    /// `peer` announced `prefixes` with `attrs`. Returns the prefixes whose best changed.
    pub fn update(&mut self, peer: PeerId, prefixes: &[IpNet], attrs: PathAttrs) -> Vec<IpNet> {
        if !self.peers.contains_key(&peer) {
            return Vec::new();
        }
        if self.looped(&attrs) {
            // Treated as a withdrawal of whatever the peer had for them.
            return self.withdraw(peer, prefixes);
        }
        let now_s = self.made.map_or(0, |m| m.elapsed().as_secs() as u32);
        let id = self.attrs.intern(attrs, now_s);
        let path = Path {
            peer,
            stale: false,
            attrs: id,
        };
        let mut changed = Vec::new();
        let mut added = 0;
        for &p in prefixes {
            // A prefix with no path or only this peer's (a full table from one peer, its
            // churn): the best is that path, no decision process to run.
            match self.value(p) {
                None => {
                    self.attrs.retain(id);
                    added += 1;
                    self.set(p, Some(pack(path)));
                    changed.push(p.trunc());
                    continue;
                }
                Some(v) if v & MANY == 0 && unpack(v).peer == peer => {
                    let o = unpack(v);
                    if o.attrs == id && !o.stale {
                        continue; // the same announcement again
                    }
                    self.attrs.retain(id);
                    self.attrs.release(o.attrs);
                    self.set(p, Some(pack(path)));
                    if o.attrs != id {
                        changed.push(p.trunc());
                    }
                    continue;
                }
                Some(_) => {}
            }
            let before = self.best_key(p);
            let old = self
                .paths(p)
                .as_slice()
                .iter()
                .find(|x| x.peer == peer)
                .copied();
            if let Some(o) = old {
                if o.attrs == id && !o.stale {
                    continue; // the same announcement again
                }
            }
            self.attrs.retain(id);
            if let Some(o) = old {
                self.attrs.release(o.attrs);
            } else {
                added += 1;
            }
            self.edit(p, |v| match v.iter_mut().find(|x| x.peer == peer) {
                Some(x) => *x = path,
                None => v.push(path),
            });
            if self.best_key(p) != before {
                changed.push(p.trunc());
            }
        }
        if added > 0 {
            *self.counts.entry(peer).or_default() += added;
        }
        self.attrs.release_if_unused(id);
        changed
    }

    pub fn withdraw(&mut self, peer: PeerId, prefixes: &[IpNet]) -> Vec<IpNet> {
        let mut changed = Vec::new();
        let mut removed = 0;
        for &p in prefixes {
            let v = self.value(p);
            if let Some(v) = v.filter(|v| v & MANY == 0) {
                // The prefix's only path: this peer's or not.
                let o = unpack(v);
                if o.peer == peer {
                    self.set(p, None);
                    self.attrs.release(o.attrs);
                    removed += 1;
                    changed.push(p.trunc());
                }
                continue;
            }
            let Some(old) = self
                .list(v)
                .as_slice()
                .iter()
                .find(|x| x.peer == peer)
                .copied()
            else {
                continue;
            };
            let before = self.best_key(p);
            self.edit(p, |v| v.retain(|x| x.peer != peer));
            self.attrs.release(old.attrs);
            removed += 1;
            if self.best_key(p) != before {
                changed.push(p.trunc());
            }
        }
        if removed > 0 {
            *self.counts.entry(peer).or_default() -= removed;
        }
        changed
    }

    /// Every prefix `peer` has a path for (and, with `stale_only`, a stale one).
    fn prefixes_of(&self, peer: PeerId, stale_only: bool) -> Vec<IpNet> {
        let has = |v: u64| {
            self.list(Some(v))
                .as_slice()
                .iter()
                .any(|x| x.peer == peer && (x.stale || !stale_only))
        };
        let v4 = self.v4.iter().filter(|&(_, v)| has(v)).map(|(n, _)| n);
        let v6 = self
            .v6
            .iter()
            .filter(|(_, v)| has(**v))
            .map(|(k, _)| net6(k));
        v4.chain(v6).collect()
    }

    /// The peer's session went down without graceful restart: drop its paths.
    pub fn peer_down(&mut self, peer: PeerId) -> Vec<IpNet> {
        let prefixes = self.prefixes_of(peer, false);
        self.withdraw(peer, &prefixes)
    }

    /// The peer was de-configured: its paths go, and so does what we knew of it, so
    /// that its id can be given to another peer.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<IpNet> {
        // Withdraw first: the decision process still needs the peer's info.
        let changed = self.peer_down(peer);
        self.peers.remove(&peer);
        self.counts.remove(&peer);
        changed
    }

    /// Graceful restart helper (RFC 4724 §4.2): the peer restarted; keep its paths as
    /// stale (still forwarding) until it re-announces them or `sweep_stale`.
    pub fn mark_stale(&mut self, peer: PeerId) {
        let many = &mut self.many;
        let mut mark = |v: &mut u64| {
            if *v & MANY != 0 {
                many[*v as u32 as usize]
                    .iter_mut()
                    .filter(|x| x.peer == peer)
                    .for_each(|x| x.stale = true);
            } else if unpack(*v).peer == peer {
                *v = pack(Path {
                    stale: true,
                    ..unpack(*v)
                });
            }
        };
        self.v4.update_values(&mut mark);
        self.v6.values_mut().for_each(&mut mark);
    }

    /// End-of-RIB from the restarted peer (or the restart timer ran out): paths it did not
    /// re-announce go.
    pub fn sweep_stale(&mut self, peer: PeerId) -> Vec<IpNet> {
        let prefixes = self.prefixes_of(peer, true);
        self.withdraw(peer, &prefixes)
    }

    /// The best paths to `prefix`: the winner of the decision process and every path
    /// equal to it up to the router-id tie-break (multipath, for ECMP).
    pub fn best(&self, prefix: IpNet) -> Vec<Path> {
        let list = self.paths(prefix);
        let mut paths = list.as_slice().to_vec();
        if paths.len() <= 1 {
            return paths;
        }
        paths.sort_by(|a, b| self.compare(a, b));
        let first = paths[0];
        paths.retain(|p| self.compare_multipath(&first, p) == Ordering::Equal);
        paths
    }

    /// What the FIB needs of the best paths: their distinct next hops, sorted.
    pub fn best_next_hops(&self, prefix: IpNet) -> Vec<IpAddr> {
        if let PathList::One(p) = self.paths(prefix) {
            return self.next_hop(&p).into_iter().collect();
        }
        let mut hops: Vec<IpAddr> = self
            .best(prefix)
            .iter()
            .filter_map(|p| self.next_hop(p))
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// Identifies the best set (peer and attributes of each path).
    fn best_key(&self, prefix: IpNet) -> Vec<(PeerId, u32)> {
        self.best(prefix)
            .iter()
            .map(|p| (p.peer, p.attrs))
            .collect()
    }

    fn peer(&self, p: &Path) -> Option<&PeerInfo> {
        self.peers.get(&p.peer)
    }

    /// RFC 4271 §9.1.2.2 up to (not including) the router-id tie-break: paths equal
    /// here are equal-cost.
    fn compare_multipath(&self, a: &Path, b: &Path) -> Ordering {
        let (x, y) = (self.attrs(a), self.attrs(b));
        let lp = |p: &PathAttrs| p.local_pref.unwrap_or(100);
        lp(y)
            .cmp(&lp(x))
            .then(x.as_path_len.cmp(&y.as_path_len))
            .then(x.origin.cmp(&y.origin))
            .then_with(|| {
                // MED only between paths from the same neighbouring AS (first AS).
                if x.as_path.first() == y.as_path.first() {
                    x.med.unwrap_or(0).cmp(&y.med.unwrap_or(0))
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| {
                // eBGP-learned before iBGP-learned.
                let ibgp = |p: &Path| self.peer(p).is_none_or(|i| i.ibgp);
                ibgp(a).cmp(&ibgp(b))
            })
    }

    /// The whole decision process: then the lowest BGP identifier (ORIGINATOR_ID when
    /// reflected), the shortest CLUSTER_LIST, the lowest peer address.
    fn compare(&self, a: &Path, b: &Path) -> Ordering {
        let id = |p: &Path| {
            self.attrs(p)
                .originator_id
                .or(self.peer(p).map(|i| i.router_id))
                .map_or(u32::MAX, u32::from)
        };
        let addr = |p: &Path| self.peer(p).map(|i| i.address);
        let clusters = |p: &Path| self.attrs(p).cluster_list.len();
        self.compare_multipath(a, b)
            .then(id(a).cmp(&id(b)))
            .then(clusters(a).cmp(&clusters(b)))
            .then(addr(a).cmp(&addr(b)))
            .then(a.peer.cmp(&b.peer))
    }
}
