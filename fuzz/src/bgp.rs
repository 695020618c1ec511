//! `bgp_message`: bytes decoded as one BGP message (both AS number sizes), and as an
//! UPDATE's attribute list through RFC 7606's pass; re-encoding what decoded.
//! `bgp_session`: an established session (`fsm::Session` on a virtual clock) fed the
//! input as the peer's byte stream, in chunks, with timers firing in between; the
//! UPDATEs it yields go into a RIB.

use control::bgp::fsm::{Config, Event, Input, Session, State};
use control::bgp::rfc7606::sanitize_attributes;
use control::bgp::wire::{self, Capabilities, Family, GracefulRestart, Message, Open};
use control::rib::{Local, PeerInfo, Rib};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

pub fn message(data: &[u8]) {
    for four_octet_as in [false, true] {
        let session = wire::Session { four_octet_as };
        let _ = wire::frame_len(data);
        if let Ok(m) = wire::decode(data, session) {
            reencode(&m);
        }
        // An UPDATE body's attribute list on its own.
        if let Ok(Some((kept, _))) = sanitize_attributes(data, four_octet_as) {
            assert!(kept.len() <= data.len(), "sanitizing grew the attributes");
        }
    }
}

/// What decoded encodes again, and that decodes.
fn reencode(m: &Message) {
    match m {
        Message::Open(o) => {
            let again = wire::open(o);
            wire::decode(
                &again,
                wire::Session {
                    four_octet_as: true,
                },
            )
            .expect("an OPEN we wrote decodes");
        }
        Message::Notification(n) => {
            let _ = wire::notification(n);
        }
        Message::Update(u) => {
            if !u.announced.is_empty() {
                let nh = u
                    .attrs
                    .next_hop
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
                let _ = wire::announce(&u.announced, &u.attrs, nh, true);
            }
            let _ = wire::withdraw(&u.withdrawn);
        }
        Message::RouteRefresh(f) => {
            let _ = wire::route_refresh(*f);
        }
        Message::Keepalive | Message::RouteRefreshOther => {}
    }
}

const OUR_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The peer's OPEN and KEEPALIVE that bring a session to Established.
pub fn handshake(peer_as: u32) -> Vec<u8> {
    let mut b = peer_open(peer_as);
    b.extend(wire::keepalive());
    b
}

/// The peer's OPEN (4-byte AS, both families, route refresh, graceful restart).
pub fn peer_open(peer_as: u32) -> Vec<u8> {
    let open = Open {
        asn: peer_as,
        hold_time: 90,
        router_id: PEER_ID,
        caps: Capabilities {
            four_octet_as: true,
            families: vec![Family::Ipv4, Family::Ipv6],
            route_refresh: true,
            graceful_restart: Some(GracefulRestart {
                restarting: false,
                restart_time: 120,
                families: vec![(Family::Ipv4, true)],
            }),
        },
    };
    wire::open(&open)
}

pub fn session(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    // Flags: bit 0 eBGP, bit 1 a prefix limit, bit 2 no enforce-first-as, bits 4-7 the
    // chunk size (1..=16 times 16 bytes) the stream arrives in.
    let local_as = 64512;
    let peer_as = if flags & 1 != 0 { 65001 } else { 64512 };
    let mut cfg = Config::new(local_as, peer_as, OUR_ID);
    if flags & 2 != 0 {
        cfg.max_prefixes = Some(8);
    }
    cfg.enforce_first_as = flags & 4 == 0;
    let mut now = Instant::now();
    let mut s = Session::new(cfg);
    let mut rib = Rib::new(Local {
        asn: local_as,
        router_id: OUR_ID,
        cluster_id: None,
    });
    rib.add_peer(
        1,
        PeerInfo {
            address: IpAddr::V4(PEER_ID),
            router_id: PEER_ID,
            asn: peer_as,
            ibgp: peer_as == local_as,
        },
    );
    let feed = |s: &mut Session, now: Instant, input: Input, rib: &mut Rib| {
        for e in s.process(now, input) {
            apply(e, rib);
        }
    };
    feed(&mut s, now, Input::Start, &mut rib);
    feed(&mut s, now, Input::Connected, &mut rib);
    feed(&mut s, now, Input::Bytes(&handshake(peer_as)), &mut rib);
    assert_eq!(s.state(), State::Established, "the handshake establishes");
    let chunk = 16 * (1 + (flags >> 4) as usize);
    for piece in stream.chunks(chunk) {
        feed(&mut s, now, Input::Bytes(piece), &mut rib);
        // A second of virtual time per chunk; timers fire as they fall due.
        now += Duration::from_secs(1);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            for e in s.handle_timeout(now) {
                apply(e, &mut rib);
            }
        }
        if s.state() == State::Idle {
            break;
        }
    }
    feed(&mut s, now, Input::Closed, &mut rib);
    let _ = rib.peer_down(1);
}

fn apply(e: Event, rib: &mut Rib) {
    match e {
        Event::Update(u) => {
            let _ = rib.withdraw(1, &u.withdrawn);
            if !u.announced.is_empty() {
                let _ = rib.update(1, &u.announced, u.attrs);
            }
        }
        Event::Down(_) => {
            let _ = rib.peer_down(1);
        }
        _ => {}
    }
}
