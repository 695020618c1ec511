//! Golden tests of the tunnel encodings: byte-exact outer headers written out by hand
//! from the RFCs and Calico's defaults, checksums recomputed by etherparse (an
//! independent implementation), inner packets intact, and decapsulation as the inverse.

use encap::ipip::{self, Ipip};
use encap::template::OuterTemplate;
use encap::tunnel::{DecapError, EncapError, Encapsulation, OuterEth, Underlay};
use encap::vxlan::{self, SourcePort, Vxlan, CALICO_VNI};
use etherparse::{Ipv4Header, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const POD_MAC: [u8; 6] = [0x02, 0x42, 0, 0, 0, 5];
const NIC_A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0a];
const NIC_B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0b];
const HEADROOM: usize = 128;

fn eth() -> OuterEth {
    OuterEth {
        dst: NIC_B,
        src: NIC_A,
    }
}

fn under4() -> Underlay {
    Underlay::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
    }
}

fn under6() -> Underlay {
    Underlay::V6 {
        src: "fd00::1".parse().unwrap(),
        dst: "fd00::2".parse().unwrap(),
    }
}

/// A pod's UDP packet as a frame (TTL 63: already routed once), in a buffer with headroom.
fn inner_v4(df: bool) -> (Vec<u8>, usize) {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, [0xee; 6])
        .ipv4([10, 244, 1, 2], [10, 244, 2, 3], 63)
        .udp(1000, 2000)
        .write(&mut f, b"hello, node b")
        .unwrap();
    if !df {
        f[20] &= !0x40;
        let c = encap::rewrite::ipv4_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f[15] = 0xb8; // DSCP EF: copied to the outer header
    let c = encap::rewrite::ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let len = f.len();
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(&f);
    (buf, len)
}

fn inner_v6() -> (Vec<u8>, usize) {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, [0xee; 6])
        .ipv6(
            "fd10::2".parse::<Ipv6Addr>().unwrap().octets(),
            "fd10::1:3".parse::<Ipv6Addr>().unwrap().octets(),
            63,
        )
        .tcp(40000, 80, 1, 1000)
        .write(&mut f, b"GET / HTTP/1.1\r\n")
        .unwrap();
    let len = f.len();
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(&f);
    (buf, len)
}

#[test]
fn vtep_macs_match_calicos_derivation() {
    // Expected values computed independently (Python hashlib.sha1).
    assert_eq!(
        vxlan::vtep_mac("node-a"),
        [0x66, 0x07, 0x02, 0xc1, 0xcc, 0x60]
    );
    assert_eq!(
        vxlan::vtep_mac_v6("node-a"),
        [0x66, 0xd4, 0xd5, 0x51, 0x3d, 0x42]
    );
    assert_eq!(
        vxlan::vtep_mac("kind-control-plane"),
        [0x66, 0x07, 0x01, 0x14, 0x06, 0x90]
    );
}

#[test]
fn vxlan_over_ipv4_is_byte_exact() {
    let (mut buf, len) = inner_v4(true);
    let original = buf[HEADROOM..HEADROOM + len].to_vec();
    let t = Vxlan {
        vni: CALICO_VNI,
        local_vtep_mac: vxlan::vtep_mac("node-a"),
        remote_vtep_mac: vxlan::vtep_mac("node-b"),
        underlay: under4(),
        eth: eth(),
        source_port: SourcePort::Fixed(4789),
    };
    assert_eq!(t.overhead(), 50);
    let r = t.encapsulate(&mut buf, HEADROOM, len, 0x1234).unwrap();
    assert_eq!(r, HEADROOM - 50..HEADROOM + len);
    let out = &buf[r.clone()];

    let mut want = Vec::new();
    want.extend_from_slice(&NIC_B);
    want.extend_from_slice(&NIC_A);
    want.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + 8 + len) as u16;
    let mut ip = vec![0x45, 0xb8];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[
        0x12, 0x34, 0x00, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    let h = Ipv4Header::from_slice(&ip).unwrap().0;
    ip[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    want.extend_from_slice(&ip);
    want.extend_from_slice(&4789u16.to_be_bytes());
    want.extend_from_slice(&4789u16.to_be_bytes());
    want.extend_from_slice(&((8 + 8 + len) as u16).to_be_bytes());
    want.extend_from_slice(&[0, 0]); // no UDP checksum over IPv4, as Linux sends it
    want.extend_from_slice(&[0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0x00]); // I flag, VNI 4096
    want.extend_from_slice(&vxlan::vtep_mac("node-b"));
    want.extend_from_slice(&vxlan::vtep_mac("node-a"));
    want.extend_from_slice(&original[12..]);
    assert_eq!(out, &want[..]);

    let d = vxlan::decapsulate(out, CALICO_VNI).unwrap();
    assert_eq!(d.outer_src, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(&out[d.inner.clone()][12..], &original[12..]);
    assert_eq!(vxlan::decapsulate(out, 4097), Err(DecapError::WrongVni));
}

#[test]
fn vxlan_over_ipv6_has_a_valid_udp_checksum_and_flow_entropy() {
    let (mut buf, len) = inner_v6();
    let original = buf[HEADROOM..HEADROOM + len].to_vec();
    let t = Vxlan {
        vni: CALICO_VNI,
        local_vtep_mac: vxlan::vtep_mac_v6("node-a"),
        remote_vtep_mac: vxlan::vtep_mac_v6("node-b"),
        underlay: under6(),
        eth: eth(),
        source_port: SourcePort::FlowHash,
    };
    assert_eq!(t.overhead(), 70);
    let r = t.encapsulate(&mut buf, HEADROOM, len, 0).unwrap();
    let out = buf[r].to_vec();
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("{p:?}")
    };
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!()
    };
    assert_eq!(ip.header().hop_limit(), 64);
    assert_eq!(udp.destination_port(), 4789);
    assert!((32768..=60999).contains(&udp.source_port()));
    let hdr = Ipv6Header::from_slice(&out[14..54]).unwrap().0;
    let want = udp
        .to_header()
        .calc_checksum_ipv6(&hdr, udp.payload())
        .unwrap();
    assert_ne!(udp.checksum(), 0, "IPv6 UDP needs a checksum");
    assert_eq!(udp.checksum(), want);
    assert_eq!(&udp.payload()[8 + 12..], &original[12..], "inner intact");
    // The same flow gets the same source port; flow label is set.
    let (mut again, _) = inner_v6();
    let r2 = t.encapsulate(&mut again, HEADROOM, len, 0).unwrap();
    assert_eq!(&again[r2], &out[..]);
    assert_ne!(ip.header().flow_label().value(), 0);
}

#[test]
fn ipip_v4_in_v4_is_byte_exact_and_keeps_df() {
    for df in [true, false] {
        let (mut buf, len) = inner_v4(df);
        let original = buf[HEADROOM..HEADROOM + len].to_vec();
        let t = Ipip {
            underlay: under4(),
            eth: eth(),
        };
        let r = t.encapsulate(&mut buf, HEADROOM, len, 7).unwrap();
        assert_eq!(r, HEADROOM - 20..HEADROOM + len);
        let out = &buf[r];
        let total = (20 + len - 14) as u16;
        let mut ip = vec![0x45, 0xb8];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 7, if df { 0x40 } else { 0 }, 0, 64, 4, 0, 0]);
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let h = Ipv4Header::from_slice(&ip).unwrap().0;
        ip[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
        let mut want = [&NIC_B[..], &NIC_A[..], &[0x08, 0x00]].concat();
        want.extend_from_slice(&ip);
        want.extend_from_slice(&original[14..]);
        assert_eq!(out, &want[..], "df {df}");
        let d = ipip::decapsulate(out).unwrap();
        assert!(!d.inner_v6);
        assert_eq!(&out[d.inner_ip], &original[14..]);
    }
}

#[test]
fn the_ipv6_tunnel_forms_round_trip_and_parse() {
    let cases = [
        (under4(), true, 41u8), // IPv6 in IPv4
        (under6(), false, 4u8), // IPv4 in IPv6
        (under6(), true, 41u8), // IPv6 in IPv6
    ];
    for (underlay, v6_inside, proto) in cases {
        let (mut buf, len) = if v6_inside {
            inner_v6()
        } else {
            inner_v4(true)
        };
        let original = buf[HEADROOM..HEADROOM + len].to_vec();
        let t = Ipip {
            underlay,
            eth: eth(),
        };
        let r = t.encapsulate(&mut buf, HEADROOM, len, 1).unwrap();
        let out = &buf[r];
        let p = SlicedPacket::from_ethernet(out).unwrap();
        let (got_proto, payload) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => (ip.header().protocol().0, ip.payload().payload),
            Some(NetSlice::Ipv6(ip)) => (ip.header().next_header().0, ip.payload().payload),
            other => panic!("{other:?}"),
        };
        assert_eq!(got_proto, proto);
        assert_eq!(payload, &original[14..]);
        let inner = SlicedPacket::from_ip(payload).unwrap();
        assert!(inner.transport.is_some(), "inner packet parses");
        let d = ipip::decapsulate(out).unwrap();
        assert_eq!(d.inner_v6, v6_inside);
    }
}

#[test]
fn no_headroom_and_garbage_are_refused() {
    let (mut buf, len) = inner_v4(true);
    let t = Vxlan {
        vni: 1,
        local_vtep_mac: [0x66; 6],
        remote_vtep_mac: [0x66; 6],
        underlay: under4(),
        eth: eth(),
        source_port: SourcePort::FlowHash,
    };
    assert_eq!(
        t.encapsulate(&mut buf, 10, len, 0),
        Err(EncapError::NoHeadroom)
    );
    let mut junk = vec![0u8; 200];
    assert_eq!(
        t.encapsulate(&mut junk, 100, 60, 0),
        Err(EncapError::Malformed)
    );
    let (plain, _) = inner_v4(true);
    assert_eq!(
        vxlan::decapsulate(&plain[HEADROOM..], 1),
        Err(DecapError::NotTunnel)
    );
    assert_eq!(
        ipip::decapsulate(&plain[HEADROOM..]),
        Err(DecapError::NotTunnel)
    );
}

proptest! {
    #[test]
    fn decapsulation_never_panics(frame in prop::collection::vec(any::<u8>(), 0..200), v4 in any::<bool>()) {
        let mut f = frame;
        if f.len() > 14 {
            f[12..14].copy_from_slice(if v4 { &[8, 0] } else { &[0x86, 0xdd] });
        }
        let _ = vxlan::decapsulate(&f, CALICO_VNI);
        let _ = ipip::decapsulate(&f);
    }

    #[test]
    fn vxlan_round_trips_any_payload(payload in prop::collection::vec(any::<u8>(), 0..1400), six in any::<bool>(), port in any::<u16>()) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(POD_MAC, [0xee; 6])
            .ipv4([10, 244, 1, 2], [10, 244, 2, 3], 63)
            .udp(port, 53)
            .write(&mut f, &payload)
            .unwrap();
        let len = f.len();
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(&f);
        let t = Vxlan {
            vni: 77,
            local_vtep_mac: [0x66, 1, 2, 3, 4, 5],
            remote_vtep_mac: [0x66, 5, 4, 3, 2, 1],
            underlay: if six { under6() } else { under4() },
            eth: eth(),
            source_port: SourcePort::FlowHash,
        };
        let r = t.encapsulate(&mut buf, HEADROOM, len, 9).unwrap();
        let d = vxlan::decapsulate(&buf[r.clone()], 77).unwrap();
        prop_assert_eq!(&buf[r][d.inner][12..], &f[12..]);
    }
}

/// A random inner frame: IPv4 (DF or not, any TOS) or IPv6 (any traffic class), UDP or
/// TCP, of `payload` bytes.
fn random_inner(v6: bool, df: bool, tos: u8, tcp: bool, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(POD_MAC, [0xee; 6]);
    let mut f = Vec::new();
    let ip = if v6 {
        eth.ipv6(
            "fd10::2".parse::<Ipv6Addr>().unwrap().octets(),
            "fd10::1:3".parse::<Ipv6Addr>().unwrap().octets(),
            63,
        )
    } else {
        eth.ipv4([10, 244, 1, 2], [10, 244, 2, 3], 63)
    };
    if tcp {
        ip.tcp(40000, 80, 1, 1000).write(&mut f, payload).unwrap();
    } else {
        ip.udp(5353, 53).write(&mut f, payload).unwrap();
    }
    if v6 {
        f[14] = 0x60 | tos >> 4;
        f[15] = (tos << 4) | (f[15] & 0x0f);
    } else {
        f[15] = tos;
        if !df {
            f[20] &= !0x40;
        }
        let c = encap::rewrite::ipv4_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

proptest! {
    /// The per-packet fast path (`OuterTemplate`, frame moved up in its buffer) writes
    /// exactly what the reference `encapsulate_with` writes with real headroom.
    #[test]
    fn template_matches_the_reference_encapsulation(
        payload in prop::collection::vec(any::<u8>(), 0..1400),
        inner6 in any::<bool>(), outer6 in any::<bool>(), vx in any::<bool>(),
        df in any::<bool>(), tos in any::<u8>(), tcp in any::<bool>(),
        fixed in prop::option::of(any::<u16>()), ident in any::<u16>(), slack in 0usize..200,
    ) {
        let f = random_inner(inner6, df, tos, tcp, &payload);
        let len = f.len();
        let underlay = if outer6 { under6() } else { under4() };
        let vxlan = Vxlan {
            vni: CALICO_VNI,
            local_vtep_mac: [0x66, 1, 2, 3, 4, 5],
            remote_vtep_mac: [0x66, 5, 4, 3, 2, 1],
            underlay,
            eth: eth(),
            source_port: fixed.map_or(SourcePort::FlowHash, SourcePort::Fixed),
        };
        let ipip = Ipip { underlay, eth: eth() };
        let (template, reference): (OuterTemplate, &dyn Encapsulation) = if vx {
            (OuterTemplate::vxlan(&vxlan), &vxlan)
        } else {
            (OuterTemplate::ipip(&ipip), &ipip)
        };
        prop_assert_eq!(template.overhead(), reference.overhead());

        let mut want = vec![0u8; HEADROOM];
        want.extend_from_slice(&f);
        let r = reference.encapsulate(&mut want, HEADROOM, len, ident).unwrap();

        // The fast path's buffer: the frame at 0, room after it (at least the overhead).
        let mut got = f.clone();
        got.resize(len + template.overhead() + slack, 0xa5);
        let n = template.encapsulate(&eth(), &mut got, len, ident).unwrap();
        prop_assert_eq!(&got[..n], &want[r]);

        // Too little room is refused, not written past.
        let mut short = f.clone();
        short.resize(len + template.overhead() - 1, 0);
        prop_assert_eq!(template.encapsulate(&eth(), &mut short, len, ident), Err(EncapError::NoHeadroom));
    }

    #[test]
    fn template_refuses_malformed_frames(frame in prop::collection::vec(any::<u8>(), 0..120), vx in any::<bool>()) {
        let vxlan = Vxlan {
            vni: CALICO_VNI,
            local_vtep_mac: [0x66, 1, 2, 3, 4, 5],
            remote_vtep_mac: [0x66, 5, 4, 3, 2, 1],
            underlay: under4(),
            eth: eth(),
            source_port: SourcePort::FlowHash,
        };
        let t = if vx { OuterTemplate::vxlan(&vxlan) } else { OuterTemplate::ipip(&Ipip { underlay: under4(), eth: eth() }) };
        let len = frame.len();
        let mut buf = frame;
        buf.resize(len + 256, 0);
        if let Ok(n) = t.encapsulate(&eth(), &mut buf, len, 0) {
            prop_assert_eq!(n, len + t.overhead());
        }
    }
}
