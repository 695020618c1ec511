//! The node's state with one owner: the control loop. Everything that changes while the
//! node runs — endpoints, pools, static routes, BGP peers and learnt routes — changes
//! here, by one path per operation whatever asked for it (the file at start or reload,
//! the API, the cluster datastore; next the CNI plugin). Each change is checked against the
//! whole configuration first (the file's own validation), then applied to the live
//! tables in an order that never lets a packet see a half state (next hop before route,
//! route removed before its next hop goes). `install_*` / `uninstall_*` change the
//! running node; the request-level entry points (`add_*`, `remove_*`, `apply_pool`, a
//! reload, `start`) then save the state once per request.
//!
//! ```text
//!  NodeState ── config, origins (file or API), ipam
//!   ├─ plan        start-up numbering (ports, endpoints, slots, routes)
//!   ├─ nexthops    NextHopAlloc: gateways, tunnels, ECMP groups, shared by every route
//!   ├─ tables      the live tables the workers read (next hops, tunnels, groups, FIBs)
//!   ├─ bgp_routes  learnt routes into tables; configured prefixes win
//!   ├─ endpoints / pools / routes / peers   the operations, domain errors (error)
//!   ├─ handles     addresses held by an IPAM handle (vrouter-ipam), no endpoint
//!   ├─ policies    network policies as applied (Calico / Kubernetes resources)
//!   ├─ reload      the file's diff, through the same operations
//!   ├─ cluster     the datastore's view diffed in: nodes, mesh, pools, peers, blocks
//!   │              (what it contributed: cluster_state)
//!   ├─ persist     api.json, IPAM reconciled with the configuration
//!   ├─ report      views: route list, stats, metrics, stats file
//!   ├─ conntrack   the workers' flows listed or flushed (through host), their figures
//!   └─ host        Host: what the workers and the machine are asked (fake in tests)
//! ```

pub mod bgp_config;
pub mod bgp_routes;
pub mod cluster;
pub mod cluster_state;
pub mod conntrack;
pub mod endpoints;
pub mod error;
pub mod handles;
pub mod host;
pub mod interface;
pub mod nexthops;
pub mod origins;
pub mod peers;
pub mod persist;
pub mod plan;
pub mod policies;
pub mod policy_store;
pub mod pools;
pub mod reload;
pub mod report;
pub mod routes;
pub mod stats;
pub mod tables;

#[cfg(test)]
mod tests;

use crate::config::{Config, EndpointKind};
use crate::counters::Counters;
use crate::tunnel::Overlay;
use bgp_routes::BgpRoutes;
use control::api::pb;
use control::ipam::Ipam;
use error::{NodeError, NodeResult};
use host::Host;
use ipnet::IpNet;
use nexthops::NextHopAlloc;
use origins::Origins;
use plan::{Plan, Ports};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tables::Tables;
use tracing::{info, warn};

/// Where a change came from: the configuration file, or the API (kept in api.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Api,
    /// The cluster datastore (not kept in api.json; it is resynced at start).
    Datastore,
}

/// Everything the control loop owns while the node runs.
pub struct NodeState {
    /// The effective configuration: the file's, plus what the API added.
    pub config: Config,
    pub origins: Origins,
    pub ports: Ports,
    /// What workers decapsulate.
    pub overlay: Overlay,
    /// Our blocks (their unused addresses blackholed).
    pub own_blocks: Vec<IpNet>,
    /// Those of our blocks BGP announces (not those of pools with disable_bgp_export).
    pub advertised: Vec<IpNet>,
    pub blackhole: Option<u32>,
    pub alloc: NextHopAlloc,
    pub tables: Tables,
    pub bgp: BgpRoutes,
    pub speaker: Option<control::speaker::Speaker>,
    pub ipam: Ipam,
    pub host: Box<dyn Host>,
    pub counters: Arc<Counters>,
    pub started: Instant,
    pub last_install: SystemTime,
    /// The largest endpoint MTU the workers' frames carry.
    pub endpoint_mtu_limit: u16,
    pub events: Option<tokio::sync::broadcast::Sender<pb::Event>>,
    /// The file `reload` reads (None: reload refused).
    pub config_path: Option<PathBuf>,
    /// With `[datastore]`: what the cluster contributed.
    pub cluster: Option<cluster_state::ClusterState>,
    /// Network policies (applied through the API, kept in `api.json`).
    pub policies: policy_store::PolicyStore,
    /// Time to install each batch of BGP route changes in the FIB (`/metrics`).
    pub fib_batch_seconds: control::histogram::Histogram,
}

/// What start-up made of the dataplane that the node's state drives.
pub struct Dataplane {
    pub host: Box<dyn Host>,
    pub counters: Arc<Counters>,
    /// The largest endpoint MTU the workers' frames carry.
    pub endpoint_mtu_limit: u16,
}

impl NodeState {
    /// The state of a node started from `plan` (its tables built from it), holding
    /// `config`'s settings but none of its pools, static routes, endpoints or BGP peers:
    /// `start` and `start_peers` install those, by the path each takes whoever asks.
    pub fn new(
        config: Config,
        origins: Origins,
        plan: Plan,
        tables: Tables,
        ipam: Ipam,
        dataplane: Dataplane,
    ) -> NodeState {
        let Dataplane {
            host,
            counters,
            endpoint_mtu_limit,
        } = dataplane;
        let mut config = config;
        config.pools.clear();
        config.routes.clear();
        config.endpoints.clear();
        if let Some(b) = config.bgp.as_mut() {
            b.peers.clear();
        }
        NodeState {
            bgp: BgpRoutes::default(),
            config,
            origins,
            ports: plan.ports,
            overlay: plan.overlay,
            own_blocks: Vec::new(),
            advertised: Vec::new(),
            blackhole: plan.blackhole,
            alloc: plan.alloc,
            tables,
            speaker: None,
            ipam,
            host,
            counters,
            started: Instant::now(),
            fib_batch_seconds: Default::default(),
            last_install: std::time::UNIX_EPOCH,
            endpoint_mtu_limit,
            events: None,
            config_path: None,
            cluster: None,
            policies: policy_store::PolicyStore::default(),
        }
    }

    /// Install what `config` asks for into a node that has none of it yet (start-up):
    /// its pools, static routes (via neighbours first: routes to nodes may need them)
    /// and endpoints (the file's, and those the API added before a restart), each by
    /// the one path it takes whoever asks.
    pub fn start(&mut self, config: &Config) -> NodeResult<()> {
        let origin = |api: bool| if api { Origin::Api } else { Origin::File };
        let failed =
            |what: String| move |e: NodeError| NodeError::Precondition(format!("{what}: {e}"));
        for p in &config.pools {
            let api = self.origins.pools.contains(&p.cidr);
            self.install_pool(p.clone(), origin(api))
                .map_err(failed(format!("pool {}", p.cidr)))?;
        }
        let routes = config.routes.iter().filter(|r| r.via.is_some());
        for r in routes.chain(config.routes.iter().filter(|r| r.via.is_none())) {
            let api = self.origins.routes.contains(&r.dst.trunc());
            self.install_route(r.clone(), origin(api))
                .map_err(failed(format!("route {}", r.dst)))?;
        }
        for e in &config.endpoints {
            let api = self.origins.endpoints.contains(&e.name);
            self.install_endpoint(e.clone(), origin(api))
                .map_err(failed(format!("endpoint {}", e.name)))?;
        }
        self.prune_host_routes();
        // Saved once, not once per part installed.
        self.persist()
    }

    /// The kernel routes to pods an earlier run left for endpoints that are gone: its
    /// endpoints' own were just replaced.
    fn prune_host_routes(&mut self) {
        let keep: Vec<(String, IpNet)> = (self.config.endpoints.iter())
            .filter(|e| e.kind == EndpointKind::Veth)
            .flat_map(|e| e.ips.iter().map(|ip| (e.interface.clone(), *ip)))
            .collect();
        match self.host.prune_host_routes(&keep) {
            Ok(0) => {}
            Ok(n) => info!(removed = n, "stale kernel routes to pods removed"),
            Err(e) => warn!(error = %e, "stale kernel routes to pods not removed"),
        }
    }

    /// Start a session with each BGP peer `config` lists (the file's, and those the API
    /// added before a restart), as the API and a reload add one; the speaker runs.
    pub fn start_peers(&mut self, config: &Config) -> NodeResult<()> {
        for p in config.bgp.iter().flat_map(|b| &b.peers) {
            let origin = if self.origins.peers.contains(&p.address) {
                Origin::Api
            } else {
                Origin::File
            };
            self.install_peer(p.clone(), origin)
                .map_err(|e| NodeError::Precondition(format!("peer {}: {e}", p.address)))?;
        }
        Ok(())
    }

    /// Apply a batch of BGP route changes to the tables.
    pub fn apply_bgp(&mut self, changes: &[control::speaker::RouteChange]) {
        let t = std::time::Instant::now();
        self.bgp
            .apply(&self.config, &mut self.alloc, &mut self.tables, changes);
        self.fib_batch_seconds.observe(t.elapsed());
    }

    /// Tell watchers (only built when someone watches).
    fn publish(&self, what: pb::event::What) {
        if let Some(ev) = &self.events {
            if ev.receiver_count() > 0 {
                let _ = ev.send(pb::Event {
                    unix_ms: now_ms(),
                    what: Some(what),
                });
            }
        }
    }

    fn watched(&self) -> bool {
        self.events.as_ref().is_some_and(|e| e.receiver_count() > 0)
    }

    /// Route events for a batch of BGP changes.
    pub fn publish_bgp(&self, changes: &[control::speaker::RouteChange]) {
        if !self.watched() {
            return;
        }
        for c in changes {
            self.publish(pb::event::What::Route(pb::RouteEvent {
                op: if c.next_hops.is_empty() {
                    "remove"
                } else {
                    "add"
                }
                .into(),
                route: Some(pb::Route {
                    prefix: c.prefix.to_string(),
                    source: "bgp".into(),
                    next_hops: c.next_hops.iter().map(|h| h.to_string()).collect(),
                    ..Default::default()
                }),
            }));
        }
    }

    fn publish_route(&self, op: &str, route: pb::Route) {
        self.publish(pb::event::What::Route(pb::RouteEvent {
            op: op.into(),
            route: Some(route),
        }));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
