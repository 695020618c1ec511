//! One BGP session's state machine (RFC 4271 §8), sans-IO: the driver feeds it inputs
//! (`process(now, input)`) and timer expiries (`handle_timeout(now)` at `poll_timeout()`),
//! and carries out the events it returns (connect, send bytes, close). Tests run two
//! sessions against each other on a virtual clock.
//!
//! Connection collisions (RFC 4271 §6.8) involve two sessions toward one peer; the
//! speaker resolves them with [`collision_keeps_local`] once both have an OPEN.

use super::counters::Received;
use super::error::{BgpError, CeaseError, FsmError, OpenError};
use super::wire::{self, Capabilities, Family, GracefulRestart, Message, Notification, Open};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tracing::warn;

/// A session's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub local_as: u32,
    pub remote_as: u32,
    pub router_id: Ipv4Addr,
    /// Proposed hold time (0: no keepalives, or at least 3 s).
    pub hold_time: u16,
    /// Keepalive interval; default (and at most) a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// Only accept connections (the mesh's side toward a peer with a higher address).
    pub passive: bool,
    pub connect_retry: Duration,
    /// After a session went down on an error, how long Idle lasts before restarting.
    pub idle_hold: Duration,
    pub families: Vec<Family>,
    /// Offer graceful restart (RFC 4724) with this restart time.
    pub graceful_restart: Option<u16>,
    /// Set the R bit: we restarted and peers should keep our routes meanwhile.
    pub restarting: bool,
    /// eBGP: announcements whose AS_PATH does not start with the peer's AS (or is
    /// empty) are withdrawals, as BIRD and FRR do by default (a route server's peer
    /// turns it off).
    pub enforce_first_as: bool,
    /// At most this many prefixes from the peer (both families together); one more:
    /// Cease / Maximum Number of Prefixes Reached (RFC 4486) and `max_prefixes_idle`
    /// before the session starts again. `None`: no limit (and nothing counted).
    pub max_prefixes: Option<u32>,
    /// Warn once the peer holds this share (percent) of `max_prefixes`.
    pub max_prefixes_warning: u8,
    pub max_prefixes_idle: Duration,
}

impl Config {
    pub fn new(local_as: u32, remote_as: u32, router_id: Ipv4Addr) -> Config {
        Config {
            local_as,
            remote_as,
            router_id,
            hold_time: 90,
            keepalive: None,
            passive: false,
            connect_retry: Duration::from_secs(5),
            idle_hold: Duration::from_secs(5),
            families: vec![Family::Ipv4, Family::Ipv6],
            graceful_restart: Some(120),
            restarting: false,
            enforce_first_as: true,
            max_prefixes: None,
            max_prefixes_warning: 75,
            max_prefixes_idle: Duration::from_secs(60),
        }
    }

    pub fn ibgp(&self) -> bool {
        self.local_as == self.remote_as
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Start (or keep) the session.
    Start,
    /// Administrative stop: a Cease NOTIFICATION if a session is up.
    Stop,
    /// Administrative reset (`vrouterctl peer reset`): Cease / Administrative Reset if
    /// a session is up, then a new session after a short idle.
    Reset,
    /// A TCP connection to the peer is up (ours or theirs).
    Connected,
    /// Our connection attempt failed.
    ConnectFailed,
    /// The TCP connection closed.
    Closed,
    Bytes(&'a [u8]),
}

/// What was agreed in the OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer: Open,
    pub hold_time: u16,
    pub keepalive: u16,
    /// Families both sides announced.
    pub families: Vec<Family>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if both sides offered one.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    Stopped,
    /// We sent this NOTIFICATION (an error we found, or hold timer expiry).
    Sent(Notification),
    Received(Notification),
    ConnectionClosed,
    /// An administrative reset: the peer's routes go at once (no graceful restart).
    Reset(Notification),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Vec<u8>),
    /// Close the TCP connection (after sending what was queued).
    Close,
    Established(Box<Negotiated>),
    Update(wire::Update),
    RouteRefresh(Family),
    /// The session left Established (or failed before it) for this reason.
    Down(Down),
}

pub struct Session {
    cfg: Config,
    state: State,
    rx: Vec<u8>,
    connect_retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    idle_until: Option<Instant>,
    negotiated: Option<Negotiated>,
    peer_open: Option<Open>,
    /// With `max_prefixes`: the prefixes the peer announced and has not withdrawn
    /// (bounded by the limit), and whether the warning was given.
    received: HashSet<IpNet>,
    warned: bool,
    /// Messages and prefixes received since `take_received`.
    counts_in: Received,
    /// Ended for too many prefixes: no session with the peer before this (its own
    /// connections included).
    held_down_until: Option<Instant>,
}

/// Idle after an administrative reset, before the session starts again.
const RESET_IDLE: Duration = Duration::from_secs(1);

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2: "large", 4 minutes).
const OPEN_HOLD: Duration = Duration::from_secs(240);

impl Session {
    pub fn new(cfg: Config) -> Session {
        Session {
            cfg,
            state: State::Idle,
            rx: Vec::new(),
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
            idle_until: None,
            negotiated: None,
            peer_open: None,
            received: HashSet::new(),
            warned: false,
            counts_in: Received::default(),
            held_down_until: None,
        }
    }

    /// Whether the session is held down (over its maximum prefixes) at `now`: a
    /// connection from the peer is refused meanwhile.
    pub fn held_down(&self, now: Instant) -> bool {
        self.held_down_until.is_some_and(|t| now < t)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The OPEN we send (its capabilities, for `peer show`).
    pub fn local_open(&self) -> Open {
        self.our_open()
    }

    /// What was received since the last call (the peer keeps the sum: a session may
    /// be replaced by its collision's winner).
    pub fn take_received(&mut self) -> Received {
        std::mem::take(&mut self.counts_in)
    }

    /// The peer's OPEN, once received (for collision resolution).
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    /// The next instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.connect_retry_at,
            self.hold_at,
            self.keepalive_at,
            self.idle_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn process(&mut self, now: Instant, input: Input) -> Vec<Event> {
        let mut ev = Vec::new();
        match input {
            Input::Start => {
                if self.state == State::Idle {
                    self.idle_until = None;
                    self.start(now, &mut ev);
                }
            }
            Input::Stop => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    let n =
                        Notification::new(BgpError::Cease(CeaseError::AdministrativeShutdown), []);
                    ev.push(Event::Send(wire::notification(&n)));
                }
                if self.state != State::Idle {
                    ev.push(Event::Close);
                }
                self.go_idle(now, None);
                self.idle_until = None;
                ev.push(Event::Down(Down::Stopped));
            }
            Input::Reset => {
                let n = Notification::new(BgpError::Cease(CeaseError::AdministrativeReset), []);
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    ev.push(Event::Send(wire::notification(&n)));
                }
                if self.state != State::Idle {
                    ev.push(Event::Close);
                }
                self.go_idle(now, Some(RESET_IDLE));
                ev.push(Event::Down(Down::Reset(n)));
            }
            Input::Connected => match self.state {
                State::Connect | State::Active => {
                    self.connect_retry_at = None;
                    self.rx.clear();
                    ev.push(Event::Send(wire::open(&self.our_open())));
                    self.hold_at = Some(now + OPEN_HOLD);
                    self.state = State::OpenSent;
                }
                // A second connection is the speaker's collision to resolve, not ours.
                _ => {}
            },
            Input::ConnectFailed => {
                if self.state == State::Connect {
                    self.state = State::Active;
                    self.connect_retry_at = Some(now + self.cfg.connect_retry);
                }
            }
            Input::Closed => match self.state {
                State::Idle => {}
                State::Connect | State::Active => {
                    self.state = State::Active;
                    self.connect_retry_at = Some(now + self.cfg.connect_retry);
                }
                // RFC 4271 §8.2.2: OpenSent + TcpConnectionFails → Active.
                State::OpenSent => {
                    self.hold_at = None;
                    self.state = State::Active;
                    self.connect_retry_at = Some(now + self.cfg.connect_retry);
                }
                State::OpenConfirm | State::Established => {
                    self.go_idle(now, Some(self.cfg.idle_hold));
                    ev.push(Event::Down(Down::ConnectionClosed));
                }
            },
            Input::Bytes(b) => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    self.rx.extend_from_slice(b);
                    self.read_messages(now, &mut ev);
                }
            }
        }
        ev
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.idle_until) {
            self.idle_until = None;
            if self.state == State::Idle {
                self.start(now, &mut ev);
            }
        }
        if due(self.connect_retry_at) {
            self.connect_retry_at = None;
            if matches!(self.state, State::Connect | State::Active) {
                self.start(now, &mut ev);
            }
        }
        if due(self.hold_at) {
            self.hold_at = None;
            let n = Notification::new(BgpError::HoldTimerExpired, []);
            self.fail(now, n, &mut ev);
        }
        if due(self.keepalive_at) {
            ev.push(Event::Send(wire::keepalive()));
            self.keepalive_at = self.keepalive_interval().map(|k| now + k);
        }
        ev
    }

    fn start(&mut self, now: Instant, ev: &mut Vec<Event>) {
        if self.cfg.passive {
            self.state = State::Active;
            self.connect_retry_at = None;
        } else {
            self.state = State::Connect;
            self.connect_retry_at = Some(now + self.cfg.connect_retry);
            ev.push(Event::Connect);
        }
    }

    fn our_open(&self) -> Open {
        Open {
            asn: self.cfg.local_as,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
            caps: Capabilities {
                four_octet_as: true,
                families: self.cfg.families.clone(),
                route_refresh: true,
                graceful_restart: self.cfg.graceful_restart.map(|t| GracefulRestart {
                    restarting: self.cfg.restarting,
                    restart_time: t,
                    // F (forwarding state kept) only while we come back from a restart
                    // with the FIB still forwarding.
                    families: self
                        .cfg
                        .families
                        .iter()
                        .map(|&f| (f, self.cfg.restarting))
                        .collect(),
                }),
            },
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        let n = self.negotiated.as_ref()?;
        (n.keepalive > 0).then(|| Duration::from_secs(n.keepalive as u64))
    }

    fn restart_hold(&mut self, now: Instant) {
        self.hold_at = match &self.negotiated {
            Some(n) if n.hold_time > 0 => Some(now + Duration::from_secs(n.hold_time as u64)),
            Some(_) => None,
            None => self.hold_at,
        };
    }

    fn read_messages(&mut self, now: Instant, ev: &mut Vec<Event>) {
        let session = wire::Session {
            four_octet_as: self.negotiated.as_ref().is_some_and(|n| n.four_octet_as),
        };
        let mut at = 0;
        loop {
            let len = match wire::frame_len(&self.rx[at..]) {
                Ok(Some(len)) if self.rx.len() - at >= len => len,
                Ok(_) => break,
                Err(e) => return self.fail(now, e.notification(), ev),
            };
            self.counts_in
                .messages
                .count(self.rx[at + wire::HEADER_LEN - 1]);
            let msg = wire::decode(&self.rx[at..at + len], session);
            at += len;
            match msg {
                Ok(m) => {
                    if !self.on_message(now, m, ev) {
                        return;
                    }
                }
                Err(e) => return self.fail(now, e.notification(), ev),
            }
        }
        self.rx.drain(..at);
    }

    /// Handle one message; false once the session went down.
    fn on_message(&mut self, now: Instant, m: Message, ev: &mut Vec<Event>) -> bool {
        match (self.state, m) {
            (_, Message::Notification(n)) => {
                ev.push(Event::Close);
                self.go_idle(now, Some(self.cfg.idle_hold));
                ev.push(Event::Down(Down::Received(n)));
                false
            }
            (State::OpenSent, Message::Open(o)) => match self.check_open(&o) {
                Err(n) => {
                    self.fail(now, n, ev);
                    false
                }
                Ok(neg) => {
                    self.peer_open = Some(o);
                    self.negotiated = Some(neg);
                    ev.push(Event::Send(wire::keepalive()));
                    self.restart_hold(now);
                    self.keepalive_at = self.keepalive_interval().map(|k| now + k);
                    self.state = State::OpenConfirm;
                    true
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.restart_hold(now);
                let n = self.negotiated.clone().expect("set in OpenSent");
                ev.push(Event::Established(Box::new(n)));
                true
            }
            (State::Established, Message::Keepalive) => {
                self.restart_hold(now);
                true
            }
            (State::Established, Message::Update(mut u)) => {
                self.restart_hold(now);
                self.counts_in.announced += u.announced.len() as u64;
                self.counts_in.withdrawn += u.withdrawn.len() as u64;
                if !self.cfg.ibgp() {
                    self.check_external(&mut u);
                }
                if let Some(max) = self.cfg.max_prefixes {
                    if self.over_limit(now, &u, max, ev) {
                        return false;
                    }
                }
                ev.push(Event::Update(u));
                true
            }
            (State::Established, Message::RouteRefresh(f)) => {
                self.restart_hold(now);
                ev.push(Event::RouteRefresh(f));
                true
            }
            (State::Established, Message::RouteRefreshOther) => true,
            (state, _) => {
                // RFC 6608 subcodes: unexpected message in OpenSent / OpenConfirm /
                // Established.
                let sub = match state {
                    State::OpenSent => FsmError::UnexpectedInOpenSent,
                    State::OpenConfirm => FsmError::UnexpectedInOpenConfirm,
                    _ => FsmError::UnexpectedInEstablished,
                };
                self.fail(now, Notification::new(BgpError::Fsm(sub), []), ev);
                false
            }
        }
    }

    /// An eBGP peer's UPDATE: LOCAL_PREF is not its to give (RFC 4271 §5.1.5: ignored);
    /// with `enforce_first_as`, announcements with an empty AS_PATH or one that does
    /// not start with the peer's AS are withdrawals (treat-as-withdraw).
    fn check_external(&self, u: &mut wire::Update) {
        u.attrs.local_pref = None;
        if self.cfg.enforce_first_as
            && !u.announced.is_empty()
            && u.attrs.as_path.first() != Some(&self.cfg.remote_as)
        {
            let announced = std::mem::take(&mut u.announced);
            u.withdrawn.extend(announced);
            u.error_handling = u
                .error_handling
                .max(Some(super::error::ErrorHandling::TreatAsWithdraw));
        }
    }

    /// Count what `u` leaves the peer holding; over `max`: the session ends (RFC 4486:
    /// the data are the AFI / SAFI of the announcement that went over and the limit)
    /// and stays down for `max_prefixes_idle`.
    fn over_limit(
        &mut self,
        now: Instant,
        u: &wire::Update,
        max: u32,
        ev: &mut Vec<Event>,
    ) -> bool {
        for w in &u.withdrawn {
            self.received.remove(w);
        }
        let mut last_v6 = false;
        for a in &u.announced {
            self.received.insert(*a);
            last_v6 = matches!(a, IpNet::V6(_));
            if self.received.len() > max as usize {
                break;
            }
        }
        let held = self.received.len() as u64;
        if !self.warned && held * 100 >= u64::from(max) * u64::from(self.cfg.max_prefixes_warning) {
            self.warned = true;
            warn!(
                peer_as = self.cfg.remote_as,
                held, max, "BGP peer near its maximum prefixes"
            );
        }
        if held <= u64::from(max) {
            return false;
        }
        warn!(
            peer_as = self.cfg.remote_as,
            max, "BGP peer over its maximum prefixes: session ends"
        );
        let mut data = vec![0, if last_v6 { 2 } else { 1 }, 1];
        data.extend_from_slice(&max.to_be_bytes());
        let n = Notification::new(BgpError::Cease(CeaseError::MaximumPrefixesReached), data);
        self.fail(now, n, ev);
        self.idle_until = Some(now + self.cfg.max_prefixes_idle);
        self.held_down_until = self.idle_until;
        true
    }

    fn check_open(&self, o: &Open) -> Result<Negotiated, Notification> {
        if o.asn != self.cfg.remote_as {
            let two = u16::try_from(o.asn).unwrap_or(wire::AS_TRANS);
            return Err(Notification::new(
                BgpError::Open(OpenError::BadPeerAs),
                two.to_be_bytes(),
            ));
        }
        if o.hold_time == 1 || o.hold_time == 2 {
            return Err(Notification::new(
                BgpError::Open(OpenError::UnacceptableHoldTime),
                [],
            ));
        }
        if o.router_id.is_unspecified() || (self.cfg.ibgp() && o.router_id == self.cfg.router_id) {
            return Err(Notification::new(
                BgpError::Open(OpenError::BadBgpIdentifier),
                [],
            ));
        }
        let hold_time = self.cfg.hold_time.min(o.hold_time);
        let families = self
            .cfg
            .families
            .iter()
            .copied()
            .filter(|f| o.caps.families.contains(f))
            .collect();
        Ok(Negotiated {
            peer: o.clone(),
            hold_time,
            keepalive: self
                .cfg
                .keepalive
                .map_or(hold_time / 3, |k| k.min(hold_time / 3)),
            families,
            four_octet_as: o.caps.four_octet_as,
            route_refresh: o.caps.route_refresh,
            peer_graceful_restart: self
                .cfg
                .graceful_restart
                .and(o.caps.graceful_restart.clone()),
        })
    }

    /// Send `n`, close, go Idle (and restart after the idle hold time).
    fn fail(&mut self, now: Instant, n: Notification, ev: &mut Vec<Event>) {
        ev.push(Event::Send(wire::notification(&n)));
        ev.push(Event::Close);
        self.go_idle(now, Some(self.cfg.idle_hold));
        ev.push(Event::Down(Down::Sent(n)));
    }

    fn go_idle(&mut self, now: Instant, restart_after: Option<Duration>) {
        self.state = State::Idle;
        self.rx.clear();
        self.connect_retry_at = None;
        self.hold_at = None;
        self.keepalive_at = None;
        self.negotiated = None;
        self.peer_open = None;
        self.received.clear();
        self.warned = false;
        self.idle_until = restart_after.map(|d| now + d);
    }
}

/// Connection collision (RFC 4271 §6.8): of two connections to one peer, the one
/// initiated by the speaker with the higher BGP identifier survives. True when the
/// connection we initiated is the one to keep.
pub fn collision_keeps_local(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> bool {
    u32::from(local_id) > u32::from(remote_id)
}

/// Which of two sessions to one peer must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loser {
    /// The session on the connection we initiated.
    Ours,
    /// The session on the connection the peer initiated.
    Theirs,
}

/// Resolve a collision between the session on our connection and the one on the
/// peer's, as soon as either has the peer's OPEN (and so its BGP identifier): the
/// loser is to be closed with a Cease / connection collision NOTIFICATION
/// ([`collision_notification`]). None while neither knows it yet.
pub fn resolve_collision(ours: &Session, theirs: &Session) -> Option<Loser> {
    let remote = ours.peer_open().or(theirs.peer_open())?.router_id;
    Some(if collision_keeps_local(ours.config().router_id, remote) {
        Loser::Theirs
    } else {
        Loser::Ours
    })
}

/// What the losing connection of a collision is sent before it is closed.
/// Cease / Connection Rejected (RFC 4486): a connection we will not run.
pub fn rejected_notification() -> Vec<u8> {
    wire::notification(&Notification::new(
        BgpError::Cease(CeaseError::ConnectionRejected),
        [],
    ))
}

pub fn collision_notification() -> Vec<u8> {
    wire::notification(&Notification::new(
        BgpError::Cease(CeaseError::ConnectionCollisionResolution),
        [],
    ))
}
