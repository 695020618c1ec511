//! `vrouterd`'s main thread: start the node, then own its state until SIGTERM.
//!
//! ```text
//!  control loop (this thread)                 worker w (pinned to cores[w])
//!  ├─ startup: plan, tables, XDP, workers ──▶ ├─ AfXdpIo: one UMEM, its uplink queue,
//!  ├─ NodeState (node/): the one owner of     │  its veth / tap endpoints
//!  │   config, tables, next hops, IPAM        ├─ Pipeline (FIB readers, next hops)
//!  ├─ ◀── route batches ── BGP speaker thread └─ loop: rx burst → pipeline → tx
//!  ├─ ◀── calls ────────── gRPC API (tokio)      (commands from WorkerHost: once per ms)
//!  ├─ ◀── scrapes ──────── /metrics
//!  ├─ ◀── neighbour changes ── neigh-watch thread (RTNLGRP_NEIGH) → next hops
//!  └─ SIGHUP reload, sd_notify, stats file
//! ```
//! Logical ports: uplink i is `PortId(i)` in every worker (each worker sends on its own
//! queue of it); endpoints follow, then free slots. An endpoint belongs to one worker.

use crate::cluster::{endpoint_handle, Cluster};
use crate::config::Config;
use crate::gateway_sync::GatewaySync;
use crate::node::bgp_config::{mark_clean_stop, speaker_config};
use crate::node::cluster_state::{ClusterState, DatastoreStatus};
use crate::node::interface::if_info;
use crate::node::persist::{effective_config, open_ipam};
use crate::node::plan::Plan;
use crate::node::tables::{Capacity, Tables};
use crate::node::{Dataplane, NodeState};
use crate::startup::{start_workers, Started};
use crossbeam_channel as xch;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Options of `vrouterd` besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rewrite this JSON file with the counters every `stats_interval`.
    pub stats_file: Option<std::path::PathBuf>,
    pub stats_interval: Duration,
    /// The file SIGHUP and `vrouterctl reload` re-read.
    pub config_path: Option<std::path::PathBuf>,
    /// Set by SIGHUP.
    pub reload: Arc<AtomicBool>,
}

/// What /livez and /readyz answer (set by the control loop).
#[derive(Debug, Default)]
pub struct Health {
    pub live: AtomicBool,
    pub ready: AtomicBool,
    /// Set while the datastore is unreachable (the node still forwards).
    pub not_ready: std::sync::Mutex<Option<String>>,
}

/// The metrics server's view of the node: scrapes are answered by the control loop.
pub struct MetricsSource {
    pub health: Arc<Health>,
    pub scrapes: xch::Sender<xch::Sender<String>>,
}

impl control::metrics::HealthSource for MetricsSource {
    fn metrics(&self) -> String {
        let (tx, rx) = xch::bounded(1);
        if self.scrapes.send(tx).is_err() {
            return String::new();
        }
        rx.recv_timeout(Duration::from_secs(4)).unwrap_or_default()
    }
    fn live(&self) -> bool {
        self.health.live.load(Ordering::Relaxed)
    }
    fn ready(&self) -> bool {
        self.health.ready.load(Ordering::Relaxed)
    }
    fn not_ready_reason(&self) -> Option<String> {
        self.health.not_ready.lock().unwrap().clone()
    }
}

/// How long after the start prefixes left by the last run in programs taken over are
/// kept (see `XdpProgram::sweep_stale`): the datastore's first listing is applied well
/// within it, and a prefix this run has not set by then is one it does not want.
const KEPT_PREFIXES_SWEEP: Duration = Duration::from_secs(10);

/// BGP settings from the datastore, as calico/node takes them: our Node's asNumber,
/// else BGPConfiguration `default`'s, else the file's.
fn adopt_cluster_bgp(config: &mut Config, view: &datastore::sync::ClusterView) {
    let own = view
        .nodes
        .get(&config.node_name)
        .and_then(|n| n.spec.bgp.as_ref())
        .and_then(|b| b.as_number);
    let cluster = view.bgp.as_ref().and_then(|b| b.as_number);
    if let Some(b) = config.bgp.as_mut() {
        if let Some(asn) = own.or(cluster) {
            b.asn = asn;
        }
    }
}

/// Start-up failed after the workers began: stop them and let the node's XDP programs
/// go with it.
fn abort(
    stop: &AtomicBool,
    node: NodeState,
    threads: Vec<std::thread::JoinHandle<()>>,
    e: crate::node::error::NodeError,
) -> io::Error {
    stop.store(true, Ordering::Relaxed);
    drop(node);
    for t in threads {
        let _ = t.join();
    }
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Run the node until `stop` is set. Errors at start-up name what failed.
pub fn run(file_config: &Config, options: &RunOptions, stop: Arc<AtomicBool>) -> io::Result<()> {
    let started_at = Instant::now();
    let (mut config, api_state) = effective_config(file_config)?;
    // The datastore's connection and first listing go on (its own thread) while the
    // workers start: the dataplane needs nothing of it, and a restart forwards again
    // that much sooner. BGP starts after both, with the cluster's AS.
    let cluster = match &config.datastore {
        Some(_) => Some(Cluster::start(&config)?),
        None => None,
    };
    let ipam = open_ipam(&config)?;
    let plan = Plan::new(&config, &if_info)?;
    // The last run's sockets and programs (systemd's fd store), taken over where they fit.
    let fd_store = Arc::new(crate::restart::FdStore::from_env()?);
    let since = |what: &str| {
        tracing::debug!(
            since_start_ms = started_at.elapsed().as_secs_f64() * 1e3,
            "{what}"
        )
    };
    since("planned");
    let tables = Tables::new(&plan, Capacity::for_start(&plan, &config));
    since("tables made");
    let Started {
        threads,
        host,
        counters,
        endpoint_mtu_limit,
    } = start_workers(&config, &plan, &tables, &stop, &fd_store)?;
    let (first_view, early_events) = match &cluster {
        Some(c) => c.first_view(Duration::from_secs(5)),
        None => (None, Vec::new()),
    };
    tracing::debug!(
        since_start_ms = started_at.elapsed().as_secs_f64() * 1e3,
        "datastore's first view"
    );
    if let Some(v) = &first_view {
        adopt_cluster_bgp(&mut config, v);
    } else if cluster.is_some() {
        warn!("datastore not answering at start: starting from the file, syncing when it does");
    }
    let worker_count = threads.len();
    let worker_commands = host.workers.clone();
    info!(
        node = %config.node_name,
        workers = worker_count,
        ports = plan.ports.ports.len(),
        since_start_ms = started_at.elapsed().as_secs_f64() * 1e3,
        "forwarding"
    );
    // The node's state starts with no pool, route, endpoint or peer; the configuration's
    // are installed by the path each takes whoever asks.
    let mut node = NodeState::new(
        config.clone(),
        api_state.origins(file_config),
        plan,
        tables,
        ipam,
        Dataplane {
            host: Box::new(host),
            counters: counters.clone(),
            endpoint_mtu_limit,
        },
    );
    node.policies.restore(&api_state.policies);
    node.publish_policies();
    if let Err(e) = node.start(&config) {
        return Err(abort(&stop, node, threads, e));
    }
    // Every endpoint of the start is open: what the last run kept beyond them goes.
    for w in &worker_commands {
        let _ = w.send(crate::worker::WorkerCmd::DropParked);
    }
    // Prefixes the last run left in programs taken over go once this run has had time
    // to set all it wants (the datastore's pools come after the start).
    let mut sweep_at = Some(Instant::now() + KEPT_PREFIXES_SWEEP);
    fd_store.release_unclaimed();
    info!(
        endpoints = node.ports.endpoints.len(),
        routes = node.tables.len(),
        since_start_ms = started_at.elapsed().as_secs_f64() * 1e3,
        "started"
    );

    let mut neighbours = match GatewaySync::start() {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(error = %e, "no rtnetlink: uplink next hops stay unresolved");
            None
        }
    };
    // The BGP speaker on its own thread; its route changes are applied here.
    let (routes_tx, routes_rx) = xch::unbounded();
    node.speaker = match speaker_config(&node.config, &node.own_blocks) {
        Some(cfg) => {
            info!(
                asn = cfg.asn,
                peers = cfg.peers.len(),
                blocks = cfg.advertise.len(),
                "BGP speaker"
            );
            Some(control::speaker::spawn(cfg, routes_tx).map_err(|e| {
                stop.store(true, Ordering::Relaxed);
                io::Error::new(e.kind(), format!("bgp: {e}"))
            })?)
        }
        None => None,
    };
    // Its peers from the configuration are added as the API adds one (the mesh's come
    // with the speaker: they follow [[nodes]]).
    if let Err(e) = node.start_peers(&config) {
        return Err(abort(&stop, node, threads, e));
    }
    if let Some(c) = &cluster {
        node.cluster = Some(ClusterState {
            secrets_dir: config
                .datastore
                .as_ref()
                .map(|d| d.secrets_dir.clone())
                .unwrap_or_default(),
            ..Default::default()
        });
        if let Some(v) = &first_view {
            node.apply_cluster(v);
        }
        for e in early_events {
            crate::api::cluster_event(&mut node, c, e);
        }
        // The file's addresses, recorded in the shared IPAM under each endpoint's handle.
        let pools = crate::api::ipam_pools(&node);
        for e in &config.endpoints {
            let ips = e.ips.iter().map(|n| n.addr()).collect();
            c.assign(
                endpoint_handle(&config.node_name, &e.name),
                ips,
                pools.clone(),
            );
        }
    }
    // The API: calls are answered below, between route batches.
    let (calls_tx, calls_rx) = xch::unbounded();
    let api = control::api::spawn(
        &control::api::ServeConfig {
            socket: config.api.socket.clone(),
            tcp: config
                .api
                .tcp()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.0))?,
        },
        calls_tx,
    )
    .inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
    info!(socket = %config.api.socket.display(), "API");
    node.events = Some(api.events.clone());
    node.config_path = options.config_path.clone();
    // Health for /livez and /readyz, and scrapes answered by this loop.
    let health = Arc::new(Health::default());
    let (scrapes_tx, scrapes_rx) = xch::unbounded::<xch::Sender<String>>();
    let _metrics = match &config.metrics {
        Some(m) => {
            let source = Arc::new(MetricsSource {
                health: health.clone(),
                scrapes: scrapes_tx,
            });
            let (addr, handle) = control::metrics::spawn_server(m.listen, source)
                .inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
            info!(%addr, "metrics");
            Some(handle)
        }
        None => None,
    };
    // systemd (Type=notify): ready now that workers forward and BGP has started.
    let mut notifier = crate::notify::Notifier::from_env()?;
    notifier.send(&format!(
        "READY=1\nSTATUS=forwarding with {} worker(s){}",
        worker_count,
        if node.speaker.is_some() {
            ", BGP started"
        } else {
            ""
        }
    ));
    health.ready.store(true, Ordering::Relaxed);
    let mut last_stats = Instant::now() - Duration::from_secs(1);
    let mut last_beats = (counters.heartbeats(), Instant::now());
    // One wait on everything that needs the loop (a route batch, an API call, a datastore
    // event, a scrape, a neighbour change): each is taken the moment it comes, and an idle
    // node wakes only for housekeeping (stats, health, asking for unresolved next hops),
    // every 90 ms. A source that has gone away (no speaker, no metrics, no neighbour
    // watch) is waited on as `never`, so it cannot spin the loop.
    let mut routes_in = routes_rx;
    let mut calls_in = calls_rx;
    let mut scrapes_in = scrapes_rx;
    let mut neighbours_in = neighbours.as_ref().map_or_else(xch::never, |n| n.events());
    let mut cluster_in = cluster
        .as_ref()
        .map_or_else(xch::never, |c| c.events.clone());
    // The endpoints last handed to the datastore's driver (none yet: the first pass
    // writes them all, and deletes what an earlier run left).
    let mut workloads_of: Option<Vec<crate::config::Endpoint>> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut batches = Vec::new();
        xch::select! {
            recv(routes_in) -> b => match b {
                Ok(b) => batches.push(b),
                Err(_) => routes_in = xch::never(),
            },
            recv(calls_in) -> call => match call {
                Ok(call) => crate::api::answer(&mut node, call, cluster.as_ref()),
                Err(_) => calls_in = xch::never(),
            },
            recv(cluster_in) -> e => match (e, &cluster) {
                (Ok(e), Some(c)) => crate::api::cluster_event(&mut node, c, e),
                _ => cluster_in = xch::never(),
            },
            recv(scrapes_in) -> reply => match reply {
                Ok(reply) => { let _ = reply.send(node.metrics()); }
                Err(_) => scrapes_in = xch::never(),
            },
            recv(neighbours_in) -> e => match (e, neighbours.as_mut()) {
                (Ok(e), Some(n)) => n.on_event(e),
                (_, n) => {
                    if let Some(n) = n {
                        n.watch_lost();
                    }
                    neighbours_in = xch::never();
                }
            },
            default(Duration::from_millis(90)) => {}
        }
        batches.extend(routes_in.try_iter());
        for call in calls_in.try_iter() {
            crate::api::answer(&mut node, call, cluster.as_ref());
        }
        if let Some(c) = &cluster {
            for e in cluster_in.try_iter() {
                crate::api::cluster_event(&mut node, c, e);
            }
            *health.not_ready.lock().unwrap() = match node.cluster.as_ref().map(|cs| &cs.status) {
                Some(s @ DatastoreStatus::Unreachable { .. }) => Some(s.describe()),
                _ => None,
            };
        }
        if options.reload.swap(false, Ordering::Relaxed) {
            notifier.send("RELOADING=1");
            match node.reload() {
                Ok(r) => info!(
                    applied = r.applied.len(),
                    needs_restart = r.needs_restart.len(),
                    "reloaded (SIGHUP)"
                ),
                Err(e) => warn!(error = %e, "reload (SIGHUP)"),
            }
            notifier.send("READY=1");
        }
        // Our endpoints as WorkloadEndpoints, handed over whole whenever they change.
        if let Some(c) = &cluster {
            if workloads_of.as_ref() != Some(&node.config.endpoints) {
                c.set_workloads(&node.config);
                workloads_of = Some(node.config.endpoints.clone());
            }
        }
        for reply in scrapes_in.try_iter() {
            let _ = reply.send(node.metrics());
        }
        if !batches.is_empty() {
            for b in &batches {
                node.apply_bgp(b);
            }
            for b in &batches {
                node.publish_bgp(b);
            }
            node.last_install = std::time::SystemTime::now();
        }
        let beats = counters.heartbeats();
        notifier.tick(beats.clone());
        // Live while every worker's heartbeat moved in the last few seconds.
        if beats.iter().zip(&last_beats.0).all(|(a, b)| a != b) {
            last_beats = (beats, Instant::now());
        }
        health.live.store(
            last_beats.1.elapsed() < Duration::from_secs(5),
            Ordering::Relaxed,
        );
        // Next hops follow the kernel's neighbour changes as they come, and a new gateway
        // is looked up at once (the kernel often knows it already: its frames wait in the
        // hold queue meanwhile).
        if let Some(n) = neighbours.as_mut() {
            for e in neighbours_in.try_iter() {
                n.on_event(e);
            }
            n.sync(
                &node.alloc.gateways,
                node.alloc.gateway_changes,
                &node.tables.nexthops,
            );
        }
        if sweep_at.is_some_and(|t| Instant::now() >= t) {
            sweep_at = None;
            node.host.sweep_kept_programs();
        }
        if last_stats.elapsed() >= options.stats_interval {
            last_stats = Instant::now();
            if let Some(path) = &options.stats_file {
                let mut json = node.stats_file_json();
                if let Some(n) = &neighbours {
                    json["neighbours"] = n.stats_json();
                }
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, json.to_string())
                    .and_then(|_| std::fs::rename(&tmp, path))
                    .is_err()
                {
                    warn!(path = %path.display(), "cannot write the stats file");
                }
            }
        }
    }
    info!("stopping");
    health.ready.store(false, Ordering::Relaxed);
    notifier.send("STOPPING=1");
    if node.speaker.is_some() {
        mark_clean_stop(&config);
    }
    drop(api);
    node.speaker = None;
    let stopping = Instant::now();
    for t in threads {
        let _ = t.join();
    }
    let joined_ms = stopping.elapsed().as_secs_f64() * 1e3;
    drop(node);
    tracing::debug!(
        joined_ms,
        dropped_ms = stopping.elapsed().as_secs_f64() * 1e3,
        "workers stopped, node state dropped"
    );
    Ok(())
}
