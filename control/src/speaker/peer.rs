//! One neighbour, sans-IO: its session (two while a connection collision is being
//! resolved), what we announced to it (Adj-RIB-Out: our blocks and the routes we
//! reflect), and the graceful-restart decisions. The driver (`driver::peer_task`)
//! feeds it connections, bytes, timer expiries and the RIB's reflections
//! (`process(now, input)`, `handle_timeout(now)` at `poll_timeout()`) and carries out
//! the [`Output`]s; tests do the same on a virtual clock.
//!
//! Connections are named by the driver ([`ConnId`]), which registers each one before
//! handing it in; the peer says which to write to and which to close.

use super::types::{PeerConfig, SessionInfo, SpeakerConfig};
use crate::bgp::counters::{capabilities_text, PeerCounters};
use crate::bgp::error::{BgpError, CeaseError};
use crate::bgp::fsm::{self, Down, Event, Negotiated, Session, State};
use crate::bgp::wire::{self, Family, PathAttrs};
use crate::rib::PeerInfo;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;
use tracing::info;

/// A TCP connection, as the driver numbers them.
pub type ConnId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Start the session (once, when the peer is configured).
    Start,
    /// Our connection attempt succeeded.
    Connected(ConnId),
    /// Our connection attempt failed (why, for the status).
    ConnectFailed(String),
    /// The peer connected to us.
    Accepted(ConnId),
    Bytes(ConnId, &'a [u8]),
    /// The connection closed (read end or error); the driver has dropped it.
    Closed(ConnId),
    /// Our blocks changed: announce the new, withdraw the dropped.
    Blocks(Vec<IpNet>),
    /// What the RIB wants reflected to this peer (route-reflector role).
    Reflected(Reflection),
    /// The RIB has sent what it had: End-of-RIB for these families.
    EndOfRib(Vec<Family>),
    /// The peer is removed from the configuration: say so to whoever has our OPEN.
    Deconfigure,
}

/// The RIB's view of what a peer should have, for some prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reflection {
    /// Routes to announce, grouped by attributes and next hop.
    pub announce: Vec<(PathAttrs, IpAddr, Vec<IpNet>)>,
    /// Prefixes the peer should not have (withdrawn if it was sent them).
    pub unwanted: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer (replacing any attempt under way).
    Connect,
    /// Drop the connection attempt under way: an accepted connection took its place.
    CancelConnect,
    Send(ConnId, Vec<u8>),
    /// Close the connection after what was sent, and forget it.
    Close(ConnId),
    /// Established, with the families negotiated.
    Up(PeerInfo, Vec<Family>),
    Update(wire::Update),
    /// The peer sent ROUTE-REFRESH for this family: our blocks went again; the RIB is
    /// to send again what it reflects to the peer (RFC 2918 §4: the whole Adj-RIB-Out).
    RefreshAsked(Family),
    /// The session went down; `restart_time` when its routes are to be kept (stale)
    /// for that long (graceful restart, RFC 4724 §4.2).
    Down {
        restart_time: Option<u16>,
    },
    Status(StatusChange),
}

/// A change to the peer's row in `Speaker::status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    State(State),
    Info(String),
    PrefixesSent(usize),
    /// What the OPEN exchange agreed (None: no session).
    Negotiated(Option<Box<SessionInfo>>),
    /// Why the last session ended (an error, a NOTIFICATION, a reset).
    LastError(String),
}

/// The peer's connection during a collision (RFC 4271 §6.8): its own session, whose
/// events other than sending and closing are held until it wins (then replayed) or
/// loses (dropped).
struct Second {
    conn: ConnId,
    session: Session,
    held: Vec<Event>,
}

impl Second {
    /// Carry out its sends; false once it closed.
    fn drive(&mut self, events: Vec<Event>, out: &mut Vec<Output>) -> bool {
        for e in events {
            match e {
                Event::Send(b) => out.push(Output::Send(self.conn, b)),
                Event::Close | Event::Down(_) => return false,
                Event::Connect => {}
                other => self.held.push(other),
            }
        }
        true
    }
}

pub struct Peer {
    speaker: SpeakerConfig,
    peer: PeerConfig,
    session: Session,
    /// The connection `session` runs on, and whether we initiated it.
    conn: Option<ConnId>,
    ours: bool,
    second: Option<Second>,
    negotiated: Option<Negotiated>,
    /// Our blocks as they are now, and as this session announced them.
    blocks: Vec<IpNet>,
    announced: Vec<IpNet>,
    /// Reflected prefixes this session was sent.
    reflected: HashSet<IpNet>,
    last_state: State,
    counters: PeerCounters,
}

impl Peer {
    /// `speaker`'s list of peers is not used.
    pub fn new(speaker: &SpeakerConfig, peer: PeerConfig, blocks: Vec<IpNet>) -> Peer {
        let mut cfg = fsm::Config::new(speaker.asn, peer.asn, speaker.router_id);
        cfg.hold_time = peer.hold_time;
        cfg.keepalive = peer.keepalive;
        cfg.passive = peer.passive;
        cfg.graceful_restart = speaker.graceful_restart;
        cfg.restarting = speaker.restarting;
        cfg.connect_retry = speaker.connect_retry;
        cfg.enforce_first_as = peer.enforce_first_as;
        cfg.max_prefixes = peer.max_prefixes;
        cfg.max_prefixes_warning = peer.max_prefixes_warning;
        Peer {
            speaker: SpeakerConfig {
                peers: Vec::new(),
                ..speaker.clone()
            },
            peer,
            session: Session::new(cfg),
            conn: None,
            ours: false,
            second: None,
            negotiated: None,
            blocks,
            announced: Vec::new(),
            reflected: HashSet::new(),
            last_state: State::Idle,
            counters: PeerCounters::default(),
        }
    }

    pub fn address(&self) -> IpAddr {
        self.peer.address
    }

    pub fn state(&self) -> State {
        self.session.state()
    }

    /// Messages and prefixes in and out since the peer was configured.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// `vrouterctl peer reset`: hard (Cease / Administrative Reset, the peer's routes
    /// dropped, a new session after a short idle) or soft (RFC 2918 ROUTE-REFRESH for
    /// each family, and our own routes sent again). What was done, or why not.
    pub fn reset(&mut self, now: Instant, soft: bool) -> Result<(String, Vec<Output>), String> {
        if !soft {
            let events = self.session.process(now, fsm::Input::Reset);
            let out = self.finish(events, Vec::new());
            return Ok(("session reset (Cease / Administrative Reset)".into(), out));
        }
        let (State::Established, Some(c), Some(n)) =
            (self.session.state(), self.conn, self.negotiated.as_ref())
        else {
            return Err(format!(
                "no session to refresh (state {:?}): use a hard reset",
                self.session.state()
            ));
        };
        if !n.route_refresh {
            return Err("the peer did not offer route refresh: use a hard reset".into());
        }
        let mut out = Vec::new();
        let asked: Vec<&str> = n
            .families
            .iter()
            .map(|&f| {
                out.push(Output::Send(c, wire::route_refresh(f)));
                match f {
                    wire::Family::Ipv4 => "ipv4-unicast",
                    wire::Family::Ipv6 => "ipv6-unicast",
                }
            })
            .collect();
        let n = n.clone();
        let sent = self.advertise(&n, &self.announced, &mut out);
        let done = format!(
            "route refresh asked for {}; our {sent} prefix(es) sent again",
            asked.join(", ")
        );
        Ok((done, self.finish(Vec::new(), out)))
    }

    /// The connection the session runs on.
    pub fn connection(&self) -> Option<ConnId> {
        self.conn
    }

    /// The next instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let events = self.session.handle_timeout(now);
        self.finish(events, Vec::new())
    }

    pub fn process(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        let events = match input {
            Input::Start => self.session.process(now, fsm::Input::Start),
            Input::Connected(c) => {
                if self.conn.is_some() {
                    out.push(Output::Close(c));
                    Vec::new()
                } else {
                    self.conn = Some(c);
                    self.ours = true;
                    self.session.process(now, fsm::Input::Connected)
                }
            }
            Input::ConnectFailed(e) => {
                out.push(Output::Status(StatusChange::Info(format!("connect: {e}"))));
                self.session.process(now, fsm::Input::ConnectFailed)
            }
            Input::Accepted(c) => self.accepted(now, c, &mut out),
            Input::Bytes(c, bytes) if Some(c) == self.conn => {
                self.session.process(now, fsm::Input::Bytes(bytes))
            }
            Input::Bytes(c, bytes) => {
                if let Some(sec) = self.second.as_mut().filter(|s| s.conn == c) {
                    let evs = sec.session.process(now, fsm::Input::Bytes(bytes));
                    if !sec.drive(evs, &mut out) {
                        out.push(Output::Close(c));
                        self.second = None;
                    }
                }
                Vec::new()
            }
            Input::Closed(c) if Some(c) == self.conn => {
                self.conn = None;
                self.session.process(now, fsm::Input::Closed)
            }
            Input::Closed(c) => {
                if self.second.as_ref().is_some_and(|s| s.conn == c) {
                    self.second = None;
                }
                Vec::new()
            }
            Input::Blocks(blocks) => {
                self.blocks = blocks;
                self.blocks_changed(&mut out);
                Vec::new()
            }
            Input::Reflected(r) => {
                self.reflect(r, &mut out);
                Vec::new()
            }
            Input::EndOfRib(families) => {
                if let (State::Established, Some(c)) = (self.state(), self.conn) {
                    let eor = families.iter().flat_map(|&f| wire::end_of_rib(f)).collect();
                    out.push(Output::Send(c, eor));
                }
                Vec::new()
            }
            Input::Deconfigure => {
                self.deconfigure(&mut out);
                return out;
            }
        };
        self.finish(events, out)
    }

    /// Resolve a collision if it can be, carry out the session's events, and report a
    /// change of state.
    fn finish(&mut self, mut events: Vec<Event>, mut out: Vec<Output>) -> Vec<Output> {
        self.resolve_collision(&mut events, &mut out);
        for e in events {
            self.on_event(e, &mut out);
        }
        self.counters.received.add(&self.session.take_received());
        for o in &out {
            if let Output::Send(_, bytes) = o {
                self.counters.sent.count_all(bytes);
            }
        }
        if self.session.state() != self.last_state {
            self.last_state = self.session.state();
            out.push(Output::Status(StatusChange::State(self.last_state)));
        }
        out
    }

    /// A collision resolves once either connection has the peer's OPEN; an
    /// established session always wins.
    fn resolve_collision(&mut self, events: &mut Vec<Event>, out: &mut Vec<Output>) {
        let Some(sec) = self.second.as_ref() else {
            return;
        };
        let loser = if self.session.state() == State::Established {
            fsm::Loser::Theirs
        } else {
            match fsm::resolve_collision(&self.session, &sec.session) {
                Some(l) => l,
                None => return,
            }
        };
        info!(peer = %self.peer.address, loser = ?loser, "connection collision resolved");
        let sec = self.second.take().expect("checked above");
        match loser {
            fsm::Loser::Theirs => {
                out.push(Output::Send(sec.conn, fsm::collision_notification()));
                out.push(Output::Close(sec.conn));
            }
            fsm::Loser::Ours => {
                if let Some(c) = self.conn {
                    out.push(Output::Send(c, fsm::collision_notification()));
                    out.push(Output::Close(c));
                }
                self.session = sec.session;
                self.conn = Some(sec.conn);
                self.ours = false;
                // What the losing session asked for dies with it.
                *events = sec.held;
            }
        }
    }

    fn on_event(&mut self, e: Event, out: &mut Vec<Output>) {
        match e {
            Event::Connect => out.push(Output::Connect),
            Event::Send(bytes) => {
                if let Some(c) = self.conn {
                    out.push(Output::Send(c, bytes));
                }
            }
            Event::Close => {
                if let Some(c) = self.conn.take() {
                    out.push(Output::Close(c));
                }
            }
            Event::Established(n) => {
                info!(peer = %self.peer.address, "BGP session established");
                let info = PeerInfo {
                    address: self.peer.address,
                    router_id: n.peer.router_id,
                    asn: self.peer.asn,
                    ibgp: self.ibgp(),
                };
                // Our blocks first; the RIB then sends what it reflects (if anything)
                // and End-of-RIB.
                self.announced = self.blocks.clone();
                self.reflected.clear();
                let sent = self.advertise(&n, &self.announced, out);
                out.push(Output::Up(info, n.families.clone()));
                out.push(Output::Status(StatusChange::PrefixesSent(sent)));
                out.push(Output::Status(StatusChange::Info("Established".into())));
                let local = self.session.local_open();
                out.push(Output::Status(StatusChange::Negotiated(Some(Box::new(
                    SessionInfo {
                        hold_time: n.hold_time,
                        keepalive: n.keepalive,
                        router_id: n.peer.router_id,
                        local_capabilities: capabilities_text(&local.caps),
                        peer_capabilities: capabilities_text(&n.peer.caps),
                    },
                )))));
                self.negotiated = Some(*n);
            }
            Event::Update(u) => out.push(Output::Update(u)),
            Event::RouteRefresh(family) => {
                if let Some(n) = &self.negotiated {
                    // Only the family asked for (RFC 2918 §4).
                    let ours: Vec<IpNet> = (self.announced.iter())
                        .filter(|&&p| family_of(p) == family)
                        .copied()
                        .collect();
                    self.advertise(n, &ours, out);
                    out.push(Output::RefreshAsked(family));
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
                    Down::Reset(_) => "reset by the operator".to_string(),
                };
                let detail = match &why {
                    Down::Sent(n) | Down::Received(n) | Down::Reset(n) => n.to_string(),
                    _ => String::new(),
                };
                if !matches!(why, Down::Stopped) {
                    let e = if detail.is_empty() {
                        info.clone()
                    } else {
                        format!("{info}: {detail}")
                    };
                    out.push(Output::Status(StatusChange::LastError(e)));
                }
                out.push(Output::Status(StatusChange::Negotiated(None)));
                info!(peer = %self.peer.address, %info, %detail, "BGP session down");
                // Graceful restart helper: a session lost without a NOTIFICATION from
                // the peer keeps its routes (stale) for the restart time.
                let restart_time = self
                    .negotiated
                    .take()
                    .and_then(|n| n.peer_graceful_restart)
                    .filter(|_| !matches!(why, Down::Received(_) | Down::Stopped | Down::Reset(_)))
                    .map(|g| g.restart_time);
                self.reflected.clear();
                out.push(Output::Down { restart_time });
                out.push(Output::Status(StatusChange::Info(info)));
            }
        }
    }

    /// An accepted connection: taken when we have none (or only a connect attempt, or
    /// are idle after a failure), and in place of a session the peer evidently
    /// restarted (graceful restart). A second connection while our own is opening is a
    /// collision (see `Second`). One refused is told why before it is closed (RFC 4486):
    /// Cease / Connection Collision Resolution while a session is Established (RFC 4271
    /// §6.8), Cease / Connection Rejected while the peer's own connection is opening.
    fn accepted(&mut self, now: Instant, c: ConnId, out: &mut Vec<Output>) -> Vec<Event> {
        let state = self.session.state();
        if self.ours
            && self.second.is_none()
            && matches!(state, State::OpenSent | State::OpenConfirm)
        {
            // Both sides connected: run the peer's connection too until the collision
            // can be resolved.
            let mut sec = Second {
                conn: c,
                session: Session::new(self.session.config().clone()),
                held: Vec::new(),
            };
            let mut evs = sec.session.process(now, fsm::Input::Start);
            evs.retain(|e| !matches!(e, Event::Connect));
            evs.extend(sec.session.process(now, fsm::Input::Connected));
            if sec.drive(evs, out) {
                self.second = Some(sec);
            } else {
                out.push(Output::Close(c));
            }
            return Vec::new();
        }
        if self.session.held_down(now) {
            // Ended for too many prefixes: not before the hold-down is over.
            out.push(Output::Send(c, fsm::rejected_notification()));
            out.push(Output::Close(c));
            return Vec::new();
        }
        self.ours = false;
        let s = &mut self.session;
        let mut events = Vec::new();
        if s.state() == State::Idle {
            // Waiting out the idle hold after a failure: a peer that is back is welcome.
            events.extend(s.process(now, fsm::Input::Start));
            events.retain(|e| !matches!(e, Event::Connect));
        }
        let replace = match s.state() {
            State::Idle | State::OpenSent | State::OpenConfirm => false,
            State::Connect | State::Active => true,
            State::Established => s
                .negotiated()
                .is_some_and(|n| n.peer_graceful_restart.is_some()),
        };
        if !replace {
            let why = if s.state() == State::Established {
                fsm::collision_notification()
            } else {
                fsm::rejected_notification()
            };
            info!(peer = %self.peer.address, state = ?s.state(), "a second connection from the peer refused");
            out.push(Output::Send(c, why));
            out.push(Output::Close(c));
            return events;
        }
        if s.state() == State::Established {
            // The peer restarted (graceful restart): its old session goes.
            events.extend(s.process(now, fsm::Input::Closed));
            events.retain(|e| !matches!(e, Event::Connect));
            events.extend(s.process(now, fsm::Input::Start));
            events.retain(|e| !matches!(e, Event::Connect));
        }
        out.push(Output::CancelConnect);
        if let Some(old) = self.conn.replace(c) {
            out.push(Output::Close(old));
        }
        events.extend(s.process(now, fsm::Input::Connected));
        events
    }

    fn blocks_changed(&mut self, out: &mut Vec<Output>) {
        let (Some(n), State::Established) = (&self.negotiated, self.session.state()) else {
            return;
        };
        let added: Vec<IpNet> = (self.blocks.iter())
            .filter(|b| !self.announced.contains(b))
            .copied()
            .collect();
        let gone: Vec<IpNet> = (self.announced.iter())
            .filter(|b| !self.blocks.contains(b))
            .copied()
            .collect();
        self.advertise(n, &added, out);
        if let Some(c) = self.conn {
            out.extend(
                wire::withdraw(&gone)
                    .into_iter()
                    .map(|m| Output::Send(c, m)),
            );
        }
        self.announced = self.blocks.clone();
        out.push(Output::Status(StatusChange::PrefixesSent(
            self.announced.len(),
        )));
    }

    /// Bring the reflected part of the Adj-RIB-Out to what the RIB wants; only an
    /// established session has one (a newer session gets its own full reflection).
    fn reflect(&mut self, r: Reflection, out: &mut Vec<Output>) {
        let (State::Established, Some(c)) = (self.session.state(), self.conn) else {
            return;
        };
        let mut bytes = Vec::new();
        for (attrs, next_hop, prefixes) in r.announce {
            self.reflected.extend(&prefixes);
            bytes.extend(wire::announce(&prefixes, &attrs, next_hop, true).concat());
        }
        let withdraw: Vec<IpNet> = (r.unwanted.into_iter())
            .filter(|p| self.reflected.remove(p))
            .collect();
        bytes.extend(wire::withdraw(&withdraw).concat());
        if !bytes.is_empty() {
            out.push(Output::Send(c, bytes));
        }
    }

    /// Removed: whoever has our OPEN hears why (RFC 4486), then the connections close.
    fn deconfigure(&mut self, out: &mut Vec<Output>) {
        info!(peer = %self.peer.address, "peer de-configured");
        let bye = || {
            let n = wire::Notification::new(BgpError::Cease(CeaseError::PeerDeconfigured), []);
            wire::notification(&n)
        };
        let opened = matches!(
            self.session.state(),
            State::OpenSent | State::OpenConfirm | State::Established
        );
        if let (Some(c), true) = (self.conn.take(), opened) {
            out.push(Output::Send(c, bye()));
            out.push(Output::Close(c));
        }
        if let Some(sec) = self.second.take() {
            out.push(Output::Send(sec.conn, bye()));
            out.push(Output::Close(sec.conn));
        }
    }

    fn ibgp(&self) -> bool {
        self.peer.asn == self.speaker.asn
    }

    /// Announce `blocks` (ours) in each negotiated family; returns prefixes sent.
    fn advertise(&self, n: &Negotiated, blocks: &[IpNet], out: &mut Vec<Output>) -> usize {
        let Some(c) = self.conn else { return 0 };
        let ibgp = self.ibgp();
        let attrs = PathAttrs {
            origin: 0,
            as_path: if ibgp {
                Vec::new()
            } else {
                vec![self.speaker.asn]
            },
            as_path_len: if ibgp { 0 } else { 1 },
            local_pref: ibgp.then_some(100),
            ..PathAttrs::default()
        };
        let mut by_family: HashMap<Family, Vec<IpNet>> = HashMap::new();
        for &p in blocks {
            by_family.entry(family_of(p)).or_default().push(p);
        }
        let mut sent = 0;
        for f in &n.families {
            let prefixes = by_family.remove(f).unwrap_or_default();
            let next_hop = match f {
                Family::Ipv4 => self.speaker.next_hop_v4.map(IpAddr::V4),
                Family::Ipv6 => self.speaker.next_hop_v6.map(IpAddr::V6),
            };
            if let (Some(nh), false) = (next_hop, prefixes.is_empty()) {
                let msgs = wire::announce(&prefixes, &attrs, nh, ibgp);
                out.extend(msgs.into_iter().map(|m| Output::Send(c, m)));
                sent += prefixes.len();
            }
        }
        sent
    }
}

/// The address family a prefix is announced in.
pub fn family_of(p: IpNet) -> Family {
    match p {
        IpNet::V4(_) => Family::Ipv4,
        IpNet::V6(_) => Family::Ipv6,
    }
}
