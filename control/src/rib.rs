//! The RIB: every peer's paths per prefix (Adj-RIB-In), the RFC 4271 §9.1 decision
//! process, and the best paths (Loc-RIB) as the set of equal-cost paths the FIB should
//! spread traffic over. Path attributes are interned: a full table from one peer shares
//! a few thousand attribute sets, so a route costs its prefix and two small words.
//!
//! Sans-IO like the sessions: `update` / `withdraw` / `peer_down` return the prefixes
//! whose best paths changed, for the FIB sync to batch.

use crate::bgp::wire::PathAttrs;
use ipnet::IpNet;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    pub attrs: Arc<PathAttrs>,
    /// Kept from before the peer restarted (graceful restart helper), until refreshed.
    pub stale: bool,
}

impl Path {
    /// The path's next hop (MP_REACH's for IPv6 and when present).
    pub fn next_hop(&self) -> Option<IpAddr> {
        self.attrs
            .mp_next_hop
            .or(self.attrs.next_hop.map(IpAddr::V4))
    }
}

/// What the decision process needs to know about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Our cluster id when we reflect routes (RFC 4456).
    pub cluster_id: Option<Ipv4Addr>,
}

#[derive(Default)]
pub struct Rib {
    peers: HashMap<PeerId, PeerInfo>,
    paths: HashMap<IpNet, Vec<Path>>,
    interned: HashSet<Arc<PathAttrs>>,
    local: Option<Local>,
    /// Paths held per peer (prefixes received).
    counts: HashMap<PeerId, usize>,
}

impl Rib {
    pub fn new(local: Local) -> Rib {
        Rib {
            local: Some(local),
            ..Rib::default()
        }
    }

    pub fn add_peer(&mut self, id: PeerId, info: PeerInfo) {
        self.peers.insert(id, info);
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Prefixes `peer` has a path for.
    pub fn received_from(&self, peer: PeerId) -> usize {
        self.counts.get(&peer).copied().unwrap_or(0)
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    fn intern(&mut self, attrs: PathAttrs) -> Arc<PathAttrs> {
        if let Some(a) = self.interned.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.interned.insert(a.clone());
        a
    }

    /// Whether a path from `peer` must be ignored (RFC 4271 §9.1.2 AS loop; RFC 4456
    /// ORIGINATOR_ID / CLUSTER_LIST loops).
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
        let attrs = self.intern(attrs);
        let mut changed = Vec::new();
        for &p in prefixes {
            let before = self.best_key(p);
            let list = self.paths.entry(p).or_default();
            let path = Path {
                peer,
                attrs: attrs.clone(),
                stale: false,
            };
            match list.iter_mut().find(|x| x.peer == peer) {
                Some(x) => *x = path,
                None => {
                    list.push(path);
                    *self.counts.entry(peer).or_default() += 1;
                }
            }
            if self.best_key(p) != before {
                changed.push(p);
            }
        }
        self.trim_interned();
        changed
    }

    pub fn withdraw(&mut self, peer: PeerId, prefixes: &[IpNet]) -> Vec<IpNet> {
        let mut changed = Vec::new();
        for &p in prefixes {
            let before = self.best_key(p);
            if let Some(list) = self.paths.get_mut(&p) {
                let n = list.len();
                list.retain(|x| x.peer != peer);
                if list.len() < n {
                    *self.counts.entry(peer).or_default() -= 1;
                }
                if list.is_empty() {
                    self.paths.remove(&p);
                }
            }
            if self.best_key(p) != before {
                changed.push(p);
            }
        }
        changed
    }

    /// The peer's session went down without graceful restart: drop its paths.
    pub fn peer_down(&mut self, peer: PeerId) -> Vec<IpNet> {
        let prefixes: Vec<IpNet> = self
            .paths
            .iter()
            .filter(|(_, l)| l.iter().any(|x| x.peer == peer))
            .map(|(p, _)| *p)
            .collect();
        let changed = self.withdraw(peer, &prefixes);
        self.trim_interned();
        changed
    }

    /// Graceful restart helper (RFC 4724 §4.2): the peer restarted; keep its paths as
    /// stale (still forwarding) until it re-announces them or `sweep_stale`.
    pub fn mark_stale(&mut self, peer: PeerId) {
        for list in self.paths.values_mut() {
            for x in list.iter_mut().filter(|x| x.peer == peer) {
                x.stale = true;
            }
        }
    }

    /// End-of-RIB from the restarted peer (or the restart timer ran out): paths it did not
    /// re-announce go.
    pub fn sweep_stale(&mut self, peer: PeerId) -> Vec<IpNet> {
        let prefixes: Vec<IpNet> = self
            .paths
            .iter()
            .filter(|(_, l)| l.iter().any(|x| x.peer == peer && x.stale))
            .map(|(p, _)| *p)
            .collect();
        let changed = self.withdraw(peer, &prefixes);
        self.trim_interned();
        changed
    }

    /// Attribute sets no path uses any more.
    fn trim_interned(&mut self) {
        // Cheap enough per batch: only sets whose last user went are dropped.
        if self.interned.len() > 64 && self.interned.len() > self.paths.len() / 8 {
            self.interned.retain(|a| Arc::strong_count(a) > 1);
        }
    }

    /// The best paths to `prefix`: the winner of the decision process and every path
    /// equal to it up to the router-id tie-break (multipath, for ECMP).
    pub fn best(&self, prefix: IpNet) -> Vec<&Path> {
        let Some(list) = self.paths.get(&prefix) else {
            return Vec::new();
        };
        let mut sorted: Vec<&Path> = list.iter().collect();
        sorted.sort_by(|a, b| self.compare(a, b));
        let Some(first) = sorted.first().copied() else {
            return Vec::new();
        };
        sorted
            .into_iter()
            .take_while(|p| self.compare_multipath(first, p) == Ordering::Equal)
            .collect()
    }

    /// What the FIB needs of the best paths: their distinct next hops, sorted.
    pub fn best_next_hops(&self, prefix: IpNet) -> Vec<IpAddr> {
        let mut hops: Vec<IpAddr> = self
            .best(prefix)
            .iter()
            .filter_map(|p| p.next_hop())
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    fn best_key(&self, prefix: IpNet) -> Vec<(PeerId, *const PathAttrs)> {
        self.best(prefix)
            .iter()
            .map(|p| (p.peer, Arc::as_ptr(&p.attrs)))
            .collect()
    }

    fn peer(&self, p: &Path) -> Option<&PeerInfo> {
        self.peers.get(&p.peer)
    }

    /// RFC 4271 §9.1.2.2 up to (not including) the router-id tie-break: paths equal
    /// here are equal-cost.
    fn compare_multipath(&self, a: &Path, b: &Path) -> Ordering {
        let (x, y) = (&a.attrs, &b.attrs);
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
            p.attrs
                .originator_id
                .or(self.peer(p).map(|i| i.router_id))
                .map_or(u32::MAX, u32::from)
        };
        let addr = |p: &Path| self.peer(p).map(|i| i.address);
        self.compare_multipath(a, b)
            .then(id(a).cmp(&id(b)))
            .then(a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len()))
            .then(addr(a).cmp(&addr(b)))
            .then(a.peer.cmp(&b.peer))
    }

    /// Every prefix with at least one path.
    pub fn prefixes(&self) -> impl Iterator<Item = &IpNet> {
        self.paths.keys()
    }
}
