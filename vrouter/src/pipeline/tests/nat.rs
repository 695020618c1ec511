//! NAT outgoing through the pipeline: what is translated (and what is not), replies back
//! to the pod, the handoff to the owning worker, ICMP errors both ways.

use super::*;
use crate::tunnel::{Overlay, TunnelTable};
use etherparse::{Icmpv4Type, TransportSlice};

const NODE: [u8; 4] = [10, 0, 0, 1];
const OTHER_NODE: [u8; 4] = [10, 0, 0, 2];
const WORLD: [u8; 4] = [8, 8, 8, 8];

/// Pods of 10.244.0.0/16 (natOutgoing) on a node 10.0.0.1 with a default route out of the
/// uplink; 10.0.0.2 is another node of the cluster. Worker `w` of `workers`.
fn nat_node(workers: usize, w: usize) -> Node {
    nat_node_sized(workers, w, 1024)
}

/// `nat_node` with a flow table of `max_flows`.
fn nat_node_sized(workers: usize, w: usize, max_flows: usize) -> Node {
    let mut n = node_with(&[("0.0.0.0/0", 2)], workers, w);
    let overlay = Overlay {
        local_v4: vec![u32::from_be_bytes(NODE)],
        pools_v4: vec![(u32::from_be_bytes([10, 244, 0, 0]), 16)],
        nat_v4: vec![(u32::from_be_bytes([10, 244, 0, 0]), 16)],
        nodes_v4: vec![u32::from_be_bytes(OTHER_NODE)],
        vni: 4096,
        ..Overlay::default()
    };
    n.pipeline = n
        .pipeline
        .with_icmp(
            "10.0.0.1".parse().unwrap(),
            "fd00::1".parse().unwrap(),
            1000,
        )
        .with_overlay(Arc::new(TunnelTable::new(4)), overlay)
        .with_conntrack(max_flows, 61000..=65535, workers);
    n
}

fn world_reply(dst_port: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
        .ipv4(WORLD, NODE, 60)
        .udp(2000, dst_port);
    let mut f = Vec::new();
    b.write(&mut f, b"world").unwrap();
    f
}

/// (source, destination, source port, destination port) of a UDP frame, its checksums
/// checked.
fn udp_of(frame: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("a parsable frame");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!("not UDP")
    };
    let sum = u
        .to_header()
        .calc_checksum_ipv4(&h.to_header(), u.payload())
        .unwrap();
    assert_eq!(sum, u.checksum(), "UDP checksum");
    (
        h.source(),
        h.destination(),
        u.source_port(),
        u.destination_port(),
    )
}

#[test]
fn a_pod_reaches_the_world_from_the_node_address_and_gets_the_reply() {
    let mut n = nat_node(1, 0);
    let (a, out) = run(&mut n, POD_A, &[udp4(A4, WORLD, 64)]);
    assert!(matches!(a[0], Action::Tx { port: UPLINK, .. }), "{a:?}");
    let (src, dst, sport, dport) = udp_of(&out[0]);
    assert_eq!((src, dst, dport), (NODE, WORLD, 2000));
    assert!((61000..=65535).contains(&sport), "port {sport}");

    let (a, back) = run(&mut n, UPLINK, &[world_reply(sport)]);
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    assert_eq!(udp_of(&back[0]), (WORLD, A4, 2000, 1000));
    assert_eq!(&back[0][..6], &POD_A_MAC);

    // The same flow keeps its port.
    let (_, again) = run(&mut n, POD_A, &[udp4(A4, WORLD, 64)]);
    assert_eq!(udp_of(&again[0]).2, sport);
    let t = n.counters.total();
    assert_eq!(t.nat_translated, 3);
}

#[test]
fn pool_and_node_destinations_and_the_nodes_own_traffic_are_untouched() {
    let mut n = nat_node(1, 0);
    // Another block of the pools (routed out of the uplink here) and another node.
    for dst in [[10, 244, 2, 7], OTHER_NODE] {
        let (a, out) = run(&mut n, POD_A, &[udp4(A4, dst, 64)]);
        assert!(matches!(a[0], Action::Tx { port: UPLINK, .. }), "{a:?}");
        assert_eq!(udp_of(&out[0]), (A4, dst, 1000, 2000));
    }
    // SSH to the node, and a stray packet to a NAT port no flow has: the kernel's.
    let ssh = {
        let b = PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
            .ipv4(WORLD, NODE, 60)
            .tcp(40000, 22, 1, 1000)
            .syn();
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        f
    };
    let (a, _) = run(&mut n, UPLINK, &[ssh, world_reply(62000)]);
    assert_eq!(a, vec![Action::Kernel, Action::Kernel]);
    assert_eq!(n.counters.total().nat_translated, 0);
}

#[test]
fn a_reply_on_another_workers_queue_is_handed_to_the_flows_owner() {
    let mut owner = nat_node(2, 1);
    let mut other = nat_node(2, 0);
    let (_, out) = run(&mut owner, POD_A, &[udp4(A4, WORLD, 64)]);
    let sport = udp_of(&out[0]).2;
    assert!(sport >= 63268, "worker 1's half of the range: {sport}");

    let reply = world_reply(sport);
    let (a, _) = run(&mut other, UPLINK, std::slice::from_ref(&reply));
    assert_eq!(
        a[0],
        Action::Handoff {
            worker: 1,
            len: reply.len()
        }
    );
    assert_eq!(other.counters.total().handed_off, 1);
    let (a, back) = run(&mut owner, UPLINK, &[reply]);
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    assert_eq!(udp_of(&back[0]), (WORLD, A4, 2000, 1000));
}

/// The ICMP error in `frame`: (outer source, outer destination, quoted source and port).
fn icmp_error_of(frame: &[u8]) -> ([u8; 4], [u8; 4], Icmpv4Type, [u8; 4], u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("a parsable frame");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP")
    };
    let sum = icmp.icmp_type().calc_checksum(icmp.payload());
    assert_eq!(sum, icmp.checksum(), "ICMP checksum");
    let quote = icmp.payload();
    let ihl = (quote[0] & 0x0f) as usize * 4;
    let qsrc = [quote[12], quote[13], quote[14], quote[15]];
    let qport = u16::from_be_bytes([quote[ihl], quote[ihl + 1]]);
    (
        ip.header().source(),
        ip.header().destination(),
        icmp.icmp_type(),
        qsrc,
        qport,
    )
}

#[test]
fn icmp_errors_about_translated_packets_reach_the_pod_in_its_own_addresses() {
    let mut n = nat_node(1, 0);
    // A router out there: frag-needed about what we sent (node:port → world).
    let (_, out) = run(&mut n, POD_A, &[udp4(A4, WORLD, 64)]);
    let sent = out[0][..].to_vec();
    let sport = udp_of(&sent).2;
    let mut err = sent.clone();
    err.resize(2048, 0);
    let len = crate::icmp::ipv4_error(
        &mut err,
        sent.len(),
        crate::icmp::IcmpError::TooBig { mtu: 1400 },
        "192.0.2.1".parse().unwrap(),
        ROUTER_MAC,
    )
    .expect("an error");
    // ipv4_error answers the sender: the frame now goes from the router to the node.
    err.truncate(len);
    let (_, dst, _, qsrc, qport) = icmp_error_of(&err);
    assert_eq!((dst, qsrc, qport), (NODE, NODE, sport));
    let (a, back) = run(&mut n, UPLINK, &[err]);
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    let (src, dst, kind, qsrc, qport) = icmp_error_of(&back[0]);
    assert_eq!((src, dst, qsrc, qport), ([192, 0, 2, 1], A4, A4, 1000));
    assert!(matches!(
        kind,
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 }
        )
    ));

    // Our own error about a translated packet (its TTL ran out here): the pod sees it
    // about its own packet.
    let (a, back) = run(&mut n, POD_A, &[udp4(A4, WORLD, 1)]);
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    let (src, dst, kind, qsrc, qport) = icmp_error_of(&back[0]);
    assert_eq!((src, dst, qsrc, qport), (NODE, A4, A4, 1000));
    assert!(matches!(kind, Icmpv4Type::TimeExceeded(_)));
}

#[test]
fn nat_drops_are_counted_by_reason() {
    let mut n = nat_node(1, 0);
    // A lone RST makes no flow; a non-first fragment cannot be translated.
    let rst = {
        let b = PacketBuilder::ethernet2(POD_A_MAC, HOST_SIDE_MAC)
            .ipv4(A4, WORLD, 64)
            .tcp(1000, 80, 1, 1000)
            .rst();
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        f
    };
    let mut frag = udp4(A4, WORLD, 64);
    frag[ETH_HDR_LEN + 6] = 0x00;
    frag[ETH_HDR_LEN + 7] = 0x10; // offset 128 bytes
    let (a, _) = run(&mut n, POD_A, &[rst, frag]);
    assert_eq!(
        a,
        vec![
            Action::Drop(DropReason::NatUntranslatable),
            Action::Drop(DropReason::NatUntranslatable)
        ]
    );
    assert_eq!(n.counters.total().dropped(DropReason::NatUntranslatable), 2);
}

fn tcp4(sport: u16, flags: &[&str]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(POD_A_MAC, HOST_SIDE_MAC)
        .ipv4(A4, WORLD, 64)
        .tcp(sport, 443, 7, 1000);
    for f in flags {
        b = match *f {
            "syn" => b.syn(),
            "ack" => b.ack(1),
            "fin" => b.fin(),
            "rst" => b.rst(),
            "psh" => b.psh(),
            "urg" => b.urg(0),
            _ => b,
        };
    }
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

#[test]
fn a_syn_flood_fills_the_table_without_touching_established_flows() {
    let mut n = nat_node_sized(1, 0, 8);
    // An established flow first (SYN, SYN-ACK back, ACK).
    let (_, out) = run(&mut n, POD_A, &[tcp4(5000, &["syn"])]);
    let port = SlicedPacket::from_ethernet(&out[0])
        .ok()
        .and_then(|p| match p.transport {
            Some(TransportSlice::Tcp(t)) => Some(t.source_port()),
            _ => None,
        })
        .expect("a translated SYN");
    let synack = {
        let b = PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
            .ipv4(WORLD, NODE, 60)
            .tcp(443, port, 9, 1000)
            .syn()
            .ack(8);
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        f
    };
    let (a, _) = run(&mut n, UPLINK, std::slice::from_ref(&synack));
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    let (a, _) = run(&mut n, POD_A, &[tcp4(5000, &["ack"])]);
    assert!(matches!(a[0], Action::Tx { port: UPLINK, .. }), "{a:?}");

    // 200 SYNs from new ports: unreplied flows replace each other, none is refused
    // while one may go; the established flow stays.
    let flood: Vec<Vec<u8>> = (0..200).map(|i| tcp4(6000 + i, &["syn"])).collect();
    for chunk in flood.chunks(BURST) {
        run(&mut n, POD_A, chunk);
    }
    let stats = n.pipeline.nat_mut().figures().unwrap();
    assert_eq!(stats[0], 8, "the table is full");
    assert!(stats[4] >= 190, "unreplied flows evicted: {stats:?}");
    let (a, back) = run(&mut n, UPLINK, &[synack]);
    assert!(matches!(a[0], Action::Tx { port: POD_A, .. }), "{a:?}");
    assert_eq!(&back[0][..6], &POD_A_MAC);
}

#[test]
fn a_table_of_established_flows_refuses_newcomers_and_counts_them() {
    let mut n = nat_node_sized(1, 0, 2);
    // Two UDP flows, each replied (so never evicted).
    let from = |sport: u16| {
        let b = PacketBuilder::ethernet2(POD_A_MAC, HOST_SIDE_MAC)
            .ipv4(A4, WORLD, 64)
            .udp(sport, 2000);
        let mut f = Vec::new();
        b.write(&mut f, b"hello").unwrap();
        f
    };
    for sport in [1000u16, 1001] {
        let (_, out) = run(&mut n, POD_A, &[from(sport)]);
        let port = udp_of(&out[0]).2;
        let (a, _) = run(&mut n, UPLINK, &[world_reply(port)]);
        assert!(matches!(a[0], Action::Tx { port: POD_A, .. }));
    }
    let (a, _) = run(&mut n, POD_A, &[from(3000)]);
    assert_eq!(a[0], Action::Drop(DropReason::ConntrackFull));
    assert_eq!(n.counters.total().dropped(DropReason::ConntrackFull), 1);
}

proptest! {
    /// Nonsense TCP flags and ICMP errors cut anywhere, out of a pod and into the
    /// node: each is forwarded, handed to the kernel or counted as a drop; no panic.
    #[test]
    fn nonsense_flags_and_truncated_errors_are_counted(
        flags in proptest::collection::vec(
            proptest::sample::select(vec!["syn", "ack", "fin", "rst", "psh", "urg"]), 0..6),
        cut in 0usize..80,
    ) {
        let mut n = nat_node(1, 0);
        let (_, out) = run(&mut n, POD_A, &[tcp4(5000, &flags)]);
        let mut err = out[0].clone();
        err.resize(2048, 0);
        let len = crate::icmp::ipv4_error(
            &mut err, out[0].len().max(54), crate::icmp::IcmpError::NoRoute,
            "192.0.2.1".parse().unwrap(), ROUTER_MAC,
        ).unwrap_or(0);
        err.truncate(len.saturating_sub(cut).max(ETH_HDR_LEN));
        let (a, _) = run(&mut n, UPLINK, &[err]);
        let settled = matches!(a[0], Action::Tx { .. } | Action::Kernel | Action::Drop(_));
        prop_assert!(settled, "{:?}", a[0]);
        let t = n.counters.total();
        let drops: u64 = DropReason::ALL.iter().map(|&r| t.dropped(r)).sum();
        prop_assert_eq!(t.rx, t.tx + t.to_kernel + drops);
    }
}
