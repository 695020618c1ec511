//! Route reflection (RFC 4456), sans-IO: which of the RIB's best paths each established
//! iBGP peer should have, with the attributes a reflector adds. The peers' Adj-RIB-Out
//! (what they were actually sent) is each [`Peer`](super::peer::Peer)'s own.

use super::peer::{family_of, Reflection};
use crate::bgp::wire::{Family, PathAttrs};
use crate::rib::{PeerId, Rib};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// A peer as reflection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    pub ibgp: bool,
    pub rr_client: bool,
}

pub struct Reflector {
    cluster_id: Ipv4Addr,
    /// Established peers and their families.
    up: HashMap<PeerId, Vec<Family>>,
}

impl Reflector {
    pub fn new(cluster_id: Ipv4Addr) -> Reflector {
        Reflector {
            cluster_id,
            up: HashMap::new(),
        }
    }

    pub fn peer_up(&mut self, peer: PeerId, families: Vec<Family>) {
        self.up.insert(peer, families);
    }

    pub fn peer_down(&mut self, peer: PeerId) {
        self.up.remove(&peer);
    }

    /// What peer `to` should have for `prefix`: the best path's attributes as reflected
    /// (RFC 4456 §8: ORIGINATOR_ID, CLUSTER_LIST) and its next hop, if it may have it.
    pub fn wanted(
        &self,
        rib: &Rib,
        roles: &HashMap<PeerId, Role>,
        to: PeerId,
        prefix: IpNet,
    ) -> Option<(PathAttrs, IpAddr)> {
        let best = *rib.best(prefix).first()?;
        let from = best.peer;
        let (src, dst) = (roles.get(&from)?, roles.get(&to)?);
        let family_up = self.up.get(&to)?.contains(&family_of(prefix));
        // No transit toward eBGP peers; iBGP routes from a non-client go to clients only.
        if from == to || !family_up || !dst.ibgp || (src.ibgp && !src.rr_client && !dst.rr_client) {
            return None;
        }
        let mut attrs = rib.attrs(&best).clone();
        if src.ibgp {
            attrs.originator_id = attrs
                .originator_id
                .or(rib.peer_info(best.peer).map(|p| p.router_id));
            attrs.cluster_list.insert(0, self.cluster_id);
        } else {
            attrs.local_pref = attrs.local_pref.or(Some(100));
        }
        Some((attrs, rib.next_hop(&best)?))
    }

    /// What every established peer should have for `prefixes` (peers with nothing to
    /// hear left out).
    pub fn sync(
        &self,
        rib: &Rib,
        roles: &HashMap<PeerId, Role>,
        prefixes: &[IpNet],
    ) -> Vec<(PeerId, Reflection)> {
        (self.up.keys())
            .filter_map(|&to| Some((to, self.sync_peer(rib, roles, to, prefixes)?)))
            .collect()
    }

    /// What peer `to` should have for `prefixes` (`None`: nothing to hear, or the peer
    /// is not established). A ROUTE-REFRESH asks for this over the whole RIB.
    pub fn sync_peer(
        &self,
        rib: &Rib,
        roles: &HashMap<PeerId, Role>,
        to: PeerId,
        prefixes: &[IpNet],
    ) -> Option<Reflection> {
        if !self.up.contains_key(&to) {
            return None;
        }
        let mut announce: HashMap<(PathAttrs, IpAddr), Vec<IpNet>> = HashMap::new();
        let mut unwanted = Vec::new();
        for &p in prefixes {
            match self.wanted(rib, roles, to, p) {
                Some(k) => announce.entry(k).or_default().push(p),
                None => unwanted.push(p),
            }
        }
        if announce.is_empty() && unwanted.is_empty() {
            return None;
        }
        let announce = (announce.into_iter())
            .map(|((attrs, nh), ps)| (attrs, nh, ps))
            .collect();
        Some(Reflection { announce, unwanted })
    }
}
