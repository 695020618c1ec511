//! The BGP speaker: thin tokio tasks around sans-IO peers and the RIB.
//!
//! ```text
//!   Speaker::add_peer / remove_peer ── Command ──┐
//!                                                ▼
//!   listener (port 179) ── accepted TCP ──► driver::run: peer slots by index (a
//!                          by peer address     removed peer's slot is free for the next)
//!                                                │ starts / stops
//!                                                ▼
//!   peer task × N (driver): moves bytes, connects, sleeps until poll_timeout
//!     └─ peer::Peer (sans-IO): session(s), collision resolution, our blocks and
//!        reflected routes sent (Adj-RIB-Out), graceful-restart decisions
//!          │ Up / Update / Down                         ▲ Reflection, End-of-RIB
//!          ▼                                            │
//!   rib task: Rib, reflect::Reflector (what each peer should have), stale routes'
//!     restart timers, batches of a few ms ──► std mpsc: Vec<RouteChange> to the daemon
//! ```
//! Runs on its own thread with a current-thread runtime: the control plane never
//! competes with the poll-mode workers for more than that one thread.

mod driver;
pub mod peer;
pub mod reflect;
mod rib_task;
mod types;

use types::{initial_status, Command, Reply};
pub use types::{
    PathDetail, PeerConfig, PeerStatus, RouteChange, SessionInfo, SpeakerConfig, Status,
};

use ipnet::IpNet;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// The running speaker: its status, and dropping it stops the thread.
pub struct Speaker {
    pub status: Status,
    /// Time the RIB task takes per UPDATE (withdrawals and announcements applied).
    pub update_seconds: Arc<crate::histogram::Histogram>,
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

    /// Reset a peer's session: hard (Cease / Administrative Reset, a new session) or
    /// soft (route refresh both ways). What was done, or why not. Blocks like
    /// `add_peer`.
    pub fn reset_peer(&self, address: IpAddr, soft: bool) -> Result<String, String> {
        let stopped = || "the BGP speaker has stopped".to_string();
        let (reply, answer) = oneshot::channel();
        (self.commands)
            .send(Command::Reset(address, soft, reply))
            .map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Every path the RIB holds for each prefix (empty: none). Blocks like `add_peer`.
    pub fn paths(&self, prefixes: Vec<IpNet>) -> Vec<Vec<PathDetail>> {
        let n = prefixes.len();
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Paths(prefixes, reply)).is_err() {
            return vec![Vec::new(); n];
        }
        answer
            .blocking_recv()
            .unwrap_or_else(|_| vec![Vec::new(); n])
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

/// Start the speaker on its own thread; route changes arrive on `routes`.
pub fn spawn(
    cfg: SpeakerConfig,
    routes: crossbeam_channel::Sender<Vec<RouteChange>>,
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
    let update_seconds = Arc::new(crate::histogram::Histogram::default());
    let hist = update_seconds.clone();
    let thread = std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = driver::run(cfg, listener, routes, st, hist, blocks_rx, commands_rx) => {}
                    _ = stop_rx => {}
                }
            })
        })?;
    Ok(Speaker {
        status,
        update_seconds,
        blocks: blocks_tx,
        commands: commands_tx,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
