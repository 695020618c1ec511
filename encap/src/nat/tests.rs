//! Translation against etherparse: every checksum it computes agrees with ours after a
//! rewrite, and translating back restores every byte (random packets, both families,
//! TCP, UDP, ICMP echo); an ICMP error quoting a translated packet comes back to the
//! original sender with its quote translated too.

use super::*;
use etherparse::{icmpv4, Icmpv4Type, Ipv4HeaderSlice, NetHeaders, PacketBuilder, PacketHeaders};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A built packet's bytes.
macro_rules! bytes {
    ($builder:expr, $payload:expr) => {{
        let mut v = Vec::new();
        $builder.write(&mut v, $payload).expect("a valid packet");
        v
    }};
}

/// Every checksum of the packet at `ip` is what etherparse computes (the quote of an
/// ICMP error is checked by the caller).
fn checksums_valid(ip: &[u8]) -> Result<(), String> {
    let h = PacketHeaders::from_ip_slice(ip).map_err(|e| format!("parse: {e:?}"))?;
    let payload = h.payload.slice();
    let mut t = h.transport.clone().ok_or("no transport")?;
    if let (Some(NetHeaders::Ipv4(v4, _)), etherparse::TransportHeader::Udp(u)) = (&h.net, &t) {
        if u.checksum == 0 {
            // IPv4 UDP without a checksum: only the header's to verify.
            return (v4.calc_header_checksum() == v4.header_checksum)
                .then_some(())
                .ok_or_else(|| "IPv4 header checksum".into());
        }
    }
    match &h.net {
        Some(NetHeaders::Ipv4(v4, _)) => {
            if v4.calc_header_checksum() != v4.header_checksum {
                return Err("IPv4 header checksum".into());
            }
            t.update_checksum_ipv4(v4, payload)
                .map_err(|e| format!("{e:?}"))?;
        }
        Some(NetHeaders::Ipv6(v6, _)) => {
            t.update_checksum_ipv6(v6, payload)
                .map_err(|e| format!("{e:?}"))?;
        }
        _ => return Err("not IP".into()),
    }
    if Some(&t) != h.transport.as_ref() {
        return Err(format!(
            "transport checksum: ours {:?}, etherparse {t:?}",
            h.transport
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
    UdpNoChecksum,
    Echo,
}

fn packet(
    v6: bool,
    kind: Kind,
    a: [u8; 16],
    b: [u8; 16],
    sp: u16,
    dp: u16,
    payload: &[u8],
) -> Vec<u8> {
    let builder = if v6 {
        PacketBuilder::ipv6(a, b, 64)
    } else {
        PacketBuilder::ipv4([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]], 64)
    };
    let mut out = Vec::new();
    match kind {
        Kind::Tcp => builder.tcp(sp, dp, 7, 1024).syn().write(&mut out, payload),
        Kind::Udp | Kind::UdpNoChecksum => builder.udp(sp, dp).write(&mut out, payload),
        Kind::Echo if v6 => builder.icmpv6_echo_request(sp, 1).write(&mut out, payload),
        Kind::Echo => builder.icmpv4_echo_request(sp, 1).write(&mut out, payload),
    }
    .expect("a valid packet");
    if let (Kind::UdpNoChecksum, false) = (kind, v6) {
        out[26..28].copy_from_slice(&[0, 0]);
    }
    out
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Tcp),
        Just(Kind::Udp),
        Just(Kind::UdpNoChecksum),
        Just(Kind::Echo)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn out_and_back_restores_every_byte(
        v6 in any::<bool>(),
        kind in kind(),
        a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), n in any::<[u8; 16]>(),
        sp in any::<u16>(), dp in any::<u16>(), np in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        side_src in any::<bool>(),
    ) {
        let orig = packet(v6, kind, a, b, sp, dp, &payload);
        let len = if v6 { 16 } else { 4 };
        let side = if side_src { Side::Source } else { Side::Destination };
        let (old_addr, old_port) = match (side, kind) {
            (Side::Source, _) => (&a[..len], sp),
            (Side::Destination, Kind::Echo) => (&b[..len], sp),
            (Side::Destination, _) => (&b[..len], dp),
        };
        let mut p = orig.clone();
        translate(&mut p, side, &n[..len], np).unwrap();
        prop_assert!(checksums_valid(&p).is_ok(), "{:?}", checksums_valid(&p));
        if let (Kind::UdpNoChecksum, false) = (kind, v6) {
            prop_assert_eq!(&p[26..28], &[0, 0], "no checksum stays none");
        }
        translate(&mut p, side, old_addr, old_port).unwrap();
        prop_assert_eq!(p, orig);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>()) {
        let addr = if v6 { vec![1u8; 16] } else { vec![1u8; 4] };
        let _ = translate(&mut bytes.clone(), Side::Source, &addr, 9);
        let _ = translate(&mut bytes, Side::Destination, &addr, 9);
    }
}

/// A pod's UDP datagram SNATed to the node, too big for a router on the way: the
/// router's "fragmentation needed" to the node, translated back to the pod.
#[test]
fn an_icmp_error_about_a_translated_packet_reaches_the_pod_translated() {
    let (pod, node, far, router) = (
        [10, 244, 1, 5],
        [192, 0, 2, 1],
        [198, 51, 100, 7],
        [203, 0, 113, 1],
    );
    let mut sent = bytes!(
        PacketBuilder::ipv4(pod, far, 64).udp(40000, 53),
        &[7u8; 100]
    );
    translate(&mut sent, Side::Source, &node, 61000).unwrap();
    assert!(checksums_valid(&sent).is_ok());
    // What the router sends the node: the quote is the translated packet, whole.
    let mut err = Vec::new();
    PacketBuilder::ipv4(router, node, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut err, &sent)
        .unwrap();
    translate(&mut err, Side::Destination, &pod, 40000).unwrap();
    checksums_valid(&err).unwrap();
    // The outer packet goes to the pod, and its quote is what the pod sent.
    assert_eq!(&err[16..20], &pod);
    let quote = &err[28..];
    let q = Ipv4HeaderSlice::from_slice(quote).unwrap().to_header();
    assert_eq!(q.source, pod);
    assert_eq!(
        q.calc_header_checksum(),
        q.header_checksum,
        "quoted header checksum"
    );
    assert_eq!(&quote[20..22], &40000u16.to_be_bytes());
    let original = bytes!(
        PacketBuilder::ipv4(pod, far, 64).udp(40000, 53),
        &[7u8; 100]
    );
    assert_eq!(
        quote,
        &original[..],
        "the quote is the pod's own datagram again"
    );
}

/// A router quotes only 8 bytes of the transport header (RFC 792): the TCP checksum is
/// not in the quote, the rest is still translated and the error's checksum right.
#[test]
fn a_short_quote_is_translated_as_far_as_it_goes() {
    let (pod, node, far) = ([10, 244, 1, 5], [192, 0, 2, 1], [198, 51, 100, 7]);
    let mut sent = bytes!(
        PacketBuilder::ipv4(pod, far, 64)
            .tcp(40000, 443, 1, 100)
            .syn(),
        &[]
    );
    translate(&mut sent, Side::Source, &node, 61000).unwrap();
    let mut err = Vec::new();
    PacketBuilder::ipv4(far, node, 64)
        .icmpv4(Icmpv4Type::TimeExceeded(
            icmpv4::TimeExceededCode::TtlExceededInTransit,
        ))
        .write(&mut err, &sent[..28])
        .unwrap();
    translate(&mut err, Side::Destination, &pod, 40000).unwrap();
    checksums_valid(&err).unwrap();
    assert_eq!(&err[28 + 12..28 + 16], &pod);
    assert_eq!(&err[48..50], &40000u16.to_be_bytes());
}

#[test]
fn what_is_not_translated_says_why() {
    let mut frag = bytes!(
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64).udp(1, 2),
        &[0; 8]
    );
    frag[6..8].copy_from_slice(&0x0001u16.to_be_bytes());
    assert_eq!(
        translate(&mut frag, Side::Source, &[3, 3, 3, 3], 5),
        Err(NatError::Fragment)
    );
    let mut v4 = bytes!(
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64).udp(1, 2),
        &[]
    );
    assert_eq!(
        translate(&mut v4, Side::Source, &[0; 16], 5),
        Err(NatError::Family)
    );
    assert_eq!(
        translate(&mut v4[..10], Side::Source, &[3; 4], 5),
        Err(NatError::Truncated)
    );
    let six = Ipv6Addr::LOCALHOST.octets();
    let mut v6 = bytes!(PacketBuilder::ipv6(six, six, 64).udp(1, 2), &[]);
    v6[6] = 0; // a hop-by-hop extension header first
    assert_eq!(
        translate(&mut v6, Side::Source, &six, 5),
        Err(NatError::Unsupported)
    );
    let _ = Ipv4Addr::LOCALHOST;
}
