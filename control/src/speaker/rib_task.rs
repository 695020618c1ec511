//! The RIB task: applies the peers' updates to the RIB, reflects (route-reflector role),
//! keeps graceful-restart stale routes for their restart time, and sends the best-path
//! changes to the daemon in batches.

use super::peer::{family_of, Reflection};
use super::reflect::{Reflector, Role};
use super::types::{PathDetail, RouteChange, Status};
use crate::bgp::wire::{self, Family};
use crate::rib::{Local, PeerInfo, PrefixHash, Rib};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the peer tasks and `run` tell the RIB task.
pub(super) enum RibEvent {
    /// A peer task started in this slot (before any other event of it).
    Added(u16, Outbound),
    /// The peer in this slot was removed and its task has ended: its routes go, and the
    /// slot may be given to another peer.
    Removed(u16),
    /// Established, with the families negotiated.
    Up(u16, PeerInfo, Vec<Family>),
    Update(u16, wire::Update),
    /// The peer asked for a route refresh of this family: what it is reflected, again.
    Refresh(u16, Family),
    /// Session lost; `Some(restart time)` when the peer does graceful restart.
    Down(u16, Option<u16>),
    /// The restart time ran out, for the peer with this serial (so that a timer of a
    /// removed peer cannot sweep the next one in its slot).
    Sweep(u16, u64),
    /// Which peer each prefix's best path came from (for `vrouterctl route list`).
    Query(Vec<IpNet>, oneshot::Sender<Vec<Option<IpAddr>>>),
    /// Every path of each prefix (for `vrouterctl route list --detail`).
    Paths(Vec<IpNet>, oneshot::Sender<Vec<Vec<PathDetail>>>),
}

/// What the RIB task sends a peer task.
pub(super) enum ToPeer {
    Reflected(Reflection),
    EndOfRib(Vec<Family>),
}

/// Most route changes sent to the daemon in one message.
const MAX_BATCH: usize = 65_536;

/// A peer as the RIB task sends to it.
pub(super) struct Outbound {
    pub address: IpAddr,
    /// Which peer of its slot this is (see `RibEvent::Sweep`).
    pub serial: u64,
    pub role: Role,
    pub tx: mpsc::UnboundedSender<ToPeer>,
}

/// Each peer's role in reflection, by slot.
fn roles(peers: &HashMap<u16, Outbound>) -> HashMap<u16, Role> {
    peers.iter().map(|(&i, p)| (i, p.role)).collect()
}

/// Send each established peer what it should have of `prefixes`.
fn reflect(reflector: &Reflector, rib: &Rib, peers: &HashMap<u16, Outbound>, prefixes: &[IpNet]) {
    for (to, r) in reflector.sync(rib, &roles(peers), prefixes) {
        if let Some(p) = peers.get(&to) {
            let _ = p.tx.send(ToPeer::Reflected(r));
        }
    }
}

/// Every path of `prefix`, the best first.
fn paths(rib: &Rib, prefix: IpNet) -> Vec<PathDetail> {
    let prefix = prefix.trunc();
    let best = rib.best(prefix);
    rib.ranked(prefix)
        .iter()
        .filter_map(|p| {
            let a = rib.attrs(p);
            Some(PathDetail {
                peer: rib.peer_info(p.peer)?.address,
                next_hop: rib.next_hop(p),
                as_path: a.as_path.clone(),
                origin: a.origin,
                local_pref: a.local_pref,
                med: a.med,
                communities: a.communities.clone(),
                best: best.contains(p),
                stale: p.stale,
                age: rib.attrs_age(p),
            })
        })
        .collect()
}

/// The RIB: applies peers' updates and sends batches of best-path changes.
pub(super) async fn rib_task(
    local: Local,
    mut rx: mpsc::UnboundedReceiver<RibEvent>,
    me: mpsc::UnboundedSender<RibEvent>,
    out: crossbeam_channel::Sender<Vec<RouteChange>>,
    batch: Duration,
    status: Status,
    update_seconds: Arc<crate::histogram::Histogram>,
) {
    // By slot, as `run` announces them (`Added`, `Removed`).
    let mut peers: HashMap<u16, Outbound> = HashMap::new();
    let mut reflector = local.cluster_id.map(Reflector::new);
    let mut rib = Rib::new(local);
    let mut pending: HashSet<IpNet, PrefixHash> = HashSet::default();
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match flush_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                let changed = match ev {
                    RibEvent::Added(i, p) => {
                        peers.insert(i, p);
                        Vec::new()
                    }
                    RibEvent::Removed(i) => {
                        if let Some(r) = reflector.as_mut() {
                            r.peer_down(i);
                        }
                        peers.remove(&i);
                        rib.remove_peer(i)
                    }
                    RibEvent::Up(i, info, families) => {
                        rib.add_peer(i, info);
                        if let Some(r) = reflector.as_mut() {
                            r.peer_up(i, families.clone());
                            reflect(r, &rib, &peers, &rib.prefixes());
                        }
                        // Without reflection the RIB task still sends End-of-RIB after
                        // our blocks.
                        if let Some(p) = peers.get(&i) {
                            let _ = p.tx.send(ToPeer::EndOfRib(families));
                        }
                        Vec::new()
                    }
                    RibEvent::Update(i, u) => {
                        let t = std::time::Instant::now();
                        let mut c = rib.withdraw(i, &u.withdrawn);
                        if !u.announced.is_empty() {
                            c.extend(rib.update(i, &u.announced, u.attrs));
                        }
                        if u.end_of_rib.is_some() {
                            c.extend(rib.sweep_stale(i));
                        }
                        update_seconds.observe(t.elapsed());
                        c
                    }
                    RibEvent::Refresh(i, family) => {
                        if let (Some(r), Some(p)) = (reflector.as_ref(), peers.get(&i)) {
                            let prefixes: Vec<IpNet> = (rib.prefixes().into_iter())
                                .filter(|&x| family_of(x) == family)
                                .collect();
                            if let Some(again) = r.sync_peer(&rib, &roles(&peers), i, &prefixes) {
                                let _ = p.tx.send(ToPeer::Reflected(again));
                            }
                        }
                        continue;
                    }
                    RibEvent::Down(i, Some(restart)) => {
                        if let Some(r) = reflector.as_mut() {
                            r.peer_down(i);
                        }
                        rib.mark_stale(i);
                        let me = me.clone();
                        let serial = peers.get(&i).map_or(0, |p| p.serial);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(restart as u64)).await;
                            let _ = me.send(RibEvent::Sweep(i, serial));
                        });
                        Vec::new()
                    }
                    RibEvent::Down(i, None) => {
                        if let Some(r) = reflector.as_mut() {
                            r.peer_down(i);
                        }
                        rib.peer_down(i)
                    }
                    RibEvent::Sweep(i, serial) => {
                        if peers.get(&i).is_some_and(|p| p.serial == serial) {
                            rib.sweep_stale(i)
                        } else {
                            Vec::new()
                        }
                    }
                    RibEvent::Query(prefixes, reply) => {
                        let from = prefixes
                            .iter()
                            .map(|p| {
                                let best = rib.best(p.trunc());
                                let peer = best.first()?.peer;
                                rib.peer_info(peer).map(|i| i.address)
                            })
                            .collect();
                        let _ = reply.send(from);
                        continue;
                    }
                    RibEvent::Paths(prefixes, reply) => {
                        let _ = reply.send(prefixes.iter().map(|p| paths(&rib, *p)).collect());
                        continue;
                    }
                };
                if let Some(r) = reflector.as_ref() {
                    reflect(r, &rib, &peers, &changed);
                }
                pending.extend(changed);
                if !pending.is_empty() && flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + batch);
                }
            }
            _ = sleep => {
                flush_at = None;
                // Bounded batches: the daemon applies each while the next is prepared,
                // and no full-table-sized buffer outlives convergence.
                // The status first: whoever sees the routes also sees their counts.
                {
                    let slot_of: HashMap<IpAddr, u16> =
                        peers.iter().map(|(&i, p)| (p.address, i)).collect();
                    let mut st = status.lock().unwrap();
                    for s in st.iter_mut() {
                        s.prefixes_received = slot_of
                            .get(&s.address)
                            .map_or(0, |&i| rib.received_from(i));
                    }
                }
                let all: Vec<IpNet> = pending.drain().collect();
                if pending.capacity() > MAX_BATCH {
                    pending = HashSet::default();
                }
                let mut last: Arc<[IpAddr]> = Arc::new([]);
                for chunk in all.chunks(MAX_BATCH) {
                    let changes: Vec<RouteChange> = chunk
                        .iter()
                        .map(|&prefix| {
                            let hops = rib.best_next_hops(prefix);
                            if *last != *hops {
                                last = hops.into();
                            }
                            RouteChange { prefix, next_hops: last.clone() }
                        })
                        .collect();
                    if out.send(changes).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
