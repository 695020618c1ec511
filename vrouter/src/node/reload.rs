//! Reload: the file re-read and diffed against the running configuration (SIGHUP,
//! `vrouterctl reload`). What changed goes through the operations the API uses.

use super::error::{invalid, NodeError, NodeResult};
use super::{NodeState, Origin};
use crate::config::{
    address_clash, BgpPeer, BgpSettings, Config, Endpoint, Holder, Pool, StaticRoute,
};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use tracing::{info, warn};

/// What a reload did: the changes applied, and those that need a restart (their
/// running value kept), one line each. Only the first are counted as applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

impl NodeState {
    /// Re-read the file and apply what changed (SIGHUP, `vrouterctl reload`).
    pub fn reload(&mut self) -> NodeResult<Reloaded> {
        let Some(path) = self.config_path.clone() else {
            return Err(NodeError::Precondition(
                "vrouterd was started without a file".into(),
            ));
        };
        let file = Config::load(&path).map_err(|e| invalid(e.0))?;
        self.apply_file(file)
    }

    /// Apply the file's configuration `file`: endpoints, pools, static routes and BGP
    /// peers go through the same paths as the API's calls, so unchanged parts never
    /// stop. Returns one line per change; settings that need a restart are named apart
    /// and keep their running value.
    pub fn apply_file(&mut self, mut file: Config) -> NodeResult<Reloaded> {
        self.check_addresses(&file)?;
        let mut changes = Vec::new();
        let mut needs_restart = Vec::new();
        // What cannot change while running keeps its running value.
        let mut restart = |what: &str, differs: bool| {
            if differs {
                needs_restart.push(format!(
                    "{what} changed: needs a restart (running value kept)"
                ));
            }
        };
        let run = &self.config;
        // What the datastore contributed is not the file's to change.
        let (ds_prefixes, ds_peers, ds_nodes): (
            BTreeSet<IpNet>,
            BTreeSet<IpAddr>,
            BTreeSet<String>,
        ) = match &self.cluster {
            Some(cs) => (
                cs.pools.keys().chain(cs.routes.keys()).copied().collect(),
                cs.peers.keys().copied().collect(),
                cs.nodes.keys().cloned().collect(),
            ),
            None => Default::default(),
        };
        let run_file_nodes: Vec<_> = run
            .nodes
            .iter()
            .filter(|n| !ds_nodes.contains(&n.name))
            .cloned()
            .collect();
        restart("node_name", file.node_name != run.node_name);
        restart("node_ips", file.node_ips != run.node_ips);
        restart("uplinks", file.uplinks != run.uplinks);
        restart("workers", file.workers != run.workers);
        restart("xdp_mode", file.xdp_mode != run.xdp_mode);
        restart("icmp_rate", file.icmp_rate != run.icmp_rate);
        restart("log.format", file.log.format != run.log.format);
        restart("nodes", file.nodes != run_file_nodes);
        restart("datastore", file.datastore != run.datastore);
        restart("vxlan", file.vxlan != run.vxlan);
        restart("api", file.api != run.api);
        restart("metrics", file.metrics != run.metrics);
        restart("state_dir", file.state_dir != run.state_dir);
        restart("conntrack", file.conntrack != run.conntrack);
        let settings = |b: &Option<BgpSettings>| {
            b.clone().map(|mut b| {
                b.peers.clear();
                b
            })
        };
        restart(
            "bgp (other than its peers)",
            settings(&file.bgp) != settings(&run.bgp),
        );
        file.node_name = run.node_name.clone();
        file.node_ips = run.node_ips.clone();
        file.uplinks = run.uplinks.clone();
        file.workers = run.workers.clone();
        file.xdp_mode = run.xdp_mode;
        file.icmp_rate = run.icmp_rate;
        file.nodes = run.nodes.clone();
        file.datastore = run.datastore.clone();
        file.vxlan = run.vxlan.clone();
        file.api = run.api.clone();
        file.metrics = run.metrics.clone();
        file.state_dir = run.state_dir.clone();
        file.conntrack = run.conntrack.clone();
        let file_peers = file
            .bgp
            .as_ref()
            .map(|b| b.peers.clone())
            .unwrap_or_default();
        file.bgp = run.bgp.clone();
        // The file's part of the running configuration, to compare with.
        let o = &self.origins;
        let old_endpoints: Vec<Endpoint> = run
            .endpoints
            .iter()
            .filter(|e| !o.endpoints.contains(&e.name))
            .cloned()
            .collect();
        let old_pools: Vec<Pool> = run
            .pools
            .iter()
            .filter(|p| !o.pools.contains(&p.cidr) && !ds_prefixes.contains(&p.cidr))
            .cloned()
            .collect();
        let old_routes: Vec<StaticRoute> = run
            .routes
            .iter()
            .filter(|r| !o.routes.contains(&r.dst.trunc()) && !ds_prefixes.contains(&r.dst.trunc()))
            .cloned()
            .collect();
        let old_peers: Vec<BgpPeer> = run
            .bgp
            .iter()
            .flat_map(|b| &b.peers)
            .filter(|p| !o.peers.contains(&p.address) && !ds_peers.contains(&p.address))
            .cloned()
            .collect();
        let mut failed: Vec<String> = Vec::new();
        fn note(
            r: NodeResult<()>,
            what: String,
            changes: &mut Vec<String>,
            failed: &mut Vec<String>,
        ) {
            match r {
                Ok(()) => changes.push(what),
                Err(e) => failed.push(format!("{what}: {}", e.message())),
            }
        }
        // Removals first (endpoints before their pools), then additions (pools first).
        for e in old_endpoints.iter().filter(|e| !file.endpoints.contains(e)) {
            let r = match self.endpoint(&e.name) {
                Some(_) => self.uninstall_endpoint(&e.name).map(|_| ()),
                None => Ok(()),
            };
            note(
                r,
                format!("endpoint {} removed", e.name),
                &mut changes,
                &mut failed,
            );
        }
        for r in old_routes.iter().filter(|r| !file.routes.contains(r)) {
            let res = self.uninstall_route(r.dst.trunc());
            note(
                res,
                format!("route {} removed", r.dst),
                &mut changes,
                &mut failed,
            );
        }
        for p in old_peers.iter().filter(|p| !file_peers.contains(p)) {
            let res = self.uninstall_peer(p.address);
            note(
                res,
                format!("peer {} removed", p.address),
                &mut changes,
                &mut failed,
            );
        }
        for p in old_pools
            .iter()
            .filter(|p| !file.pools.iter().any(|f| f.cidr == p.cidr))
        {
            let res = match self.config.pools.iter().any(|x| x.cidr == p.cidr) {
                true => self.uninstall_pool(p.cidr),
                false => Ok(()),
            };
            note(
                res,
                format!("pool {} removed", p.cidr),
                &mut changes,
                &mut failed,
            );
        }
        for p in file.pools.iter().filter(|p| !old_pools.contains(p)) {
            if self.origins.pools.contains(&p.cidr) {
                failed.push(format!("pool {}: added through the API already", p.cidr));
                continue;
            }
            let res = self.install_pool(p.clone(), Origin::File).map(|_| ());
            note(
                res,
                format!("pool {} applied", p.cidr),
                &mut changes,
                &mut failed,
            );
        }
        for e in file.endpoints.iter().filter(|e| !old_endpoints.contains(e)) {
            if self.origins.endpoints.contains(&e.name) {
                failed.push(format!(
                    "endpoint {}: added through the API already",
                    e.name
                ));
                continue;
            }
            let res = self.install_endpoint(e.clone(), Origin::File).map(|_| ());
            note(
                res,
                format!("endpoint {} added", e.name),
                &mut changes,
                &mut failed,
            );
        }
        for r in file.routes.iter().filter(|r| !old_routes.contains(r)) {
            let res = self.install_route(r.clone(), Origin::File).map(|_| ());
            note(
                res,
                format!("route {} added", r.dst),
                &mut changes,
                &mut failed,
            );
        }
        for p in file_peers.iter().filter(|p| !old_peers.contains(p)) {
            let res = self.install_peer(p.clone(), Origin::File);
            note(
                res,
                format!("peer {} added", p.address),
                &mut changes,
                &mut failed,
            );
        }
        if file.log.level != self.config.log.level {
            match crate::logging::set_level(&file.log.level) {
                Ok(_) => changes.push(format!(
                    "log level {:?} -> {:?}",
                    self.config.log.level, file.log.level
                )),
                Err(e) => failed.push(e),
            }
            self.config.log.level = file.log.level.clone();
        }
        if file.namespaces != self.config.namespaces {
            self.config.namespaces = file.namespaces.clone();
            changes.push("namespaces' labels changed".into());
        }
        self.publish_policies();
        // What the API added is saved once for the whole reload.
        if let Err(e) = self.persist() {
            failed.push(e.to_string());
        }
        for f in &failed {
            warn!(change = %f, "reload: not applied");
        }
        for c in &changes {
            info!(change = %c, "reload");
        }
        for c in &needs_restart {
            warn!(change = %c, "reload: not applied until a restart");
        }
        if failed.is_empty() {
            Ok(Reloaded {
                applied: changes,
                needs_restart,
            })
        } else {
            let restart = if needs_restart.is_empty() {
                String::new()
            } else {
                format!("; these need a restart: {}", needs_restart.join("; "))
            };
            Err(NodeError::Precondition(format!(
                "reload applied {} change(s); these failed: {}{restart}",
                changes.len(),
                failed.join("; ")
            )))
        }
    }

    /// One address, one owner: the file's endpoints among themselves, with the node's
    /// addresses and with what the API added (which stays). A clash refuses the whole
    /// file before anything changes.
    fn check_addresses(&self, file: &Config) -> NodeResult<()> {
        let api = &self.origins.endpoints;
        let kept = self
            .config
            .endpoints
            .iter()
            .filter(|e| api.contains(&e.name));
        // A file endpoint named like an API one is not applied (said below).
        let new = file.endpoints.iter().filter(|e| !api.contains(&e.name));
        let Some(clash) = address_clash(&self.config.node_ips, kept.chain(new)) else {
            return Ok(());
        };
        let from_api = match &clash.holder {
            Holder::Endpoint(h) if api.contains(h) => " (added through the API)",
            _ => "",
        };
        warn!(%clash, "reload: the file is refused");
        Err(NodeError::Invalid(format!(
            "reload refused, nothing changed: {clash}{from_api}"
        )))
    }
}
