//! Static routes added and removed while running, the configuration's routes giving way
//! to BGP's when they go, and our blocks following our endpoints.

use super::error::{invalid, NodeError, NodeResult};
use super::plan::{exported_blocks, own_blocks};
use super::{NodeState, Origin};
use crate::config::StaticRoute;
use control::api::pb;
use ipnet::IpNet;
use tracing::info;

impl NodeState {
    /// Add a static route: its next hop (neighbour, ECMP group, tunnel) goes live first.
    /// Returns the route's next hop.
    pub fn install_route(&mut self, r: StaticRoute, origin: Origin) -> NodeResult<u32> {
        let dst = r.dst.trunc();
        if r.via.is_some() == r.node.is_some() {
            return Err(invalid("a route needs either via (one or more) or node"));
        }
        if self.config.routes.iter().any(|x| x.dst.trunc() == dst) {
            return Err(NodeError::AlreadyExists(format!(
                "a static route to {dst} exists"
            )));
        }
        if self.config.endpoints.iter().any(|e| e.ips.contains(&dst)) {
            return Err(NodeError::AlreadyExists(format!(
                "{dst} is an endpoint's address"
            )));
        }
        let mut candidate = self.config.clone();
        candidate.routes.push(r.clone());
        candidate.validate().map_err(|e| invalid(e.0))?;
        // A route may need an ECMP group and up to two next hops (tunnel, underlay).
        let room = self.tables.capacity();
        if self.alloc.count as usize + 2 + r.via.as_ref().map_or(1, |v| v.addrs().len())
            > room.nexthops
            || self.alloc.tunnels.len() >= room.tunnels
            || self.alloc.groups.len() >= room.groups
        {
            return Err(NodeError::Exhausted(
                "no room for more next hops, tunnels or groups: restart to resize".into(),
            ));
        }
        let nh = self
            .alloc
            .static_route(&candidate, &r)
            .map_err(|e| invalid(e.to_string()))?;
        self.tables.sync(&self.alloc);
        self.bgp.set_configured(dst, true);
        self.tables.insert(dst, nh);
        self.config = candidate;
        if origin == Origin::Api {
            self.origins.routes.insert(dst);
        }
        info!(route = %dst, "static route added");
        if self.watched() {
            self.publish_route("add", self.route_pb(dst, nh));
        }
        Ok(nh)
    }

    /// Add a static route through the API (kept in api.json).
    pub fn add_route(&mut self, r: StaticRoute) -> NodeResult<u32> {
        let nh = self.install_route(r, Origin::Api)?;
        self.persist()?;
        Ok(nh)
    }

    /// Remove a static route the API added (the file's go by editing the file).
    pub fn remove_route(&mut self, dst: IpNet) -> NodeResult<()> {
        let dst = dst.trunc();
        if !self.config.routes.iter().any(|r| r.dst.trunc() == dst) {
            return Err(NodeError::NotFound(format!("no static route to {dst}")));
        }
        if !self.origins.routes.contains(&dst) {
            return Err(NodeError::Precondition(format!(
                "the route to {dst} comes from the configuration file: remove it there"
            )));
        }
        self.uninstall_route(dst)?;
        self.persist()
    }

    pub fn uninstall_route(&mut self, dst: IpNet) -> NodeResult<()> {
        self.config.routes.retain(|r| r.dst.trunc() != dst);
        self.origins.routes.remove(&dst);
        self.remove_route_of(dst);
        info!(route = %dst, "static route removed");
        self.publish_route(
            "remove",
            pb::Route {
                prefix: dst.to_string(),
                source: "static".into(),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// A configured prefix leaves the FIB; BGP's route for it, if any, takes its place.
    pub(super) fn remove_route_of(&mut self, prefix: IpNet) {
        self.tables.remove(prefix);
        self.bgp
            .unconfigure(&self.config, &mut self.alloc, &mut self.tables, prefix);
    }

    /// Our blocks follow our endpoints (with a datastore: our affinities, and host
    /// routes for borrowed addresses): blackhole routes and BGP announcements (those
    /// of pools with disable_bgp_export are routed, not announced).
    pub(super) fn sync_blocks(&mut self) {
        let Some(blackhole) = self.blackhole else {
            return;
        };
        let (now, announced) = match self.cluster_blocks() {
            Some(x) => x,
            None => {
                let b = own_blocks(&self.config);
                (b.clone(), b)
            }
        };
        let advertised = exported_blocks(&self.config, &announced);
        if advertised != self.advertised {
            if let Some(sp) = &self.speaker {
                sp.set_advertised(advertised.clone());
            }
            self.advertised = advertised;
        }
        for b in self.own_blocks.clone() {
            if !now.contains(&b) {
                self.remove_route_of(b);
            }
        }
        for b in &now {
            if !self.own_blocks.contains(b) {
                self.bgp.set_configured(*b, true);
                self.tables.insert(*b, blackhole);
            }
        }
        self.own_blocks = now;
    }
}
