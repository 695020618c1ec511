//! NAT outgoing on golden packets (built and checked with etherparse): out and back for
//! UDP, TCP and ICMP echo, an ICMP error to the node translated to the pod with its
//! quote, the node's own traffic untouched, IPv6, and a full table or port range.

use super::*;
use etherparse::{icmpv4, Icmpv4Type, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};

const POD: [u8; 4] = [10, 244, 0, 5];
const POD2: [u8; 4] = [10, 244, 0, 6];
const NODE: [u8; 4] = [192, 0, 2, 1];
const FAR: [u8; 4] = [198, 51, 100, 7];

macro_rules! bytes {
    ($builder:expr, $payload:expr) => {{
        let mut v = Vec::new();
        $builder.write(&mut v, $payload).expect("a valid packet");
        v
    }};
}

fn nat() -> Nat {
    Nat::new(
        FlowTable::new(64, 1),
        61000..=61999,
        Some(NODE),
        Some(v6(1)),
    )
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = last;
    a
}

/// (source, destination, source port, destination port), checksums verified.
fn addrs_ports(ip: &[u8]) -> (Vec<u8>, Vec<u8>, u16, u16) {
    let h = PacketHeaders::from_ip_slice(ip).unwrap();
    let payload = h.payload.slice();
    let mut t = h.transport.clone().unwrap();
    let (s, d) = match &h.net {
        Some(NetHeaders::Ipv4(v4, _)) => {
            assert_eq!(
                v4.calc_header_checksum(),
                v4.header_checksum,
                "IPv4 checksum"
            );
            t.update_checksum_ipv4(v4, payload).unwrap();
            (v4.source.to_vec(), v4.destination.to_vec())
        }
        Some(NetHeaders::Ipv6(v6, _)) => {
            t.update_checksum_ipv6(v6, payload).unwrap();
            (v6.source.to_vec(), v6.destination.to_vec())
        }
        _ => panic!("not IP"),
    };
    assert_eq!(Some(&t), h.transport.as_ref(), "transport checksum");
    let (sp, dp) = match t {
        TransportHeader::Udp(u) => (u.source_port, u.destination_port),
        TransportHeader::Tcp(u) => (u.source_port, u.destination_port),
        TransportHeader::Icmpv4(_) | TransportHeader::Icmpv6(_) => {
            let id = u16::from_be_bytes([
                ip[ip.len() - payload.len() - 4],
                ip[ip.len() - payload.len() - 3],
            ]);
            (id, id)
        }
    };
    (s, d, sp, dp)
}

#[test]
fn udp_out_and_back() {
    let mut n = nat();
    let mut out = bytes!(PacketBuilder::ipv4(POD, FAR, 64).udp(40000, 53), &[1; 30]);
    assert_eq!(n.outbound(&mut out, 0), NatOutcome::Translated);
    let (s, d, sp, dp) = addrs_ports(&out);
    assert_eq!((s, d, dp), (NODE.to_vec(), FAR.to_vec(), 53));
    assert!((61000..=61999).contains(&sp), "{sp}");
    // The same flow keeps its port.
    let mut again = bytes!(PacketBuilder::ipv4(POD, FAR, 64).udp(40000, 53), &[2; 30]);
    n.outbound(&mut again, 1);
    assert_eq!(addrs_ports(&again).2, sp);
    // Another pod to the same destination gets another port.
    let mut other = bytes!(PacketBuilder::ipv4(POD2, FAR, 64).udp(40000, 53), &[3; 30]);
    n.outbound(&mut other, 1);
    assert_ne!(addrs_ports(&other).2, sp);
    // The reply goes back to the pod, byte for byte what it would be without NAT.
    let mut back = bytes!(PacketBuilder::ipv4(FAR, NODE, 64).udp(53, sp), &[4; 30]);
    assert_eq!(n.inbound(&mut back, 2), NatOutcome::Translated);
    let direct = bytes!(PacketBuilder::ipv4(FAR, POD, 64).udp(53, 40000), &[4; 30]);
    assert_eq!(back, direct);
    assert_eq!((n.counters.out, n.counters.back), (3, 1));
}

#[test]
fn the_nodes_own_traffic_is_not_ours() {
    let mut n = nat();
    // An SSH connection to the node, and a reply to the node's own client.
    for (sp, dp) in [(50000, 22), (443, 45000)] {
        let mut p = bytes!(
            PacketBuilder::ipv4(FAR, NODE, 64).tcp(sp, dp, 1, 100).syn(),
            &[]
        );
        let before = p.clone();
        assert_eq!(n.inbound(&mut p, 0), NatOutcome::NotOurs);
        assert_eq!(p, before);
    }
}

#[test]
fn tcp_and_echo_through_nat() {
    let mut n = nat();
    let mut syn = bytes!(
        PacketBuilder::ipv4(POD, FAR, 64)
            .tcp(40000, 443, 1, 100)
            .syn(),
        &[]
    );
    n.outbound(&mut syn, 0);
    let port = addrs_ports(&syn).2;
    let mut synack = bytes!(
        PacketBuilder::ipv4(FAR, NODE, 64)
            .tcp(443, port, 9, 100)
            .syn()
            .ack(2),
        &[]
    );
    assert_eq!(n.inbound(&mut synack, 0), NatOutcome::Translated);
    assert_eq!(addrs_ports(&synack).3, 40000);
    let mut ack = bytes!(
        PacketBuilder::ipv4(POD, FAR, 64)
            .tcp(40000, 443, 2, 100)
            .ack(10),
        &[]
    );
    n.outbound(&mut ack, 0);
    let (id, _) = n
        .table
        .lookup(&Tuple::v4(POD.into(), FAR.into(), 40000, 443, TCP))
        .unwrap();
    assert_eq!(
        n.table.get(id).unwrap().state,
        FlowState::Tcp(tcp::TcpState::Established)
    );

    let mut ping = bytes!(
        PacketBuilder::ipv4(POD, FAR, 64).icmpv4_echo_request(0x77, 1),
        &[0; 16]
    );
    assert_eq!(n.outbound(&mut ping, 0), NatOutcome::Translated);
    let id = addrs_ports(&ping).2;
    let mut pong = bytes!(
        PacketBuilder::ipv4(FAR, NODE, 64).icmpv4_echo_reply(id, 1),
        &[0; 16]
    );
    assert_eq!(n.inbound(&mut pong, 0), NatOutcome::Translated);
    let direct = bytes!(
        PacketBuilder::ipv4(FAR, POD, 64).icmpv4_echo_reply(0x77, 1),
        &[0; 16]
    );
    assert_eq!(pong, direct);
}

#[test]
fn frag_needed_to_the_node_reaches_the_pod_with_its_quote() {
    let mut n = nat();
    let original = bytes!(PacketBuilder::ipv4(POD, FAR, 64).udp(40000, 53), &[7; 1400]);
    let mut sent = original.clone();
    n.outbound(&mut sent, 0);
    let mut err = bytes!(
        PacketBuilder::ipv4([203, 0, 113, 1], NODE, 64).icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1280 }
        )),
        &sent[..28]
    );
    assert_eq!(n.inbound(&mut err, 0), NatOutcome::Translated);
    assert_eq!(&err[16..20], &POD);
    assert_eq!(
        &err[28..56],
        &original[..28],
        "the quote is what the pod sent"
    );
    let h = PacketHeaders::from_ip_slice(&err).unwrap();
    let mut t = h.transport.clone().unwrap();
    let Some(NetHeaders::Ipv4(v4, _)) = &h.net else {
        panic!()
    };
    t.update_checksum_ipv4(v4, h.payload.slice()).unwrap();
    assert_eq!(Some(&t), h.transport.as_ref(), "the error's checksum");
}

#[test]
fn ipv6_out_and_back() {
    let mut n = nat();
    let (pod, far) = (v6(5), v6(9));
    let mut out = bytes!(PacketBuilder::ipv6(pod, far, 64).udp(40000, 53), &[1; 10]);
    assert_eq!(n.outbound(&mut out, 0), NatOutcome::Translated);
    let (s, _, sp, _) = addrs_ports(&out);
    assert_eq!(s, v6(1).to_vec());
    let mut back = bytes!(PacketBuilder::ipv6(far, v6(1), 64).udp(53, sp), &[1; 10]);
    assert_eq!(n.inbound(&mut back, 0), NatOutcome::Translated);
    assert_eq!(
        back,
        bytes!(PacketBuilder::ipv6(far, pod, 64).udp(53, 40000), &[1; 10])
    );
}

#[test]
fn full_table_and_empty_port_range_are_counted_drops() {
    let mut n = Nat::new(FlowTable::new(2, 1), 61000..=61999, Some(NODE), None);
    for sp in 0..2 {
        let mut p = bytes!(
            PacketBuilder::ipv4(POD, FAR, 64)
                .tcp(sp, 443, 1, 100)
                .ack(1),
            &[]
        );
        assert_eq!(n.outbound(&mut p, 0), NatOutcome::Translated);
    }
    // Two established flows fill the table: a third is refused, counted, untouched.
    let mut p = bytes!(
        PacketBuilder::ipv4(POD, FAR, 64).tcp(9, 443, 1, 100).ack(1),
        &[]
    );
    let before = p.clone();
    assert_eq!(n.outbound(&mut p, 0), NatOutcome::Drop(NatDrop::TableFull));
    assert_eq!(p, before);
    let mut n = Nat::new(FlowTable::new(8, 1), 61000..=61001, Some(NODE), None);
    for sp in 0..2 {
        let mut p = bytes!(PacketBuilder::ipv4(POD, FAR, 64).udp(sp, 53), &[]);
        n.outbound(&mut p, 0);
    }
    let mut p = bytes!(PacketBuilder::ipv4(POD, FAR, 64).udp(9, 53), &[]);
    assert_eq!(n.outbound(&mut p, 0), NatOutcome::Drop(NatDrop::NoPort));
    assert_eq!(n.counters.no_port, 1);
    // No IPv6 node address: IPv6 is not translated.
    let mut six = bytes!(PacketBuilder::ipv6(v6(5), v6(9), 64).udp(1, 2), &[]);
    assert_eq!(
        n.outbound(&mut six, 0),
        NatOutcome::Drop(NatDrop::Untranslatable)
    );
}
