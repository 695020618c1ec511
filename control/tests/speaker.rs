//! Two speakers over real TCP on loopback (127.0.0.1 and 127.0.0.2): sessions come up,
//! each learns the other's blocks with its node address as next hop, and a speaker that
//! goes away takes its routes with it (without graceful restart) or leaves them stale
//! for the restart time (with it). Peers added and removed while the speakers run.

use control::speaker::{self, PeerConfig, PeerStatus, RouteChange, Speaker, SpeakerConfig};
use crossbeam_channel as mpsc;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cfg(
    me: u8,
    other: u8,
    my_port: u16,
    other_port: u16,
    block: &str,
    gr: Option<u16>,
) -> SpeakerConfig {
    let ip = Ipv4Addr::new(127, 0, 0, me);
    SpeakerConfig {
        asn: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, me),
        listen: Some(SocketAddr::new(IpAddr::V4(ip), my_port)),
        local_address: Some(IpAddr::V4(ip)),
        peers: vec![PeerConfig {
            address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, other)),
            asn: 64512,
            // The mesh rule: passive toward the higher address.
            passive: other > me,
            hold_time: 9,
            keepalive: None,
            rr_client: false,
            port: other_port,
            password: None,
            enforce_first_as: true,
            max_prefixes: None,
            max_prefixes_warning: 75,
            ttl_security: None,
        }],
        advertise: vec![block.parse().unwrap()],
        next_hop_v4: Some(ip),
        next_hop_v6: None,
        batch: Duration::from_millis(5),
        graceful_restart: gr,
        restarting: false,
        connect_retry: Duration::from_millis(300),
        cluster_id: None,
    }
}

/// Wait for a batch containing `prefix`; return its next hops.
fn wait_for(
    rx: &mpsc::Receiver<Vec<RouteChange>>,
    prefix: &str,
    within: Duration,
) -> Option<Vec<IpAddr>> {
    let want: IpNet = prefix.parse().unwrap();
    let end = Instant::now() + within;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(batch) => {
                if let Some(c) = batch.iter().find(|c| c.prefix == want) {
                    return Some(c.next_hops.to_vec());
                }
            }
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn two_speakers_exchange_blocks_and_withdraw_on_loss() {
    let (pa, pb) = (free_port(), free_port());
    let (ta, ra) = mpsc::unbounded();
    let (tb, rb) = mpsc::unbounded();
    let a = speaker::spawn(cfg(1, 2, pa, pb, "10.244.1.0/26", None), ta).unwrap();
    let b = speaker::spawn(cfg(2, 1, pb, pa, "10.244.2.0/26", None), tb).unwrap();
    assert_eq!(
        wait_for(&ra, "10.244.2.0/26", Duration::from_secs(10)),
        Some(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]),
        "a learns b's block, next hop b's address"
    );
    assert_eq!(
        wait_for(&rb, "10.244.1.0/26", Duration::from_secs(10)),
        Some(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))])
    );
    // The status is read, not held, while waiting (prefixes sent are counted by the
    // session task, which may finish just after the route arrived).
    let status = || {
        let st = a.status.lock().unwrap();
        (
            st[0].state.clone(),
            st[0].prefixes_received,
            st[0].prefixes_sent,
        )
    };
    let end = Instant::now() + Duration::from_secs(3);
    while status() != ("Established".to_string(), 1, 1) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status(), ("Established".to_string(), 1, 1));
    // b goes away: a withdraws its block (no graceful restart here).
    drop(b);
    assert_eq!(
        wait_for(&ra, "10.244.2.0/26", Duration::from_secs(15)),
        Some(vec![])
    );
    drop(a);
}

#[test]
fn graceful_restart_keeps_routes_while_the_peer_comes_back() {
    let (pa, pb) = (free_port(), free_port());
    let (ta, ra) = mpsc::unbounded();
    let (tb, _rb) = mpsc::unbounded();
    let a = speaker::spawn(cfg(1, 2, pa, pb, "10.244.1.0/26", Some(30)), ta).unwrap();
    let b = speaker::spawn(cfg(2, 1, pb, pa, "10.244.2.0/26", Some(30)), tb).unwrap();
    assert!(wait_for(&ra, "10.244.2.0/26", Duration::from_secs(10)).is_some());
    // b's process dies (its connection closes without a NOTIFICATION) and restarts.
    drop(b);
    let (tb, _rb) = mpsc::unbounded();
    let mut again = cfg(2, 1, pb, pa, "10.244.2.0/26", Some(30));
    again.restarting = true;
    let b = speaker::spawn(again, tb).unwrap();
    // Meanwhile and after, a never withdraws b's block.
    let end = Instant::now() + Duration::from_secs(4);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Ok(batch) = ra.recv_timeout(left) {
            for c in batch {
                assert!(
                    !c.next_hops.is_empty(),
                    "{} withdrawn during the restart",
                    c.prefix
                );
            }
        }
    }
    assert_eq!(
        a.status.lock().unwrap()[0].state,
        "Established",
        "session back"
    );
    drop(b);
    drop(a);
}

#[test]
fn a_route_reflector_passes_client_routes_on() {
    // A (127.0.0.1) reflects for clients B (.2) and C (.3), which peer only with A.
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut a_cfg = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    a_cfg.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    a_cfg.peers[0].rr_client = true;
    let mut to_c = a_cfg.peers[0].clone();
    to_c.address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    to_c.port = pc;
    a_cfg.peers.push(to_c);
    let (ta, _ra) = mpsc::unbounded();
    let (tb, rb) = mpsc::unbounded();
    let (tc, rc) = mpsc::unbounded();
    let a = speaker::spawn(a_cfg, ta).unwrap();
    let b = speaker::spawn(cfg(2, 1, pb, pa, "10.244.2.0/26", None), tb).unwrap();
    let c = speaker::spawn(cfg(3, 1, pc, pa, "10.244.3.0/26", None), tc).unwrap();
    // C learns B's block through A, with B's address still the next hop.
    assert_eq!(
        wait_for(&rc, "10.244.2.0/26", Duration::from_secs(10)),
        Some(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))])
    );
    assert_eq!(
        wait_for(&rb, "10.244.3.0/26", Duration::from_secs(10)),
        Some(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))])
    );
    // C asks A for a route refresh (soft reset): A sends its own block and the one it
    // reflects from B again (RFC 2918: the whole Adj-RIB-Out), on the same session.
    let announced = |s: &Speaker| row(s, v4(1)).map_or(0, |r| r.counters.received.announced);
    let before = announced(&c);
    assert!(before >= 2, "C has heard A's block and B's: {before}");
    c.reset_peer(v4(1), true).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || announced(&c) >= before + 2),
        "after a route refresh C heard {} prefixes again, want A's and B's",
        announced(&c) - before
    );
    assert!(established(&c, v4(1)), "a soft reset keeps the session");
    // B goes away (no graceful restart): A withdraws B's block from C.
    drop(b);
    assert_eq!(
        wait_for(&rc, "10.244.2.0/26", Duration::from_secs(15)),
        Some(vec![])
    );
    drop(c);
    drop(a);
}

#[test]
fn tcp_md5_keys_must_match() {
    let run = |key_a: Option<&str>, key_b: Option<&str>| {
        session_up(
            |a| a.password = key_a.map(String::from),
            |b| b.password = key_b.map(String::from),
        )
    };
    assert!(run(Some("s3cret"), Some("s3cret")), "same key: session up");
    assert!(!run(Some("s3cret"), None), "one side unsigned: no session");
    assert!(
        !run(Some("s3cret"), Some("other")),
        "different keys: no session"
    );
}

/// Whether speakers 1 and 2, their peer settings edited, exchange routes within 4 s.
fn session_up(edit_a: impl Fn(&mut PeerConfig), edit_b: impl Fn(&mut PeerConfig)) -> bool {
    let (pa, pb) = (free_port(), free_port());
    let (ta, ra) = mpsc::unbounded();
    let (tb, _rb) = mpsc::unbounded();
    let mut ca = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    edit_a(&mut ca.peers[0]);
    let mut cb = cfg(2, 1, pb, pa, "10.244.2.0/26", None);
    edit_b(&mut cb.peers[0]);
    let a = speaker::spawn(ca, ta).unwrap();
    let b = speaker::spawn(cb, tb).unwrap();
    let got = wait_for(&ra, "10.244.2.0/26", Duration::from_secs(4));
    drop(b);
    drop(a);
    got.is_some()
}

#[test]
fn ttl_security_takes_only_a_peer_that_sends_ttl_255() {
    let run = |hops_a: Option<u8>, hops_b: Option<u8>| {
        session_up(|a| a.ttl_security = hops_a, |b| b.ttl_security = hops_b)
    };
    assert!(run(Some(1), Some(1)), "both GTSM: session up");
    // B sends with the default TTL (64): A drops everything from it.
    assert!(!run(Some(1), None), "only A: B is never heard");
}

#[test]
fn both_sides_connecting_resolve_to_one_session() {
    // Neither side passive: both connect, the collision is resolved (RFC 4271 §6.8).
    for _ in 0..3 {
        let (pa, pb) = (free_port(), free_port());
        let (ta, ra) = mpsc::unbounded();
        let (tb, rb) = mpsc::unbounded();
        let mut ca = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
        ca.peers[0].passive = false;
        let cb = cfg(2, 1, pb, pa, "10.244.2.0/26", None);
        let a = speaker::spawn(ca, ta).unwrap();
        let b = speaker::spawn(cb, tb).unwrap();
        assert!(wait_for(&ra, "10.244.2.0/26", Duration::from_secs(10)).is_some());
        assert!(wait_for(&rb, "10.244.1.0/26", Duration::from_secs(10)).is_some());
        std::thread::sleep(Duration::from_millis(300));
        for s in [&a, &b] {
            assert_eq!(s.status.lock().unwrap()[0].state, "Established");
        }
        drop(b);
        drop(a);
    }
}

#[test]
fn changing_our_blocks_announces_and_withdraws_at_once() {
    let (pa, pb) = (free_port(), free_port());
    let (ta, _ra) = mpsc::unbounded();
    let (tb, rb) = mpsc::unbounded();
    let a = speaker::spawn(cfg(1, 2, pa, pb, "10.244.1.0/26", None), ta).unwrap();
    let b = speaker::spawn(cfg(2, 1, pb, pa, "10.244.2.0/26", None), tb).unwrap();
    assert!(wait_for(&rb, "10.244.1.0/26", Duration::from_secs(10)).is_some());
    // A's endpoint moved to another block: the old one is withdrawn, the new announced.
    a.set_advertised(vec!["10.244.1.64/26".parse().unwrap()]);
    let mut seen = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(5);
    while seen.len() < 2 && Instant::now() < end {
        if let Ok(batch) = rb.recv_timeout(Duration::from_millis(200)) {
            for c in batch {
                seen.insert(c.prefix.to_string(), c.next_hops.to_vec());
            }
        }
    }
    assert_eq!(seen.get("10.244.1.0/26"), Some(&vec![]), "{seen:?}");
    assert_eq!(
        seen.get("10.244.1.64/26"),
        Some(&vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))])
    );
    drop(b);
    drop(a);
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A speaker's status row for a peer, read without holding the lock.
fn row(s: &Speaker, peer: IpAddr) -> Option<PeerStatus> {
    s.status
        .lock()
        .unwrap()
        .iter()
        .find(|p| p.address == peer)
        .cloned()
}

fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while !done() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn established(s: &Speaker, peer: IpAddr) -> bool {
    row(s, peer).is_some_and(|r| r.state == "Established")
}

#[test]
fn peers_added_and_removed_while_running() {
    let (pa, pb) = (free_port(), free_port());
    // Neither speaker starts with a peer; each is given the other at run time.
    let mut ca = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    let to_b = ca.peers.remove(0);
    let mut cb = cfg(2, 1, pb, pa, "10.244.2.0/26", None);
    let to_a = cb.peers.remove(0);
    let (ta, ra) = mpsc::unbounded();
    let (tb, rb) = mpsc::unbounded();
    let a = speaker::spawn(ca, ta).unwrap();
    let b = speaker::spawn(cb, tb).unwrap();
    assert!(a.status.lock().unwrap().is_empty());
    a.add_peer(to_b.clone()).unwrap();
    b.add_peer(to_a).unwrap();
    assert_eq!(row(&a, v4(2)).map(|r| r.asn), Some(64512), "listed at once");
    // Each has the other's block, and both sessions are Established.
    let exchanged = |t: u64| {
        assert_eq!(
            wait_for(&ra, "10.244.2.0/26", Duration::from_secs(t)),
            Some(vec![v4(2)])
        );
        assert_eq!(
            wait_for(&rb, "10.244.1.0/26", Duration::from_secs(t)),
            Some(vec![v4(1)])
        );
        assert!(wait_until(Duration::from_secs(3), || established(
            &a,
            v4(2)
        ) && established(
            &b,
            v4(1)
        )));
    };
    exchanged(10);

    // a lets b go: b hears why and withdraws a's block; a withdraws b's.
    a.remove_peer(v4(2)).unwrap();
    assert!(
        a.status.lock().unwrap().is_empty(),
        "no trace in the status"
    );
    assert_eq!(
        wait_for(&rb, "10.244.1.0/26", Duration::from_secs(5)),
        Some(vec![])
    );
    assert_eq!(
        wait_for(&ra, "10.244.2.0/26", Duration::from_secs(5)),
        Some(vec![])
    );
    assert!(
        wait_until(Duration::from_secs(3), || row(&b, v4(1))
            .is_some_and(|r| r.info == "received NOTIFICATION 6/3")),
        "Cease / Peer De-configured: {:?}",
        row(&b, v4(1))
    );
    assert_ne!(row(&b, v4(1)).unwrap().state, "Established");

    // Added again: the session and the routes come back.
    a.add_peer(to_b).unwrap();
    exchanged(15);
    assert_eq!(a.status.lock().unwrap().len(), 1);
    drop(b);
    drop(a);
}

#[test]
fn adding_a_peer_twice_or_removing_a_stranger_is_refused() {
    let (pa, pb) = (free_port(), free_port());
    let (ta, _ra) = mpsc::unbounded();
    let ca = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    let configured = ca.peers[0].clone();
    let a = speaker::spawn(ca, ta).unwrap();
    assert!(
        a.add_peer(configured.clone()).is_err(),
        "configured already"
    );
    assert!(a.remove_peer(v4(9)).is_err(), "never a peer");
    let mut added = configured.clone();
    added.address = v4(3);
    a.add_peer(added.clone()).unwrap();
    assert!(a.add_peer(added).is_err(), "added already");
    a.remove_peer(v4(2)).unwrap();
    assert!(a.remove_peer(v4(2)).is_err(), "removed already");
    let listed: Vec<IpAddr> = a.status.lock().unwrap().iter().map(|p| p.address).collect();
    assert_eq!(listed, vec![v4(3)]);
    // A configured peer removed can be added back.
    a.add_peer(configured).unwrap();
    assert!(row(&a, v4(2)).is_some());
    drop(a);
}

#[test]
fn an_added_peers_md5_key_is_on_the_listener() {
    // a accepts b's connection only if the key reached its listening socket.
    let (pa, pb) = (free_port(), free_port());
    let mut ca = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    let mut to_b = ca.peers.remove(0);
    assert!(to_b.passive, "a only accepts");
    to_b.password = Some("s3cret".into());
    let mut cb = cfg(2, 1, pb, pa, "10.244.2.0/26", None);
    cb.peers[0].password = Some("s3cret".into());
    let (ta, ra) = mpsc::unbounded();
    let (tb, _rb) = mpsc::unbounded();
    let a = speaker::spawn(ca, ta).unwrap();
    let b = speaker::spawn(cb, tb).unwrap();
    a.add_peer(to_b).unwrap();
    assert!(wait_for(&ra, "10.244.2.0/26", Duration::from_secs(10)).is_some());
    drop(b);
    drop(a);
}

#[test]
fn a_route_reflector_withdraws_a_removed_clients_routes() {
    // A (127.0.0.1) reflects for clients B (.2) and C (.3); A removes B, then adds it back.
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut a_cfg = cfg(1, 2, pa, pb, "10.244.1.0/26", None);
    a_cfg.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    a_cfg.peers[0].rr_client = true;
    let to_b = a_cfg.peers[0].clone();
    let mut to_c = to_b.clone();
    to_c.address = v4(3);
    to_c.port = pc;
    a_cfg.peers.push(to_c);
    let (ta, _ra) = mpsc::unbounded();
    let (tb, _rb) = mpsc::unbounded();
    let (tc, rc) = mpsc::unbounded();
    let a = speaker::spawn(a_cfg, ta).unwrap();
    let b = speaker::spawn(cfg(2, 1, pb, pa, "10.244.2.0/26", None), tb).unwrap();
    let c = speaker::spawn(cfg(3, 1, pc, pa, "10.244.3.0/26", None), tc).unwrap();
    assert_eq!(
        wait_for(&rc, "10.244.2.0/26", Duration::from_secs(10)),
        Some(vec![v4(2)])
    );
    a.remove_peer(v4(2)).unwrap();
    assert_eq!(
        wait_for(&rc, "10.244.2.0/26", Duration::from_secs(5)),
        Some(vec![]),
        "C loses what A reflected from B"
    );
    // B reconnects after its idle hold; A reflects its block to C again.
    a.add_peer(to_b).unwrap();
    assert_eq!(
        wait_for(&rc, "10.244.2.0/26", Duration::from_secs(15)),
        Some(vec![v4(2)])
    );
    assert!(established(&a, v4(3)), "C's session untouched");
    drop(c);
    drop(b);
    drop(a);
}
