//! One neighbour's `Peer` on a virtual clock, without sockets: connection collisions,
//! graceful restart, our blocks, route reflection, timers and removal. The peer's side
//! of the conversation is written with `wire`.

use control::bgp::error::{BgpError, CeaseError};
use control::bgp::fsm::State;
use control::bgp::wire::{self, Family, GracefulRestart, Message, PathAttrs, Session};
use control::rib::{Local, PeerInfo, Rib};
use control::speaker::peer::{ConnId, Input, Output, Peer, Reflection, StatusChange};
use control::speaker::reflect::{Reflector, Role};
use control::speaker::{PeerConfig, SpeakerConfig};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const ASN: u32 = 64512;
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn speaker(router_id: Ipv4Addr) -> SpeakerConfig {
    SpeakerConfig {
        asn: ASN,
        router_id,
        listen: None,
        local_address: None,
        peers: Vec::new(),
        advertise: Vec::new(),
        next_hop_v4: Some(NEXT_HOP),
        next_hop_v6: None,
        batch: Duration::from_millis(5),
        graceful_restart: Some(120),
        restarting: false,
        cluster_id: None,
        connect_retry: Duration::from_secs(5),
    }
}

fn neighbour() -> PeerConfig {
    PeerConfig {
        hold_time: 9,
        ..PeerConfig::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), ASN)
    }
}

/// The neighbour's OPEN (router id `id`), with graceful restart or without.
fn their_open(id: Ipv4Addr, graceful_restart: bool) -> Vec<u8> {
    wire::open(&wire::Open {
        asn: ASN,
        hold_time: 9,
        router_id: id,
        caps: wire::Capabilities {
            four_octet_as: true,
            families: vec![Family::Ipv4],
            route_refresh: true,
            graceful_restart: graceful_restart.then(|| GracefulRestart {
                restarting: false,
                restart_time: 90,
                families: vec![(Family::Ipv4, true)],
            }),
        },
    })
}

/// Every message in the bytes sent on connection `conn`.
fn sent_on(out: &[Output], conn: ConnId) -> Vec<Message> {
    let mut msgs = Vec::new();
    for o in out {
        if let Output::Send(c, bytes) = o {
            if *c != conn {
                continue;
            }
            let mut at = 0;
            while let Ok(Some(len)) = wire::frame_len(&bytes[at..]) {
                let s = Session {
                    four_octet_as: true,
                };
                msgs.push(wire::decode(&bytes[at..at + len], s).unwrap());
                at += len;
            }
            assert_eq!(at, bytes.len(), "whole messages only");
        }
    }
    msgs
}

fn notification_on(out: &[Output], conn: ConnId) -> Option<BgpError> {
    sent_on(out, conn).into_iter().find_map(|m| match m {
        Message::Notification(n) => n.error(),
        _ => None,
    })
}

fn down(out: &[Output]) -> Option<Option<u16>> {
    out.iter().find_map(|o| match o {
        Output::Down { restart_time } => Some(*restart_time),
        _ => None,
    })
}

/// A peer with our blocks, connected out on connection 1 and in OpenSent.
fn open_sent(router_id: Ipv4Addr, blocks: &[&str], t: Instant) -> Peer {
    let blocks = blocks.iter().map(|b| net(b)).collect();
    let mut p = Peer::new(&speaker(router_id), neighbour(), blocks);
    assert!(p.process(t, Input::Start).contains(&Output::Connect));
    let out = p.process(t, Input::Connected(1));
    assert!(matches!(&sent_on(&out, 1)[..], [Message::Open(_)]));
    assert_eq!(p.state(), State::OpenSent);
    p
}

/// Established on connection 1; returns what establishment sent.
fn establish(p: &mut Peer, t: Instant, graceful_restart: bool) -> Vec<Output> {
    let out = p.process(t, Input::Bytes(1, &their_open(PEER_ID, graceful_restart)));
    assert!(matches!(&sent_on(&out, 1)[..], [Message::Keepalive]));
    let out = p.process(t, Input::Bytes(1, &wire::keepalive()));
    assert_eq!(p.state(), State::Established);
    out
}

#[test]
fn establishment_announces_our_blocks_and_reports_up() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    let out = establish(&mut p, t, false);
    let announced: Vec<IpNet> = (sent_on(&out, 1).into_iter())
        .flat_map(|m| match m {
            Message::Update(u) => u.announced,
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(announced, vec![net("10.244.1.0/26")]);
    assert!(out.iter().any(|o| matches!(o,
        Output::Up(PeerInfo { router_id, ibgp: true, .. }, f)
            if *router_id == PEER_ID && f == &vec![Family::Ipv4])));
    assert!(out.contains(&Output::Status(StatusChange::PrefixesSent(1))));
    assert!(out.contains(&Output::Status(StatusChange::State(State::Established))));
}

#[test]
fn collision_the_peers_higher_id_keeps_its_connection() {
    let t = Instant::now();
    // We are 10.0.0.1, the peer 10.0.0.2: its connection (2) wins.
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    let out = p.process(t, Input::Accepted(2));
    assert!(matches!(&sent_on(&out, 2)[..], [Message::Open(_)]));
    assert_eq!(
        p.connection(),
        Some(1),
        "unresolved until an OPEN names the peer"
    );
    let out = p.process(t, Input::Bytes(2, &their_open(PEER_ID, false)));
    assert_eq!(
        notification_on(&out, 1),
        Some(BgpError::Cease(CeaseError::ConnectionCollisionResolution))
    );
    assert!(out.contains(&Output::Close(1)));
    assert_eq!(p.connection(), Some(2));
    assert_eq!(p.state(), State::OpenConfirm);
    // Late bytes of the losing connection are ignored; the winner establishes.
    assert!(p.process(t, Input::Bytes(1, &wire::keepalive())).is_empty());
    let out = p.process(t, Input::Bytes(2, &wire::keepalive()));
    assert!(out.iter().any(|o| matches!(o, Output::Up(..))));
    assert_eq!(p.state(), State::Established);
}

#[test]
fn collision_our_higher_id_keeps_our_connection() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 3), &[], t);
    p.process(t, Input::Accepted(2));
    // The OPEN arrives on our connection: theirs goes.
    let out = p.process(t, Input::Bytes(1, &their_open(PEER_ID, false)));
    assert_eq!(
        notification_on(&out, 2),
        Some(BgpError::Cease(CeaseError::ConnectionCollisionResolution))
    );
    assert!(out.contains(&Output::Close(2)));
    assert!(!out.contains(&Output::Close(1)));
    assert_eq!(p.connection(), Some(1));
    assert!(p.process(t, Input::Bytes(2, &wire::keepalive())).is_empty());
    p.process(t, Input::Bytes(1, &wire::keepalive()));
    assert_eq!(p.state(), State::Established);
}

#[test]
fn an_established_session_without_graceful_restart_refuses_a_new_connection() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, false);
    let out = p.process(t, Input::Accepted(2));
    // Told why before it goes (RFC 4271 §6.8, RFC 4486), never dropped without a word.
    assert_eq!(
        notification_on(&out, 2),
        Some(BgpError::Cease(CeaseError::ConnectionCollisionResolution))
    );
    assert_eq!(out.last(), Some(&Output::Close(2)));
    assert_eq!((p.connection(), p.state()), (Some(1), State::Established));
}

#[test]
fn a_second_connection_while_the_peers_own_is_opening_is_rejected_with_a_cease() {
    let t = Instant::now();
    let mut p = Peer::new(
        &speaker(Ipv4Addr::new(10, 0, 0, 1)),
        neighbour(),
        Vec::new(),
    );
    p.process(t, Input::Start);
    // The peer's connection comes first (ours never did): it opens.
    let out = p.process(t, Input::Accepted(1));
    assert!(matches!(&sent_on(&out, 1)[..], [Message::Open(_)]));
    assert_eq!(p.state(), State::OpenSent);
    let out = p.process(t, Input::Accepted(2));
    assert_eq!(
        notification_on(&out, 2),
        Some(BgpError::Cease(CeaseError::ConnectionRejected))
    );
    assert_eq!(out.last(), Some(&Output::Close(2)));
    assert_eq!(p.connection(), Some(1));
}

#[test]
fn graceful_restart_keeps_routes_when_the_connection_is_lost() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, true);
    let out = p.process(t, Input::Closed(1));
    assert_eq!(down(&out), Some(Some(90)), "the peer's restart time");
    assert_eq!(p.connection(), None);

    // Without the peer's capability, or after its NOTIFICATION: routes go at once.
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, false);
    assert_eq!(down(&p.process(t, Input::Closed(1))), Some(None));
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, true);
    let cease = wire::notification(&wire::Notification::new(
        BgpError::Cease(CeaseError::AdministrativeShutdown),
        [],
    ));
    assert_eq!(down(&p.process(t, Input::Bytes(1, &cease))), Some(None));
}

#[test]
fn graceful_restart_a_restarted_peers_connection_replaces_the_old_session() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    establish(&mut p, t, true);
    let out = p.process(t, Input::Accepted(2));
    assert!(out.contains(&Output::Close(1)));
    assert_eq!(
        down(&out),
        Some(Some(90)),
        "old routes kept while it comes back"
    );
    assert!(matches!(&sent_on(&out, 2)[..], [Message::Open(_)]));
    assert_eq!((p.connection(), p.state()), (Some(2), State::OpenSent));
    p.process(t, Input::Bytes(2, &their_open(PEER_ID, true)));
    let out = p.process(t, Input::Bytes(2, &wire::keepalive()));
    assert!(out.iter().any(|o| matches!(o, Output::Up(..))));
    assert!(
        sent_on(&out, 2)
            .iter()
            .any(|m| matches!(m, Message::Update(u) if u.announced == vec![net("10.244.1.0/26")])),
        "our blocks again on the new session"
    );
}

#[test]
fn changed_blocks_are_announced_and_withdrawn_at_once() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    establish(&mut p, t, false);
    let out = p.process(t, Input::Blocks(vec![net("10.244.2.0/26")]));
    let (mut announced, mut withdrawn) = (Vec::new(), Vec::new());
    for m in sent_on(&out, 1) {
        if let Message::Update(u) = m {
            announced.extend(u.announced);
            withdrawn.extend(u.withdrawn);
        }
    }
    assert_eq!(announced, vec![net("10.244.2.0/26")]);
    assert_eq!(withdrawn, vec![net("10.244.1.0/26")]);
    assert!(out.contains(&Output::Status(StatusChange::PrefixesSent(1))));

    // Before establishment nothing is sent; the session announces the latest blocks.
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    assert!(sent_on(&p.process(t, Input::Blocks(vec![net("10.244.3.0/26")])), 1).is_empty());
    let out = establish(&mut p, t, false);
    assert!(sent_on(&out, 1)
        .iter()
        .any(|m| matches!(m, Message::Update(u) if u.announced == vec![net("10.244.3.0/26")])));
}

#[test]
fn reflected_routes_are_sent_once_and_withdrawn_only_if_sent() {
    let t = Instant::now();
    let attrs = PathAttrs {
        as_path: vec![],
        local_pref: Some(100),
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 7)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 1)],
        ..PathAttrs::default()
    };
    let nh = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 7));
    let reflection = Reflection {
        announce: vec![(
            attrs.clone(),
            nh,
            vec![net("10.1.0.0/24"), net("10.2.0.0/24")],
        )],
        unwanted: vec![],
    };
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    // Not established: no Adj-RIB-Out yet.
    assert!(p
        .process(t, Input::Reflected(reflection.clone()))
        .is_empty());
    establish(&mut p, t, false);
    let out = p.process(t, Input::Reflected(reflection));
    let [Message::Update(u)] = &sent_on(&out, 1)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(u.announced, vec![net("10.1.0.0/24"), net("10.2.0.0/24")]);
    assert_eq!(u.attrs.originator_id, attrs.originator_id);
    assert_eq!(u.attrs.cluster_list, attrs.cluster_list);
    // Only what was sent is withdrawn.
    let out = p.process(
        t,
        Input::Reflected(Reflection {
            announce: vec![],
            unwanted: vec![net("10.1.0.0/24"), net("10.9.0.0/24")],
        }),
    );
    let [Message::Update(u)] = &sent_on(&out, 1)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(u.withdrawn, vec![net("10.1.0.0/24")]);
    let out = p.process(
        t,
        Input::Reflected(Reflection {
            announce: vec![],
            unwanted: vec![net("10.1.0.0/24")],
        }),
    );
    assert!(out.is_empty(), "withdrawn once");
    // End-of-RIB after the RIB's first reflection.
    let out = p.process(t, Input::EndOfRib(vec![Family::Ipv4]));
    assert!(matches!(&sent_on(&out, 1)[..],
        [Message::Update(u)] if u.end_of_rib == Some(Family::Ipv4)));
}

#[test]
fn the_reflector_passes_client_routes_to_all_and_others_to_clients() {
    let cluster = Ipv4Addr::new(10, 0, 0, 1);
    let mut rib = Rib::new(Local {
        asn: ASN,
        router_id: cluster,
        cluster_id: Some(cluster),
    });
    let mut roles = HashMap::new();
    let mut reflector = Reflector::new(cluster);
    // 1: a client; 2 and 3: non-clients.
    for (id, client) in [(1u16, true), (2, false), (3, false)] {
        rib.add_peer(
            id,
            PeerInfo {
                address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, id as u8 + 1)),
                router_id: Ipv4Addr::new(10, 0, 0, id as u8 + 1),
                asn: ASN,
                ibgp: true,
            },
        );
        roles.insert(
            id,
            Role {
                ibgp: true,
                rr_client: client,
            },
        );
        reflector.peer_up(id, vec![Family::Ipv4]);
    }
    let attrs = |nh: u8| PathAttrs {
        origin: 0,
        next_hop: Some(Ipv4Addr::new(10, 98, 0, nh)),
        local_pref: Some(100),
        ..PathAttrs::default()
    };
    let (from_client, from_other) = (net("10.1.0.0/24"), net("10.2.0.0/24"));
    rib.update(1, &[from_client], attrs(2));
    rib.update(2, &[from_other], attrs(3));

    let (attrs_out, nh) = reflector.wanted(&rib, &roles, 3, from_client).unwrap();
    assert_eq!(nh, IpAddr::V4(Ipv4Addr::new(10, 98, 0, 2)));
    assert_eq!(attrs_out.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(attrs_out.cluster_list, vec![cluster]);
    assert!(reflector.wanted(&rib, &roles, 2, from_client).is_some());
    assert!(
        reflector.wanted(&rib, &roles, 1, from_client).is_none(),
        "not back"
    );
    assert!(reflector.wanted(&rib, &roles, 1, from_other).is_some());
    assert!(
        reflector.wanted(&rib, &roles, 3, from_other).is_none(),
        "non-client to non-client"
    );

    let sync: HashMap<u16, Reflection> = reflector
        .sync(&rib, &roles, &[from_client, from_other])
        .into_iter()
        .collect();
    assert_eq!(sync[&1].unwanted, vec![from_client]);
    assert_eq!(sync[&3].unwanted, vec![from_other]);
    assert_eq!(sync[&3].announce.len(), 1);
    // A peer that went down hears nothing.
    reflector.peer_down(3);
    let sync = reflector.sync(&rib, &roles, &[from_client]);
    assert!(sync.iter().all(|(to, _)| *to != 3));
}

#[test]
fn timers_run_on_the_virtual_clock() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, true);
    // Hold time 9 s: keepalives every 3 s, then the hold timer expires.
    let at = p.poll_timeout().unwrap();
    assert_eq!(at, t + Duration::from_secs(3));
    let out = p.handle_timeout(at);
    assert!(matches!(&sent_on(&out, 1)[..], [Message::Keepalive]));
    let out = p.handle_timeout(t + Duration::from_secs(9));
    assert_eq!(notification_on(&out, 1), Some(BgpError::HoldTimerExpired));
    assert!(out.contains(&Output::Close(1)));
    assert_eq!(down(&out), Some(Some(90)), "no NOTIFICATION from the peer");
    // Idle hold, then it connects again.
    let at = p.poll_timeout().unwrap();
    assert!(p.handle_timeout(at).contains(&Output::Connect));
}

#[test]
fn a_removed_peer_says_so_on_every_connection() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    p.process(t, Input::Accepted(2));
    let out = p.process(t, Input::Deconfigure);
    for conn in [1, 2] {
        assert_eq!(
            notification_on(&out, conn),
            Some(BgpError::Cease(CeaseError::PeerDeconfigured))
        );
        assert!(out.contains(&Output::Close(conn)));
    }
    // Never opened: just closed by the driver, no NOTIFICATION.
    let mut p = Peer::new(&speaker(Ipv4Addr::new(10, 0, 0, 1)), neighbour(), vec![]);
    p.process(t, Input::Start);
    assert!(p.process(t, Input::Deconfigure).is_empty());
}

#[test]
fn a_peer_held_down_for_too_many_prefixes_cannot_reconnect_at_once() {
    let t = Instant::now();
    let mut n = neighbour();
    n.max_prefixes = Some(1);
    let mut p = Peer::new(&speaker(Ipv4Addr::new(10, 0, 0, 1)), n, Vec::new());
    assert!(p.process(t, Input::Start).contains(&Output::Connect));
    p.process(t, Input::Connected(1));
    establish(&mut p, t, false);
    let nets: Vec<IpNet> = vec![net("10.1.0.0/24"), net("10.2.0.0/24")];
    let attrs = wire::PathAttrs::default();
    let bytes: Vec<u8> = wire::announce(&nets, &attrs, "10.0.0.2".parse().unwrap(), true).concat();
    let out = p.process(t, Input::Bytes(1, &bytes));
    assert_eq!(
        notification_on(&out, 1),
        Some(BgpError::Cease(CeaseError::MaximumPrefixesReached))
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Update(..))),
        "nothing of it installed"
    );
    // It comes straight back: refused until the hold-down is over.
    let out = p.process(t + Duration::from_secs(5), Input::Accepted(2));
    assert_eq!(
        notification_on(&out, 2),
        Some(BgpError::Cease(CeaseError::ConnectionRejected))
    );
    assert_eq!(out.last(), Some(&Output::Close(2)));
    let out = p.process(t + Duration::from_secs(61), Input::Accepted(3));
    assert!(
        matches!(&sent_on(&out, 3)[..], [Message::Open(_)]),
        "welcome again"
    );
}

#[test]
fn counters_follow_the_messages_both_ways() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    establish(&mut p, t, true);
    let attrs = PathAttrs {
        as_path: Vec::new(),
        next_hop: Some(PEER_ID),
        local_pref: Some(100),
        ..PathAttrs::default()
    };
    let update = wire::announce(
        &[net("10.244.2.0/26"), net("10.244.3.0/26")],
        &attrs,
        IpAddr::V4(PEER_ID),
        true,
    )
    .concat();
    p.process(t, Input::Bytes(1, &update));
    p.process(
        t,
        Input::Bytes(1, &wire::withdraw(&[net("10.244.3.0/26")]).concat()),
    );
    let c = p.counters();
    // Received: OPEN, KEEPALIVE, two UPDATEs. Sent: OPEN, KEEPALIVE, our block's UPDATE.
    assert_eq!(
        (c.received.messages.open, c.received.messages.keepalive),
        (1, 1)
    );
    assert_eq!(c.received.messages.update, 2);
    assert_eq!((c.received.announced, c.received.withdrawn), (2, 1));
    assert_eq!((c.sent.open, c.sent.keepalive, c.sent.update), (1, 1, 1));
    assert_eq!(c.sent.total(), 3);
}

#[test]
fn a_soft_reset_asks_for_routes_and_sends_ours_again() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &["10.244.1.0/26"], t);
    establish(&mut p, t, true);
    let (done, out) = p.reset(t, true).expect("route refresh was negotiated");
    assert!(
        done.contains("ipv4-unicast") && done.contains("1 prefix"),
        "{done}"
    );
    let msgs = sent_on(&out, 1);
    assert!(
        msgs.contains(&Message::RouteRefresh(Family::Ipv4)),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::Update(u) if u.announced == vec![net("10.244.1.0/26")])),
        "{msgs:?}"
    );
    assert_eq!(p.state(), State::Established);
    assert_eq!(p.counters().sent.route_refresh, 1);
    // Without a session there is nothing to refresh.
    let mut idle = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    let e = idle.reset(t, true).unwrap_err();
    assert!(e.contains("no session") && e.contains("OpenSent"), "{e}");
}

#[test]
fn a_hard_reset_says_why_drops_the_routes_and_starts_again() {
    let t = Instant::now();
    let mut p = open_sent(Ipv4Addr::new(10, 0, 0, 1), &[], t);
    establish(&mut p, t, true);
    let (done, out) = p.reset(t, false).unwrap();
    assert!(done.contains("Administrative Reset"), "{done}");
    assert_eq!(
        notification_on(&out, 1),
        Some(BgpError::Cease(CeaseError::AdministrativeReset))
    );
    assert!(out.contains(&Output::Close(1)));
    // Graceful restart negotiated, yet the peer's routes go at once: an operator's reset.
    assert_eq!(down(&out), Some(None));
    assert!(out.iter().any(|o| matches!(o,
        Output::Status(StatusChange::LastError(e)) if e.contains("reset by the operator"))));
    assert!(out.contains(&Output::Status(StatusChange::Negotiated(None))));
    assert_eq!(p.state(), State::Idle);
    // A new session after a short idle.
    let later = p.handle_timeout(t + Duration::from_secs(1));
    assert!(later.contains(&Output::Connect), "{later:?}");
}
