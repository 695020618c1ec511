//! Routes learnt by the BGP speaker (the `control` crate) into the dataplane: each
//! changed prefix's next hops become one next hop of ours — a tunnel, a neighbour on
//! the uplink, or an ECMP group of those — made by `NextHopAlloc` as for the routes of
//! the configuration, and the FIB takes the whole batch in one `apply` while workers go on.

use super::nexthops::NextHopAlloc;
use super::tables::Tables;
use crate::config::{Config, Node};
use crate::nexthop::Adjacency;
use control::speaker::RouteChange;
use fib::{NextHopId, Update};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use tracing::{info, warn};

/// What the speaker's routes have added so far. Which prefixes are installed, and with
/// which next hop, is the FIB's own knowledge (`get`): no second per-route map here.
#[derive(Default)]
pub struct BgpRoutes {
    /// Routes installed from BGP.
    installed: usize,
    /// ECMP groups by their sorted members.
    groups: HashMap<Vec<u32>, u32>,
    /// Prefixes the configuration routes (they win over BGP).
    configured: HashSet<IpNet>,
    /// BGP's best next hops for configured prefixes (few): installed if the
    /// configuration's route goes away.
    shadowed: HashMap<IpNet, Vec<IpAddr>>,
    /// Our next hops that BGP routes point at, and how many routes each: one that
    /// drops to none is freed if nothing else uses it (a gateway: the kernel stops
    /// being asked to resolve it and its number is reused).
    uses: HashMap<u32, u32>,
    /// Groups no route uses any more (never handed out again: their members may be
    /// freed and their numbers reused).
    dead_groups: HashSet<u32>,
}

impl BgpRoutes {
    /// A prefix the configuration (or an endpoint) routes: BGP leaves it alone.
    pub fn set_configured(&mut self, prefix: IpNet, on: bool) {
        if on {
            self.configured.insert(prefix.trunc());
        } else {
            self.configured.remove(&prefix.trunc());
        }
    }

    pub fn is_configured(&self, prefix: IpNet) -> bool {
        self.configured.contains(&prefix.trunc())
    }

    /// Routes installed from BGP.
    pub fn len(&self) -> usize {
        self.installed
    }

    pub fn is_empty(&self) -> bool {
        self.installed == 0
    }

    /// Install a batch of changes: next hops first, then one FIB update per family.
    pub fn apply(
        &mut self,
        config: &Config,
        alloc: &mut NextHopAlloc,
        t: &mut Tables,
        changes: &[RouteChange],
    ) {
        let mut up4 = Vec::new();
        let mut up6 = Vec::new();
        let mut unused = Vec::new();
        // Next hops first (routes of a batch mostly share theirs: the last answer is
        // reused while nothing was allocated since), then what the FIB holds for all of
        // them in one batch of lookups.
        let mut last: Option<Memo> = None;
        let mut wanted: Vec<(IpNet, Option<u32>)> = Vec::with_capacity(changes.len());
        for c in changes {
            let prefix = c.prefix.trunc();
            if self.configured.contains(&prefix) {
                if c.next_hops.is_empty() {
                    self.shadowed.remove(&prefix);
                } else {
                    self.shadowed.insert(prefix, c.next_hops.to_vec());
                }
                continue;
            }
            let nh = if c.next_hops.is_empty() {
                None
            } else {
                // What `next_hop_for` depends on besides the hops: the prefix's family
                // and pool, and room in the tables.
                let pool = (prefix.addr().is_ipv6() as usize)
                    | config
                        .pools
                        .iter()
                        .position(|p| p.cidr.contains(&prefix))
                        .map_or(0, |i| (i + 1) << 1);
                let state = (alloc.count, alloc.tunnels.len() + alloc.groups.len());
                match last {
                    Some((h, p, nh, s)) if h == &c.next_hops[..] && p == pool && s == state => nh,
                    _ => {
                        let nh = self.next_hop_for(config, alloc, t, prefix, &c.next_hops);
                        let state = (alloc.count, alloc.tunnels.len() + alloc.groups.len());
                        last = Some((&c.next_hops[..], pool, nh, state));
                        nh
                    }
                }
            };
            wanted.push((prefix, nh));
        }
        let prefixes: Vec<IpNet> = wanted.iter().map(|w| w.0).collect();
        let held = t.get_many(&prefixes);
        for (&(prefix, nh), now) in wanted.iter().zip(held) {
            if now == nh {
                continue;
            }
            match (now, nh) {
                (None, Some(_)) => self.installed += 1,
                (Some(_), None) => self.installed -= 1,
                _ => {}
            }
            if let Some(old) = now {
                if let Some(n) = self.uses.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        self.uses.remove(&old);
                        unused.push(old);
                    }
                }
            }
            if let Some(new) = nh {
                *self.uses.entry(new).or_default() += 1;
            }
            match (prefix, nh) {
                (IpNet::V4(n), Some(nh)) => up4.push(Update::Insert(n, NextHopId(nh))),
                (IpNet::V4(n), None) => up4.push(Update::Remove(n)),
                (IpNet::V6(n), Some(nh)) => up6.push(Update::Insert(n, NextHopId(nh))),
                (IpNet::V6(n), None) => up6.push(Update::Remove(n)),
            }
        }
        // New tunnels and groups go live before any route points at them.
        t.sync(alloc);
        t.apply(&up4, &up6);
        // No route points at these now (the FIB took the batch): free what nothing
        // else uses.
        self.collect(config, alloc, t, unused);
    }

    /// Of next hops no BGP route uses any more, free the gateways nothing else uses:
    /// not a tunnel's underlay, not a member of a live group, not a static route's
    /// neighbour. A group no route uses is retired and its members looked at too.
    fn collect(&mut self, config: &Config, alloc: &mut NextHopAlloc, t: &Tables, unused: Vec<u32>) {
        let mut candidates = unused.clone();
        for nh in unused {
            let retired = self
                .groups
                .iter()
                .find(|(_, &g)| g == nh)
                .map(|(m, _)| m.clone());
            if let Some(members) = retired {
                self.groups.remove(&members);
                self.dead_groups.insert(nh);
                candidates.extend(members);
            }
        }
        for nh in candidates {
            if self.uses.contains_key(&nh)
                || alloc.tunnels.iter().any(|tu| tu.underlay_nh == nh)
                || alloc.group_nexthops.iter().any(|&(g, id)| {
                    !self.dead_groups.contains(&g)
                        && alloc
                            .groups
                            .get(id as usize)
                            .is_some_and(|m| m.contains(&nh))
                })
            {
                continue;
            }
            let Some(via) = alloc.gateways.iter().find(|g| g.nh == nh).map(|g| g.via) else {
                continue;
            };
            let static_route = config
                .routes
                .iter()
                .any(|r| r.via.as_ref().is_some_and(|v| v.addrs().contains(&via)));
            if !static_route && alloc.free_gateway(nh) {
                t.nexthops.set(nh, Adjacency::Incomplete);
                info!(%via, nh, "next hop no route uses: freed");
            }
        }
    }

    /// The configuration stopped routing `prefix`: BGP's route for it, if any, goes in.
    pub fn unconfigure(
        &mut self,
        config: &Config,
        alloc: &mut NextHopAlloc,
        t: &mut Tables,
        prefix: IpNet,
    ) {
        let prefix = prefix.trunc();
        self.configured.remove(&prefix);
        if let Some(next_hops) = self.shadowed.remove(&prefix) {
            let next_hops = next_hops.into();
            self.apply(config, alloc, t, &[RouteChange { prefix, next_hops }]);
        }
    }

    /// One next hop of ours for `prefix` via `hops` (several: an ECMP group).
    fn next_hop_for(
        &mut self,
        config: &Config,
        alloc: &mut NextHopAlloc,
        t: &Tables,
        prefix: IpNet,
        hops: &[IpAddr],
    ) -> Option<u32> {
        let mut members: Vec<u32> = hops
            .iter()
            .filter_map(|&h| self.one_hop(config, alloc, t, prefix, h))
            .collect();
        members.sort_unstable();
        members.dedup();
        match members.len() {
            0 => None,
            1 => Some(members[0]),
            _ => {
                if let Some(&nh) = self.groups.get(&members) {
                    return Some(nh);
                }
                if alloc.groups.len() >= t.capacity().groups || !room(alloc, t) {
                    warn!(%prefix, "no room for another ECMP group: first next hop only");
                    return Some(members[0]);
                }
                let nh = alloc.group(members.clone());
                self.groups.insert(members, nh);
                Some(nh)
            }
        }
    }

    fn one_hop(
        &mut self,
        config: &Config,
        alloc: &mut NextHopAlloc,
        t: &Tables,
        prefix: IpNet,
        hop: IpAddr,
    ) -> Option<u32> {
        let hop = match hop {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(hop, IpAddr::V4),
            v4 => v4,
        };
        if config.node_ips.iter().any(|n| n.addr() == hop) {
            return None; // our own route, reflected back to us
        }
        if !room(alloc, t) || alloc.tunnels.len() >= t.capacity().tunnels {
            warn!(%prefix, "no room for more next hops: route not installed");
            return None;
        }
        let known = config
            .nodes
            .iter()
            .find(|n| n.ips.iter().any(|i| i.addr() == hop));
        let node = known.cloned().unwrap_or_else(|| Node {
            name: hop.to_string(),
            ips: vec![IpNet::from(hop)],
            vtep_mac: None,
        });
        match alloc.node_route(config, 0, &node, prefix, known.is_some()) {
            Ok(nh) => Some(nh),
            Err(e) => {
                warn!(%prefix, next_hop = %hop, error = %e, "route not installed");
                None
            }
        }
    }
}

/// The last next hop made in a batch: for these hops, family and pool (see `apply`),
/// the answer, and the allocator's state it holds for (next hops and tunnels + groups).
type Memo<'a> = (&'a [IpAddr], usize, Option<u32>, (u32, usize));

/// Whether a tunnel still fits: up to two next hops (underlay neighbour and tunnel).
fn room(alloc: &NextHopAlloc, t: &Tables) -> bool {
    (alloc.count as usize) + 2 < t.capacity().nexthops
}
