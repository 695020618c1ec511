//! The running node as the control loop owns it, and its answers to API calls.
//!
//! Every change made while running (an endpoint, a pool) goes through `Live`: it is
//! checked against the whole configuration first (the same validation as the file),
//! then applied to the live tables in an order that never lets a packet see a half
//! state (next hop before route, route removed before its next hop goes), and then
//! persisted in `state_dir/api.json` so a restart brings it back.

use crate::bgp::Learned;
use crate::config::{BgpPeer, Config, EncapMode, Endpoint, EndpointKind, Pool, StaticRoute, Via};
use crate::counters::{Counters, DropReason};
use crate::daemon::{idle_port, own_blocks, EndpointPlan, IfInfo, Plan, Slot};
use crate::ecmp::GroupTable;
use crate::nexthop::{Adjacency, NextHopTable};
use crate::pipeline::{Port, PortKind};
use crate::tunnel::{Encap, TunnelTable};
use crate::worker::{PodProbe, WorkerCmd};
use crate::xdp::{PrefixClass, XdpProgram, XdpRole};
use control::api::pb;
use control::api::Call;
use control::ipam::{self, Ipam};
use fib::{Fib4, Fib6, NextHopId};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use tonic::Status;
use tracing::{info, warn};

/// What was added through the API, kept in `state_dir/api.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiState {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
}

impl ApiState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("api.json")
    }

    pub fn load(dir: &Path) -> io::Result<ApiState> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ApiState::default()),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialises");
        ipam::write_atomic(&Self::path(dir), text.as_bytes())
    }

    /// Add what the file does not already have (the file wins on a name or cidr clash).
    pub fn merge_into(&self, config: &mut Config) {
        for p in &self.pools {
            if config.pools.iter().any(|q| q.cidr == p.cidr) {
                warn!(pool = %p.cidr, "pool added through the API is now in the file: the file's wins");
            } else {
                config.pools.push(p.clone());
            }
        }
        for e in &self.endpoints {
            if config.endpoints.iter().any(|f| f.name == e.name) {
                warn!(endpoint = %e.name, "endpoint added through the API is now in the file: the file's wins");
            } else {
                config.endpoints.push(e.clone());
            }
        }
        for r in &self.routes {
            if !config.routes.iter().any(|f| f.dst.trunc() == r.dst.trunc()) {
                config.routes.push(r.clone());
            }
        }
        if let Some(b) = config.bgp.as_mut() {
            for p in &self.peers {
                if !b.peers.iter().any(|f| f.address == p.address) {
                    b.peers.push(p.clone());
                }
            }
        }
    }

    /// What of `config` came from here (not from `file`).
    pub fn origins(&self, file: &Config) -> Origins {
        Origins {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| e.name.clone())
                .filter(|n| !file.endpoints.iter().any(|f| &f.name == n))
                .collect(),
            pools: self
                .pools
                .iter()
                .map(|p| p.cidr)
                .filter(|c| !file.pools.iter().any(|f| &f.cidr == c))
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| r.dst.trunc())
                .filter(|d| !file.routes.iter().any(|f| f.dst.trunc() == *d))
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|p| p.address)
                .filter(|a| {
                    !file
                        .bgp
                        .as_ref()
                        .is_some_and(|b| b.peers.iter().any(|f| f.address == *a))
                })
                .collect(),
        }
    }
}

/// IPAM pools of a configuration.
pub fn ipam_pools(config: &Config) -> Vec<ipam::Pool> {
    config
        .pools
        .iter()
        .map(|p| ipam::Pool {
            cidr: p.cidr.trunc(),
            block_size: p.block_size(),
            disabled: p.disabled,
        })
        .collect()
}

/// Open IPAM and make it agree with the configuration: addresses of endpoints no
/// longer there are released, every endpoint's pool addresses are assigned to it.
pub fn open_ipam(config: &Config) -> io::Result<Ipam> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.state_dir.display())))?;
    let mut ipam = Ipam::open(ipam_pools(config), Some(config.state_dir.join("ipam.json")))?;
    for owner in ipam.endpoints() {
        if !config.endpoints.iter().any(|e| e.name == owner) {
            ipam.release(&owner);
        }
    }
    for e in &config.endpoints {
        for ip in &e.ips {
            if config.pools.iter().any(|p| p.cidr.contains(ip)) {
                if let Err(err) = ipam.assign(&e.name, ip.addr()) {
                    // The configuration is the authority: take the address back.
                    warn!(endpoint = %e.name, error = %err, "IPAM disagreed; reassigning");
                    if let Some(other) = ipam.owner(ip.addr()).map(str::to_string) {
                        ipam.release(&other);
                    }
                    let _ = ipam.assign(&e.name, ip.addr());
                }
            }
        }
    }
    ipam.save()?;
    Ok(ipam)
}

/// What /livez and /readyz answer (set by the control loop).
#[derive(Debug, Default)]
pub struct Health {
    pub live: std::sync::atomic::AtomicBool,
    pub ready: std::sync::atomic::AtomicBool,
}

/// The metrics server's view of the node: scrapes are answered by the control loop.
pub struct MetricsSource {
    pub health: Arc<Health>,
    pub scrapes: std::sync::Mutex<mpsc::Sender<mpsc::Sender<String>>>,
}

impl control::metrics::HealthSource for MetricsSource {
    fn metrics(&self) -> String {
        let (tx, rx) = mpsc::channel();
        if self.scrapes.lock().unwrap().send(tx).is_err() {
            return String::new();
        }
        rx.recv_timeout(Duration::from_secs(4)).unwrap_or_default()
    }
    fn live(&self) -> bool {
        self.health.live.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn ready(&self) -> bool {
        self.health.ready.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Which endpoints and pools came from the API (the rest are the file's).
#[derive(Debug, Default)]
pub struct Origins {
    pub endpoints: BTreeSet<String>,
    pub pools: BTreeSet<IpNet>,
    pub routes: BTreeSet<IpNet>,
    pub peers: BTreeSet<IpAddr>,
}

/// Everything the control loop owns while the node runs.
pub struct Live {
    pub config: Config,
    pub plan: Plan,
    pub nexthops: Arc<NextHopTable>,
    pub tunnels: Arc<TunnelTable>,
    pub groups: Arc<GroupTable>,
    pub fib4: Fib4,
    pub fib6: Fib6,
    pub learned: Learned,
    pub speaker: Option<control::speaker::Speaker>,
    pub uplink_progs: Vec<Arc<XdpProgram>>,
    pub endpoint_progs: HashMap<String, Arc<XdpProgram>>,
    pub workers: Vec<mpsc::Sender<WorkerCmd>>,
    pub counters: Arc<Counters>,
    pub ipam: Ipam,
    pub origins: Origins,
    pub started: Instant,
    pub last_install: SystemTime,
    /// The largest endpoint MTU the workers' frames carry.
    pub endpoint_mtu_limit: u16,
    pub events: Option<tokio::sync::broadcast::Sender<pb::Event>>,
    pub info: fn(&str) -> io::Result<IfInfo>,
    /// The file `reload` reads (None: reload refused).
    pub config_path: Option<PathBuf>,
}

fn invalid(m: impl Into<String>) -> Status {
    Status::invalid_argument(m.into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn mode_text(m: EncapMode) -> &'static str {
    match m {
        EncapMode::Always => "Always",
        EncapMode::CrossSubnet => "CrossSubnet",
        EncapMode::Never => "Never",
    }
}

fn parse_mode(s: &str, field: &str) -> Result<EncapMode, Status> {
    match s {
        "" | "Never" => Ok(EncapMode::Never),
        "Always" => Ok(EncapMode::Always),
        "CrossSubnet" => Ok(EncapMode::CrossSubnet),
        _ => Err(invalid(format!(
            "{field} {s:?}: must be Always, CrossSubnet or Never"
        ))),
    }
}

/// A host address (`10.0.0.1` or `10.0.0.1/32`).
fn parse_host(s: &str) -> Result<IpNet, Status> {
    let net = if s.contains('/') {
        s.parse::<IpNet>()
            .map_err(|e| invalid(format!("address {s:?}: {e}")))?
    } else {
        IpNet::from(
            s.parse::<IpAddr>()
                .map_err(|e| invalid(format!("address {s:?}: {e}")))?,
        )
    };
    if net.prefix_len() != net.max_prefix_len() {
        return Err(invalid(format!("address {s}: must be a host address")));
    }
    Ok(net)
}

impl Live {
    /// Answer one API call.
    pub fn answer(&mut self, call: Call) {
        match call {
            Call::NodeStatus(_, tx) => {
                let _ = tx.send(Ok(self.node_status()));
            }
            Call::ListPeers(_, tx) => {
                let _ = tx.send(Ok(pb::ListPeersReply {
                    peers: self.peers(),
                }));
            }
            Call::ListEndpoints(_, tx) => {
                let _ = tx.send(Ok(pb::ListEndpointsReply {
                    endpoints: self
                        .plan
                        .endpoints
                        .iter()
                        .map(|e| self.endpoint_pb(e))
                        .collect(),
                }));
            }
            Call::AddEndpoint(e, tx) => {
                let _ = tx.send(self.add_endpoint(e));
            }
            Call::RemoveEndpoint(r, tx) => {
                let _ = tx.send(self.remove_endpoint(&r.name));
            }
            Call::ListRoutes(r, tx) => {
                let _ = tx.send(self.list_routes(&r));
            }
            Call::AddRoute(r, tx) => {
                let _ = tx.send(self.add_route(r));
            }
            Call::RemoveRoute(r, tx) => {
                let _ = tx.send(self.remove_route(&r.prefix));
            }
            Call::ApplyPool(p, tx) => {
                let _ = tx.send(self.apply_pool(p));
            }
            Call::ListPools(_, tx) => {
                let _ = tx.send(Ok(pb::ListPoolsReply {
                    pools: self.config.pools.iter().map(|p| self.pool_pb(p)).collect(),
                }));
            }
            Call::RemovePool(r, tx) => {
                let _ = tx.send(self.remove_pool(&r.cidr));
            }
            Call::AddPeer(p, tx) => {
                let _ = tx.send(self.add_peer(p));
            }
            Call::RemovePeer(r, tx) => {
                let _ = tx.send(self.remove_peer(&r.address));
            }
            Call::GetStats(_, tx) => {
                let _ = tx.send(Ok(self.stats()));
            }
            Call::Reload(_, tx) => {
                let _ = tx.send(self.reload().map(|changes| pb::ReloadReply { changes }));
            }
        }
    }

    fn node_status(&self) -> pb::NodeStatusReply {
        let bgp = self.config.bgp.as_ref();
        pb::NodeStatusReply {
            node_name: self.config.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            workers: self.config.workers.count as u32,
            bgp_enabled: bgp.is_some(),
            asn: bgp.map_or(0, |b| b.asn),
            router_id: self
                .speaker_router_id()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            peers: self.peers(),
            routes_installed: self.learned.len() as u64,
        }
    }

    fn speaker_router_id(&self) -> Option<Ipv4Addr> {
        let b = self.config.bgp.as_ref()?;
        b.router_id.or_else(|| {
            self.config.node_ips.iter().find_map(|n| match n.addr() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
        })
    }

    fn peers(&self) -> Vec<pb::Peer> {
        let Some(sp) = &self.speaker else {
            return Vec::new();
        };
        let mesh = self.config.bgp.as_ref().is_some_and(|b| b.mesh);
        sp.status
            .lock()
            .unwrap()
            .iter()
            .map(|p| {
                let in_mesh = mesh
                    && self
                        .config
                        .nodes
                        .iter()
                        .any(|n| n.ips.iter().any(|i| i.addr() == p.address));
                pb::Peer {
                    address: p.address.to_string(),
                    asn: p.asn,
                    peer_type: if self.origins.peers.contains(&p.address) {
                        "api"
                    } else if in_mesh {
                        "node-to-node mesh"
                    } else {
                        "global"
                    }
                    .into(),
                    state: p.state.clone(),
                    since: p
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    info: p.info.clone(),
                    prefixes_received: p.prefixes_received as u64,
                    prefixes_sent: p.prefixes_sent as u64,
                    ibgp: p.ibgp,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn endpoint_pb(&self, e: &EndpointPlan) -> pb::Endpoint {
        let mac = match self.nexthops.get(e.nh) {
            Some(Adjacency::Forward { mac, .. }) => Some(mac),
            _ => e.mac,
        };
        let ips = self
            .config
            .endpoints
            .iter()
            .find(|c| c.name == e.name)
            .map(|c| c.ips.iter().map(|i| i.addr().to_string()).collect())
            .unwrap_or_default();
        pb::Endpoint {
            name: e.name.clone(),
            kind: match e.kind {
                EndpointKind::Veth => "veth",
                EndpointKind::Tap => "tap",
            }
            .into(),
            interface: e.interface.clone(),
            addresses: ips,
            mac: mac.map(mac_text).unwrap_or_default(),
            ipv6: e.v6.is_some(),
            worker: e.worker as u32,
            origin: if self.origins.endpoints.contains(&e.name) {
                "api"
            } else {
                "config"
            }
            .into(),
        }
    }

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

    /// Route events for a batch of BGP changes (only built when someone watches).
    pub fn publish_bgp(&self, changes: &[control::speaker::RouteChange]) {
        if self.events.as_ref().is_none_or(|e| e.receiver_count() == 0) {
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

    fn persist(&self) -> Result<(), Status> {
        let state = ApiState {
            endpoints: self
                .config
                .endpoints
                .iter()
                .filter(|e| self.origins.endpoints.contains(&e.name))
                .cloned()
                .collect(),
            pools: self
                .config
                .pools
                .iter()
                .filter(|p| self.origins.pools.contains(&p.cidr))
                .cloned()
                .collect(),
            routes: self
                .config
                .routes
                .iter()
                .filter(|r| self.origins.routes.contains(&r.dst.trunc()))
                .cloned()
                .collect(),
            peers: self
                .config
                .bgp
                .iter()
                .flat_map(|b| &b.peers)
                .filter(|p| self.origins.peers.contains(&p.address))
                .cloned()
                .collect(),
        };
        state
            .save(&self.config.state_dir)
            .and_then(|_| self.ipam.save())
            .map_err(|e| Status::internal(format!("saving the state: {e}")))
    }

    fn ask_worker<T>(
        &self,
        w: usize,
        make: impl FnOnce(mpsc::Sender<T>) -> WorkerCmd,
    ) -> Result<T, Status> {
        let (tx, rx) = mpsc::channel();
        self.workers[w]
            .send(make(tx))
            .map_err(|_| Status::internal(format!("worker {w} has stopped")))?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| Status::internal(format!("worker {w} did not answer")))
    }

    fn set_port_everywhere(&self, port: crate::nexthop::PortId, p: &Port) {
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetPort(port, p.clone()));
        }
    }

    fn add_endpoint(&mut self, req: pb::Endpoint) -> Result<pb::Endpoint, Status> {
        if req.name.is_empty() || req.interface.is_empty() {
            return Err(invalid("an endpoint needs a name and an interface"));
        }
        if self.plan.endpoints.iter().any(|e| e.name == req.name) {
            return Err(Status::already_exists(format!(
                "endpoint {} exists",
                req.name
            )));
        }
        let kind = match req.kind.as_str() {
            "" | "veth" => EndpointKind::Veth,
            "tap" => EndpointKind::Tap,
            k => return Err(invalid(format!("kind {k:?}: veth or tap"))),
        };
        let mac = match req.mac.as_str() {
            "" => None,
            m => Some(
                crate::config::parse_mac(m)
                    .map(|_| m.to_string())
                    .ok_or_else(|| invalid(format!("mac {m:?}: not aa:bb:cc:dd:ee:ff")))?,
            ),
        };
        let given: Vec<IpNet> = req
            .addresses
            .iter()
            .map(|a| parse_host(a))
            .collect::<Result<_, _>>()?;
        self.interface_mtu(&req.interface, kind)?;
        // Addresses: the ones asked for, or allocated (IPv4, and IPv6 when asked).
        let mut ips = given.clone();
        if ips.is_empty() {
            let mut families = vec![false];
            if req.ipv6 {
                families.push(true);
            }
            for v6 in families {
                match self.ipam.allocate(&req.name, v6) {
                    Ok(a) => ips.push(IpNet::from(a)),
                    Err(e) => {
                        self.ipam.release(&req.name);
                        return Err(Status::resource_exhausted(format!(
                            "allocating an IPv{} address: {e}",
                            if v6 { 6 } else { 4 }
                        )));
                    }
                }
            }
        }
        let endpoint = Endpoint {
            name: req.name.clone(),
            kind,
            interface: req.interface.clone(),
            ips,
            mac,
        };
        self.install_endpoint(endpoint, true)
    }

    fn interface_mtu(&self, interface: &str, kind: EndpointKind) -> Result<u16, Status> {
        let mtu = match ((self.info)(interface), kind) {
            (Ok(i), _) => i.mtu,
            (Err(_), EndpointKind::Tap) => 1500,
            (Err(e), EndpointKind::Veth) => {
                return Err(Status::not_found(format!("interface {interface}: {e}")))
            }
        };
        if mtu > self.endpoint_mtu_limit {
            return Err(Status::failed_precondition(format!(
                "interface {interface} has MTU {mtu}; endpoints added while running carry at most {}",
                self.endpoint_mtu_limit
            )));
        }
        Ok(mtu)
    }

    /// Bring up an endpoint whose addresses are decided (taken in IPAM here when they
    /// are in a pool); `api`: added through the API (kept in api.json).
    fn install_endpoint(&mut self, endpoint: Endpoint, api: bool) -> Result<pb::Endpoint, Status> {
        let name = endpoint.name.clone();
        let fail = |me: &mut Live, e: Status| {
            me.ipam.release(&name);
            Err(e)
        };
        for ip in &endpoint.ips {
            if self.config.pools.iter().any(|p| p.cidr.contains(ip)) {
                if let Err(e) = self.ipam.assign(&name, ip.addr()) {
                    return fail(self, Status::already_exists(e.to_string()));
                }
            }
        }
        let mut candidate = self.config.clone();
        candidate.endpoints.push(endpoint.clone());
        if let Err(e) = candidate.validate() {
            return fail(self, invalid(e.0));
        }
        let mtu = match self.interface_mtu(&endpoint.interface, endpoint.kind) {
            Ok(m) => m,
            Err(e) => return fail(self, e),
        };
        let Some(slot) = self.plan.free_slots.pop() else {
            return fail(
                self,
                Status::resource_exhausted(
                    "no free endpoint slot: raise [workers] endpoint_slots and restart",
                ),
            );
        };
        let ips = endpoint.ips.clone();
        match self.open_endpoint(&endpoint, slot, mtu) {
            Ok(ep) => {
                self.config = candidate;
                if api {
                    self.origins.endpoints.insert(endpoint.name.clone());
                }
                self.plan.endpoints.push(ep.clone());
                self.sync_blocks();
                self.persist()?;
                let reply = self.endpoint_pb(&ep);
                info!(endpoint = %ep.name, interface = %ep.interface, worker = ep.worker, "endpoint added");
                for ip in &ips {
                    self.publish(pb::event::What::Route(pb::RouteEvent {
                        op: "add".into(),
                        route: Some(pb::Route {
                            prefix: ip.to_string(),
                            source: "connected".into(),
                            out: vec![ep.interface.clone()],
                            encapsulation: "none".into(),
                            ..Default::default()
                        }),
                    }));
                }
                self.publish(pb::event::What::Endpoint(pb::EndpointEvent {
                    op: "add".into(),
                    endpoint: Some(reply.clone()),
                }));
                Ok(reply)
            }
            Err(e) => {
                self.plan.free_slots.push(slot);
                fail(self, e)
            }
        }
    }

    /// Bring an endpoint up in `slot`: XDP program, port, socket, next hop, routes.
    fn open_endpoint(
        &mut self,
        e: &Endpoint,
        slot: Slot,
        mtu: u16,
    ) -> Result<EndpointPlan, Status> {
        let (v4, v6): (Vec<u32>, Vec<u128>) = (
            e.ips
                .iter()
                .filter_map(|i| match i {
                    IpNet::V4(n) => Some(u32::from(n.addr())),
                    _ => None,
                })
                .collect(),
            e.ips
                .iter()
                .filter_map(|i| match i {
                    IpNet::V6(n) => Some(u128::from(n.addr())),
                    _ => None,
                })
                .collect(),
        );
        let steer = match e.kind {
            EndpointKind::Veth => {
                let prog =
                    crate::daemon::attach(&e.interface, XdpRole::Endpoint, self.config.xdp_mode)
                        .map_err(|err| {
                            Status::failed_precondition(format!("XDP on {}: {err}", e.interface))
                        })?;
                for l in &self.config.node_ips {
                    let host = IpNet::new(l.addr(), l.max_prefix_len()).expect("host prefix");
                    let _ = prog.add_prefix(host, PrefixClass::Local);
                }
                Some(Arc::new(prog))
            }
            EndpointKind::Tap => None,
        };
        let port = Port {
            mac: crate::arp::HOST_SIDE_MAC,
            mtu,
            kind: PortKind::Endpoint {
                v4: v4.clone(),
                v6: v6.clone(),
            },
        };
        self.set_port_everywhere(slot.port, &port);
        let mac = e.mac.as_deref().and_then(crate::config::parse_mac);
        self.nexthops.set(
            slot.nh,
            match mac {
                Some(mac) => Adjacency::Forward {
                    port: slot.port,
                    mac,
                },
                None => Adjacency::Incomplete,
            },
        );
        let spec = match e.kind {
            EndpointKind::Veth => crate::io::afxdp::PortSpec::Xsk {
                ifname: e.interface.clone(),
                queue: 0,
                uplink: false,
            },
            EndpointKind::Tap => crate::io::afxdp::PortSpec::Tap {
                name: e.interface.clone(),
            },
        };
        let probe = PodProbe {
            port: slot.port,
            nh: slot.nh,
            v4: v4.first().map(|&a| Ipv4Addr::from(a)),
            v6: v6.first().map(|&a| Ipv6Addr::from(a)),
        };
        let opened = self.ask_worker(slot.worker, |done| WorkerCmd::Open {
            id: slot.port,
            spec,
            probe,
            steer: steer.clone(),
            done,
        })?;
        if let Err(err) = opened {
            self.set_port_everywhere(slot.port, &idle_port());
            return Err(Status::failed_precondition(format!(
                "opening {}: {err}",
                e.interface
            )));
        }
        if let Some(p) = steer {
            self.endpoint_progs.insert(e.interface.clone(), p);
        }
        for ip in &e.ips {
            self.learned.set_configured(*ip, true);
            match ip {
                IpNet::V4(n) => {
                    self.fib4.insert(*n, NextHopId(slot.nh));
                }
                IpNet::V6(n) => {
                    self.fib6.insert(*n, NextHopId(slot.nh));
                }
            }
            for u in &self.uplink_progs {
                let _ = u.add_prefix(*ip, PrefixClass::Ours);
            }
        }
        self.plan.port_names[slot.port.0 as usize] = e.interface.clone();
        Ok(EndpointPlan {
            name: e.name.clone(),
            kind: e.kind,
            interface: e.interface.clone(),
            port: slot.port,
            nh: slot.nh,
            mac,
            v4: v4.first().map(|&a| Ipv4Addr::from(a)),
            v6: v6.first().map(|&a| Ipv6Addr::from(a)),
            worker: slot.worker,
        })
    }

    fn remove_endpoint(&mut self, name: &str) -> Result<pb::RemoveEndpointReply, Status> {
        let Some(i) = self.plan.endpoints.iter().position(|e| e.name == name) else {
            return Err(Status::not_found(format!("no endpoint {name}")));
        };
        if !self.origins.endpoints.contains(name) {
            return Err(Status::failed_precondition(format!(
                "endpoint {name} comes from the configuration file: remove it there"
            )));
        }
        self.uninstall_endpoint(i)
    }

    /// Take endpoint `plan.endpoints[i]` down: routes, next hop, socket, port, IPAM.
    fn uninstall_endpoint(&mut self, i: usize) -> Result<pb::RemoveEndpointReply, Status> {
        let ep = self.plan.endpoints.remove(i);
        let name = ep.name.as_str();
        let config_ep = self
            .config
            .endpoints
            .iter()
            .position(|e| e.name == name)
            .map(|k| self.config.endpoints.remove(k));
        let ips = config_ep.map(|e| e.ips).unwrap_or_default();
        // Routes first, so nothing new is sent toward the port while it closes.
        for ip in &ips {
            self.remove_route_of(*ip);
            for u in &self.uplink_progs {
                if !self.config.pools.iter().any(|p| p.cidr.contains(ip)) {
                    let _ = u.remove_prefix(*ip);
                }
            }
        }
        self.nexthops.set(ep.nh, Adjacency::Incomplete);
        let steer = self.endpoint_progs.remove(&ep.interface);
        self.ask_worker(ep.worker, |done| WorkerCmd::Close {
            id: ep.port,
            steer: steer.clone(),
            done,
        })?;
        self.set_port_everywhere(ep.port, &idle_port());
        // The XDP program detaches when its last holder (here) lets it go.
        drop(steer);
        self.plan.port_names[ep.port.0 as usize] = String::new();
        self.plan.free_slots.push(Slot {
            port: ep.port,
            nh: ep.nh,
            worker: ep.worker,
        });
        self.origins.endpoints.remove(name);
        let released = self.ipam.release(name);
        self.sync_blocks();
        self.persist()?;
        info!(endpoint = %name, "endpoint removed");
        for ip in &ips {
            self.publish(pb::event::What::Route(pb::RouteEvent {
                op: "remove".into(),
                route: Some(pb::Route {
                    prefix: ip.to_string(),
                    source: "connected".into(),
                    ..Default::default()
                }),
            }));
        }
        self.publish(pb::event::What::Endpoint(pb::EndpointEvent {
            op: "remove".into(),
            endpoint: Some(pb::Endpoint {
                name: name.to_string(),
                interface: ep.interface.clone(),
                addresses: ips.iter().map(|i| i.addr().to_string()).collect(),
                ..Default::default()
            }),
        }));
        Ok(pb::RemoveEndpointReply {
            released: released.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// A configured prefix leaves the FIB; BGP's route for it, if any, takes its place.
    fn remove_route_of(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(n) => {
                self.fib4.remove(n.trunc());
            }
            IpNet::V6(n) => {
                self.fib6.remove(n.trunc());
            }
        }
        let mut t = crate::bgp::Tables {
            nexthops: &self.nexthops,
            tunnels: &self.tunnels,
            groups: &self.groups,
            fib4: &mut self.fib4,
            fib6: &mut self.fib6,
        };
        self.learned
            .unconfigure(&self.config, &mut self.plan, &mut t, prefix);
    }

    /// Our blocks follow our endpoints: blackhole routes and BGP announcements.
    fn sync_blocks(&mut self) {
        let Some(blackhole) = self.plan.blackhole else {
            return;
        };
        let now = own_blocks(&self.config);
        for b in self.plan.own_blocks.clone() {
            if !now.contains(&b) {
                self.remove_route_of(b);
            }
        }
        for b in &now {
            if !self.plan.own_blocks.contains(b) {
                self.learned.set_configured(*b, true);
                match b {
                    IpNet::V4(n) => {
                        self.fib4.insert(*n, NextHopId(blackhole));
                    }
                    IpNet::V6(n) => {
                        self.fib6.insert(*n, NextHopId(blackhole));
                    }
                }
            }
        }
        if now != self.plan.own_blocks {
            if let Some(sp) = &self.speaker {
                sp.set_advertised(now.clone());
            }
            self.plan.own_blocks = now;
        }
    }

    fn pool_pb(&self, p: &Pool) -> pb::Pool {
        pb::Pool {
            cidr: p.cidr.to_string(),
            block_size: p.block_size() as u32,
            ipip_mode: mode_text(p.ipip_mode).into(),
            vxlan_mode: mode_text(p.vxlan_mode).into(),
            nat_outgoing: p.nat_outgoing,
            disabled: p.disabled,
            blocks: self
                .ipam
                .blocks()
                .iter()
                .filter(|b| p.cidr.contains(*b))
                .map(|b| b.to_string())
                .collect(),
            origin: if self.origins.pools.contains(&p.cidr) {
                "api"
            } else {
                "config"
            }
            .into(),
        }
    }

    fn apply_pool(&mut self, req: pb::Pool) -> Result<pb::Pool, Status> {
        let cidr: IpNet = req
            .cidr
            .parse()
            .map_err(|e| invalid(format!("cidr {:?}: {e}", req.cidr)))?;
        if cidr != cidr.trunc() {
            return Err(invalid(format!(
                "cidr {cidr}: host bits set (did you mean {}?)",
                cidr.trunc()
            )));
        }
        let pool = Pool {
            cidr,
            block_size: (req.block_size != 0).then_some(req.block_size.min(255) as u8),
            ipip_mode: parse_mode(&req.ipip_mode, "ipipMode")?,
            vxlan_mode: parse_mode(&req.vxlan_mode, "vxlanMode")?,
            nat_outgoing: req.nat_outgoing,
            disabled: req.disabled,
        };
        if self.config.pools.iter().any(|p| p.cidr == cidr) && !self.origins.pools.contains(&cidr) {
            return Err(Status::failed_precondition(format!(
                "pool {cidr} comes from the configuration file: change it there"
            )));
        }
        self.install_pool(pool, true)
    }

    /// Create or update a pool; `api`: kept in api.json.
    fn install_pool(&mut self, pool: Pool, api: bool) -> Result<pb::Pool, Status> {
        let cidr = pool.cidr;
        let existing = self.config.pools.iter().position(|p| p.cidr == cidr);
        if let Some(i) = existing {
            let old = &self.config.pools[i];
            if old.block_size() != pool.block_size()
                && self.ipam.blocks().iter().any(|b| cidr.contains(b))
            {
                return Err(Status::failed_precondition(format!(
                    "pool {cidr}: the block size cannot change while blocks are in use"
                )));
            }
        }
        let mut candidate = self.config.clone();
        match existing {
            Some(i) => candidate.pools[i] = pool.clone(),
            None => candidate.pools.push(pool.clone()),
        }
        candidate.validate().map_err(|e| invalid(e.0))?;
        self.config = candidate;
        if api {
            self.origins.pools.insert(cidr);
        }
        self.ipam.set_pools(ipam_pools(&self.config));
        for u in &self.uplink_progs {
            let _ = u.add_prefix(cidr, PrefixClass::Ours);
        }
        self.sync_overlay();
        self.persist()?;
        info!(pool = %cidr, "pool applied");
        Ok(self.pool_pb(&pool))
    }

    fn remove_pool(&mut self, cidr: &str) -> Result<pb::RemovePoolReply, Status> {
        let cidr: IpNet = cidr
            .parse()
            .map_err(|e| invalid(format!("cidr {cidr:?}: {e}")))?;
        let Some(i) = self.config.pools.iter().position(|p| p.cidr == cidr) else {
            return Err(Status::not_found(format!("no pool {cidr}")));
        };
        if !self.origins.pools.contains(&cidr) {
            return Err(Status::failed_precondition(format!(
                "pool {cidr} comes from the configuration file: remove it there"
            )));
        }
        self.uninstall_pool(i)
    }

    fn uninstall_pool(&mut self, i: usize) -> Result<pb::RemovePoolReply, Status> {
        let cidr = self.config.pools[i].cidr;
        let users: Vec<&str> = self
            .config
            .endpoints
            .iter()
            .filter(|e| e.ips.iter().any(|ip| cidr.contains(ip)))
            .map(|e| e.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(Status::failed_precondition(format!(
                "pool {cidr} is in use by endpoint(s) {}",
                users.join(", ")
            )));
        }
        self.config.pools.remove(i);
        self.origins.pools.remove(&cidr);
        self.ipam.set_pools(ipam_pools(&self.config));
        for u in &self.uplink_progs {
            let _ = u.remove_prefix(cidr);
        }
        self.sync_overlay();
        self.persist()?;
        info!(pool = %cidr, "pool removed");
        Ok(pb::RemovePoolReply {})
    }

    /// Workers decapsulate only toward our pools: tell them the new list.
    fn sync_overlay(&mut self) {
        let pools: Vec<IpNet> = self.config.pools.iter().map(|p| p.cidr).collect();
        let (v4, v6) = crate::daemon::split_networks(&pools);
        self.plan.overlay.pools_v4 = v4;
        self.plan.overlay.pools_v6 = v6;
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetOverlay(self.plan.overlay.clone()));
        }
    }

    fn add_peer(&mut self, p: pb::Peer) -> Result<pb::Peer, Status> {
        let address: IpAddr = p
            .address
            .parse()
            .map_err(|e| invalid(format!("address {:?}: {e}", p.address)))?;
        if p.asn == 0 {
            return Err(invalid("asn is needed"));
        }
        if p.hold_time > 65535 || p.port > 65535 {
            return Err(invalid("hold_time and port: at most 65535"));
        }
        let peer = BgpPeer {
            address,
            asn: Some(p.asn),
            password: (!p.password.is_empty()).then(|| p.password.clone()),
            rr_client: p.rr_client,
            hold_time: if p.hold_time == 0 {
                90
            } else {
                p.hold_time as u16
            },
            keepalive: None,
            port: if p.port == 0 { 179 } else { p.port as u16 },
            passive: p.passive,
        };
        self.install_peer(peer, true)?;
        Ok(pb::Peer {
            address: address.to_string(),
            asn: p.asn,
            peer_type: "api".into(),
            ..Default::default()
        })
    }

    /// Start a session with a `[[bgp.peers]]`-shaped peer (validated as the file's are).
    fn install_peer(&mut self, peer: BgpPeer, api: bool) -> Result<(), Status> {
        let Some(sp) = &self.speaker else {
            return Err(Status::failed_precondition(
                "BGP is not enabled ([bgp] absent from the configuration)",
            ));
        };
        let mut candidate = self.config.clone();
        let b = candidate
            .bgp
            .as_mut()
            .expect("a speaker runs only with [bgp]");
        b.peers.push(peer.clone());
        candidate.validate().map_err(|e| invalid(e.0))?;
        let cfg = crate::bgp::peer_config(candidate.bgp.as_ref().unwrap(), &peer);
        sp.add_peer(cfg).map_err(Status::already_exists)?;
        self.config = candidate;
        if api {
            self.origins.peers.insert(peer.address);
        }
        self.persist()?;
        info!(peer = %peer.address, "BGP peer added");
        Ok(())
    }

    fn remove_peer(&mut self, address: &str) -> Result<pb::RemovePeerReply, Status> {
        let address: IpAddr = address
            .parse()
            .map_err(|e| invalid(format!("address {address:?}: {e}")))?;
        if !self.origins.peers.contains(&address) {
            let known = self
                .peers()
                .iter()
                .any(|p| p.address == address.to_string());
            return Err(if known {
                Status::failed_precondition(format!(
                    "peer {address} comes from the configuration (file or mesh): remove it there"
                ))
            } else {
                Status::not_found(format!("{address} is not a peer"))
            });
        }
        self.uninstall_peer(address)?;
        Ok(pb::RemovePeerReply {})
    }

    fn uninstall_peer(&mut self, address: IpAddr) -> Result<(), Status> {
        let Some(sp) = &self.speaker else {
            return Err(Status::failed_precondition("BGP is not enabled"));
        };
        sp.remove_peer(address).map_err(Status::not_found)?;
        if let Some(b) = self.config.bgp.as_mut() {
            b.peers.retain(|p| p.address != address);
        }
        self.origins.peers.remove(&address);
        self.persist()?;
        info!(peer = %address, "BGP peer removed");
        Ok(())
    }

    fn add_route(&mut self, r: pb::AddRouteRequest) -> Result<pb::Route, Status> {
        let dst: IpNet = r
            .prefix
            .parse()
            .map_err(|e| invalid(format!("prefix {:?}: {e}", r.prefix)))?;
        let via: Vec<IpAddr> = r
            .via
            .iter()
            .map(|v| v.parse().map_err(|e| invalid(format!("via {v:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        let route = StaticRoute {
            dst,
            via: match via.len() {
                0 => None,
                1 => Some(Via::One(via[0])),
                _ => Some(Via::Many(via)),
            },
            node: (!r.node.is_empty()).then(|| r.node.clone()),
            uplink: (!r.uplink.is_empty()).then(|| r.uplink.clone()),
        };
        if route.via.is_some() == route.node.is_some() {
            return Err(invalid("a route needs either via (one or more) or node"));
        }
        self.install_route(route, true)
    }

    /// Add a static route: its next hop (neighbour, ECMP group, tunnel) goes live first.
    fn install_route(&mut self, r: StaticRoute, api: bool) -> Result<pb::Route, Status> {
        let dst = r.dst.trunc();
        if self.config.routes.iter().any(|x| x.dst.trunc() == dst) {
            return Err(Status::already_exists(format!(
                "a static route to {dst} exists"
            )));
        }
        if self.config.endpoints.iter().any(|e| e.ips.contains(&dst)) {
            return Err(Status::already_exists(format!(
                "{dst} is an endpoint's address"
            )));
        }
        let mut candidate = self.config.clone();
        candidate.routes.push(r.clone());
        candidate.validate().map_err(|e| invalid(e.0))?;
        // A route may need an ECMP group and up to two next hops (tunnel, underlay).
        if self.plan.nexthop_count as usize + 2 + r.via.as_ref().map_or(1, |v| v.addrs().len())
            > self.nexthops.capacity()
            || self.plan.tunnels.len() >= self.tunnels.capacity()
            || self.plan.groups.len() >= self.groups.capacity()
        {
            return Err(Status::resource_exhausted(
                "no room for more next hops, tunnels or groups: restart to resize",
            ));
        }
        let nh = self
            .plan
            .static_nexthop(&candidate, &r)
            .map_err(|e| invalid(e.to_string()))?;
        {
            let mut t = crate::bgp::Tables {
                nexthops: &self.nexthops,
                tunnels: &self.tunnels,
                groups: &self.groups,
                fib4: &mut self.fib4,
                fib6: &mut self.fib6,
            };
            self.learned.sync_tables(&self.plan, &mut t);
        }
        self.learned.set_configured(dst, true);
        match dst {
            IpNet::V4(n) => {
                self.fib4.insert(n, NextHopId(nh));
            }
            IpNet::V6(n) => {
                self.fib6.insert(n, NextHopId(nh));
            }
        }
        self.config = candidate;
        if api {
            self.origins.routes.insert(dst);
        }
        self.persist()?;
        let (next_hops, encap, out) = self.describe(nh);
        let route = pb::Route {
            prefix: dst.to_string(),
            source: "static".into(),
            peer: String::new(),
            next_hops,
            encapsulation: encap.into(),
            out,
        };
        info!(route = %dst, "static route added");
        self.publish(pb::event::What::Route(pb::RouteEvent {
            op: "add".into(),
            route: Some(route.clone()),
        }));
        Ok(route)
    }

    fn remove_route(&mut self, prefix: &str) -> Result<pb::RemoveRouteReply, Status> {
        let dst: IpNet = prefix
            .parse()
            .map_err(|e| invalid(format!("prefix {prefix:?}: {e}")))?;
        let dst = dst.trunc();
        if !self.config.routes.iter().any(|r| r.dst.trunc() == dst) {
            return Err(Status::not_found(format!("no static route to {dst}")));
        }
        if !self.origins.routes.contains(&dst) {
            return Err(Status::failed_precondition(format!(
                "the route to {dst} comes from the configuration file: remove it there"
            )));
        }
        self.uninstall_route(dst)?;
        Ok(pb::RemoveRouteReply {})
    }

    fn uninstall_route(&mut self, dst: IpNet) -> Result<(), Status> {
        self.config.routes.retain(|r| r.dst.trunc() != dst);
        self.origins.routes.remove(&dst);
        self.remove_route_of(dst);
        self.persist()?;
        info!(route = %dst, "static route removed");
        self.publish(pb::event::What::Route(pb::RouteEvent {
            op: "remove".into(),
            route: Some(pb::Route {
                prefix: dst.to_string(),
                source: "static".into(),
                ..Default::default()
            }),
        }));
        Ok(())
    }

    /// Re-read the file and apply what changed (SIGHUP, `vrouterctl reload`): endpoints,
    /// pools, static routes and BGP peers go through the same paths as the API's calls,
    /// so unchanged parts never stop. Returns one line per change; settings that need a
    /// restart are named and keep their running value.
    pub fn reload(&mut self) -> Result<Vec<String>, Status> {
        let Some(path) = self.config_path.clone() else {
            return Err(Status::failed_precondition(
                "vrouterd was started without a file",
            ));
        };
        let mut file = Config::load(&path).map_err(|e| invalid(e.0))?;
        let mut changes = Vec::new();
        // What cannot change while running keeps its running value.
        let mut restart = |what: &str, differs: bool| {
            if differs {
                changes.push(format!(
                    "{what} changed: needs a restart (running value kept)"
                ));
            }
        };
        let run = &self.config;
        restart("node_name", file.node_name != run.node_name);
        restart("node_ips", file.node_ips != run.node_ips);
        restart("uplinks", file.uplinks != run.uplinks);
        restart("workers", file.workers != run.workers);
        restart("xdp_mode", file.xdp_mode != run.xdp_mode);
        restart("icmp_rate", file.icmp_rate != run.icmp_rate);
        restart("nodes", file.nodes != run.nodes);
        restart("vxlan", file.vxlan != run.vxlan);
        restart("api", file.api != run.api);
        restart("metrics", file.metrics != run.metrics);
        restart("state_dir", file.state_dir != run.state_dir);
        let settings = |b: &Option<crate::config::BgpSettings>| {
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
        file.vxlan = run.vxlan.clone();
        file.api = run.api.clone();
        file.metrics = run.metrics.clone();
        file.state_dir = run.state_dir.clone();
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
            .filter(|p| !o.pools.contains(&p.cidr))
            .cloned()
            .collect();
        let old_routes: Vec<StaticRoute> = run
            .routes
            .iter()
            .filter(|r| !o.routes.contains(&r.dst.trunc()))
            .cloned()
            .collect();
        let old_peers: Vec<BgpPeer> = run
            .bgp
            .iter()
            .flat_map(|b| &b.peers)
            .filter(|p| !o.peers.contains(&p.address))
            .cloned()
            .collect();
        let mut failed: Vec<String> = Vec::new();
        fn note(
            r: Result<(), Status>,
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
            let r = match self.plan.endpoints.iter().position(|p| p.name == e.name) {
                Some(i) => self.uninstall_endpoint(i).map(|_| ()),
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
            let res = match self.config.pools.iter().position(|x| x.cidr == p.cidr) {
                Some(i) => self.uninstall_pool(i).map(|_| ()),
                None => Ok(()),
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
            let res = self.install_pool(p.clone(), false).map(|_| ());
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
            let res = self.install_endpoint(e.clone(), false).map(|_| ());
            note(
                res,
                format!("endpoint {} added", e.name),
                &mut changes,
                &mut failed,
            );
        }
        for r in file.routes.iter().filter(|r| !old_routes.contains(r)) {
            let res = self.install_route(r.clone(), false).map(|_| ());
            note(
                res,
                format!("route {} added", r.dst),
                &mut changes,
                &mut failed,
            );
        }
        for p in file_peers.iter().filter(|p| !old_peers.contains(p)) {
            let res = self.install_peer(p.clone(), false);
            note(
                res,
                format!("peer {} added", p.address),
                &mut changes,
                &mut failed,
            );
        }
        for f in &failed {
            warn!(change = %f, "reload: not applied");
        }
        for c in &changes {
            info!(change = %c, "reload");
        }
        if failed.is_empty() {
            Ok(changes)
        } else {
            Err(Status::failed_precondition(format!(
                "reload applied {} change(s); these failed: {}",
                changes.len(),
                failed.join("; ")
            )))
        }
    }

    /// Where next hop `nh` leads: (next hops, encapsulation, out).
    fn describe(&self, nh: u32) -> (Vec<String>, &'static str, Vec<String>) {
        let port_name = |p: crate::nexthop::PortId| {
            self.plan
                .port_names
                .get(p.0 as usize)
                .cloned()
                .unwrap_or_default()
        };
        let gateway = |nh: u32| self.plan.gateways.iter().find(|g| g.nh == nh);
        match self.nexthops.get(nh) {
            Some(Adjacency::Forward { port, mac }) => {
                let via = gateway(nh).map_or(mac_text(mac), |g| g.via.to_string());
                (vec![via], "none", vec![port_name(port)])
            }
            Some(Adjacency::Incomplete) | None => {
                let via = gateway(nh).map_or(String::new(), |g| g.via.to_string());
                (vec![via], "none", vec!["(unresolved)".into()])
            }
            Some(Adjacency::Blackhole) => (Vec::new(), "none", vec!["blackhole".into()]),
            Some(Adjacency::Tunnel { id }) => match self.plan.tunnels.get(id as usize) {
                Some(t) => match &t.encap {
                    Encap::Vxlan(v) => (
                        vec![underlay_dst(&v.underlay)],
                        "vxlan",
                        vec!["vxlan".into()],
                    ),
                    Encap::Ipip(i) => {
                        (vec![underlay_dst(&i.underlay)], "ipip", vec!["ipip".into()])
                    }
                },
                None => (Vec::new(), "none", Vec::new()),
            },
            Some(Adjacency::Group { id }) => {
                let mut hops = Vec::new();
                let mut encap = "none";
                let mut out = Vec::new();
                for &m in self
                    .plan
                    .groups
                    .get(id as usize)
                    .map_or(&[][..], |g| &g[..])
                {
                    let (h, e, o) = self.describe_member(m);
                    hops.extend(h);
                    encap = e;
                    out.extend(o);
                }
                (hops, encap, out)
            }
        }
    }

    fn describe_member(&self, nh: u32) -> (Vec<String>, &'static str, Vec<String>) {
        match self.nexthops.get(nh) {
            // Groups never nest; guard against it anyway.
            Some(Adjacency::Group { .. }) => (Vec::new(), "none", Vec::new()),
            _ => self.describe(nh),
        }
    }

    fn source_of(&self, prefix: IpNet, nh: u32) -> &'static str {
        if self.plan.endpoints.iter().any(|e| e.nh == nh) {
            "connected"
        } else if Some(nh) == self.plan.blackhole {
            "blackhole"
        } else if self.learned.is_configured(prefix) {
            "static"
        } else {
            "bgp"
        }
    }

    fn list_routes(&self, r: &pb::ListRoutesRequest) -> Result<pb::ListRoutesReply, Status> {
        let filter: Option<IpNet> = match r.filter.as_str() {
            "" => None,
            f if f.contains('/') => Some(
                f.parse()
                    .map_err(|e| invalid(format!("filter {f:?}: {e}")))?,
            ),
            f => Some(IpNet::from(
                f.parse::<IpAddr>()
                    .map_err(|e| invalid(format!("filter {f:?}: {e}")))?,
            )),
        };
        let all = self
            .fib4
            .routes()
            .map(|(n, nh)| (IpNet::V4(n), nh.0))
            .chain(self.fib6.routes().map(|(n, nh)| (IpNet::V6(n), nh.0)));
        let mut routes: Vec<pb::Route> = Vec::new();
        let mut total = 0u64;
        for (prefix, nh) in all {
            // An address: the routes covering it; a prefix: the routes inside it.
            if let Some(f) = filter {
                let wanted = if f.prefix_len() == f.max_prefix_len() && !r.filter.contains('/') {
                    prefix.contains(&f.addr())
                } else {
                    f.contains(&prefix)
                };
                if !wanted {
                    continue;
                }
            }
            total += 1;
            if r.limit != 0 && routes.len() >= r.limit as usize {
                continue;
            }
            let (next_hops, encap, out) = self.describe(nh);
            routes.push(pb::Route {
                prefix: prefix.to_string(),
                source: self.source_of(prefix, nh).into(),
                peer: String::new(),
                next_hops,
                encapsulation: encap.into(),
                out,
            });
        }
        // Which peer each BGP route's best path came from: one question to the RIB.
        if let Some(sp) = &self.speaker {
            let bgp: Vec<usize> = (0..routes.len())
                .filter(|&i| routes[i].source == "bgp")
                .collect();
            if !bgp.is_empty() {
                let prefixes = bgp
                    .iter()
                    .filter_map(|&i| routes[i].prefix.parse().ok())
                    .collect();
                for (&i, peer) in bgp.iter().zip(sp.best_peers(prefixes)) {
                    routes[i].peer = peer.map(|p| p.to_string()).unwrap_or_default();
                }
            }
        }
        Ok(pb::ListRoutesReply { routes, total })
    }

    fn stats(&self) -> pb::Stats {
        let counter = |name: &str, value: u64| pb::Counter {
            name: name.into(),
            value,
        };
        let tally = |t: &crate::counters::Tally| {
            (
                vec![
                    counter("rx", t.rx),
                    counter("tx", t.tx),
                    counter("to_kernel", t.to_kernel),
                    counter("replies", t.replies),
                    counter("icmp_errors", t.icmp_errors),
                    counter("held", t.held),
                    counter("fragmented", t.fragmented),
                    counter("decapsulated", t.decapsulated),
                ],
                DropReason::ALL
                    .iter()
                    .map(|&d| counter(d.name(), t.dropped(d)))
                    .collect::<Vec<_>>(),
            )
        };
        let (total, drops) = tally(&self.counters.total());
        let workers = (0..self.counters.workers())
            .map(|w| {
                let (counters, drops) = tally(&self.counters.worker(w));
                pb::WorkerStats {
                    worker: w as u32,
                    counters,
                    drops,
                }
            })
            .collect();
        let endpoints = self
            .plan
            .endpoints
            .iter()
            .map(|e| {
                let mut counters: Vec<pb::Counter> = [
                    "rx_packets",
                    "tx_packets",
                    "rx_bytes",
                    "tx_bytes",
                    "rx_dropped",
                    "tx_dropped",
                ]
                .iter()
                .map(|k| counter(&format!("interface_{k}"), interface_stat(&e.interface, k)))
                .collect();
                counters.push(counter(
                    "resolved",
                    matches!(self.nexthops.get(e.nh), Some(Adjacency::Forward { .. })) as u64,
                ));
                pb::EndpointStats {
                    name: e.name.clone(),
                    counters,
                }
            })
            .collect();
        pb::Stats {
            total,
            drops,
            workers,
            endpoints,
            fib_bytes: self.fib_bytes() as u64,
            routes4: self.fib4.len() as u64,
            routes6: self.fib6.len() as u64,
        }
    }

    pub fn fib_bytes(&self) -> usize {
        self.fib4.memory_bytes()
            + self.fib4.rib_bytes()
            + self.fib6.memory_bytes()
            + self.fib6.rib_bytes()
    }

    /// The Prometheus text page.
    pub fn metrics(&self) -> String {
        use control::metrics::{Exposition, Kind};
        let mut x = Exposition::new();
        let per_worker: Vec<crate::counters::Tally> = (0..self.counters.workers())
            .map(|w| self.counters.worker(w))
            .collect();
        type Field = (
            &'static str,
            &'static str,
            fn(&crate::counters::Tally) -> u64,
        );
        let fields: [Field; 8] = [
            (
                "vrouter_rx_packets_total",
                "Frames received by the workers.",
                |t| t.rx,
            ),
            (
                "vrouter_tx_packets_total",
                "Frames sent by the workers.",
                |t| t.tx,
            ),
            (
                "vrouter_to_kernel_packets_total",
                "Frames handed to the kernel.",
                |t| t.to_kernel,
            ),
            (
                "vrouter_replies_total",
                "ARP / ND / ICMP replies the node answered.",
                |t| t.replies,
            ),
            ("vrouter_icmp_errors_total", "ICMP errors sent.", |t| {
                t.icmp_errors
            }),
            (
                "vrouter_held_packets_total",
                "Frames held for a next hop being resolved.",
                |t| t.held,
            ),
            (
                "vrouter_fragmented_packets_total",
                "IPv4 packets fragmented on egress.",
                |t| t.fragmented,
            ),
            (
                "vrouter_decapsulated_packets_total",
                "Tunnel packets unwrapped.",
                |t| t.decapsulated,
            ),
        ];
        for (name, help, get) in fields {
            x.family(name, help, Kind::Counter);
            for (w, t) in per_worker.iter().enumerate() {
                x.sample(&[("worker", &w.to_string())], get(t) as f64);
            }
        }
        x.family(
            "vrouter_drops_total",
            "Frames dropped, by worker and reason.",
            Kind::Counter,
        );
        for (w, t) in per_worker.iter().enumerate() {
            for &d in DropReason::ALL.iter() {
                x.sample(
                    &[("worker", &w.to_string()), ("reason", d.name())],
                    t.dropped(d) as f64,
                );
            }
        }
        x.family(
            "vrouter_endpoint_interface_packets_total",
            "The endpoint interfaces' kernel packet counters (host side).",
            Kind::Counter,
        );
        for e in &self.plan.endpoints {
            for (dir, key) in [("rx", "rx_packets"), ("tx", "tx_packets")] {
                x.sample(
                    &[
                        ("endpoint", &e.name),
                        ("interface", &e.interface),
                        ("direction", dir),
                    ],
                    interface_stat(&e.interface, key) as f64,
                );
            }
        }
        x.family(
            "vrouter_endpoint_resolved",
            "1 once the pod's MAC is known.",
            Kind::Gauge,
        );
        for e in &self.plan.endpoints {
            let up = matches!(self.nexthops.get(e.nh), Some(Adjacency::Forward { .. }));
            x.sample(&[("endpoint", &e.name)], up as u8 as f64);
        }
        x.family(
            "vrouter_routes",
            "Routes in the FIB by source.",
            Kind::Gauge,
        );
        let mut by_source: std::collections::BTreeMap<&str, u64> = Default::default();
        let endpoints_routes: usize = self.config.endpoints.iter().map(|e| e.ips.len()).sum();
        by_source.insert("connected", endpoints_routes as u64);
        by_source.insert("bgp", self.learned.len() as u64);
        by_source.insert("blackhole", self.plan.own_blocks.len() as u64);
        let total = (self.fib4.len() + self.fib6.len()) as u64;
        let static_routes = total.saturating_sub(by_source.values().sum());
        by_source.insert("static", static_routes);
        for (s, n) in &by_source {
            x.sample(&[("source", s)], *n as f64);
        }
        x.family(
            "vrouter_fib_bytes",
            "Memory of the FIB (lookup and writer's store).",
            Kind::Gauge,
        );
        x.sample(&[], self.fib_bytes() as f64);
        x.family("vrouter_endpoints", "Endpoints served.", Kind::Gauge);
        x.sample(&[], self.plan.endpoints.len() as f64);
        x.family(
            "vrouter_endpoint_slots_free",
            "Endpoint slots left for endpoints added while running.",
            Kind::Gauge,
        );
        x.sample(&[], self.plan.free_slots.len() as f64);
        if let Some(sp) = &self.speaker {
            let peers = sp.status.lock().unwrap().clone();
            x.family(
                "vrouter_bgp_peer_up",
                "1 while the BGP session is Established.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(
                    &[("peer", &p.address.to_string())],
                    (p.state == "Established") as u8 as f64,
                );
            }
            x.family(
                "vrouter_bgp_prefixes_received",
                "Prefixes the peer sent us.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(
                    &[("peer", &p.address.to_string())],
                    p.prefixes_received as f64,
                );
            }
            x.family(
                "vrouter_bgp_prefixes_sent",
                "Prefixes we sent the peer.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(&[("peer", &p.address.to_string())], p.prefixes_sent as f64);
            }
        }
        x.family(
            "vrouter_uptime_seconds",
            "Seconds since vrouterd started.",
            Kind::Gauge,
        );
        x.sample(&[], self.started.elapsed().as_secs_f64());
        x.finish()
    }
}

fn underlay_dst(u: &encap::tunnel::Underlay) -> String {
    match u {
        encap::tunnel::Underlay::V4 { dst, .. } => dst.to_string(),
        encap::tunnel::Underlay::V6 { dst, .. } => dst.to_string(),
    }
}

/// A kernel counter of an interface (0 when it is gone).
fn interface_stat(ifname: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{key}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
