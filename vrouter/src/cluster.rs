//! The cluster datastore's driver: its own thread and a small tokio runtime, so etcd
//! being slow or away never stalls the control loop or the workers.
//!
//! ```text
//!  cluster thread (tokio)                         control loop
//!  ├─ sync::run: list + watch ── View / Unreachable ──▶ NodeState::apply_cluster
//!  ├─ register our Node (retried until etcd answers), then our VXLAN tunnel address
//!  ├─ ◀── Allocate (API endpoint without addresses) ── answer()
//!  │      └── Allocated {addresses or why not} ──────▶ add_endpoint with them
//!  ├─ ◀── Release (endpoint removed, or not brought up): retried until etcd answers
//!  └─ workload::keep ◀── the node's endpoints, whole, each time they change (watch)
//!         └── our WorkloadEndpoint resources made equal to them
//! ```

use crate::config::{Config, DatastoreSettings, Endpoint};
use crate::node::endpoints::EndpointRequest;
use control::api::{pb, Reply};
use crossbeam_channel as xch;
use datastore::ipam::{Ipam, IpamPool};
use datastore::member::{self, Registration};
use datastore::store::{EtcdSettings, Store};
use datastore::sync::{self, ClusterView, SyncEvent};
use datastore::workload::{self, Wanted, Workload};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc as amp, watch};
use tracing::{info, warn};

/// From the driver to the control loop.
pub enum ClusterEvent {
    View(Arc<ClusterView>),
    Unreachable {
        since: SystemTime,
        error: String,
    },
    /// Addresses for an endpoint the API asked for (or why there are none).
    Allocated {
        request: Box<EndpointRequest>,
        handle: String,
        result: Result<Vec<IpAddr>, String>,
        reply: Reply<pb::Endpoint>,
    },
}

enum Request {
    Allocate {
        request: Box<EndpointRequest>,
        handle: String,
        pools: Vec<IpamPool>,
        reply: Reply<pb::Endpoint>,
    },
    Assign {
        handle: String,
        ips: Vec<IpAddr>,
        pools: Vec<IpamPool>,
    },
    Release {
        handle: String,
    },
    /// vrouter-ipam: a handle's addresses (`lookup`: only what it holds), answered
    /// straight from the driver (no endpoint to bring up).
    HandleAllocate {
        handle: String,
        v6: bool,
        lookup: bool,
        pools: Vec<IpamPool>,
        reply: Reply<pb::AllocateAddressesReply>,
    },
    HandleRelease {
        handle: String,
        reply: Reply<pb::ReleaseAddressesReply>,
    },
}

/// An IPAM failure as the API says it: the datastore away is "unavailable" (try again).
fn ipam_status(e: &datastore::ipam::IpamError) -> tonic::Status {
    match e {
        datastore::ipam::IpamError::Store(_) => tonic::Status::unavailable(e.to_string()),
        _ => tonic::Status::resource_exhausted(e.to_string()),
    }
}

/// Addresses as the API writes them.
pub fn texts(ips: &[IpAddr]) -> Vec<String> {
    ips.iter().map(IpAddr::to_string).collect()
}

/// The control loop's end of the driver.
pub struct Cluster {
    requests: amp::UnboundedSender<Request>,
    pub events: xch::Receiver<ClusterEvent>,
    workloads: watch::Sender<Option<Arc<Wanted>>>,
    _thread: std::thread::JoinHandle<()>,
}

/// An endpoint as Calico's WorkloadEndpoint describes it. One the operator made (no
/// workload identity) is a workload of orchestrator "vrouter", named after it.
pub fn workload_of(e: &Endpoint) -> Workload {
    let id = e
        .workload
        .clone()
        .unwrap_or_else(|| crate::config::WorkloadIdentity {
            orchestrator: "vrouter".into(),
            endpoint: e.interface.clone(),
            ..Default::default()
        });
    let workload = match id.orchestrator.as_str() {
        "k8s" | "cni" => String::new(),
        _ => e.name.replace('/', "."),
    };
    Workload {
        orchestrator: id.orchestrator,
        namespace: id.namespace,
        pod: id.pod,
        container_id: e.container_id.clone().unwrap_or_default(),
        workload,
        endpoint: id.endpoint,
        interface: e.interface.clone(),
        mac: e.mac.clone().unwrap_or_default(),
        ip_networks: e.ips.iter().map(|n| IpNet::from(n.addr())).collect(),
        profiles: id.profiles,
        labels: e.labels.clone(),
    }
}

/// The WorkloadEndpoints a node's endpoints make, by key.
pub fn wanted_workloads(config: &Config) -> Wanted {
    let prefix = config
        .datastore
        .as_ref()
        .map_or("/calico", |d| d.prefix.as_str());
    let mut wanted = Wanted::new();
    for e in &config.endpoints {
        match workload::resource(prefix, &config.node_name, &workload_of(e)) {
            Ok((key, r)) => {
                wanted.insert(key, r);
            }
            Err(error) => warn!(endpoint = %e.name, %error, "no WorkloadEndpoint for it"),
        }
    }
    wanted
}

/// The IPAM handle of an endpoint of this node.
pub fn endpoint_handle(node: &str, endpoint: &str) -> String {
    format!("vrouter.{node}.{endpoint}")
}

pub fn etcd_settings(d: &DatastoreSettings) -> EtcdSettings {
    EtcdSettings {
        endpoints: d.endpoints.clone(),
        ca_cert_file: d.ca_cert_file.clone(),
        cert_file: d.cert_file.clone(),
        key_file: d.key_file.clone(),
        prefix: d.prefix.clone(),
        timeout: Duration::from_secs(2),
    }
}

/// What we say about ourselves in our Node resource.
pub fn registration(config: &Config) -> Registration {
    let v4 = config.node_ips.iter().find(|n| n.addr().is_ipv4()).copied();
    let v6 = config.node_ips.iter().find(|n| n.addr().is_ipv6()).copied();
    let mac =
        config.vxlan.vtep_mac.clone().unwrap_or_else(|| {
            datastore::model::format_mac(encap::vxlan::vtep_mac(&config.node_name))
        });
    Registration {
        name: config.node_name.clone(),
        ipv4: v4,
        ipv6: v6,
        asn: None,
        vxlan_tunnel_addr: None,
        vtep_mac: Some(mac),
        labels: config.node_labels.clone(),
    }
}

impl Cluster {
    /// Start the driver; it connects, registers and syncs in the background.
    pub fn start(config: &Config) -> io::Result<Cluster> {
        let d = config
            .datastore
            .clone()
            .ok_or_else(|| io::Error::other("no [datastore]"))?;
        let (ev_tx, ev_rx) = xch::unbounded();
        let (req_tx, req_rx) = amp::unbounded_channel();
        let (wl_tx, wl_rx) = watch::channel(None);
        let reg = registration(config);
        let settings = etcd_settings(&d);
        let thread = std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        warn!(error = %e, "cluster runtime");
                        return;
                    }
                };
                rt.block_on(drive(settings, reg, ev_tx, req_rx, wl_rx));
            })?;
        Ok(Cluster {
            requests: req_tx,
            events: ev_rx,
            workloads: wl_tx,
            _thread: thread,
        })
    }

    /// Wait up to `within` for the first view (at start, so BGP starts with the
    /// cluster's settings); events other than views are kept for the loop.
    pub fn first_view(&self, within: Duration) -> (Option<Arc<ClusterView>>, Vec<ClusterEvent>) {
        let deadline = std::time::Instant::now() + within;
        let mut other = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(ClusterEvent::View(v)) => return (Some(v), other),
                Ok(e) => other.push(e),
                Err(_) => break,
            }
        }
        (None, other)
    }

    pub fn allocate(
        &self,
        request: EndpointRequest,
        handle: String,
        pools: Vec<IpamPool>,
        reply: Reply<pb::Endpoint>,
    ) {
        let _ = self.requests.send(Request::Allocate {
            request: Box::new(request),
            handle,
            pools,
            reply,
        });
    }

    /// Record addresses given by name (the file's endpoints) in the shared IPAM.
    pub fn assign(&self, handle: String, ips: Vec<IpAddr>, pools: Vec<IpamPool>) {
        let _ = self.requests.send(Request::Assign { handle, ips, pools });
    }

    /// The node's endpoints now: its WorkloadEndpoints are made to match.
    pub fn set_workloads(&self, config: &Config) {
        self.workloads
            .send_replace(Some(Arc::new(wanted_workloads(config))));
    }

    pub fn allocate_for_handle(
        &self,
        req: pb::AllocateAddressesRequest,
        pools: Vec<IpamPool>,
        reply: Reply<pb::AllocateAddressesReply>,
    ) {
        let _ = self.requests.send(Request::HandleAllocate {
            handle: req.handle,
            v6: req.ipv6,
            lookup: req.lookup,
            pools,
            reply,
        });
    }

    pub fn release_handle(&self, handle: String, reply: Reply<pb::ReleaseAddressesReply>) {
        let _ = self.requests.send(Request::HandleRelease { handle, reply });
    }

    pub fn release(&self, handle: String) {
        let _ = self.requests.send(Request::Release { handle });
    }
}

async fn drive(
    settings: EtcdSettings,
    mut reg: Registration,
    events: xch::Sender<ClusterEvent>,
    mut requests: amp::UnboundedReceiver<Request>,
    workloads: watch::Receiver<Option<Arc<Wanted>>>,
) {
    let store = loop {
        match Store::connect(&settings).await {
            Ok(s) => break s,
            Err(e) => {
                warn!(error = %e, "datastore");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let ipam = Ipam::new(store.clone(), &reg.name);
    tokio::spawn(workload::keep(store.clone(), reg.name.clone(), workloads));
    let (sync_tx, mut sync_rx) = amp::channel(64);
    tokio::spawn(sync::run(store.clone(), sync_tx, Duration::from_secs(1)));
    let mut registered = false;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    let mut latest: Option<Arc<ClusterView>> = None;
    loop {
        tokio::select! {
            ev = sync_rx.recv() => {
                let Some(ev) = ev else { return };
                let out = match ev {
                    SyncEvent::View(v) => {
                        latest = Some(v.clone());
                        ClusterEvent::View(v)
                    }
                    SyncEvent::Unreachable { since, error } => {
                        ClusterEvent::Unreachable { since, error }
                    }
                };
                if events.send(out).is_err() {
                    return;
                }
            }
            req = requests.recv() => {
                let Some(req) = req else { return };
                serve(&ipam, req, &events);
            }
            _ = retry.tick() => {}
        }
        if !registered {
            if let Some(v) = &latest {
                registered = join(&store, &ipam, &mut reg, v).await;
            }
        }
    }
}

/// The pools our VXLAN tunnel address may come from, as calico/node's `allocateip`
/// picks them: enabled, VXLAN on, IPv4, allowedUses with Tunnel, and a nodeSelector
/// matching this node's labels (`labels`: the Node's, ours over them, and Calico's
/// implicit `projectcalico.org/name`).
pub fn tunnel_pools(view: &ClusterView, labels: &BTreeMap<String, String>) -> Vec<IpamPool> {
    view.pools
        .values()
        .map(|p| &p.spec)
        .filter(|p| !p.disabled && !p.vxlan_mode.is_empty() && p.vxlan_mode != "Never")
        .filter(|p| p.for_tunnels() && p.selects(labels))
        .filter_map(|p| {
            Some(IpamPool {
                cidr: p.cidr.parse::<IpNet>().ok()?,
                block_size: p.block_size(),
            })
        })
        .filter(|p| p.cidr.addr().is_ipv4())
        .collect()
}

/// Our labels as selectors see them: the Node resource's, ours over them, and Calico's
/// implicit `projectcalico.org/name`.
fn node_labels(view: &ClusterView, reg: &Registration) -> BTreeMap<String, String> {
    let mut labels = view
        .nodes
        .get(&reg.name)
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    labels.extend(reg.labels.clone());
    labels.insert(crate::config::NAME_LABEL.into(), reg.name.clone());
    labels
}

/// Register our Node; with a VXLAN IPv4 pool, our tunnel address first. True once done.
async fn join(store: &Store, ipam: &Ipam, reg: &mut Registration, view: &ClusterView) -> bool {
    let vxlan = tunnel_pools(view, &node_labels(view, reg));
    if reg.vxlan_tunnel_addr.is_none() && !vxlan.is_empty() {
        match member::tunnel_address(ipam, &vxlan).await {
            Ok(a) => reg.vxlan_tunnel_addr = a,
            Err(e) => {
                warn!(error = %e, "VXLAN tunnel address");
                return false;
            }
        }
    }
    match member::register(store, reg).await {
        Ok(_) => {
            info!(node = %reg.name, tunnel = ?reg.vxlan_tunnel_addr, "registered in the datastore");
            true
        }
        Err(e) => {
            warn!(error = %e, "registering our Node");
            false
        }
    }
}

fn serve(ipam: &Ipam, req: Request, events: &xch::Sender<ClusterEvent>) {
    let ipam = ipam.clone();
    let events = events.clone();
    match req {
        Request::Allocate {
            request,
            handle,
            pools,
            reply,
        } => {
            tokio::spawn(async move {
                let secondary: BTreeMap<String, String> = [
                    ("node".to_string(), ipam.node().to_string()),
                    ("endpoint".to_string(), request.name.clone()),
                ]
                .into();
                let result = assign_families(&ipam, &handle, &secondary, &pools, request.ipv6)
                    .await
                    .map_err(|(v6, e)| {
                        format!("allocating an IPv{} address: {e}", if v6 { 6 } else { 4 })
                    });
                let _ = events.send(ClusterEvent::Allocated {
                    request,
                    handle,
                    result,
                    reply,
                });
            });
        }
        Request::Assign { handle, ips, pools } => {
            tokio::spawn(async move {
                let secondary: BTreeMap<String, String> =
                    [("node".to_string(), ipam.node().to_string())].into();
                for ip in ips {
                    loop {
                        match ipam.assign_ip(ip, &handle, &secondary, &pools).await {
                            Ok(()) => break,
                            Err(datastore::ipam::IpamError::Store(e)) => {
                                warn!(%ip, error = %e, "recording an address: retrying");
                                tokio::time::sleep(Duration::from_secs(2)).await;
                            }
                            Err(e) => {
                                warn!(%ip, %handle, error = %e, "address not recorded in the shared IPAM");
                                break;
                            }
                        }
                    }
                }
            });
        }
        Request::Release { handle } => {
            tokio::spawn(async move { release_until_done(&ipam, &handle).await });
        }
        Request::HandleAllocate {
            handle,
            v6,
            lookup,
            pools,
            reply,
        } => {
            tokio::spawn(async move {
                let r = allocate_for_handle(&ipam, &handle, v6, lookup, &pools).await;
                let _ = reply.send(r.map(|ips| pb::AllocateAddressesReply {
                    addresses: texts(&ips),
                }));
            });
        }
        Request::HandleRelease { handle, reply } => {
            tokio::spawn(async move {
                let r = ipam.release_handle(&handle).await;
                let _ = reply.send(
                    r.map(|ips| pb::ReleaseAddressesReply {
                        released: texts(&ips),
                    })
                    .map_err(|e| ipam_status(&e)),
                );
            });
        }
    }
}

/// What a handle holds, or new addresses for it (what it holds if anything: a retried
/// ADD gets the same ones). A half-made allocation is undone.
async fn allocate_for_handle(
    ipam: &Ipam,
    handle: &str,
    v6: bool,
    lookup: bool,
    pools: &[IpamPool],
) -> Result<Vec<IpAddr>, tonic::Status> {
    let held = ipam
        .addresses_of(handle)
        .await
        .map_err(|e| ipam_status(&e))?;
    if lookup || !held.is_empty() {
        return Ok(held);
    }
    let secondary: BTreeMap<String, String> =
        [("node".to_string(), ipam.node().to_string())].into();
    assign_families(ipam, handle, &secondary, pools, v6)
        .await
        .map_err(|(_, e)| ipam_status(&e))
}

/// One IPv4 address for `handle` (and one IPv6 when `v6`); on failure, the family that
/// failed and why, with nothing left held.
async fn assign_families(
    ipam: &Ipam,
    handle: &str,
    secondary: &BTreeMap<String, String>,
    pools: &[IpamPool],
    v6: bool,
) -> Result<Vec<IpAddr>, (bool, datastore::ipam::IpamError)> {
    let mut got = Vec::new();
    for family_v6 in [false, true].into_iter().take(1 + usize::from(v6)) {
        match ipam.auto_assign(handle, secondary, pools, family_v6).await {
            Ok(a) => got.push(a),
            Err(e) => {
                if !got.is_empty() {
                    release_until_done(ipam, handle).await;
                }
                return Err((family_v6, e));
            }
        }
    }
    Ok(got)
}

/// Release a handle, retrying while etcd is away: an address is never leaked by a
/// datastore outage.
async fn release_until_done(ipam: &Ipam, handle: &str) {
    loop {
        match ipam.release_handle(handle).await {
            Ok(freed) => {
                info!(%handle, freed = ?freed, "released");
                return;
            }
            Err(e) => {
                warn!(%handle, error = %e, "release: retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
