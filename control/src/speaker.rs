//! The BGP speaker: the thin tokio driver around the sans-IO sessions and the RIB.
//!
//! ```text
//!            listener (port 179) ── accepted TCP, by peer address ──┐
//!                                                                   ▼
//!   peer task × N: owns a TCP connection and an fsm::Session ──► RibEvent ──► rib task
//!     (connect, read, write, timers at poll_timeout)                  (Rib, batches of
//!     on Established: sends our blocks + End-of-RIB                    a few ms)
//!                                                                          │
//!                           std mpsc: Vec<RouteChange> to the daemon ◄─────┘
//! ```
//! Runs on its own thread with a current-thread runtime: the control plane never
//! competes with the poll-mode workers for more than that one thread.

use crate::bgp::fsm::{self, Down, Event, Input, Negotiated, Session, State};
use crate::bgp::wire::{self, Family, PathAttrs};
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
use tokio::sync::mpsc;
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
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speaker {
    /// Change our blocks: peers get the new ones announced and the dropped ones
    /// withdrawn at once.
    pub fn set_advertised(&self, blocks: Vec<IpNet>) {
        self.blocks.send_replace(blocks);
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

enum RibEvent {
    /// Established, with the families negotiated.
    Up(u16, PeerInfo, Vec<Family>),
    Update(u16, wire::Update),
    /// Session lost; `Some(restart time)` when the peer does graceful restart.
    Down(u16, Option<u16>),
    Sweep(u16),
}

/// Start the speaker on its own thread; route changes arrive on `routes`.
pub fn spawn(
    cfg: SpeakerConfig,
    routes: std::sync::mpsc::Sender<Vec<RouteChange>>,
) -> io::Result<Speaker> {
    let status: Status = Arc::new(Mutex::new(
        cfg.peers
            .iter()
            .map(|p| PeerStatus {
                address: p.address,
                asn: p.asn,
                ibgp: p.asn == cfg.asn,
                state: "Idle".into(),
                since: SystemTime::now(),
                info: String::new(),
                prefixes_received: 0,
                prefixes_sent: 0,
            })
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
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (blocks_tx, blocks_rx) = tokio::sync::watch::channel(cfg.advertise.clone());
    let st = status.clone();
    let thread = std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = run(cfg, listener, routes, st, blocks_rx) => {}
                    _ = stop_rx => {}
                }
            })
        })?;
    Ok(Speaker {
        status,
        blocks: blocks_tx,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn run(
    cfg: SpeakerConfig,
    listener: Option<TcpListener>,
    routes: std::sync::mpsc::Sender<Vec<RouteChange>>,
    status: Status,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
) {
    let (rib_tx, rib_rx) = mpsc::unbounded_channel();
    let mut incoming = Vec::new();
    let mut outbound = Vec::new();
    for (i, p) in cfg.peers.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<TcpStream>();
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        incoming.push((p.address, tx));
        outbound.push(Outbound {
            ibgp: p.asn == cfg.asn,
            rr_client: p.rr_client,
            tx: out_tx,
        });
        let links = PeerLinks {
            accepted: rx,
            outbound: out_rx,
            blocks: blocks.clone(),
            rib: rib_tx.clone(),
            status: status.clone(),
        };
        tokio::spawn(peer_task(i as u16, cfg.clone(), p.clone(), links));
    }
    let local = Local {
        asn: cfg.asn,
        router_id: cfg.router_id,
        cluster_id: cfg.cluster_id,
    };
    tokio::spawn(rib_task(
        local, outbound, rib_rx, rib_tx, routes, cfg.batch, status,
    ));
    if let Some(l) = listener {
        loop {
            match l.accept().await {
                Ok((stream, from)) => {
                    let ip = canonical(from.ip());
                    match incoming.iter().find(|(a, _)| *a == ip) {
                        Some((_, tx)) => {
                            let _ = tx.send(stream);
                        }
                        None => info!(%from, "BGP connection from an unknown address refused"),
                    }
                }
                Err(e) => warn!(error = %e, "accept"),
            }
        }
    } else {
        std::future::pending::<()>().await;
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

fn set_status(status: &Status, i: u16, f: impl FnOnce(&mut PeerStatus)) {
    if let Some(p) = status.lock().unwrap().get_mut(i as usize) {
        f(p)
    }
}

/// One neighbour: its session, its connection, its timers.
/// What a peer task talks to: connections accepted for it, bytes the RIB task sends
/// it, our blocks, the RIB task, and the status table.
struct PeerLinks {
    accepted: mpsc::UnboundedReceiver<TcpStream>,
    outbound: mpsc::UnboundedReceiver<Vec<u8>>,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
    rib: mpsc::UnboundedSender<RibEvent>,
    status: Status,
}

async fn peer_task(idx: u16, cfg: SpeakerConfig, peer: PeerConfig, links: PeerLinks) {
    let PeerLinks {
        mut accepted,
        mut outbound,
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
                    set_status(&status, idx, |p| {
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
                    set_status(&status, idx, |p| p.info = info);
                }
            }
        }
        if s.state() != last_state {
            last_state = s.state();
            set_status(&status, idx, |p| {
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
                        set_status(&status, idx, |p| p.info = format!("connect: {e}"));
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
                    set_status(&status, idx, |p| p.prefixes_sent = sent);
                }
                Vec::new()
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

/// The RIB: applies peers' updates and sends batches of best-path changes.
/// A peer as the RIB task sends to it.
struct Outbound {
    ibgp: bool,
    rr_client: bool,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// What we reflect (route-reflector role) and have sent, per peer (Adj-RIB-Out).
struct Reflector {
    cluster_id: Ipv4Addr,
    peers: Vec<Outbound>,
    /// Per peer: families of its established session, and prefixes sent to it.
    up: Vec<Option<Vec<Family>>>,
    sent: Vec<HashSet<IpNet>>,
}

impl Reflector {
    /// What peer `to` should have for `prefix`: the best path's attributes as reflected
    /// (RFC 4456 §8: ORIGINATOR_ID, CLUSTER_LIST) and its next hop, if it may have it.
    fn wanted(&self, rib: &Rib, to: usize, prefix: IpNet) -> Option<(PathAttrs, IpAddr)> {
        let best = *rib.best(prefix).first()?;
        let from = best.peer as usize;
        let (src, dst) = (self.peers.get(from)?, self.peers.get(to)?);
        let family_up = self.up[to].as_ref()?.iter().any(|f| {
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
    fn sync(&mut self, rib: &Rib, prefixes: &[IpNet]) {
        for to in 0..self.peers.len() {
            if self.up[to].is_none() {
                continue;
            }
            let mut announce: HashMap<(PathAttrs, IpAddr), Vec<IpNet>> = HashMap::new();
            let mut withdraw = Vec::new();
            for &p in prefixes {
                match self.wanted(rib, to, p) {
                    Some(k) => {
                        self.sent[to].insert(p);
                        announce.entry(k).or_default().push(p);
                    }
                    None => {
                        if self.sent[to].remove(&p) {
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
                let _ = self.peers[to].tx.send(bytes);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn rib_task(
    local: Local,
    peers: Vec<Outbound>,
    mut rx: mpsc::UnboundedReceiver<RibEvent>,
    me: mpsc::UnboundedSender<RibEvent>,
    out: std::sync::mpsc::Sender<Vec<RouteChange>>,
    batch: Duration,
    status: Status,
) {
    let n = peers.len();
    let mut reflector = local.cluster_id.map(|cluster_id| Reflector {
        cluster_id,
        peers: Vec::new(),
        up: vec![None; n],
        sent: vec![HashSet::new(); n],
    });
    // Without reflection the RIB task still sends End-of-RIB after our blocks.
    let senders: Vec<mpsc::UnboundedSender<Vec<u8>>> = peers.iter().map(|p| p.tx.clone()).collect();
    if let Some(r) = reflector.as_mut() {
        r.peers = peers;
    }
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
                    RibEvent::Up(i, info, families) => {
                        rib.add_peer(i, info);
                        if let Some(r) = reflector.as_mut() {
                            r.up[i as usize] = Some(families.clone());
                            r.sent[i as usize].clear();
                            let all = rib.prefixes();
                            r.sync(&rib, &all);
                        }
                        let eor: Vec<u8> = families.iter().flat_map(|&f| wire::end_of_rib(f)).collect();
                        let _ = senders[i as usize].send(eor);
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
                            r.up[i as usize] = None;
                        }
                        rib.mark_stale(i);
                        let me = me.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(restart as u64)).await;
                            let _ = me.send(RibEvent::Sweep(i));
                        });
                        Vec::new()
                    }
                    RibEvent::Down(i, None) => {
                        if let Some(r) = reflector.as_mut() {
                            r.up[i as usize] = None;
                        }
                        rib.peer_down(i)
                    }
                    RibEvent::Sweep(i) => rib.sweep_stale(i),
                };
                if let Some(r) = reflector.as_mut() {
                    r.sync(&rib, &changed);
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
                    let mut st = status.lock().unwrap();
                    for (i, s) in st.iter_mut().enumerate() {
                        s.prefixes_received = rib.received_from(i as u16);
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
