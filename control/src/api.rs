//! The gRPC API (proto/vrouter.proto), served on a unix socket and optionally on TCP.
//!
//! ```text
//!  vrouterctl ──gRPC──► api thread (tokio, current-thread)
//!                        │  each RPC: Call{request, oneshot reply} ──crossbeam──► daemon's
//!                        │                                                      control loop
//!                        │  ◄────────────── oneshot: reply or tonic::Status ────┘ (owns the
//!                        │                                                      plan, FIB writer,
//!  Watch streams ◄── broadcast::Sender<Event> ◄── daemon publishes events ──────┘ IPAM)
//! ```
//! The daemon answers every call itself, so the API never races the FIB writer; this
//! module knows nothing of the dataplane (it only moves messages).

use crossbeam_channel::Sender;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::sync::{broadcast, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The generated messages, server and client.
pub mod pb {
    tonic::include_proto!("vrouter.v1");
}

use pb::vrouter_server::{Vrouter, VrouterServer};

pub use crate::api_tls::{ClientTlsFiles, ServerTlsFiles};

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/vrouter/vrouter.sock";

/// Where the daemon's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// One API call, for the daemon's control loop to answer.
#[derive(Debug)]
pub enum Call {
    NodeStatus(pb::NodeStatusRequest, Reply<pb::NodeStatusReply>),
    ListEndpoints(pb::ListEndpointsRequest, Reply<pb::ListEndpointsReply>),
    AddEndpoint(pb::Endpoint, Reply<pb::Endpoint>),
    RemoveEndpoint(pb::RemoveEndpointRequest, Reply<pb::RemoveEndpointReply>),
    AllocateAddresses(
        pb::AllocateAddressesRequest,
        Reply<pb::AllocateAddressesReply>,
    ),
    ReleaseAddresses(
        pb::ReleaseAddressesRequest,
        Reply<pb::ReleaseAddressesReply>,
    ),
    ListRoutes(pb::ListRoutesRequest, Reply<pb::ListRoutesReply>),
    AddRoute(pb::AddRouteRequest, Reply<pb::Route>),
    RemoveRoute(pb::RemoveRouteRequest, Reply<pb::RemoveRouteReply>),
    ApplyPool(pb::Pool, Reply<pb::Pool>),
    ListPools(pb::ListPoolsRequest, Reply<pb::ListPoolsReply>),
    RemovePool(pb::RemovePoolRequest, Reply<pb::RemovePoolReply>),
    ListPeers(pb::ListPeersRequest, Reply<pb::ListPeersReply>),
    AddPeer(pb::Peer, Reply<pb::Peer>),
    RemovePeer(pb::RemovePeerRequest, Reply<pb::RemovePeerReply>),
    GetPeer(pb::GetPeerRequest, Reply<pb::Peer>),
    LogLevel(pb::LogLevelRequest, Reply<pb::LogLevelReply>),
    ResetPeer(pb::ResetPeerRequest, Reply<pb::ResetPeerReply>),
    GetStats(pb::StatsRequest, Reply<pb::Stats>),
    Reload(pb::ReloadRequest, Reply<pb::ReloadReply>),
    ListFlows(pb::ListFlowsRequest, Reply<pb::ListFlowsReply>),
    FlushFlows(pb::FlushFlowsRequest, Reply<pb::FlushFlowsReply>),
    ConntrackStats(pb::ConntrackStatsRequest, Reply<pb::ConntrackStatsReply>),
    ApplyPolicies(pb::ApplyPoliciesRequest, Reply<pb::ApplyPoliciesReply>),
    ListPolicies(pb::ListPoliciesRequest, Reply<pb::ListPoliciesReply>),
    RemovePolicy(pb::RemovePolicyRequest, Reply<pb::RemovePolicyReply>),
}

/// Where to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub socket: PathBuf,
    /// TCP as well, mutual TLS only.
    pub tcp: Option<TcpServe>,
}

/// The TCP listener: an address and the TLS files it cannot serve without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpServe {
    pub addr: SocketAddr,
    pub tls: ServerTlsFiles,
}

/// The running API: publish events with `events`; dropping it stops the server and
/// removes the socket.
pub struct Api {
    pub events: broadcast::Sender<pb::Event>,
    pub tcp_addr: Option<SocketAddr>,
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    /// Publish an event to every watcher (none listening is fine).
    pub fn publish(&self, what: pb::event::What) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let _ = self.events.send(pb::Event {
            unix_ms,
            what: Some(what),
        });
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Bind the unix socket with mode 0600 from the start: bound under a temporary name,
/// restricted, then renamed into place, so it is never reachable with looser rights.
/// A stale socket (nobody answering) is replaced; a live one is an error.
pub fn bind_socket(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(named)?;
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another vrouterd is serving there", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path).map_err(named)?,
        }
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(named)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(named)?;
    std::fs::rename(&tmp, path).map_err(named)?;
    Ok(listener)
}

/// Start serving on its own thread. Binding errors are returned here, naming the address.
pub fn spawn(config: &ServeConfig, calls: Sender<Call>) -> io::Result<Api> {
    let unix = bind_socket(&config.socket)?;
    unix.set_nonblocking(true)?;
    let tcp = match &config.tcp {
        Some(t) => {
            // The TLS files first: no listener ever accepts a connection without them.
            let tls = crate::api_tls::server_tls(&t.tls)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let addr = t.addr;
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("API on {addr}: {e}")))?;
            l.set_nonblocking(true)?;
            Some((l, tls))
        }
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let (events, _) = broadcast::channel(4096);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let service = Service {
        calls,
        events: events.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "API runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = stopped.await;
                    let _ = tx.send(true);
                });
                let (stop_unix, stop_tcp, mut stop_all) = (rx.clone(), rx.clone(), rx);
                // Graceful shutdown waits for open calls, and a watcher's stream never
                // ends: give them a second, then drop the runtime (closing everything).
                let grace = async move {
                    let _ = stop_all.wait_for(|&s| s).await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                };
                let serve = async move {
                    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|&s| s).await;
                    };
                    let unix = match tokio::net::UnixListener::from_std(unix) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "API socket");
                            return;
                        }
                    };
                    let over_unix = tonic::transport::Server::builder()
                        .add_service(server(service.clone()))
                        .serve_with_incoming_shutdown(
                            tokio_stream::wrappers::UnixListenerStream::new(unix),
                            until(stop_unix),
                        );
                    match tcp.map(|(l, tls)| (tokio::net::TcpListener::from_std(l), tls)) {
                        Some((Ok(l), tls)) => {
                            let builder = match tonic::transport::Server::builder().tls_config(tls)
                            {
                                Ok(b) => b,
                                Err(e) => {
                                    // Checked at spawn; kept as an error, never a panic.
                                    tracing::error!(error = %e, "API TLS");
                                    return;
                                }
                            };
                            let mut builder = builder;
                            let over_tcp = builder
                                .add_service(server(service))
                                .serve_with_incoming_shutdown(
                                    tokio_stream::wrappers::TcpListenerStream::new(l),
                                    until(stop_tcp),
                                );
                            let (a, b) = tokio::join!(over_unix, over_tcp);
                            for r in [a, b] {
                                if let Err(e) = r {
                                    tracing::error!(error = %e, "API server");
                                }
                            }
                        }
                        other => {
                            if let Some((Err(e), _)) = other {
                                tracing::error!(error = %e, "API TCP listener");
                            }
                            if let Err(e) = over_unix.await {
                                tracing::error!(error = %e, "API server");
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = grace => {}
                }
            });
        })?;
    Ok(Api {
        events,
        tcp_addr,
        socket: config.socket.clone(),
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

#[derive(Clone)]
struct Service {
    calls: Sender<Call>,
    events: broadcast::Sender<pb::Event>,
}

impl Service {
    /// Hand the call to the daemon and wait for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Call) -> Result<Response<T>, Status> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(make(tx))
            .map_err(|_| Status::unavailable("vrouterd is shutting down"))?;
        match rx.await {
            Ok(Ok(v)) => Ok(Response::new(v)),
            Ok(Err(s)) => Err(s),
            Err(_) => Err(Status::unavailable("vrouterd is shutting down")),
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Vrouter for Service {
    async fn node_status(
        &self,
        r: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusReply>, Status> {
        self.ask(|tx| Call::NodeStatus(r.into_inner(), tx)).await
    }
    async fn list_endpoints(
        &self,
        r: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsReply>, Status> {
        self.ask(|tx| Call::ListEndpoints(r.into_inner(), tx)).await
    }
    async fn add_endpoint(
        &self,
        r: Request<pb::Endpoint>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        self.ask(|tx| Call::AddEndpoint(r.into_inner(), tx)).await
    }
    async fn remove_endpoint(
        &self,
        r: Request<pb::RemoveEndpointRequest>,
    ) -> Result<Response<pb::RemoveEndpointReply>, Status> {
        self.ask(|tx| Call::RemoveEndpoint(r.into_inner(), tx))
            .await
    }
    async fn allocate_addresses(
        &self,
        r: Request<pb::AllocateAddressesRequest>,
    ) -> Result<Response<pb::AllocateAddressesReply>, Status> {
        self.ask(|tx| Call::AllocateAddresses(r.into_inner(), tx))
            .await
    }
    async fn release_addresses(
        &self,
        r: Request<pb::ReleaseAddressesRequest>,
    ) -> Result<Response<pb::ReleaseAddressesReply>, Status> {
        self.ask(|tx| Call::ReleaseAddresses(r.into_inner(), tx))
            .await
    }
    async fn list_routes(
        &self,
        r: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesReply>, Status> {
        self.ask(|tx| Call::ListRoutes(r.into_inner(), tx)).await
    }
    async fn add_route(
        &self,
        r: Request<pb::AddRouteRequest>,
    ) -> Result<Response<pb::Route>, Status> {
        self.ask(|tx| Call::AddRoute(r.into_inner(), tx)).await
    }
    async fn remove_route(
        &self,
        r: Request<pb::RemoveRouteRequest>,
    ) -> Result<Response<pb::RemoveRouteReply>, Status> {
        self.ask(|tx| Call::RemoveRoute(r.into_inner(), tx)).await
    }
    async fn apply_pool(&self, r: Request<pb::Pool>) -> Result<Response<pb::Pool>, Status> {
        self.ask(|tx| Call::ApplyPool(r.into_inner(), tx)).await
    }
    async fn list_pools(
        &self,
        r: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsReply>, Status> {
        self.ask(|tx| Call::ListPools(r.into_inner(), tx)).await
    }
    async fn remove_pool(
        &self,
        r: Request<pb::RemovePoolRequest>,
    ) -> Result<Response<pb::RemovePoolReply>, Status> {
        self.ask(|tx| Call::RemovePool(r.into_inner(), tx)).await
    }
    async fn list_peers(
        &self,
        r: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersReply>, Status> {
        self.ask(|tx| Call::ListPeers(r.into_inner(), tx)).await
    }
    async fn add_peer(&self, r: Request<pb::Peer>) -> Result<Response<pb::Peer>, Status> {
        self.ask(|tx| Call::AddPeer(r.into_inner(), tx)).await
    }
    async fn remove_peer(
        &self,
        r: Request<pb::RemovePeerRequest>,
    ) -> Result<Response<pb::RemovePeerReply>, Status> {
        self.ask(|tx| Call::RemovePeer(r.into_inner(), tx)).await
    }
    async fn log_level(
        &self,
        r: Request<pb::LogLevelRequest>,
    ) -> Result<Response<pb::LogLevelReply>, Status> {
        self.ask(|tx| Call::LogLevel(r.into_inner(), tx)).await
    }
    async fn get_peer(&self, r: Request<pb::GetPeerRequest>) -> Result<Response<pb::Peer>, Status> {
        self.ask(|tx| Call::GetPeer(r.into_inner(), tx)).await
    }
    async fn reset_peer(
        &self,
        r: Request<pb::ResetPeerRequest>,
    ) -> Result<Response<pb::ResetPeerReply>, Status> {
        self.ask(|tx| Call::ResetPeer(r.into_inner(), tx)).await
    }
    async fn get_stats(&self, r: Request<pb::StatsRequest>) -> Result<Response<pb::Stats>, Status> {
        self.ask(|tx| Call::GetStats(r.into_inner(), tx)).await
    }
    async fn reload(
        &self,
        r: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadReply>, Status> {
        self.ask(|tx| Call::Reload(r.into_inner(), tx)).await
    }
    async fn list_flows(
        &self,
        r: Request<pb::ListFlowsRequest>,
    ) -> Result<Response<pb::ListFlowsReply>, Status> {
        self.ask(|tx| Call::ListFlows(r.into_inner(), tx)).await
    }
    async fn flush_flows(
        &self,
        r: Request<pb::FlushFlowsRequest>,
    ) -> Result<Response<pb::FlushFlowsReply>, Status> {
        self.ask(|tx| Call::FlushFlows(r.into_inner(), tx)).await
    }
    async fn apply_policies(
        &self,
        r: Request<pb::ApplyPoliciesRequest>,
    ) -> Result<Response<pb::ApplyPoliciesReply>, Status> {
        self.ask(|tx| Call::ApplyPolicies(r.into_inner(), tx)).await
    }
    async fn list_policies(
        &self,
        r: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesReply>, Status> {
        self.ask(|tx| Call::ListPolicies(r.into_inner(), tx)).await
    }
    async fn remove_policy(
        &self,
        r: Request<pb::RemovePolicyRequest>,
    ) -> Result<Response<pb::RemovePolicyReply>, Status> {
        self.ask(|tx| Call::RemovePolicy(r.into_inner(), tx)).await
    }
    async fn conntrack_stats(
        &self,
        r: Request<pb::ConntrackStatsRequest>,
    ) -> Result<Response<pb::ConntrackStatsReply>, Status> {
        self.ask(|tx| Call::ConntrackStats(r.into_inner(), tx))
            .await
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream =
            tokio_stream::wrappers::BroadcastStream::new(self.events.subscribe()).map(|e| {
                e.map_err(|lag| {
                    // A watcher too slow for the event rate is told, not silently skipped.
                    Status::data_loss(format!("watcher fell behind: {lag}"))
                })
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Why the client could not reach the daemon, in words a user can act on.
pub fn explain_connect_error(path: &Path, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "vrouterd is not running (no API socket at {}); start it with `systemctl start vrouterd`",
            path.display()
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "vrouterd is not running (nothing answers on {})",
            path.display()
        ),
        io::ErrorKind::PermissionDenied => format!(
            "permission denied on {}: the API socket is root's (mode 0600); run vrouterctl as root",
            path.display()
        ),
        _ => format!("cannot reach vrouterd on {}: {e}", path.display()),
    }
}

/// A client over the unix socket.
pub async fn connect(
    target: &str,
) -> Result<pb::vrouter_client::VrouterClient<tonic::transport::Channel>, String> {
    connect_with(target, None).await
}

/// A client over the unix socket, or over TCP (`https://host:port`) with mutual TLS.
pub async fn connect_with(
    target: &str,
    tls: Option<&ClientTlsFiles>,
) -> Result<pb::vrouter_client::VrouterClient<tonic::transport::Channel>, String> {
    if target.starts_with("http://") {
        return Err(format!(
            "{target}: the API's TCP listener speaks mutual TLS only: use https://HOST:PORT \
             with --tls-cert, --tls-key and --tls-ca"
        ));
    }
    if let Some(rest) = target.strip_prefix("https://") {
        let files = tls.ok_or_else(|| {
            format!("{target}: --tls-cert, --tls-key and --tls-ca are needed over TCP")
        })?;
        let host = rest.split('/').next().unwrap_or(rest);
        let domain = match host.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => host,
        };
        let config = crate::api_tls::client_tls(files, domain)?;
        let ch = tonic::transport::Endpoint::from_shared(target.to_string())
            .map_err(|e| format!("{target}: {e}"))?
            .tls_config(config)
            .map_err(|e| format!("{target}: {}", crate::api_tls::error_chain(&e)))?
            .connect()
            .await
            .map_err(|e| {
                format!(
                    "cannot reach vrouterd on {target}: {}",
                    crate::api_tls::error_chain(&e)
                )
            })?;
        return Ok(client(ch));
    }
    let path = PathBuf::from(target);
    // Classify the usual failures first: tonic's own error would only say "transport error".
    tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| explain_connect_error(&path, &e))?;
    let ch = tonic::transport::Endpoint::from_static("http://vrouterd.local")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| format!("cannot reach vrouterd on {target}: {e}"))?;
    Ok(client(ch))
}

/// The largest request or reply (a policy file of 100,000 rules is ~10 MB; tonic's
/// default of 4 MB would refuse it with a decoding error instead of a verdict).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

fn server<T: Vrouter>(service: T) -> VrouterServer<T> {
    VrouterServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn client(
    ch: tonic::transport::Channel,
) -> pb::vrouter_client::VrouterClient<tonic::transport::Channel> {
    pb::vrouter_client::VrouterClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}
