//! Two sessions talking in memory on a virtual clock: establishment, keepalives, hold
//! timer expiry, updates, stop, and every NOTIFICATION the state machine sends.

use control::bgp::error::{BgpError, CeaseError, ErrorCode, FsmError, HeaderError, OpenError};
use control::bgp::fsm::{collision_keeps_local, Config, Down, Event, Input, Session, State};
use control::bgp::wire::{self, ErrorHandling, Family, Notification, PathAttrs};
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const A_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Two sessions joined by an in-memory "TCP connection", and a virtual clock.
struct Pair {
    now: Instant,
    a: Session,
    b: Session,
    /// Bytes in flight toward a / b, and whether the link still carries them.
    to_a: Vec<u8>,
    to_b: Vec<u8>,
    link_up: bool,
    /// Events seen by each side (Send excluded).
    seen_a: Vec<Event>,
    seen_b: Vec<Event>,
    /// Every NOTIFICATION sent, as (by a?, notification).
    notifications: Vec<(bool, Notification)>,
}

impl Pair {
    fn new(a: Config, b: Config) -> Pair {
        Pair {
            now: Instant::now(),
            a: Session::new(a),
            b: Session::new(b),
            to_a: Vec::new(),
            to_b: Vec::new(),
            link_up: false,
            seen_a: Vec::new(),
            seen_b: Vec::new(),
            notifications: Vec::new(),
        }
    }

    fn ibgp() -> Pair {
        let mut b = Config::new(64512, 64512, B_ID);
        b.passive = true;
        Pair::new(Config::new(64512, 64512, A_ID), b)
    }

    /// Carry out what a session asked for.
    fn apply(&mut self, from_a: bool, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Send(bytes) => {
                    if bytes.len() > 18 && bytes[18] == wire::NOTIFICATION {
                        let n = Notification {
                            code: bytes[19],
                            subcode: bytes[20],
                            data: bytes[21..].to_vec(),
                        };
                        self.notifications.push((from_a, n));
                    }
                    if self.link_up {
                        if from_a {
                            self.to_b.extend(bytes)
                        } else {
                            self.to_a.extend(bytes)
                        }
                    }
                }
                Event::Connect => {
                    // The passive side accepts at once.
                    self.link_up = true;
                    let ea = self.a.process(self.now, Input::Connected);
                    let eb = self.b.process(self.now, Input::Connected);
                    self.apply(true, ea);
                    self.apply(false, eb);
                }
                Event::Close => {
                    if self.link_up {
                        self.link_up = false;
                        // The other side sees the connection close after what was sent.
                        self.deliver();
                        let (ea, eb) = if from_a {
                            (vec![], self.b.process(self.now, Input::Closed))
                        } else {
                            (self.a.process(self.now, Input::Closed), vec![])
                        };
                        self.apply(true, ea);
                        self.apply(false, eb);
                    }
                }
                other => {
                    if from_a {
                        self.seen_a.push(other)
                    } else {
                        self.seen_b.push(other)
                    }
                }
            }
        }
    }

    /// Deliver bytes in flight until both sides are quiet.
    fn deliver(&mut self) {
        for _ in 0..100 {
            if self.to_a.is_empty() && self.to_b.is_empty() {
                return;
            }
            let to_b = std::mem::take(&mut self.to_b);
            if !to_b.is_empty() {
                let e = self.b.process(self.now, Input::Bytes(&to_b));
                self.apply(false, e);
            }
            let to_a = std::mem::take(&mut self.to_a);
            if !to_a.is_empty() {
                let e = self.a.process(self.now, Input::Bytes(&to_a));
                self.apply(true, e);
            }
        }
        panic!("sessions never went quiet");
    }

    fn start(&mut self) {
        let eb = self.b.process(self.now, Input::Start);
        self.apply(false, eb);
        let ea = self.a.process(self.now, Input::Start);
        self.apply(true, ea);
        self.deliver();
    }

    /// Advance the virtual clock to `until`, firing timers in order.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let ea = self.a.handle_timeout(self.now);
                    self.apply(true, ea);
                    let eb = self.b.handle_timeout(self.now);
                    self.apply(false, eb);
                    self.deliver();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn established(&self) -> bool {
        self.a.state() == State::Established && self.b.state() == State::Established
    }
}

#[test]
fn two_sessions_establish_and_stay_up_on_keepalives() {
    let mut p = Pair::ibgp();
    p.start();
    assert!(p.established(), "a {:?}, b {:?}", p.a.state(), p.b.state());
    let n = p.a.negotiated().unwrap();
    assert_eq!(n.hold_time, 90);
    assert_eq!(n.keepalive, 30);
    assert_eq!(n.families, vec![Family::Ipv4, Family::Ipv6]);
    assert!(n.four_octet_as && n.route_refresh);
    assert_eq!(n.peer.router_id, B_ID);
    assert_eq!(n.peer_graceful_restart.as_ref().unwrap().restart_time, 120);
    assert!(matches!(p.seen_a[0], Event::Established(_)));
    assert!(matches!(p.seen_b[0], Event::Established(_)));

    // An hour of virtual time: keepalives every 30 s keep both hold timers from expiring.
    let end = p.now + Duration::from_secs(3600);
    p.run_until(end);
    assert!(p.established());
    assert!(p.notifications.is_empty(), "{:?}", p.notifications);
}

#[test]
fn hold_time_is_the_smaller_and_zero_means_no_keepalives() {
    let mut a = Config::new(64512, 65001, A_ID);
    a.hold_time = 9;
    let mut b = Config::new(65001, 64512, B_ID);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start();
    assert!(p.established());
    assert_eq!(p.b.negotiated().unwrap().hold_time, 9);
    assert_eq!(p.b.negotiated().unwrap().keepalive, 3);

    let mut a = Config::new(64512, 64512, A_ID);
    a.hold_time = 0;
    let mut b = Config::new(64512, 64512, B_ID);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start();
    assert!(p.established());
    assert_eq!(
        p.a.poll_timeout(),
        None,
        "no hold or keepalive timer with hold 0"
    );
}

#[test]
fn hold_timer_expiry_sends_its_notification() {
    let mut p = Pair::ibgp();
    p.start();
    assert!(p.established());
    // The link silently stops carrying bytes (no FIN): keepalives are lost.
    p.link_up = false;
    let t0 = p.now;
    p.run_until(t0 + Duration::from_secs(91));
    assert_eq!(p.a.state(), State::Idle);
    assert!(p.seen_a.iter().any(
        |e| matches!(e, Event::Down(Down::Sent(n)) if n.error() == Some(BgpError::HoldTimerExpired))
    ));
    assert!(p
        .notifications
        .iter()
        .any(|(by_a, n)| *by_a && n.error() == Some(BgpError::HoldTimerExpired)));
}

#[test]
fn updates_flow_both_ways_and_route_refresh_is_delivered() {
    let mut p = Pair::ibgp();
    p.start();
    let blocks: Vec<IpNet> = vec![
        "10.244.1.0/26".parse().unwrap(),
        "10.244.1.64/26".parse().unwrap(),
    ];
    let attrs = PathAttrs {
        origin: 0,
        local_pref: Some(100),
        ..PathAttrs::default()
    };
    for m in wire::announce(&blocks, &attrs, IpAddr::V4(A_ID), true) {
        p.to_b.extend(m);
    }
    p.to_b.extend(wire::route_refresh(Family::Ipv6));
    p.deliver();
    let got = updates_at_b(&p);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].announced, blocks);
    assert_eq!(got[0].attrs.next_hop, Some(A_ID));
    assert!(p.seen_b.contains(&Event::RouteRefresh(Family::Ipv6)));
}

#[test]
fn stop_sends_cease_and_the_peer_goes_idle() {
    let mut p = Pair::ibgp();
    p.start();
    let e = p.a.process(p.now, Input::Stop);
    p.apply(true, e);
    p.deliver();
    assert_eq!(p.a.state(), State::Idle);
    assert_eq!(p.b.state(), State::Idle);
    assert!(p.notifications.contains(&(
        true,
        Notification::new(BgpError::Cease(CeaseError::AdministrativeShutdown), [])
    )));
    assert!(p
        .seen_b
        .iter()
        .any(|e| matches!(e, Event::Down(Down::Received(n)) if n.code == ErrorCode::Cease as u8)));
    // A stopped session stays down; the one that received the Cease restarts after its
    // idle hold time and waits passively.
    let t = p.now + Duration::from_secs(60);
    p.run_until(t);
    assert_eq!(p.a.state(), State::Idle);
    assert_eq!(p.b.state(), State::Active);
    // Started again, they come back.
    let e = p.a.process(p.now, Input::Start);
    p.apply(true, e);
    p.deliver();
    assert!(p.established());
}

#[test]
fn a_failed_connection_is_retried() {
    let cfg = Config::new(64512, 64512, A_ID);
    let retry = cfg.connect_retry;
    let mut s = Session::new(cfg);
    let t0 = Instant::now();
    assert_eq!(s.process(t0, Input::Start), vec![Event::Connect]);
    assert_eq!(s.process(t0, Input::ConnectFailed), vec![]);
    assert_eq!(s.state(), State::Active);
    assert_eq!(s.poll_timeout(), Some(t0 + retry));
    assert_eq!(s.handle_timeout(t0 + retry), vec![Event::Connect]);
    assert_eq!(s.state(), State::Connect);
}

/// A session in OpenSent (connected, our OPEN sent) and the clock.
fn open_sent(cfg: Config) -> (Session, Instant) {
    let mut s = Session::new(cfg);
    let t = Instant::now();
    s.process(t, Input::Start);
    let e = s.process(t, Input::Connected);
    assert!(matches!(&e[..], [Event::Send(b)] if b[18] == wire::OPEN));
    assert_eq!(s.state(), State::OpenSent);
    (s, t)
}

/// The NOTIFICATION a session sends when it receives `bytes` in OpenSent.
fn notification_for(cfg: Config, bytes: &[u8]) -> Notification {
    let (mut s, t) = open_sent(cfg);
    let e = s.process(t, Input::Bytes(bytes));
    assert_eq!(s.state(), State::Idle, "{e:?}");
    e.iter()
        .find_map(|e| match e {
            Event::Send(b) if b[18] == wire::NOTIFICATION => Some(Notification {
                code: b[19],
                subcode: b[20],
                data: b[21..].to_vec(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no NOTIFICATION in {e:?}"))
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr) -> Vec<u8> {
    wire::open(&wire::Open {
        asn,
        hold_time: hold,
        router_id: id,
        caps: wire::Capabilities {
            four_octet_as: true,
            families: vec![Family::Ipv4],
            ..Default::default()
        },
    })
}

#[test]
fn open_errors_get_their_notifications() {
    let cfg = || Config::new(64512, 64512, A_ID);
    // RFC 4271 §6.2.
    let n = notification_for(cfg(), &peer_open(65000, 90, B_ID));
    assert_eq!(n.error(), Some(BgpError::Open(OpenError::BadPeerAs)));
    let n = notification_for(cfg(), &peer_open(64512, 2, B_ID));
    assert_eq!(
        n.error(),
        Some(BgpError::Open(OpenError::UnacceptableHoldTime))
    );
    let n = notification_for(cfg(), &peer_open(64512, 90, Ipv4Addr::UNSPECIFIED));
    assert_eq!(n.error(), Some(BgpError::Open(OpenError::BadBgpIdentifier)));
    let n = notification_for(cfg(), &peer_open(64512, 90, A_ID));
    assert_eq!(
        n.error(),
        Some(BgpError::Open(OpenError::BadBgpIdentifier)),
        "iBGP peer with our id"
    );
    let mut v3 = peer_open(64512, 90, B_ID);
    v3[19] = 3;
    let n = notification_for(cfg(), &v3);
    assert_eq!(
        (n.error(), &n.data[..]),
        (
            Some(BgpError::Open(OpenError::UnsupportedVersionNumber)),
            &[0u8, 4][..]
        )
    );
    // A 4-byte AS peer: the 2-byte field says AS_TRANS, the capability the real AS.
    let mut four = Config::new(64512, 4_200_000_001, A_ID);
    four.passive = true;
    let (mut s, t) = open_sent(four);
    s.process(t, Input::Bytes(&peer_open(4_200_000_001, 90, B_ID)));
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn header_errors_get_their_notifications() {
    let cfg = || Config::new(64512, 64512, A_ID);
    let mut bad_marker = wire::keepalive();
    bad_marker[3] = 0;
    let n = notification_for(cfg(), &bad_marker);
    assert_eq!(
        n.error(),
        Some(BgpError::MessageHeader(
            HeaderError::ConnectionNotSynchronized
        ))
    );

    let mut too_long = wire::keepalive();
    too_long[16..18].copy_from_slice(&5000u16.to_be_bytes());
    let n = notification_for(cfg(), &too_long);
    assert_eq!(
        (n.error(), &n.data[..]),
        (
            Some(BgpError::MessageHeader(HeaderError::BadMessageLength)),
            &5000u16.to_be_bytes()[..]
        )
    );

    let mut keepalive_20 = wire::keepalive();
    keepalive_20.push(0);
    keepalive_20[16..18].copy_from_slice(&20u16.to_be_bytes());
    let n = notification_for(cfg(), &keepalive_20);
    assert_eq!(
        n.error(),
        Some(BgpError::MessageHeader(HeaderError::BadMessageLength))
    );

    let mut bad_type = wire::keepalive();
    bad_type[18] = 9;
    let n = notification_for(cfg(), &bad_type);
    assert_eq!(
        (n.error(), &n.data[..]),
        (
            Some(BgpError::MessageHeader(HeaderError::BadMessageType)),
            &[9u8][..]
        )
    );
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let cfg = || Config::new(64512, 64512, A_ID);
    // An UPDATE (or KEEPALIVE) before the OPEN: RFC 6608 subcode 1 (OpenSent).
    let n = notification_for(cfg(), &wire::end_of_rib(Family::Ipv4));
    assert_eq!(
        n.error(),
        Some(BgpError::Fsm(FsmError::UnexpectedInOpenSent))
    );
    let n = notification_for(cfg(), &wire::keepalive());
    assert_eq!(
        n.error(),
        Some(BgpError::Fsm(FsmError::UnexpectedInOpenSent))
    );
    // In OpenConfirm, an UPDATE: subcode 2.
    let (mut s, t) = open_sent(cfg());
    s.process(t, Input::Bytes(&peer_open(64512, 90, B_ID)));
    assert_eq!(s.state(), State::OpenConfirm);
    let e = s.process(t, Input::Bytes(&wire::end_of_rib(Family::Ipv4)));
    assert!(
        e.iter().any(
            |e| matches!(e, Event::Down(Down::Sent(n)) if n.error() == Some(BgpError::Fsm(FsmError::UnexpectedInOpenConfirm)))
        ),
        "{e:?}"
    );
    // A second OPEN once established: subcode 3.
    let mut p = Pair::ibgp();
    p.start();
    p.to_a.extend(peer_open(64512, 90, B_ID));
    p.deliver();
    assert!(p
        .notifications
        .iter()
        .any(|(by_a, n)| *by_a
            && n.error() == Some(BgpError::Fsm(FsmError::UnexpectedInEstablished))));
}

#[test]
fn a_connection_closed_before_open_goes_back_to_active() {
    let (mut s, t) = open_sent(Config::new(64512, 64512, A_ID));
    assert!(s.process(t, Input::Closed).is_empty());
    assert_eq!(s.state(), State::Active);
    assert!(s.poll_timeout().is_some(), "connect retry armed");
}

#[test]
fn collisions_keep_the_higher_identifiers_connection() {
    assert!(collision_keeps_local(B_ID, A_ID));
    assert!(!collision_keeps_local(A_ID, B_ID));
}

/// Established session `a` of a pair, with `b` silent: feed it bytes.
fn established() -> Pair {
    let mut p = Pair::ibgp();
    p.start();
    assert!(p.established());
    p
}

proptest! {
    /// Random bytes after Established never panic: the session either stays up or sends
    /// a NOTIFICATION and goes Idle.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), marker in any::<bool>()) {
        let mut p = established();
        let mut input = bytes;
        if marker && input.len() >= 19 {
            // Past the marker check, so that lengths and types are exercised.
            input[..16].fill(0xff);
        }
        let e = p.a.process(p.now, Input::Bytes(&input));
        if p.a.state() != State::Established {
            // Random bytes can also form a NOTIFICATION from the peer.
            prop_assert!(e.iter().any(|e| matches!(e, Event::Down(Down::Sent(_) | Down::Received(_)))), "{:?}", e);
        }
    }

    /// Mutated real UPDATEs: never a panic; an error is a NOTIFICATION, never silence (a
    /// mutated type byte may also make it a NOTIFICATION received).
    #[test]
    fn mutated_updates_never_panic(at in any::<prop::sample::Index>(), value in any::<u8>(), six in any::<bool>(), n in 1usize..40) {
        let mut p = established();
        let blocks: Vec<IpNet> = (0..n)
            .map(|i| if six { format!("fd10::{i:x}:0/122") } else { format!("10.{}.{}.0/26", i / 4, (i % 4) * 64) }.parse().unwrap())
            .collect();
        let attrs = PathAttrs { origin: 0, med: Some(5), communities: vec![0xfde8_0001], ..PathAttrs::default() };
        let nh = if six { "fd00::1".parse().unwrap() } else { IpAddr::V4(B_ID) };
        let mut msg = wire::announce(&blocks, &attrs, nh, true).remove(0);
        let i = at.index(msg.len());
        msg[i] = value;
        let e = p.a.process(p.now, Input::Bytes(&msg));
        let up = p.a.state() == State::Established;
        prop_assert!(up || e.iter().any(|e| matches!(e, Event::Down(Down::Sent(_) | Down::Received(_)))), "{:?}", e);
    }
}

/// Both speakers connect at once (RFC 4271 §6.8): each side runs a session on its own
/// connection and one on the peer's; as soon as a side has the peer's OPEN it closes
/// the connection initiated by the lower BGP identifier, with a Cease / collision
/// NOTIFICATION. Both sides pick the same one, and one session survives.
#[test]
fn connection_collision_keeps_the_higher_identifiers_connection() {
    use control::bgp::fsm::{collision_notification, resolve_collision, Loser};
    let t = Instant::now();
    let cfg = |me| Config::new(64512, 64512, me);
    // Connection 1: A initiated (A.out <-> B.in); connection 2: B initiated (B.out <-> A.in).
    let mut a_out = Session::new(cfg(A_ID));
    let mut a_in = Session::new(cfg(A_ID));
    let mut b_out = Session::new(cfg(B_ID));
    let mut b_in = Session::new(cfg(B_ID));
    for s in [&mut a_out, &mut a_in, &mut b_out, &mut b_in] {
        s.process(t, Input::Start);
    }
    // Bytes on each connection, per direction: [conn][0] toward the initiator's peer.
    let mut wire_to: [[Vec<u8>; 2]; 2] = Default::default(); // [conn][to initiator?]
    let mut open = [true, true];
    let mut notes = Vec::new();
    let take =
        |evs: Vec<Event>, conn: usize, from_initiator: bool, wire_to: &mut [[Vec<u8>; 2]; 2]| {
            for e in evs {
                if let Event::Send(b) = e {
                    wire_to[conn][usize::from(!from_initiator)].extend(b);
                }
            }
        };
    // All four connect at once.
    take(a_out.process(t, Input::Connected), 0, true, &mut wire_to);
    take(b_in.process(t, Input::Connected), 0, false, &mut wire_to);
    take(b_out.process(t, Input::Connected), 1, true, &mut wire_to);
    take(a_in.process(t, Input::Connected), 1, false, &mut wire_to);
    for _ in 0..10 {
        // Deliver: index 0 = bytes going to the non-initiator, 1 = to the initiator.
        for conn in 0..2 {
            if !open[conn] {
                continue;
            }
            let to_responder = std::mem::take(&mut wire_to[conn][0]);
            let to_initiator = std::mem::take(&mut wire_to[conn][1]);
            let (init, resp) = if conn == 0 {
                (&mut a_out, &mut b_in)
            } else {
                (&mut b_out, &mut a_in)
            };
            if !to_responder.is_empty() {
                let e = resp.process(t, Input::Bytes(&to_responder));
                take(e, conn, false, &mut wire_to);
            }
            if !to_initiator.is_empty() {
                let e = init.process(t, Input::Bytes(&to_initiator));
                take(e, conn, true, &mut wire_to);
            }
        }
        // Each side resolves once it can; both must pick connection 1 (A's, lower id).
        for (side, (ours, theirs)) in [(&a_out, &a_in), (&b_out, &b_in)].into_iter().enumerate() {
            if open[0] && open[1] {
                if let Some(loser) = resolve_collision(ours, theirs) {
                    let conn = match (side, loser) {
                        (0, Loser::Ours) | (1, Loser::Theirs) => 0,
                        _ => 1,
                    };
                    notes.push((side, conn));
                }
            }
        }
        for &(side, conn) in &notes {
            if open[conn] {
                // The loser's NOTIFICATION reaches the other end, and the connection closes.
                let n = collision_notification();
                let victim = match (side, conn) {
                    (0, 0) => &mut b_in,
                    (0, _) => &mut b_out,
                    (_, 0) => &mut a_out,
                    _ => &mut a_in,
                };
                let e = victim.process(t, Input::Bytes(&n));
                assert!(e.iter().any(|e| matches!(e, Event::Down(Down::Received(n)) if n.error() == Some(BgpError::Cease(CeaseError::ConnectionCollisionResolution)))), "{e:?}");
                open[conn] = false;
            }
        }
    }
    assert!(
        notes.iter().all(|&(_, conn)| conn == 0),
        "both sides close A's connection: {notes:?}"
    );
    assert!(!open[0] && open[1]);
    assert_eq!(b_out.state(), State::Established);
    assert_eq!(a_in.state(), State::Established);
}

/// The UPDATEs `b` received.
fn updates_at_b(p: &Pair) -> Vec<wire::Update> {
    p.seen_b
        .iter()
        .filter_map(|e| match e {
            Event::Update(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

/// `a` (AS 64512) and `b` (AS 64513), eBGP; `b` enforces the first AS unless told not to.
fn ebgp(enforce_first_as: bool) -> Pair {
    let mut b = Config::new(64513, 64512, B_ID);
    b.passive = true;
    b.enforce_first_as = enforce_first_as;
    let mut p = Pair::new(Config::new(64512, 64513, A_ID), b);
    p.start();
    assert!(p.established());
    p
}

/// What `b` received from `a` for an announcement of 10.244.1.0/26 with this AS_PATH
/// and LOCAL_PREF 500 (written as an iBGP speaker would: a misbehaving eBGP peer).
fn ebgp_update(p: &mut Pair, as_path: Vec<u32>) -> wire::Update {
    let attrs = PathAttrs {
        origin: 0,
        as_path,
        local_pref: Some(500),
        ..PathAttrs::default()
    };
    let block: IpNet = "10.244.1.0/26".parse().unwrap();
    p.seen_b.clear();
    for m in wire::announce(&[block], &attrs, IpAddr::V4(A_ID), true) {
        p.to_b.extend(m);
    }
    p.deliver();
    let got = updates_at_b(p);
    assert_eq!(got.len(), 1, "{:?}", p.seen_b);
    assert!(p.established(), "the session stays up");
    got[0].clone()
}

#[test]
fn ebgp_local_pref_is_ignored_and_the_first_as_enforced() {
    let block: IpNet = "10.244.1.0/26".parse().unwrap();
    let mut p = ebgp(true);
    // The peer's AS first: announced, its LOCAL_PREF ignored (RFC 4271 §5.1.5).
    let u = ebgp_update(&mut p, vec![64512, 65000]);
    assert_eq!(u.announced, vec![block]);
    assert_eq!(u.attrs.local_pref, None);
    // Another AS first, or no AS at all: withdrawn (treat-as-withdraw).
    for path in [vec![65000, 64512], vec![]] {
        let u = ebgp_update(&mut p, path.clone());
        assert!(u.announced.is_empty(), "{path:?}");
        assert_eq!(u.withdrawn, vec![block]);
        assert_eq!(u.error_handling, Some(ErrorHandling::TreatAsWithdraw));
    }
    // A route server's peer: the switch off.
    let mut p = ebgp(false);
    assert_eq!(ebgp_update(&mut p, vec![65000]).announced, vec![block]);
    // iBGP keeps LOCAL_PREF and takes any path.
    let mut p = Pair::ibgp();
    p.start();
    p.seen_b.clear();
    let attrs = PathAttrs {
        local_pref: Some(500),
        ..PathAttrs::default()
    };
    for m in wire::announce(&[block], &attrs, IpAddr::V4(A_ID), true) {
        p.to_b.extend(m);
    }
    p.deliver();
    assert!(p.seen_b.iter().any(|e| matches!(e, Event::Update(u) if u.attrs.local_pref == Some(500) && u.announced == vec![block])));
}

#[test]
fn a_peer_over_its_maximum_prefixes_is_ceased_and_held_down() {
    let mut a = Config::new(64512, 64512, A_ID);
    a.idle_hold = Duration::from_secs(1);
    let mut b = Config::new(64512, 64512, B_ID);
    b.passive = true;
    b.max_prefixes = Some(3);
    let mut p = Pair::new(a, b);
    p.start();
    assert!(p.established());
    let send = |p: &mut Pair, blocks: &[&str], withdraw: bool| {
        let nets: Vec<IpNet> = blocks.iter().map(|b| b.parse().unwrap()).collect();
        let msgs = if withdraw {
            wire::withdraw(&nets)
        } else {
            wire::announce(&nets, &PathAttrs::default(), IpAddr::V4(A_ID), true)
        };
        for m in msgs {
            p.to_b.extend(m);
        }
        p.deliver();
    };
    // Three, one withdrawn, then another: within the limit (withdrawals count down).
    send(
        &mut p,
        &["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"],
        false,
    );
    send(&mut p, &["10.1.0.0/24"], true);
    send(&mut p, &["10.4.0.0/24"], false);
    assert!(p.established(), "three held: at the limit");
    assert!(p.notifications.is_empty());
    // A fourth: Cease / Maximum Number of Prefixes Reached, AFI 1 SAFI 1, limit 3.
    send(&mut p, &["10.5.0.0/24"], false);
    let (from_a, n) = p.notifications.last().cloned().expect("a NOTIFICATION");
    assert!(!from_a, "b ends it");
    assert_eq!(
        n.error(),
        Some(BgpError::Cease(CeaseError::MaximumPrefixesReached))
    );
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 3]);
    assert_eq!(p.b.state(), State::Idle);
    // b is held down for its minute, then takes the session again (here when a, stuck
    // in OpenSent toward a silent b, times out and connects anew).
    let t0 = p.now;
    assert!(p.b.held_down(t0 + Duration::from_secs(59)));
    assert!(!p.b.held_down(t0 + Duration::from_secs(61)));
    p.run_until(t0 + Duration::from_secs(30));
    assert_ne!(p.b.state(), State::Established, "held down");
    p.run_until(t0 + Duration::from_secs(400));
    assert!(p.established(), "back after the hold-down");
}
