//! The BGP speaker: the thin tokio driver around the sans-IO sessions and the RIB.
//!
//! ```text
//!   Speaker::add_peer / remove_peer ── Command ──┐
//!                                                ▼
//!   listener (port 179) ── accepted TCP ──► run: peer slots by index (a removed
//!                          by peer address     peer's slot is free for the next)
//!                                                │ starts / stops
//!                                                ▼
//!   peer task × N: owns a TCP connection and an fsm::Session ──► RibEvent ──► rib task
//!     (connect, read, write, timers at poll_timeout)                  (Rib, batches of
//!     on Established: sends our blocks + End-of-RIB                    a few ms)
//!     on stop: Cease / Peer De-configured; run then tells the rib          │
//!     task (Removed), which withdraws the peer's routes                    │
//!                                                                          │
//!                           std mpsc: Vec<RouteChange> to the daemon ◄─────┘
//! ```
//! Runs on its own thread with a current-thread runtime: the control plane never
//! competes with the poll-mode workers for more than that one thread.

use crate::bgp::error::{BgpError, CeaseError};
use crate::bgp::fsm::{self, Down, Event, Input, Negotiated, Session, State};
use crate::bgp::wire::{self, Family, Notification, PathAttrs};
use crate::rib::{Local, PeerInfo, Rib};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// One configured neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub asn: u32,
    /// Only accept its connections (the node-to-node mesh: toward a higher address).
    pub passive: bool,
    pub hold_time: u16,
    /// Seconds between keepalives (default: a third of the negotiated hold time).
    pub keepalive: Option<u16>,
    /// We reflect routes to it (RFC 4456); reserved for the route-reflector role.
    pub rr_client: bool,
    /// Its port (179 unless a test says otherwise).
    pub port: u16,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Where to listen (None: connect out only).
    pub listen: Option<SocketAddr>,
    /// Source address for outgoing connections.
    pub local_address: Option<IpAddr>,
    pub peers: Vec<PeerConfig>,
    /// Our own blocks, announced to every peer with our node address as next hop.
    pub advertise: Vec<IpNet>,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
    /// Changes are collected this long before they go to the FIB.
    pub batch: Duration,
    pub graceful_restart: Option<u16>,
    /// We came back from a restart (R bit).
    pub restarting: bool,
    /// Act as a route reflector (RFC 4456) with this cluster id: routes from clients go
    /// to every iBGP peer, routes from other iBGP peers to clients.
    pub cluster_id: Option<Ipv4Addr>,
    pub connect_retry: Duration,
}

/// A prefix's usable next hops after a change (empty: no route any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    pub prefix: IpNet,
    pub next_hops: Vec<IpAddr>,
}

/// What `vrouterctl node status` shows of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub asn: u32,
    pub ibgp: bool,
    pub state: String,
    pub since: SystemTime,
    /// The last error, or what the session is waiting for.
    pub info: String,
    pub prefixes_received: usize,
    pub prefixes_sent: usize,
}

/// Peer status, shared with whoever reports it.
pub type Status = Arc<Mutex<Vec<PeerStatus>>>;

/// The running speaker: its status, and dropping it stops the thread.
pub struct Speaker {
    pub status: Status,
    /// Our blocks, as announced to every peer (see `set_advertised`).
    blocks: tokio::sync::watch::Sender<Vec<IpNet>>,
    /// Peers added and removed while running (see `add_peer`).
    commands: mpsc::UnboundedSender<Command>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speaker {
    /// Change our blocks: peers get the new ones announced and the dropped ones
    /// withdrawn at once.
    pub fn set_advertised(&self, blocks: Vec<IpNet>) {
        self.blocks.send_replace(blocks);
    }

    /// Start a session with a new neighbour, as if it had been configured: it connects
    /// out (unless passive), gets the connections accepted from its address, and shows
    /// in `status`. An error when the address already is a peer.
    ///
    /// Blocks until the speaker thread has answered: call it from outside the speaker's
    /// runtime (an ordinary thread, or `spawn_blocking`).
    pub fn add_peer(&self, peer: PeerConfig) -> Result<(), String> {
        self.call(|reply| Command::Add(peer, reply))
    }

    /// End the session with a neighbour and forget it: a Cease / Peer De-configured
    /// NOTIFICATION (RFC 4486) if it has our OPEN, its routes withdrawn (in the usual
    /// batches), its row gone from `status`. An error when the address is no peer.
    ///
    /// Blocks like `add_peer`.
    pub fn remove_peer(&self, address: IpAddr) -> Result<(), String> {
        self.call(|reply| Command::Remove(address, reply))
    }

    /// The peer each prefix's best path came from (None: not a BGP route). Blocks like
    /// `add_peer`.
    pub fn best_peers(&self, prefixes: Vec<IpNet>) -> Vec<Option<IpAddr>> {
        let n = prefixes.len();
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::BestPeers(prefixes, reply))
            .is_err()
        {
            return vec![None; n];
        }
        answer.blocking_recv().unwrap_or_else(|_| vec![None; n])
    }

    fn call(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), String> {
        let stopped = || "the BGP speaker has stopped".to_string();
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

/// A change of peers asked of the running speaker.
enum Command {
    Add(PeerConfig, Reply),
    Remove(IpAddr, Reply),
    BestPeers(Vec<IpNet>, oneshot::Sender<Vec<Option<IpAddr>>>),
}

enum RibEvent {
    /// A peer task started in this slot (before any other event of it).
    Added(u16, Outbound),
    /// The peer in this slot was removed and its task has ended: its routes and its
    /// Adj-RIB-Out go, and the slot may be given to another peer.
    Removed(u16),
    /// Established, with the families negotiated.
    Up(u16, PeerInfo, Vec<Family>),
    Update(u16, wire::Update),
    /// Session lost; `Some(restart time)` when the peer does graceful restart.
    Down(u16, Option<u16>),
    /// The restart time ran out, for the peer with this serial (so that a timer of a
    /// removed peer cannot sweep the next one in its slot).
    Sweep(u16, u64),
    /// Which peer each prefix's best path came from (for `vrouterctl route list`).
    Query(Vec<IpNet>, oneshot::Sender<Vec<Option<IpAddr>>>),
}

fn initial_status(local_asn: u32, p: &PeerConfig) -> PeerStatus {
    PeerStatus {
        address: p.address,
        asn: p.asn,
        ibgp: p.asn == local_asn,
        state: "Idle".into(),
        since: SystemTime::now(),
        info: String::new(),
        prefixes_received: 0,
        prefixes_sent: 0,
    }
}

/// Start the speaker on its own thread; route changes arrive on `routes`.
pub fn spawn(
    cfg: SpeakerConfig,
    routes: std::sync::mpsc::Sender<Vec<RouteChange>>,
) -> io::Result<Speaker> {
    let status: Status = Arc::new(Mutex::new(
        cfg.peers
            .iter()
            .map(|p| initial_status(cfg.asn, p))
            .collect(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Bind now so that a bad listen address is the caller's error, not a log line.
    let listener = match cfg.listen {
        Some(addr) => Some(rt.block_on(async { TcpListener::bind(addr).await })?),
        None => None,
    };
    if let Some(l) = &listener {
        // Keys before any connection from those peers can be accepted.
        let v6 = l.local_addr()?.is_ipv6();
        for p in &cfg.peers {
            if let Some(pw) = &p.password {
                crate::tcp_md5::set_key(l, v6, p.address, pw.as_bytes())?;
            }
        }
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    let (blocks_tx, blocks_rx) = tokio::sync::watch::channel(cfg.advertise.clone());
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let st = status.clone();
    let thread = std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = run(cfg, listener, routes, st, blocks_rx, commands_rx) => {}
                    _ = stop_rx => {}
                }
            })
        })?;
    Ok(Speaker {
        status,
        blocks: blocks_tx,
        commands: commands_tx,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// How long a removed peer's task gets to say goodbye before it is aborted.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running peer task, as `run` knows it.
struct PeerSlot {
    address: IpAddr,
    /// Its key is on the listening socket (to be cleared when it goes).
    keyed: bool,
    accepted: mpsc::UnboundedSender<TcpStream>,
    stop: mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The peer tasks by index (the index the RIB knows them by); a removed peer leaves
/// its slot empty for the next one added, so the others' indices never change.
struct Peers {
    cfg: SpeakerConfig,
    slots: Vec<Option<PeerSlot>>,
    /// Numbers every peer started, so that late events of a removed one are told apart.
    next_serial: u64,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
    rib: mpsc::UnboundedSender<RibEvent>,
    status: Status,
}

impl Peers {
    fn find(&self, address: IpAddr) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.address == address))
    }

    /// Start a peer task in a free slot (its status row and listener key are the
    /// caller's).
    fn start(&mut self, peer: PeerConfig, keyed: bool) -> Result<(), String> {
        let idx = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() <= u16::MAX as usize => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err("too many peers".into()),
        };
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        let (out_tx, outbound) = mpsc::unbounded_channel();
        let (stop_tx, stop) = mpsc::unbounded_channel();
        self.next_serial += 1;
        // The RIB task hears of the slot before anything the task sends.
        let _ = self.rib.send(RibEvent::Added(
            idx as u16,
            Outbound {
                address: peer.address,
                serial: self.next_serial,
                ibgp: peer.asn == self.cfg.asn,
                rr_client: peer.rr_client,
                tx: out_tx,
            },
        ));
        let links = PeerLinks {
            accepted,
            outbound,
            stop,
            blocks: self.blocks.clone(),
            rib: self.rib.clone(),
            status: self.status.clone(),
        };
        let address = peer.address;
        let task = tokio::spawn(peer_task(idx as u16, self.cfg.clone(), peer, links));
        self.slots[idx] = Some(PeerSlot {
            address,
            keyed,
            accepted: accepted_tx,
            stop: stop_tx,
            task,
        });
        Ok(())
    }

    /// A peer added while running: like a configured one.
    fn add(&mut self, peer: PeerConfig, listener: Option<&TcpListener>) -> Result<(), String> {
        if self.find(peer.address).is_some() {
            return Err(format!("{} is already a peer", peer.address));
        }
        let mut keyed = false;
        if let (Some(l), Some(pw)) = (listener, &peer.password) {
            let v6 = l.local_addr().map_err(|e| e.to_string())?.is_ipv6();
            crate::tcp_md5::set_key(l, v6, peer.address, pw.as_bytes())
                .map_err(|e| e.to_string())?;
            keyed = true;
        }
        let row = initial_status(self.cfg.asn, &peer);
        self.status.lock().unwrap().push(row);
        let address = peer.address;
        let started = self.start(peer, keyed);
        if started.is_err() {
            self.forget(address, keyed, listener);
        }
        started
    }

    /// Stop a peer's task (it says goodbye), then have its routes withdrawn.
    async fn remove(
        &mut self,
        address: IpAddr,
        listener: Option<&TcpListener>,
    ) -> Result<(), String> {
        let idx = self
            .find(address)
            .ok_or_else(|| format!("{address} is not a peer"))?;
        let slot = self.slots[idx].take().expect("found above");
        let _ = slot.stop.send(());
        let mut task = slot.task;
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            warn!(peer = %address, "peer task slow to stop: aborted");
            task.abort();
            let _ = task.await;
        }
        // Only once the task is gone: nothing of it can reach the status or the RIB
        // after this (the RIB task sees its events before `Removed`).
        self.forget(address, slot.keyed, listener);
        let _ = self.rib.send(RibEvent::Removed(idx as u16));
        info!(peer = %address, "peer removed");
        Ok(())
    }

    /// Drop a peer's status row and its key on the listener.
    fn forget(&self, address: IpAddr, keyed: bool, listener: Option<&TcpListener>) {
        let mut rows = self.status.lock().unwrap();
        if let Some(i) = rows.iter().position(|p| p.address == address) {
            rows.remove(i);
        }
        drop(rows);
        if let (Some(l), true) = (listener, keyed) {
            let v6 = l.local_addr().is_ok_and(|a| a.is_ipv6());
            // An empty key deletes it.
            if let Err(e) = crate::tcp_md5::set_key(l, v6, address, b"") {
                warn!(peer = %address, error = %e, "clearing the TCP MD5 key");
            }
        }
    }

    /// Hand an accepted connection to the peer task for its address.
    fn route_accepted(&self, stream: TcpStream, from: SocketAddr) {
        let ip = canonical(from.ip());
        match self.find(ip).and_then(|i| self.slots[i].as_ref()) {
            Some(slot) => {
                let _ = slot.accepted.send(stream);
            }
            None => info!(%from, "BGP connection from an unknown address refused"),
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut cfg: SpeakerConfig,
    listener: Option<TcpListener>,
    routes: std::sync::mpsc::Sender<Vec<RouteChange>>,
    status: Status,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let (rib_tx, rib_rx) = mpsc::unbounded_channel();
    let local = Local {
        asn: cfg.asn,
        router_id: cfg.router_id,
        cluster_id: cfg.cluster_id,
    };
    tokio::spawn(rib_task(
        local,
        rib_rx,
        rib_tx.clone(),
        routes,
        cfg.batch,
        status.clone(),
    ));
    // Each peer task gets a copy of the settings: without the list of peers.
    let configured = std::mem::take(&mut cfg.peers);
    let mut peers = Peers {
        cfg,
        slots: Vec::new(),
        next_serial: 0,
        blocks,
        rib: rib_tx,
        status,
    };
    // Their status rows and listener keys are spawn's.
    for p in configured {
        let keyed = listener.is_some() && p.password.is_some();
        if let Err(e) = peers.start(p, keyed) {
            warn!(error = %e, "configured peer not started");
        }
    }
    loop {
        tokio::select! {
            r = accept(listener.as_ref()) => match r {
                Ok((stream, from)) => peers.route_accepted(stream, from),
                Err(e) => warn!(error = %e, "accept"),
            },
            Some(command) = commands.recv() => match command {
                Command::Add(peer, reply) => {
                    let _ = reply.send(peers.add(peer, listener.as_ref()));
                }
                Command::Remove(address, reply) => {
                    let _ = reply.send(peers.remove(address, listener.as_ref()).await);
                }
                Command::BestPeers(prefixes, reply) => {
                    let _ = peers.rib.send(RibEvent::Query(prefixes, reply));
                }
            },
        }
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack listener) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

async fn connect(
    to: SocketAddr,
    from: Option<IpAddr>,
    password: Option<String>,
) -> io::Result<TcpStream> {
    let sock = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(pw) = password {
        crate::tcp_md5::set_key(&sock, to.is_ipv6(), to.ip(), pw.as_bytes())?;
    }
    if let Some(a) = from.filter(|a| a.is_ipv4() == to.is_ipv4()) {
        sock.bind(SocketAddr::new(a, 0))?;
    }
    let s = tokio::time::timeout(Duration::from_secs(5), sock.connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn read_some(r: &mut Option<OwnedReadHalf>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn connected(c: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match c {
        Some(c) => c.await,
        None => std::future::pending().await,
    }
}

/// Update a peer's status row (found by address: rows come and go with peers).
fn set_status(status: &Status, peer: IpAddr, f: impl FnOnce(&mut PeerStatus)) {
    if let Some(p) = status
        .lock()
        .unwrap()
        .iter_mut()
        .find(|p| p.address == peer)
    {
        f(p)
    }
}

/// What a peer task talks to: connections accepted for it, bytes the RIB task sends
/// it, the order to stop (it was removed), our blocks, the RIB task, and the status
/// table.
struct PeerLinks {
    accepted: mpsc::UnboundedReceiver<TcpStream>,
    outbound: mpsc::UnboundedReceiver<Vec<u8>>,
    stop: mpsc::UnboundedReceiver<()>,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
    rib: mpsc::UnboundedSender<RibEvent>,
    status: Status,
}

/// One neighbour: its session, its connection, its timers.
async fn peer_task(idx: u16, cfg: SpeakerConfig, peer: PeerConfig, links: PeerLinks) {
    let PeerLinks {
        mut accepted,
        mut outbound,
        mut stop,
        mut blocks,
        rib,
        status,
    } = links;
    // Our blocks as this session last announced them.
    let mut announced: Vec<IpNet> = Vec::new();
    let mut fsm_cfg = fsm::Config::new(cfg.asn, peer.asn, cfg.router_id);
    fsm_cfg.hold_time = peer.hold_time;
    fsm_cfg.keepalive = peer.keepalive;
    fsm_cfg.passive = peer.passive;
    fsm_cfg.graceful_restart = cfg.graceful_restart;
    fsm_cfg.restarting = cfg.restarting;
    fsm_cfg.connect_retry = cfg.connect_retry;
    let mut s = Session::new(fsm_cfg);
    let mut reader: Option<OwnedReadHalf> = None;
    let mut writer: Option<OwnedWriteHalf> = None;
    let mut connecting: Option<Connecting> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut negotiated: Option<Negotiated> = None;
    let mut last_state = State::Idle;
    // Whether the current connection is the one we initiated, and the peer's own
    // connection while a collision is being resolved (RFC 4271 §6.8).
    let mut ours = false;
    let mut second: Option<Second> = None;
    let mut buf2 = vec![0u8; 16 * 1024];
    let mut events = s.process(Instant::now(), Input::Start);
    loop {
        // A collision resolves once either connection has the peer's OPEN.
        if let Some(sec) = second.as_mut() {
            let loser = if s.state() == State::Established {
                Some(fsm::Loser::Theirs)
            } else {
                fsm::resolve_collision(&s, &sec.session)
            };
            if let Some(l) = loser {
                info!(peer = %peer.address, loser = ?l, "connection collision resolved");
            }
            match loser {
                Some(fsm::Loser::Theirs) => {
                    let _ = sec.writer.write_all(&fsm::collision_notification()).await;
                    second = None;
                }
                Some(fsm::Loser::Ours) => {
                    if let Some(w) = writer.as_mut() {
                        let _ = w.write_all(&fsm::collision_notification()).await;
                    }
                    let sec = second.take().expect("checked above");
                    s = sec.session;
                    reader = Some(sec.reader);
                    writer = Some(sec.writer);
                    ours = false;
                    // What the losing session asked for dies with it.
                    events.clear();
                    events.extend(sec.held);
                }
                None => {}
            }
        }
        // Carry out what the session asked for.
        for e in events.drain(..) {
            match e {
                Event::Connect => {
                    let to = SocketAddr::new(peer.address, peer.port);
                    connecting = Some(Box::pin(connect(
                        to,
                        cfg.local_address,
                        peer.password.clone(),
                    )));
                }
                Event::Send(bytes) => {
                    if let Some(w) = writer.as_mut() {
                        if let Err(e) = w.write_all(&bytes).await {
                            warn!(peer = %peer.address, error = %e, "write");
                        }
                    }
                }
                Event::Close => {
                    if let Some(mut w) = writer.take() {
                        let _ = w.shutdown().await;
                    }
                    reader = None;
                }
                Event::Established(n) => {
                    info!(peer = %peer.address, "BGP session established");
                    let info = PeerInfo {
                        address: peer.address,
                        router_id: n.peer.router_id,
                        asn: peer.asn,
                        ibgp: peer.asn == cfg.asn,
                    };
                    // Our blocks first; the RIB task then sends what it reflects (if
                    // anything) and End-of-RIB.
                    announced = blocks.borrow_and_update().clone();
                    let sent = advertise(&cfg, &peer, &n, &announced, writer.as_mut()).await;
                    let _ = rib.send(RibEvent::Up(idx, info, n.families.clone()));
                    set_status(&status, peer.address, |p| {
                        p.prefixes_sent = sent;
                        p.info = "Established".into();
                    });
                    negotiated = Some(*n);
                }
                Event::Update(u) => {
                    let _ = rib.send(RibEvent::Update(idx, u));
                }
                Event::RouteRefresh(_) => {
                    if let Some(n) = &negotiated {
                        advertise(&cfg, &peer, n, &announced, writer.as_mut()).await;
                    }
                }
                Event::Down(why) => {
                    let info = match &why {
                        Down::Stopped => "stopped".to_string(),
                        Down::Sent(n) => format!("sent NOTIFICATION {}/{}", n.code, n.subcode),
                        Down::Received(n) => {
                            format!("received NOTIFICATION {}/{}", n.code, n.subcode)
                        }
                        Down::ConnectionClosed => "connection closed".to_string(),
                    };
                    info!(peer = %peer.address, %info, "BGP session down");
                    // Graceful restart helper: a session lost without a NOTIFICATION
                    // from the peer keeps its routes (stale) for the restart time.
                    let gr = negotiated
                        .take()
                        .and_then(|n| n.peer_graceful_restart)
                        .filter(|_| !matches!(why, Down::Received(_) | Down::Stopped))
                        .map(|g| g.restart_time);
                    let _ = rib.send(RibEvent::Down(idx, gr));
                    set_status(&status, peer.address, |p| p.info = info);
                }
            }
        }
        if s.state() != last_state {
            last_state = s.state();
            set_status(&status, peer.address, |p| {
                p.state = format!("{last_state:?}");
                p.since = SystemTime::now();
            });
        }
        let deadline = s.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        events = tokio::select! {
            _ = sleep => s.handle_timeout(Instant::now()),
            n = read_some(&mut reader, &mut buf) => match n {
                Ok(0) | Err(_) => {
                    reader = None;
                    writer = None;
                    s.process(Instant::now(), Input::Closed)
                }
                Ok(n) => s.process(Instant::now(), Input::Bytes(&buf[..n])),
            },
            c = connected(&mut connecting) => {
                connecting = None;
                match c {
                    Ok(stream) if reader.is_none() => {
                        let (r, w) = stream.into_split();
                        reader = Some(r);
                        writer = Some(w);
                        ours = true;
                        s.process(Instant::now(), Input::Connected)
                    }
                    Ok(_) => Vec::new(),
                    Err(e) => {
                        set_status(&status, peer.address, |p| p.info = format!("connect: {e}"));
                        s.process(Instant::now(), Input::ConnectFailed)
                    }
                }
            },
            Some(stream) = accepted.recv() => {
                if ours && second.is_none() && matches!(s.state(), State::OpenSent | State::OpenConfirm) {
                    // Both sides connected: run the peer's connection too until the
                    // collision can be resolved.
                    second = Second::start(s.config().clone(), stream).await;
                    Vec::new()
                } else {
                    ours = false;
                    adopt(&mut s, stream, &mut reader, &mut writer, &mut connecting)
                }
            },
            n = read_second(&mut second, &mut buf2) => {
                let alive = match n {
                    Ok(n) if n > 0 => match second.as_mut() {
                        Some(sec) => {
                            let evs = sec.session.process(Instant::now(), Input::Bytes(&buf2[..n]));
                            sec.drive(evs).await
                        }
                        None => false,
                    },
                    _ => false,
                };
                if !alive {
                    second = None;
                }
                Vec::new()
            },
            Ok(()) = blocks.changed() => {
                let now: Vec<IpNet> = blocks.borrow_and_update().clone();
                if let (Some(n), State::Established) = (&negotiated, s.state()) {
                    let added: Vec<IpNet> = now.iter().filter(|b| !announced.contains(b)).copied().collect();
                    let gone: Vec<IpNet> = announced.iter().filter(|b| !now.contains(b)).copied().collect();
                    advertise(&cfg, &peer, n, &added, writer.as_mut()).await;
                    if let Some(w) = writer.as_mut() {
                        for m in wire::withdraw(&gone) {
                            let _ = w.write_all(&m).await;
                        }
                    }
                    announced = now;
                    let sent = announced.len();
                    set_status(&status, peer.address, |p| p.prefixes_sent = sent);
                }
                Vec::new()
            },
            Some(()) = stop.recv() => {
                // Removed: whoever has our OPEN hears why (RFC 4486), then the
                // connections close as the task ends. The RIB task withdraws its routes.
                info!(peer = %peer.address, "peer de-configured");
                if matches!(s.state(), State::OpenSent | State::OpenConfirm | State::Established) {
                    if let Some(w) = writer.as_mut() {
                        say_deconfigured(w).await;
                    }
                }
                if let Some(sec) = second.as_mut() {
                    say_deconfigured(&mut sec.writer).await;
                }
                return;
            },
            Some(bytes) = outbound.recv() => {
                // From the RIB task: only meaningful on an established session (a newer
                // session gets its own full advertisement).
                if s.state() == State::Established {
                    if let Some(w) = writer.as_mut() {
                        let _ = w.write_all(&bytes).await;
                    }
                }
                Vec::new()
            },
        };
    }
}

/// Cease / Peer De-configured, then close; bounded, since a peer that stopped reading
/// must not hold up the removal.
async fn say_deconfigured(w: &mut OwnedWriteHalf) {
    let bye = wire::notification(&Notification::new(
        BgpError::Cease(CeaseError::PeerDeconfigured),
        [],
    ));
    let _ = tokio::time::timeout(STOP_WAIT / 2, async {
        w.write_all(&bye).await?;
        w.shutdown().await
    })
    .await;
}

/// The peer's connection during a collision: its own session, whose events other than
/// sending and closing are held until it wins (then replayed) or loses (dropped).
struct Second {
    session: Session,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    held: Vec<Event>,
}

impl Second {
    async fn start(cfg: fsm::Config, stream: TcpStream) -> Option<Second> {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let mut second = Second {
            session: Session::new(cfg),
            reader,
            writer,
            held: Vec::new(),
        };
        let now = Instant::now();
        let mut evs = second.session.process(now, Input::Start);
        evs.retain(|e| !matches!(e, Event::Connect));
        evs.extend(second.session.process(now, Input::Connected));
        second.drive(evs).await.then_some(second)
    }

    /// Carry out its sends; false once it closed.
    async fn drive(&mut self, events: Vec<Event>) -> bool {
        for e in events {
            match e {
                Event::Send(b) => {
                    if self.writer.write_all(&b).await.is_err() {
                        return false;
                    }
                }
                Event::Close | Event::Down(_) => return false,
                Event::Connect => {}
                other => self.held.push(other),
            }
        }
        true
    }
}

async fn read_second(s: &mut Option<Second>, buf: &mut [u8]) -> io::Result<usize> {
    match s {
        Some(s) => s.reader.read(buf).await,
        None => std::future::pending().await,
    }
}

/// An accepted connection: taken when we have none (or only a connect attempt, or are
/// idle after a failure), and in
/// place of a session the peer evidently restarted (graceful restart). A second
/// connection while our own is opening is a collision (see `Second`); one while the
/// peer's own connection is opening is refused.
fn adopt(
    s: &mut Session,
    stream: TcpStream,
    reader: &mut Option<OwnedReadHalf>,
    writer: &mut Option<OwnedWriteHalf>,
    connecting: &mut Option<Connecting>,
) -> Vec<Event> {
    let now = Instant::now();
    let mut events = Vec::new();
    if s.state() == State::Idle {
        // Waiting out the idle hold after a failure: a peer that is back is welcome.
        events.extend(s.process(now, Input::Start));
        events.retain(|e| !matches!(e, Event::Connect));
    }
    let replace = match s.state() {
        State::Idle => false,
        State::Connect | State::Active => true,
        State::OpenSent | State::OpenConfirm => false,
        State::Established => s
            .negotiated()
            .is_some_and(|n| n.peer_graceful_restart.is_some()),
    };
    if !replace {
        return events;
    }
    if s.state() == State::Established {
        // The peer restarted (graceful restart): its old session goes.
        events.extend(s.process(now, Input::Closed));
        events.retain(|e| !matches!(e, Event::Connect));
        events.extend(s.process(now, Input::Start));
        events.retain(|e| !matches!(e, Event::Connect));
    }
    *connecting = None;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    *reader = Some(r);
    *writer = Some(w);
    events.extend(s.process(now, Input::Connected));
    events
}

/// Announce `blocks` (ours) in each negotiated family; returns prefixes sent.
async fn advertise(
    cfg: &SpeakerConfig,
    peer: &PeerConfig,
    n: &Negotiated,
    blocks: &[IpNet],
    writer: Option<&mut OwnedWriteHalf>,
) -> usize {
    let Some(w) = writer else { return 0 };
    let ibgp = peer.asn == cfg.asn;
    let attrs = PathAttrs {
        origin: 0,
        as_path: if ibgp { Vec::new() } else { vec![cfg.asn] },
        as_path_len: if ibgp { 0 } else { 1 },
        local_pref: ibgp.then_some(100),
        ..PathAttrs::default()
    };
    let mut sent = 0;
    for f in &n.families {
        let prefixes: Vec<IpNet> = blocks
            .iter()
            .copied()
            .filter(|p| {
                matches!(
                    (f, p),
                    (Family::Ipv4, IpNet::V4(_)) | (Family::Ipv6, IpNet::V6(_))
                )
            })
            .collect();
        let next_hop = match f {
            Family::Ipv4 => cfg.next_hop_v4.map(IpAddr::V4),
            Family::Ipv6 => cfg.next_hop_v6.map(IpAddr::V6),
        };
        if let (Some(nh), false) = (next_hop, prefixes.is_empty()) {
            for m in wire::announce(&prefixes, &attrs, nh, ibgp) {
                if w.write_all(&m).await.is_err() {
                    return sent;
                }
            }
            sent += prefixes.len();
        }
    }
    sent
}

/// Most route changes sent to the daemon in one message.
const MAX_BATCH: usize = 65_536;

/// A peer as the RIB task sends to it.
struct Outbound {
    address: IpAddr,
    /// Which peer of its slot this is (see `RibEvent::Sweep`).
    serial: u64,
    ibgp: bool,
    rr_client: bool,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// What we reflect (route-reflector role) and have sent, per peer (Adj-RIB-Out).
struct Reflector {
    cluster_id: Ipv4Addr,
    /// Per peer with an established session: its families, and prefixes sent to it.
    up: HashMap<u16, Vec<Family>>,
    sent: HashMap<u16, HashSet<IpNet>>,
}

impl Reflector {
    /// What peer `to` should have for `prefix`: the best path's attributes as reflected
    /// (RFC 4456 §8: ORIGINATOR_ID, CLUSTER_LIST) and its next hop, if it may have it.
    fn wanted(
        &self,
        rib: &Rib,
        peers: &HashMap<u16, Outbound>,
        to: u16,
        prefix: IpNet,
    ) -> Option<(PathAttrs, IpAddr)> {
        let best = *rib.best(prefix).first()?;
        let from = best.peer;
        let (src, dst) = (peers.get(&from)?, peers.get(&to)?);
        let family_up = self.up.get(&to)?.iter().any(|f| {
            matches!(
                (f, prefix),
                (Family::Ipv4, IpNet::V4(_)) | (Family::Ipv6, IpNet::V6(_))
            )
        });
        // No transit toward eBGP peers; iBGP routes from a non-client go to clients only.
        if from == to || !family_up || !dst.ibgp || (src.ibgp && !src.rr_client && !dst.rr_client) {
            return None;
        }
        let mut attrs = rib.attrs(&best).clone();
        if src.ibgp {
            attrs.originator_id = attrs
                .originator_id
                .or(rib.peer_info(best.peer).map(|p| p.router_id));
            attrs.cluster_list.insert(0, self.cluster_id);
        } else {
            attrs.local_pref = attrs.local_pref.or(Some(100));
        }
        Some((attrs, rib.next_hop(&best)?))
    }

    /// Bring every established peer up to date for `prefixes`.
    fn sync(&mut self, rib: &Rib, peers: &HashMap<u16, Outbound>, prefixes: &[IpNet]) {
        let established: Vec<u16> = self.up.keys().copied().collect();
        for to in established {
            let Some(dst) = peers.get(&to) else { continue };
            let mut announce: HashMap<(PathAttrs, IpAddr), Vec<IpNet>> = HashMap::new();
            let mut withdraw = Vec::new();
            for &p in prefixes {
                match self.wanted(rib, peers, to, p) {
                    Some(k) => {
                        self.sent.entry(to).or_default().insert(p);
                        announce.entry(k).or_default().push(p);
                    }
                    None => {
                        if self.sent.get_mut(&to).is_some_and(|s| s.remove(&p)) {
                            withdraw.push(p);
                        }
                    }
                }
            }
            let mut bytes = Vec::new();
            for ((attrs, nh), ps) in announce {
                bytes.extend(wire::announce(&ps, &attrs, nh, true).concat());
            }
            bytes.extend(wire::withdraw(&withdraw).concat());
            if !bytes.is_empty() {
                let _ = dst.tx.send(bytes);
            }
        }
    }
}

/// The RIB: applies peers' updates and sends batches of best-path changes.
async fn rib_task(
    local: Local,
    mut rx: mpsc::UnboundedReceiver<RibEvent>,
    me: mpsc::UnboundedSender<RibEvent>,
    out: std::sync::mpsc::Sender<Vec<RouteChange>>,
    batch: Duration,
    status: Status,
) {
    // By slot, as `run` announces them (`Added`, `Removed`).
    let mut peers: HashMap<u16, Outbound> = HashMap::new();
    let mut reflector = local.cluster_id.map(|cluster_id| Reflector {
        cluster_id,
        up: HashMap::new(),
        sent: HashMap::new(),
    });
    let mut rib = Rib::new(local);
    let mut pending: HashSet<IpNet> = HashSet::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match flush_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                let changed = match ev {
                    RibEvent::Added(i, p) => {
                        peers.insert(i, p);
                        Vec::new()
                    }
                    RibEvent::Removed(i) => {
                        if let Some(r) = reflector.as_mut() {
                            r.up.remove(&i);
                            r.sent.remove(&i);
                        }
                        peers.remove(&i);
                        rib.remove_peer(i)
                    }
                    RibEvent::Up(i, info, families) => {
                        rib.add_peer(i, info);
                        if let Some(r) = reflector.as_mut() {
                            r.up.insert(i, families.clone());
                            r.sent.insert(i, HashSet::new());
                            let all = rib.prefixes();
                            r.sync(&rib, &peers, &all);
                        }
                        // Without reflection the RIB task still sends End-of-RIB after
                        // our blocks.
                        let eor: Vec<u8> = families.iter().flat_map(|&f| wire::end_of_rib(f)).collect();
                        if let Some(p) = peers.get(&i) {
                            let _ = p.tx.send(eor);
                        }
                        Vec::new()
                    }
                    RibEvent::Update(i, u) => {
                        let mut c = rib.withdraw(i, &u.withdrawn);
                        if !u.announced.is_empty() {
                            c.extend(rib.update(i, &u.announced, u.attrs));
                        }
                        if u.end_of_rib.is_some() {
                            c.extend(rib.sweep_stale(i));
                        }
                        c
                    }
                    RibEvent::Down(i, Some(restart)) => {
                        if let Some(r) = reflector.as_mut() {
                            r.up.remove(&i);
                        }
                        rib.mark_stale(i);
                        let me = me.clone();
                        let serial = peers.get(&i).map_or(0, |p| p.serial);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(restart as u64)).await;
                            let _ = me.send(RibEvent::Sweep(i, serial));
                        });
                        Vec::new()
                    }
                    RibEvent::Down(i, None) => {
                        if let Some(r) = reflector.as_mut() {
                            r.up.remove(&i);
                        }
                        rib.peer_down(i)
                    }
                    RibEvent::Sweep(i, serial) => {
                        if peers.get(&i).is_some_and(|p| p.serial == serial) {
                            rib.sweep_stale(i)
                        } else {
                            Vec::new()
                        }
                    }
                    RibEvent::Query(prefixes, reply) => {
                        let from = prefixes
                            .iter()
                            .map(|p| {
                                let best = rib.best(p.trunc());
                                let peer = best.first()?.peer;
                                rib.peer_info(peer).map(|i| i.address)
                            })
                            .collect();
                        let _ = reply.send(from);
                        continue;
                    }
                };
                if let Some(r) = reflector.as_mut() {
                    r.sync(&rib, &peers, &changed);
                }
                pending.extend(changed);
                if !pending.is_empty() && flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + batch);
                }
            }
            _ = sleep => {
                flush_at = None;
                // Bounded batches: the daemon applies each while the next is prepared,
                // and no full-table-sized buffer outlives convergence.
                // The status first: whoever sees the routes also sees their counts.
                {
                    let slot_of: HashMap<IpAddr, u16> =
                        peers.iter().map(|(&i, p)| (p.address, i)).collect();
                    let mut st = status.lock().unwrap();
                    for s in st.iter_mut() {
                        s.prefixes_received = slot_of
                            .get(&s.address)
                            .map_or(0, |&i| rib.received_from(i));
                    }
                }
                let all: Vec<IpNet> = pending.drain().collect();
                if pending.capacity() > MAX_BATCH {
                    pending = HashSet::new();
                }
                for chunk in all.chunks(MAX_BATCH) {
                    let changes: Vec<RouteChange> = chunk
                        .iter()
                        .map(|&prefix| RouteChange { prefix, next_hops: rib.best_next_hops(prefix) })
                        .collect();
                    if out.send(changes).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
