//! The datastore's part of the running node: each `ClusterView` is diffed against what
//! the datastore contributed before and applied through the same operations the file
//! and the API use (pools, BGP peers) plus the mesh: every other registered node is a
//! tunnel endpoint (`[[nodes]]`, from its Node resource, kernel Calico's included) and,
//! with the node-to-node mesh on, a BGP peer. What the file says wins over the
//! datastore for the same pool, peer or node. Our blocks are the ones whose affinity is
//! ours; an address borrowed from another node's block is announced as a host route.

use super::bgp_config::mesh_peer;
use super::cluster_state::{node_entry, pool_of, ClusterState, DatastoreStatus};
use super::{NodeState, Origin};
use crate::config::{BgpPeer, Node, Pool, StaticRoute};
use datastore::model::Resource;
use datastore::sync::ClusterView;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tracing::{info, warn};

impl NodeState {
    /// Apply the datastore's current view (a diff against the previous one).
    pub fn apply_cluster(&mut self, view: &ClusterView) {
        let Some(mut cs) = self.cluster.take() else {
            return;
        };
        let me = self.config.node_name.clone();
        cs.status = DatastoreStatus::InSync {
            revision: view.revision,
        };
        cs.revision = view.revision;
        cs.labels = view
            .nodes
            .get(&me)
            .map(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        // The file's labels win; the Node's others are ours too (selectors see both).
        for (k, v) in &self.config.node_labels {
            cs.labels.insert(k.clone(), v.clone());
        }
        cs.labels
            .insert("projectcalico.org/name".into(), me.clone());
        let labels: BTreeMap<String, String> = cs
            .labels
            .iter()
            .filter(|(k, _)| *k != "projectcalico.org/name")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if labels != self.config.node_labels {
            self.config.node_labels = labels;
            self.ipam
                .set_pools(super::persist::ipam_pools(&self.config));
        }
        // Routes that go, go first: a route may not outlive the node it names.
        self.apply_cluster_routes(&mut cs, view, false);
        self.apply_cluster_pools(&mut cs, view);
        self.apply_cluster_nodes(&mut cs, view, &me);
        if self.policies.set_cluster(&view.policies) {
            info!(policies = self.policies.cluster.len(), "datastore policies");
        }
        cs.workloads = view.workloads.clone();
        cs.namespaces = view.namespaces.clone();
        self.apply_cluster_peers(&mut cs, view, &me);
        self.apply_cluster_routes(&mut cs, view, true);
        cs.affine = view.affinities.get(&me).cloned().unwrap_or_default();
        cs.affine.sort();
        self.cluster = Some(cs);
        self.sync_blocks();
        self.publish_policies();
    }

    fn apply_cluster_pools(&mut self, cs: &mut ClusterState, view: &ClusterView) {
        let mut want: BTreeMap<IpNet, Pool> = BTreeMap::new();
        // Said once per pool and thing, not at every view.
        let mut said = BTreeSet::new();
        let mut once = |cs: &ClusterState, what: String| {
            let new = !cs.pool_warnings.contains(&what);
            said.insert(what);
            new
        };
        for (name, r) in &view.pools {
            for u in r.spec.unsupported() {
                if once(cs, format!("{name}: {}", u.field)) {
                    warn!(pool = %name, field = %u.field, effect = u.effect,
                        "IPPool field not implemented");
                }
            }
            match pool_of(&r.spec) {
                Ok(p) => {
                    want.insert(p.cidr, p);
                }
                Err(e) => {
                    if once(cs, format!("{name}: {e}")) {
                        warn!(pool = %name, error = %e, "IPPool skipped");
                    }
                }
            }
        }
        for cidr in cs.pools.keys().copied().collect::<Vec<_>>() {
            if !want.contains_key(&cidr) {
                match self.uninstall_pool(cidr) {
                    Ok(()) => {
                        cs.pools.remove(&cidr);
                    }
                    Err(e) => warn!(pool = %cidr, error = %e, "datastore pool kept"),
                }
            }
        }
        for (cidr, p) in want {
            if cs.pools.get(&cidr) == Some(&p) {
                continue;
            }
            let theirs =
                !cs.pools.contains_key(&cidr) && self.config.pools.iter().any(|q| q.cidr == cidr);
            if theirs {
                continue; // the file's or the API's
            }
            match self.install_pool(p.clone(), Origin::Datastore) {
                Ok(_) => {
                    cs.pools.insert(cidr, p);
                }
                Err(e) => {
                    if once(cs, format!("{cidr}: {e}")) {
                        warn!(pool = %cidr, error = %e, "IPPool refused");
                    }
                }
            }
        }
        cs.pool_warnings = said;
    }

    fn apply_cluster_nodes(&mut self, cs: &mut ClusterState, view: &ClusterView, me: &str) {
        let mesh_on = view
            .bgp
            .as_ref()
            .and_then(|b| b.node_to_node_mesh_enabled)
            .unwrap_or_else(|| self.config.bgp.as_ref().is_some_and(|b| b.mesh));
        let file_nodes: BTreeSet<String> = self
            .config
            .nodes
            .iter()
            .filter(|n| !cs.nodes.contains_key(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let mut want: BTreeMap<String, Node> = BTreeMap::new();
        for (name, n) in &view.nodes {
            if name == me || file_nodes.contains(name) {
                continue;
            }
            match node_entry(name, n) {
                Some(e) => {
                    want.insert(name.clone(), e);
                }
                None => warn!(node = %name, "Node without an address: not meshed"),
            }
        }
        if want != cs.nodes {
            self.config
                .nodes
                .retain(|n| !cs.nodes.contains_key(&n.name));
            self.config.nodes.extend(want.values().cloned());
            for (name, n) in &want {
                if cs.nodes.get(name) != Some(n) {
                    info!(node = %name, ips = ?n.ips, "cluster node");
                }
            }
            for name in cs.nodes.keys().filter(|k| !want.contains_key(*k)) {
                info!(node = %name, "cluster node gone");
            }
            cs.nodes = want;
            // Other nodes are never masqueraded to.
            self.sync_overlay();
        }
        // The mesh: one session per other node, when BGP runs.
        let Some(sp) = &self.speaker else {
            return;
        };
        let mut peers = BTreeMap::new();
        if mesh_on {
            for n in cs.nodes.values() {
                if let Some(p) = mesh_peer(&self.config, n) {
                    peers.insert(p.address, p);
                }
            }
        }
        for a in cs.mesh.clone() {
            if !peers.contains_key(&a) {
                let _ = sp.remove_peer(a);
                cs.mesh.remove(&a);
            }
        }
        for (a, p) in peers {
            if !cs.mesh.contains(&a) {
                match sp.add_peer(p) {
                    Ok(()) => {
                        cs.mesh.insert(a);
                    }
                    Err(e) => warn!(peer = %a, error = %e, "mesh peer not added"),
                }
            }
        }
    }

    fn apply_cluster_peers(&mut self, cs: &mut ClusterState, view: &ClusterView, me: &str) {
        if self.speaker.is_none() {
            return;
        }
        let mut want: BTreeMap<IpAddr, BgpPeer> = BTreeMap::new();
        for (name, r) in &view.peers {
            let Resource { spec, .. } = r;
            if cs.applies(me, spec) {
                if let Some(p) = cs.peer_of(name, spec) {
                    want.insert(p.address, p);
                }
            }
        }
        for (a, old) in cs.peers.clone() {
            if want.get(&a) != Some(&old) {
                let _ = self.uninstall_peer(a);
                cs.peers.remove(&a);
            }
        }
        for (a, p) in want {
            if cs.peers.contains_key(&a) || cs.mesh.contains(&a) {
                continue;
            }
            match self.install_peer(p.clone(), Origin::Datastore) {
                Ok(()) => {
                    cs.peers.insert(a, p);
                }
                Err(e) => warn!(peer = %a, error = %e, "BGPPeer not added"),
            }
        }
    }

    /// Without a BGP speaker, other nodes' blocks are routed from their affinities (a
    /// route to a node's block, encapsulated as its pool says).
    fn apply_cluster_routes(&mut self, cs: &mut ClusterState, view: &ClusterView, add: bool) {
        let me = &self.config.node_name;
        let mut want: BTreeMap<IpNet, String> = BTreeMap::new();
        if self.speaker.is_none() {
            for (host, blocks) in &view.affinities {
                if host != me
                    && view.nodes.contains_key(host)
                    && (!add || cs.nodes.contains_key(host))
                {
                    for b in blocks {
                        want.insert(*b, host.clone());
                    }
                }
            }
        }
        for (b, host) in cs.routes.clone() {
            if want.get(&b) != Some(&host) {
                if let Err(e) = self.uninstall_route(b) {
                    warn!(block = %b, error = %e, "datastore route kept");
                    continue;
                }
                cs.routes.remove(&b);
            }
        }
        if !add {
            return;
        }
        for (b, host) in want {
            if cs.routes.contains_key(&b) {
                continue;
            }
            let r = StaticRoute {
                dst: b,
                via: None,
                node: Some(host.clone()),
                uplink: None,
            };
            match self.install_route(r, Origin::Datastore) {
                Ok(_) => {
                    cs.routes.insert(b, host);
                }
                Err(e) => warn!(block = %b, node = %host, error = %e, "block route not installed"),
            }
        }
    }

    /// Our blocks and borrowed addresses in cluster mode: (blackholed, announced).
    pub(super) fn cluster_blocks(&self) -> Option<(Vec<IpNet>, Vec<IpNet>)> {
        let cs = self.cluster.as_ref()?;
        let mut announced = cs.affine.clone();
        for ip in self.config.endpoints.iter().flat_map(|e| &e.ips) {
            let pooled = self
                .config
                .pools
                .iter()
                .any(|p| p.cidr.contains(&ip.addr()));
            if pooled && !cs.affine.iter().any(|b| b.contains(&ip.addr())) {
                announced.push(IpNet::from(ip.addr()));
            }
        }
        Some((cs.affine.clone(), announced))
    }
}
