//! The worker loop on the in-memory backend: a pod's MAC is learnt from its ARP, a packet
//! for a pod not heard from yet waits while the worker asks it, then leaves; a packet
//! whose next hop never resolves is dropped and counted after the hold time.

use etherparse::PacketBuilder;
use fib::{Fib4, Fib6, NextHopId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrouter::arp::HOST_SIDE_MAC;
use vrouter::burst::DropReason;
use vrouter::config::PollMode;
use vrouter::counters::Counters;
use vrouter::io::memory::MemoryIo;
use vrouter::io::Io;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port, PortKind};
use vrouter::worker::{PodProbe, Worker};

const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const A: [u8; 4] = [10, 244, 1, 4];
const B: [u8; 4] = [10, 244, 1, 5];

fn arp(op: u16, smac: [u8; 6], sip: [u8; 4], tip: [u8; 4], dst: [u8; 6]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&smac);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tip);
    f.resize(60, 0);
    f
}

fn udp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(A_MAC, HOST_SIDE_MAC)
        .ipv4(src, dst, 64)
        .udp(1000, 2000)
        .write(&mut v, b"hello")
        .unwrap();
    v
}

struct Setup {
    worker: Worker<MemoryIo>,
    nexthops: Arc<NextHopTable>,
    counters: Arc<Counters>,
    _fibs: (Fib4, Fib6),
}

fn setup() -> Setup {
    setup_with_mtu(1500)
}

fn setup_with_mtu(mtu_b: u16) -> Setup {
    let nexthops = Arc::new(NextHopTable::new(8));
    let mut fib4 = Fib4::new();
    fib4.insert("10.244.1.4/32".parse().unwrap(), NextHopId(0));
    fib4.insert("10.244.1.5/32".parse().unwrap(), NextHopId(1));
    fib4.insert("10.244.9.0/24".parse().unwrap(), NextHopId(2)); // never resolves
    let fib6 = Fib6::new();
    let pod = |ip: [u8; 4], mtu: u16| Port {
        mac: HOST_SIDE_MAC,
        mtu,
        kind: PortKind::Endpoint {
            v4: vec![u32::from_be_bytes(ip)],
            v6: vec![],
        },
    };
    let ports: Arc<[Port]> = vec![pod(A, 1500), pod(B, mtu_b)].into();
    let counters = Arc::new(Counters::new(1));
    let pipeline = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops.clone(),
        ports,
        counters.clone(),
        0,
    )
    .with_pod_nexthops(vec![Some(0), Some(1)]);
    let probes = vec![
        PodProbe {
            port: PortId(0),
            nh: 0,
            v4: Some(A.into()),
            v6: None,
        },
        PodProbe {
            port: PortId(1),
            nh: 1,
            v4: Some(B.into()),
            v6: None,
        },
    ];
    let io = MemoryIo::new(2, 256);
    Setup {
        worker: Worker::new(io, pipeline, nexthops.clone(), probes, PollMode::Busy),
        nexthops,
        counters,
        _fibs: (fib4, fib6),
    }
}

#[test]
fn held_packet_leaves_once_the_pod_answers_our_arp() {
    let mut s = setup();
    let w = &mut s.worker;
    // Pod A asks for its gateway: answered, and A's MAC is learnt.
    w.io.inject(PortId(0), &arp(1, A_MAC, A, [169, 254, 1, 1], [0xff; 6]));
    w.poll_once();
    let sent = w.io.take_sent();
    let reply = sent
        .iter()
        .find(|(p, f)| *p == PortId(0) && f[12..14] == [8, 6] && f[21] == 2);
    assert!(reply.is_some(), "no ARP reply to pod A: {sent:?}");
    assert_eq!(
        s.nexthops.get(0),
        Some(Adjacency::Forward {
            port: PortId(0),
            mac: A_MAC
        })
    );
    // The first poll also asked B (unknown) who it is.
    let probe = sent
        .iter()
        .find(|(p, f)| *p == PortId(1) && f[12..14] == [8, 6]);
    let probe = probe.expect("B was not asked for its MAC").1.clone();
    assert_eq!(&probe[0..6], &[0xff; 6]);
    assert_eq!(&probe[38..42], &B, "asks for B's address");
    assert_eq!(
        &probe[28..32],
        &[169, 254, 1, 1],
        "from the gateway address"
    );

    // A → B waits: B's MAC is unknown.
    w.io.inject(PortId(0), &udp(A, B));
    w.poll_once();
    assert_eq!(w.io.held(), 1);
    assert!(w
        .io
        .take_sent()
        .iter()
        .all(|(p, f)| *p != PortId(1) || f[12..14] == [8, 6]));

    // B answers our ARP: learnt, and the held packet goes out to B with B's MAC.
    w.io.inject(
        PortId(1),
        &arp(2, B_MAC, B, [169, 254, 1, 1], HOST_SIDE_MAC),
    );
    w.poll_once();
    std::thread::sleep(Duration::from_millis(2));
    w.poll_once();
    let sent = w.io.take_sent();
    let out: Vec<_> = sent
        .iter()
        .filter(|(p, f)| *p == PortId(1) && f[12..14] == [8, 0])
        .collect();
    assert_eq!(out.len(), 1, "held packet not released: {sent:?}");
    assert_eq!(&out[0].1[0..6], &B_MAC);
    assert_eq!(&out[0].1[6..12], &HOST_SIDE_MAC);
    assert_eq!(out[0].1[14 + 8], 63, "TTL decremented once");
    assert_eq!(w.io.held(), 0);
    let t = s.counters.total();
    assert_eq!(t.held, 1);
    assert_eq!(t.dropped(DropReason::Unresolved), 0);
}

#[test]
fn a_next_hop_that_never_resolves_drops_after_the_hold_time() {
    let mut s = setup();
    let w = &mut s.worker;
    w.io.inject(PortId(0), &udp(A, [10, 244, 9, 7]));
    w.poll_once();
    assert_eq!(w.io.held(), 1);
    let pipeline = &mut w.pipeline;
    let later = Instant::now() + Duration::from_secs(2);
    let expired =
        w.io.retry_held(later, &mut |f, len, nh| pipeline.resume(f, len, nh));
    assert_eq!(expired, 1);
    assert_eq!(w.io.held(), 0);
}

#[test]
fn random_frames_on_every_port_never_panic_and_are_all_accounted() {
    let mut s = setup();
    let w = &mut s.worker;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut injected = 0u64;
    for round in 0..200 {
        for _ in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            if round % 2 == 0 && f.len() > 14 {
                f[12..14].copy_from_slice(if seed & 1 == 0 { &[8, 0] } else { &[8, 6] });
            }
            if w.io.inject(PortId((seed >> 3) as u16 % 2), &f) {
                injected += 1;
            }
        }
        w.poll_once();
        w.io.take_sent();
    }
    let t = s.counters.total();
    assert_eq!(t.rx, injected);
}

#[test]
fn a_large_packet_without_df_leaves_as_fragments_that_reassemble() {
    let mut s = setup_with_mtu(576);
    s.nexthops.set(
        1,
        Adjacency::Forward {
            port: PortId(1),
            mac: B_MAC,
        },
    );
    let w = &mut s.worker;
    let payload: Vec<u8> = (0..1400u32).map(|i| (i * 13) as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(A_MAC, HOST_SIDE_MAC)
        .ipv4(A, B, 64)
        .udp(1000, 2000)
        .write(&mut v, &payload)
        .unwrap();
    v[14 + 6] &= !0x40; // clear DF (etherparse sets it)
    let sum = encap::rewrite::ipv4_checksum(&v[14..34]);
    v[24..26].copy_from_slice(&sum.to_be_bytes());
    w.io.inject(PortId(0), &v);
    w.poll_once();
    let frags: Vec<Vec<u8>> =
        w.io.take_sent()
            .into_iter()
            .filter(|(p, f)| *p == PortId(1) && f[12..14] == [8, 0])
            .map(|(_, f)| f)
            .collect();
    assert_eq!(frags.len(), 3, "1428 IP bytes through a 576-byte MTU");
    let mut udp = vec![0u8; 8 + payload.len()];
    for f in &frags {
        assert!(f.len() - 14 <= 576);
        assert_eq!(&f[0..6], &B_MAC);
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
        assert_eq!(ip.ttl(), 63);
        let off = ip.fragments_offset().byte_offset() as usize;
        let data = &f[14 + 20..];
        udp[off..off + data.len()].copy_from_slice(data);
    }
    assert_eq!(&udp[8..], &payload[..], "reassembled payload");
    assert_eq!(s.counters.total().fragmented, 1);
}
