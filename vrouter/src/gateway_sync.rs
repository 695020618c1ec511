//! Uplink next hops kept pointing at the MACs in the kernel's neighbour table.
//!
//! The table is dumped once at the start and again only when changes were lost (an
//! overrun of the watch's socket); in between the kernel's own announcements
//! (`neigh_watch`) keep our copy of it current. A next hop is set the moment its
//! gateway's entry gets a MAC, and one without a MAC is asked of the kernel (NTF_USE,
//! see `neigh`) once a second until it has one. See docs/decisions.md, "Neighbours by
//! subscription, measured".

use crate::neigh::{Neighbour, NeighbourChange, Neighbours};
use crate::neigh_watch::{NeighbourWatch, WatchEvent};
use crate::nexthop::{Adjacency, Mac, NextHopTable};
use crate::node::nexthops::Gateway;
use crossbeam_channel as xch;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often a gateway with no MAC is asked of the kernel again, and how often the
/// table is dumped when there is no watch (or a dump failed).
const RETRY: Duration = Duration::from_secs(1);

/// What the kernel is asked: the table, and to resolve an address.
pub trait NeighbourTable {
    fn dump(&mut self) -> io::Result<Vec<Neighbour>>;
    fn resolve(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()>;
}

impl NeighbourTable for Neighbours {
    fn dump(&mut self) -> io::Result<Vec<Neighbour>> {
        Neighbours::dump(self)
    }
    fn resolve(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        Neighbours::resolve(self, ifindex, ip)
    }
}

/// How the copy of the table was kept (the stats file's `neighbours`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    /// Changes the kernel announced.
    pub changes: u64,
    /// Whole-table dumps (the first, after overruns, or each second with no watch).
    pub dumps: u64,
    /// Times announcements were lost (ENOBUFS) and the table was dumped again.
    pub overruns: u64,
}

/// An unresolved next hop: when the kernel was last asked, and the error it last gave
/// (said once as a warning; the same error again only at debug level: a full neighbour
/// table answers ENOBUFS every second for every next hop).
struct Asked {
    at: Instant,
    error: Option<String>,
}

pub struct GatewaySync<K: NeighbourTable = Neighbours> {
    kernel: K,
    watch: Option<NeighbourWatch>,
    /// The kernel's table: (ifindex, address) → MAC, if it has a usable one.
    known: HashMap<(u32, IpAddr), Option<[u8; 6]>>,
    /// When to dump the table next (`None`: the watch keeps `known` current).
    dump_at: Option<Instant>,
    /// Changes came since the last pass over the gateways.
    changed: bool,
    gateways_seen: Option<u64>,
    /// Every gateway had its MAC at the last pass; else the next is at `retry_at`.
    resolved: bool,
    retry_at: Instant,
    asked: HashMap<u32, Asked>,
    pub counts: SyncCounts,
}

impl GatewaySync<Neighbours> {
    /// An rtnetlink socket for requests and, if the kernel lets us join the group, the
    /// watch (without it the table is dumped every `RETRY`).
    pub fn start() -> io::Result<GatewaySync> {
        let watch = match NeighbourWatch::start() {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "no neighbour watch: the table is read every second");
                None
            }
        };
        Ok(GatewaySync::new(Neighbours::new()?, watch))
    }
}

impl<K: NeighbourTable> GatewaySync<K> {
    pub fn new(kernel: K, watch: Option<NeighbourWatch>) -> GatewaySync<K> {
        GatewaySync {
            kernel,
            watch,
            known: HashMap::new(),
            dump_at: Some(Instant::now()),
            changed: false,
            gateways_seen: None,
            resolved: true,
            retry_at: Instant::now(),
            asked: HashMap::new(),
            counts: SyncCounts::default(),
        }
    }

    /// The watch's events, for the control loop's wait (`never` without a watch).
    pub fn events(&self) -> xch::Receiver<WatchEvent> {
        self.watch
            .as_ref()
            .map_or_else(xch::never, |w| w.events.clone())
    }

    /// The stats file's `neighbours`: how the copy of the table was kept.
    pub fn stats_json(&self) -> serde_json::Value {
        serde_json::json!({
            "watching": self.watch.is_some(),
            "changes": self.counts.changes,
            "dumps": self.counts.dumps,
            "overruns": self.counts.overruns,
        })
    }

    /// The watch ended (its thread failed): from now on the table is dumped every
    /// `RETRY`.
    pub fn watch_lost(&mut self) {
        if self.watch.take().is_some() {
            warn!("neighbour watch ended: the table is read every second");
            self.dump_at = Some(Instant::now());
        }
    }

    pub fn on_event(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Changes(changes) => {
                self.counts.changes += changes.len() as u64;
                self.changed |= !changes.is_empty();
                for c in changes {
                    match c {
                        NeighbourChange::Updated(n) => {
                            self.known.insert((n.ifindex, n.ip), n.mac);
                        }
                        NeighbourChange::Deleted { ifindex, ip } => {
                            self.known.remove(&(ifindex, ip));
                        }
                    }
                }
            }
            WatchEvent::Overrun => {
                self.counts.overruns += 1;
                warn!(
                    overruns = self.counts.overruns,
                    "neighbour changes lost (socket buffer full): reading the table again"
                );
                self.dump_at = Some(Instant::now());
            }
        }
    }

    /// Bring the next hops of `gateways` up to date if anything asks for it: a dump
    /// due, changes, new gateways (`changes` is the allocator's count of them), or an
    /// unresolved gateway to ask about again.
    pub fn sync(&mut self, gateways: &[Gateway], changes: u64, nexthops: &NextHopTable) {
        let now = Instant::now();
        if self.dump_at.is_some_and(|t| now >= t) {
            self.dump(now);
        }
        let new_gateways = self.gateways_seen != Some(changes);
        if new_gateways {
            self.gateways_seen = Some(changes);
            let live: HashSet<u32> = gateways.iter().map(|g| g.nh).collect();
            self.asked.retain(|nh, _| live.contains(nh));
        }
        if !(self.changed || new_gateways || (!self.resolved && now >= self.retry_at)) {
            return;
        }
        self.changed = false;
        self.resolved = self.pass(gateways, nexthops);
        if !self.resolved && now >= self.retry_at {
            self.retry_at = now + RETRY;
        }
    }

    fn dump(&mut self, now: Instant) {
        self.dump_at = self.watch.is_none().then_some(now + RETRY);
        match self.kernel.dump() {
            Ok(table) => {
                self.counts.dumps += 1;
                self.known = table
                    .into_iter()
                    .map(|n| ((n.ifindex, n.ip), n.mac))
                    .collect();
                self.changed = true;
            }
            Err(e) => {
                warn!(error = %e, "reading the kernel's neighbours");
                self.dump_at = Some(now + RETRY);
            }
        }
    }

    /// Point gateways' next hops at the MACs known; ask the kernel for the others
    /// (each at most once per `RETRY`). `true` when every one has its MAC.
    fn pass(&mut self, gateways: &[Gateway], nexthops: &NextHopTable) -> bool {
        let mut resolved = true;
        for g in gateways {
            match self.known.get(&(g.ifindex, g.via)).copied().flatten() {
                Some(mac) => {
                    let want = Adjacency::Forward { port: g.port, mac };
                    if nexthops.get(g.nh) != Some(want) {
                        info!(via = %g.via, mac = %Mac(mac), "next hop resolved");
                        nexthops.set(g.nh, want);
                    }
                    self.asked.remove(&g.nh);
                }
                None => {
                    resolved = false;
                    self.ask(g);
                }
            }
        }
        resolved
    }

    fn ask(&mut self, g: &Gateway) {
        let a = self.asked.entry(g.nh).or_insert(Asked {
            at: Instant::now() - RETRY,
            error: None,
        });
        if a.at.elapsed() < RETRY {
            return;
        }
        a.at = Instant::now();
        match self.kernel.resolve(g.ifindex, g.via) {
            Ok(()) => a.error = None,
            Err(e) => {
                let e = e.to_string();
                if a.error.as_ref() != Some(&e) {
                    warn!(via = %g.via, error = %e, "asking the kernel to resolve (said once until it changes)");
                } else {
                    tracing::debug!(via = %g.via, error = %e, "asking the kernel to resolve");
                }
                a.error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
