//! `Tables`: the live tables the workers read (next hops, tunnels, ECMP groups, both
//! FIBs), owned by the control loop. Next hops, tunnels and groups that `NextHopAlloc`
//! made go in through `sync` before any route points at them.

use super::nexthops::NextHopAlloc;
use super::plan::Plan;
use crate::config::Config;
use crate::ecmp::GroupTable;
use crate::nexthop::{Adjacency, NextHopTable};
use crate::tunnel::TunnelTable;
use fib::{Fib4, Fib6, NextHopId, Update};
use ipnet::IpNet;
use std::sync::Arc;

/// How many next hops, tunnels and ECMP groups the tables hold (fixed at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub nexthops: usize,
    pub tunnels: usize,
    pub groups: usize,
}

/// Next hops, tunnels and ECMP groups kept free for static routes added while running.
const RUNTIME_NEXTHOPS: usize = 1024;
const RUNTIME_TUNNELS: usize = 256;
const RUNTIME_GROUPS: usize = 256;
/// Next hops, tunnels and groups the speaker's routes may add beyond the configuration.
const BGP_NEXTHOPS: usize = 65_536;
const BGP_TUNNELS: usize = 4096;
const BGP_GROUPS: usize = 4096;

impl Capacity {
    /// Room for the plan, the configuration's static routes (installed after it: at
    /// most their neighbours, an ECMP group or a tunnel and its underlay each), routes
    /// added while running and, with BGP, learnt routes.
    pub fn for_start(plan: &Plan, config: &Config) -> Capacity {
        let extra = |n: usize| if config.bgp.is_some() { n } else { 0 };
        let (mut nexthops, mut tunnels, mut groups) = (0, 0, 0);
        for r in &config.routes {
            match &r.via {
                Some(via) => {
                    let n = via.addrs().len();
                    nexthops += n + usize::from(n > 1);
                    groups += usize::from(n > 1);
                }
                None => {
                    nexthops += 2;
                    tunnels += 1;
                }
            }
        }
        Capacity {
            nexthops: plan.alloc.count.max(1) as usize
                + nexthops
                + RUNTIME_NEXTHOPS
                + extra(BGP_NEXTHOPS),
            tunnels: tunnels + RUNTIME_TUNNELS + extra(BGP_TUNNELS),
            groups: groups + RUNTIME_GROUPS + extra(BGP_GROUPS),
        }
    }
}

pub struct Tables {
    pub nexthops: Arc<NextHopTable>,
    pub tunnels: Arc<TunnelTable>,
    pub groups: Arc<GroupTable>,
    pub fib4: Fib4,
    pub fib6: Fib6,
    /// How much of the allocator's tunnels and groups the tables have already.
    tunnels_synced: usize,
    tunnel_nexthops_synced: usize,
    groups_synced: usize,
}

impl Tables {
    /// Tables of `capacity` holding the plan's next hops (routes come as installed).
    pub fn new(plan: &Plan, capacity: Capacity) -> Tables {
        let mut t = Tables {
            nexthops: Arc::new(NextHopTable::new(capacity.nexthops)),
            tunnels: Arc::new(TunnelTable::new(capacity.tunnels)),
            groups: Arc::new(GroupTable::new(capacity.groups)),
            fib4: Fib4::new(),
            fib6: Fib6::new(),
            tunnels_synced: 0,
            tunnel_nexthops_synced: 0,
            groups_synced: 0,
        };
        if let Some(b) = plan.blackhole {
            t.nexthops.set(b, Adjacency::Blackhole);
        }
        for e in &plan.ports.endpoints {
            if let Some(mac) = e.mac {
                t.nexthops
                    .set(e.nh, Adjacency::Forward { port: e.port, mac });
            }
        }
        t.sync(&plan.alloc);
        t
    }

    pub fn capacity(&self) -> Capacity {
        Capacity {
            nexthops: self.nexthops.capacity(),
            tunnels: self.tunnels.capacity(),
            groups: self.groups.capacity(),
        }
    }

    /// Put the tunnels, groups and their next hops `alloc` made since the last call into
    /// the live tables (before any route points at them).
    pub fn sync(&mut self, alloc: &NextHopAlloc) {
        for id in self.tunnels_synced..alloc.tunnels.len() {
            self.tunnels.set(id as u32, alloc.tunnels[id]);
        }
        self.tunnels_synced = alloc.tunnels.len();
        for &(nh, id) in &alloc.tunnel_nexthops[self.tunnel_nexthops_synced..] {
            self.nexthops.set(nh, Adjacency::Tunnel { id });
        }
        self.tunnel_nexthops_synced = alloc.tunnel_nexthops.len();
        for id in self.groups_synced..alloc.groups.len() {
            self.groups.set(id as u32, &alloc.groups[id]);
        }
        for &(nh, id) in alloc
            .group_nexthops
            .iter()
            .filter(|(_, id)| *id as usize >= self.groups_synced)
        {
            self.nexthops.set(nh, Adjacency::Group { id });
        }
        self.groups_synced = alloc.groups.len();
    }

    /// The route's next hop for exactly `prefix`.
    pub fn get(&self, prefix: IpNet) -> Option<u32> {
        match prefix {
            IpNet::V4(n) => self.fib4.get(n.trunc()),
            IpNet::V6(n) => self.fib6.get(n.trunc()),
        }
        .map(|n| n.0)
    }

    /// `get` of each of `prefixes` (truncated), in order; IPv4's as one batch whose
    /// cache misses overlap (`Fib::get_many`).
    pub fn get_many(&self, prefixes: &[IpNet]) -> Vec<Option<u32>> {
        let v4: Vec<ipnet::Ipv4Net> = prefixes
            .iter()
            .filter_map(|p| match p {
                IpNet::V4(n) => Some(n.trunc()),
                IpNet::V6(_) => None,
            })
            .collect();
        let mut got4 = self.fib4.get_many(&v4).into_iter();
        prefixes
            .iter()
            .map(|p| {
                match p {
                    IpNet::V4(_) => got4.next().flatten(),
                    IpNet::V6(n) => self.fib6.get(n.trunc()),
                }
                .map(|n| n.0)
            })
            .collect()
    }

    pub fn insert(&mut self, prefix: IpNet, nh: u32) {
        match prefix {
            IpNet::V4(n) => {
                self.fib4.insert(n.trunc(), NextHopId(nh));
            }
            IpNet::V6(n) => {
                self.fib6.insert(n.trunc(), NextHopId(nh));
            }
        }
    }

    pub fn remove(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(n) => {
                self.fib4.remove(n.trunc());
            }
            IpNet::V6(n) => {
                self.fib6.remove(n.trunc());
            }
        }
    }

    /// A batch of route updates, one FIB update per family.
    pub fn apply(&mut self, up4: &[Update<ipnet::Ipv4Net>], up6: &[Update<ipnet::Ipv6Net>]) {
        if !up4.is_empty() {
            self.fib4.apply(up4);
        }
        if !up6.is_empty() {
            self.fib6.apply(up6);
        }
    }

    /// Every route: prefix and next hop.
    pub fn routes(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        self.fib4
            .routes()
            .map(|(n, nh)| (IpNet::V4(n), nh.0))
            .chain(self.fib6.routes().map(|(n, nh)| (IpNet::V6(n), nh.0)))
    }

    pub fn len(&self) -> usize {
        self.fib4.len() + self.fib6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory of the FIB (lookup structure and its writer's store).
    pub fn fib_bytes(&self) -> usize {
        self.fib4.memory_bytes()
            + self.fib4.rib_bytes()
            + self.fib6.memory_bytes()
            + self.fib6.rib_bytes()
    }
}
