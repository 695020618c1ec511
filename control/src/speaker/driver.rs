//! The tokio side of the speaker: the listener, the peer tasks (each moves one
//! neighbour's bytes and timers in and out of its sans-IO [`Peer`]) and the RIB task.

use super::peer::{ConnId, Input, Output, Peer, StatusChange};
use super::reflect::Role;
use super::rib_task::{rib_task, Outbound, RibEvent, ToPeer};
use super::types::{
    initial_status, Command, PeerConfig, PeerStatus, ResetReply, RouteChange, SpeakerConfig, Status,
};
use crate::rib::Local;
use ipnet::IpNet;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long a removed peer's task gets to say goodbye before it is aborted.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running peer task, as `run` knows it.
struct PeerSlot {
    address: IpAddr,
    /// Its key is on the listening socket (to be cleared when it goes).
    keyed: bool,
    /// GTSM hops, set on a connection accepted from it.
    ttl_security: Option<u8>,
    accepted: mpsc::UnboundedSender<TcpStream>,
    control: mpsc::UnboundedSender<PeerControl>,
    task: tokio::task::JoinHandle<()>,
}

/// What `run` asks of a peer task.
enum PeerControl {
    /// Removed: say goodbye and end.
    Stop,
    Reset(bool, ResetReply),
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
        let (control_tx, control) = mpsc::unbounded_channel();
        self.next_serial += 1;
        // The RIB task hears of the slot before anything the task sends.
        let _ = self.rib.send(RibEvent::Added(
            idx as u16,
            Outbound {
                address: peer.address,
                serial: self.next_serial,
                role: Role {
                    ibgp: peer.asn == self.cfg.asn,
                    rr_client: peer.rr_client,
                },
                tx: out_tx,
            },
        ));
        let links = PeerLinks {
            accepted,
            outbound,
            control,
            blocks: self.blocks.clone(),
            rib: self.rib.clone(),
            status: self.status.clone(),
        };
        let address = peer.address;
        let ttl_security = peer.ttl_security;
        let task = tokio::spawn(peer_task(idx as u16, self.cfg.clone(), peer, links));
        self.slots[idx] = Some(PeerSlot {
            address,
            keyed,
            ttl_security,
            accepted: accepted_tx,
            control: control_tx,
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
        if let (Some(l), Some(_)) = (listener, peer.ttl_security) {
            let v6 = l.local_addr().map_err(|e| e.to_string())?.is_ipv6();
            crate::ttl_security::listener_sends_255(l, v6).map_err(|e| e.to_string())?;
        }
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
        let _ = slot.control.send(PeerControl::Stop);
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

    /// Hand a reset to the peer's task (it answers).
    fn reset(&self, address: IpAddr, soft: bool, reply: ResetReply) {
        match self.find(address).and_then(|i| self.slots[i].as_ref()) {
            Some(slot) => {
                if let Err(e) = slot.control.send(PeerControl::Reset(soft, reply)) {
                    if let PeerControl::Reset(_, reply) = e.0 {
                        let _ = reply.send(Err(format!("{address}: its task has ended")));
                    }
                }
            }
            None => {
                let _ = reply.send(Err(format!("{address} is not a peer")));
            }
        }
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
                if let Some(hops) = slot.ttl_security {
                    if let Err(e) = crate::ttl_security::set(&stream, ip.is_ipv6(), hops) {
                        warn!(%from, error = %e, "TTL security: connection refused");
                        return;
                    }
                }
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

pub(super) async fn run(
    mut cfg: SpeakerConfig,
    listener: Option<TcpListener>,
    routes: crossbeam_channel::Sender<Vec<RouteChange>>,
    status: Status,
    update_seconds: std::sync::Arc<crate::histogram::Histogram>,
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
        update_seconds,
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
        if let (Some(l), Some(_)) = (&listener, p.ttl_security) {
            let v6 = l.local_addr().is_ok_and(|a| a.is_ipv6());
            if let Err(e) = crate::ttl_security::listener_sends_255(l, v6) {
                warn!(error = %e, "TTL security on the listener");
            }
        }
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
                Command::Reset(address, soft, reply) => peers.reset(address, soft, reply),
                Command::BestPeers(prefixes, reply) => {
                    let _ = peers.rib.send(RibEvent::Query(prefixes, reply));
                }
                Command::Paths(prefixes, reply) => {
                    let _ = peers.rib.send(RibEvent::Paths(prefixes, reply));
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
    ttl_security: Option<u8>,
) -> io::Result<TcpStream> {
    let sock = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(pw) = password {
        crate::tcp_md5::set_key(&sock, to.is_ipv6(), to.ip(), pw.as_bytes())?;
    }
    if let Some(hops) = ttl_security {
        crate::ttl_security::set(&sock, to.is_ipv6(), hops)?;
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

/// What a peer task talks to: connections accepted for it, what the RIB task sends it,
/// the order to stop (it was removed), our blocks, the RIB task, and the status table.
struct PeerLinks {
    accepted: mpsc::UnboundedReceiver<TcpStream>,
    outbound: mpsc::UnboundedReceiver<ToPeer>,
    control: mpsc::UnboundedReceiver<PeerControl>,
    blocks: tokio::sync::watch::Receiver<Vec<IpNet>>,
    rib: mpsc::UnboundedSender<RibEvent>,
    status: Status,
}

/// What a connection's reader sends its peer task: bytes, or None once it closed.
type Received = (ConnId, Option<Vec<u8>>);

/// Reads in flight from the readers to their peer task: a few, so that a peer task
/// busy with a full table holds the sender back through TCP, as a direct read did.
const READS_IN_FLIGHT: usize = 4;

/// A connection of a peer task: its write half, and the task reading the other.
struct Conn {
    writer: OwnedWriteHalf,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A peer task's connections and connect attempt: the I/O its `Peer` asks for.
struct Io {
    address: IpAddr,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    received: mpsc::Sender<Received>,
    connecting: Option<Connecting>,
}

impl Io {
    /// Number a new connection and start reading it.
    fn register(&mut self, stream: TcpStream) -> ConnId {
        let _ = stream.set_nodelay(true);
        let (mut r, writer) = stream.into_split();
        self.next_conn += 1;
        let id = self.next_conn;
        let tx = self.received.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send((id, None)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx.send((id, Some(buf[..n].to_vec()))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        self.conns.insert(id, Conn { writer, reader });
        id
    }

    async fn send(&mut self, c: ConnId, bytes: &[u8]) {
        if let Some(conn) = self.conns.get_mut(&c) {
            if let Err(e) = conn.writer.write_all(bytes).await {
                warn!(peer = %self.address, error = %e, "write");
            }
        }
    }

    /// Close after what was sent.
    async fn close(&mut self, c: ConnId) {
        if let Some(mut conn) = self.conns.remove(&c) {
            let _ = conn.writer.shutdown().await;
        }
    }
}

/// One neighbour: its `Peer` and the I/O it asks for.
async fn peer_task(idx: u16, cfg: SpeakerConfig, peer_cfg: PeerConfig, links: PeerLinks) {
    let PeerLinks {
        mut accepted,
        mut outbound,
        mut control,
        mut blocks,
        rib,
        status,
    } = links;
    let (received_tx, mut received) = mpsc::channel::<Received>(READS_IN_FLIGHT);
    let mut io = Io {
        address: peer_cfg.address,
        conns: HashMap::new(),
        next_conn: 0,
        received: received_tx,
        connecting: None,
    };
    let to = SocketAddr::new(peer_cfg.address, peer_cfg.port);
    let password = peer_cfg.password.clone();
    let ttl_security = peer_cfg.ttl_security;
    let mut peer = Peer::new(&cfg, peer_cfg, blocks.borrow_and_update().clone());
    let mut outputs = peer.process(Instant::now(), Input::Start);
    let mut counted = Default::default();
    loop {
        for o in outputs.drain(..) {
            match o {
                Output::Connect => {
                    io.connecting = Some(Box::pin(connect(
                        to,
                        cfg.local_address,
                        password.clone(),
                        ttl_security,
                    )));
                }
                Output::CancelConnect => io.connecting = None,
                Output::Send(c, bytes) => io.send(c, &bytes).await,
                Output::Close(c) => io.close(c).await,
                Output::Up(info, families) => {
                    let _ = rib.send(RibEvent::Up(idx, info, families));
                }
                Output::Update(u) => {
                    let _ = rib.send(RibEvent::Update(idx, u));
                }
                Output::RefreshAsked(family) => {
                    let _ = rib.send(RibEvent::Refresh(idx, family));
                }
                Output::Down { restart_time } => {
                    let _ = rib.send(RibEvent::Down(idx, restart_time));
                }
                Output::Status(change) => set_status(&status, io.address, |p| match change {
                    StatusChange::State(s) => {
                        p.state = format!("{s:?}");
                        p.since = SystemTime::now();
                    }
                    StatusChange::Info(i) => p.info = i,
                    StatusChange::PrefixesSent(n) => p.prefixes_sent = n,
                    StatusChange::Negotiated(s) => p.session = s.map(|s| *s),
                    StatusChange::LastError(e) => p.last_error = e,
                }),
            }
        }
        // The counters: one lock per turn, and only when they moved.
        if peer.counters() != counted {
            counted = peer.counters();
            set_status(&status, io.address, |p| p.counters = counted);
        }
        let deadline = peer.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        outputs = tokio::select! {
            _ = sleep => peer.handle_timeout(Instant::now()),
            Some((c, bytes)) = received.recv() => match bytes {
                Some(b) => peer.process(Instant::now(), Input::Bytes(c, &b)),
                None => {
                    io.conns.remove(&c);
                    peer.process(Instant::now(), Input::Closed(c))
                }
            },
            r = connected(&mut io.connecting) => {
                io.connecting = None;
                match r {
                    Ok(stream) => {
                        let c = io.register(stream);
                        peer.process(Instant::now(), Input::Connected(c))
                    }
                    Err(e) => peer.process(Instant::now(), Input::ConnectFailed(e.to_string())),
                }
            },
            Some(stream) = accepted.recv() => {
                let c = io.register(stream);
                peer.process(Instant::now(), Input::Accepted(c))
            },
            Ok(()) = blocks.changed() => {
                let now = blocks.borrow_and_update().clone();
                peer.process(Instant::now(), Input::Blocks(now))
            },
            Some(c) = control.recv() => match c {
                PeerControl::Reset(soft, reply) => match peer.reset(Instant::now(), soft) {
                    Ok((done, out)) => {
                        info!(peer = %io.address, soft, "{done}");
                        let _ = reply.send(Ok(done));
                        out
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        Vec::new()
                    }
                },
                PeerControl::Stop => {
                    // Removed: the goodbyes are bounded, since a peer that stopped
                    // reading must not hold up the removal. The RIB task withdraws its
                    // routes.
                    let bye = peer.process(Instant::now(), Input::Deconfigure);
                    let _ = tokio::time::timeout(STOP_WAIT / 2, async {
                        for o in bye {
                            match o {
                                Output::Send(c, bytes) => io.send(c, &bytes).await,
                                Output::Close(c) => io.close(c).await,
                                _ => {}
                            }
                        }
                    })
                    .await;
                    return;
                }
            },
            Some(m) = outbound.recv() => match m {
                ToPeer::Reflected(r) => peer.process(Instant::now(), Input::Reflected(r)),
                ToPeer::EndOfRib(f) => peer.process(Instant::now(), Input::EndOfRib(f)),
            },
        };
    }
}
