//! The named offsets checked against an independent parser (etherparse): headers it
//! writes are read back through our fields, and ours through it.

use super::*;
use etherparse::{
    ArpPacket, EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, UdpHeader,
};

#[test]
fn ethernet_fields() {
    let h = Ethernet2Header {
        destination: [1, 2, 3, 4, 5, 6],
        source: [7, 8, 9, 10, 11, 12],
        ether_type: EtherType::IPV6,
    };
    let b = h.to_bytes();
    assert_eq!(ethernet::HEADER_LEN, Ethernet2Header::LEN);
    assert_eq!(b[ethernet::field::DESTINATION], h.destination);
    assert_eq!(ethernet::source(&b), h.source);
    assert_eq!(ethernet::ethertype(&b), ethernet::ethertype::IPV6);
    assert_eq!(ethernet::ethertype::IPV4, EtherType::IPV4.0);
    assert_eq!(ethernet::ethertype::IPV6, EtherType::IPV6.0);
    assert_eq!(ethernet::ethertype::ARP, EtherType::ARP.0);
    let mut c = [0u8; 14];
    ethernet::set_addrs(&mut c, h.destination, h.source);
    ethernet::set_ethertype(&mut c, EtherType::IPV6.0);
    assert_eq!(c, b);
}

#[test]
fn ipv4_fields() {
    let mut h = Ipv4Header::new(100, 63, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
    h.identification = 0x1234;
    h.dont_fragment = true;
    h.fragment_offset = etherparse::IpFragOffset::try_new(5).unwrap();
    h.more_fragments = true;
    h.dscp = etherparse::IpDscp::try_new(10).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let b = h.to_bytes();
    assert_eq!(ipv4::HEADER_LEN, Ipv4Header::MIN_LEN);
    assert_eq!(b[ipv4::field::VER_IHL], ipv4::VER_IHL_NO_OPTIONS);
    assert_eq!(ipv4::version(&b), ipv4::VERSION);
    assert_eq!(ipv4::header_len(&b), 20);
    assert_eq!(b[ipv4::field::DSCP_ECN], 10 << 2);
    assert_eq!(ipv4::total_len(&b), 120);
    assert_eq!(b[ipv4::field::IDENT], [0x12, 0x34]);
    let fo = ipv4::flg_off(&b);
    assert!(ipv4::dont_frag(&b) && fo & ipv4::FLAG_DF != 0);
    assert_eq!(ipv4::dont_frag_at(&b, 0), Some(true));
    assert_eq!(ipv4::dont_frag_at(&b, 20), None);
    assert!(fo & ipv4::FLAG_MF != 0);
    assert_eq!(fo & ipv4::FRAG_OFFSET, 5);
    assert_eq!(b[ipv4::field::TTL], 63);
    assert_eq!(b[ipv4::field::PROTOCOL], ip::protocol::UDP);
    assert_eq!(ipv4::checksum(&b), h.header_checksum);
    assert_eq!(ipv4::src_addr(&b), h.source);
    assert_eq!(ipv4::dst_addr(&b), h.destination);
    assert_eq!(b[ipv4::field::ADDRS], [10, 0, 0, 1, 10, 0, 0, 2]);
    let mut c = b.clone();
    ipv4::set_total_len(&mut c, 0);
    ipv4::set_flg_off(&mut c, 0);
    ipv4::set_checksum(&mut c, 0);
    ipv4::set_total_len(&mut c, 120);
    ipv4::set_flg_off(&mut c, fo);
    ipv4::set_checksum(&mut c, h.header_checksum);
    assert_eq!(c, b);
    assert_eq!(ip::version(&b), Some(4));
    assert_eq!(ip::version(&[]), None);
}

#[test]
fn ipv6_fields() {
    let h = Ipv6Header {
        traffic_class: 0xb8,
        flow_label: etherparse::Ipv6FlowLabel::try_new(0x12345).unwrap(),
        payload_length: 300,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: 63,
        source: [1; 16],
        destination: [2; 16],
    };
    let b = h.to_bytes();
    assert_eq!(ipv6::HEADER_LEN, Ipv6Header::LEN);
    assert_eq!(ipv6::traffic_class(&b), 0xb8);
    assert_eq!(
        b[ipv6::field::VER_TC_FLOW],
        ipv6::ver_tc_flow(0xb8, 0xfff1_2345).to_be_bytes()
    );
    assert_eq!(ipv6::payload_len(&b), 300);
    assert_eq!(b[ipv6::field::NXT_HDR], ip::protocol::ICMPV6);
    assert_eq!(b[ipv6::field::HOP_LIMIT], 63);
    assert_eq!(ipv6::src_addr(&b), h.source);
    assert_eq!(b[ipv6::field::DST_ADDR], h.destination);
    assert_eq!(b[ipv6::field::ADDRS][..16], h.source);
    let mut c = b;
    ipv6::set_payload_len(&mut c, 300);
    assert_eq!(c, b);
    assert_eq!(ip::version(&b), Some(ipv6::VERSION));
}

#[test]
fn udp_and_vxlan_fields() {
    let h = UdpHeader {
        source_port: 50000,
        destination_port: 4789,
        length: 58,
        checksum: 0xabcd,
    };
    let b = h.to_bytes();
    assert_eq!(udp::HEADER_LEN, UdpHeader::LEN);
    assert_eq!(udp::dst_port(&b), 4789);
    assert_eq!(udp::len(&b), 58);
    assert_eq!(b[ip::PORTS], [0xc3, 0x50, 0x12, 0xb5]);
    let mut c = [0u8; 8];
    udp::set_src_port(&mut c, 50000);
    udp::set_dst_port(&mut c, 4789);
    udp::set_len(&mut c, 58);
    udp::set_checksum(&mut c, 0xabcd);
    assert_eq!(c, b);
    // etherparse's VXLAN: flags then 3 reserved bytes, VNI, 1 reserved byte.
    let mut v = [0u8; vxlan::HEADER_LEN];
    v[vxlan::field::FLAGS] = vxlan::FLAG_I;
    v[vxlan::field::VNI].copy_from_slice(&vxlan::vni_bytes(4096));
    assert_eq!(v, [0x08, 0, 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(vxlan::vni(&v), 4096);
}

#[test]
fn icmp_and_nd_fields() {
    let mut b = Vec::new();
    etherparse::Icmpv6Header::new(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
        .write(&mut b)
        .unwrap();
    assert_eq!(b[icmp::field::TYPE], icmp::v6::PACKET_TOO_BIG);
    assert_eq!(b[icmp::field::CODE], 0);
    assert_eq!(b[icmp::field::REST], 1280u32.to_be_bytes());
    assert_eq!(icmp::HEADER_LEN, 8);
    let mut b = Vec::new();
    etherparse::Icmpv4Header::new(etherparse::Icmpv4Type::TimeExceeded(
        etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
    ))
    .write(&mut b)
    .unwrap();
    assert_eq!(b[icmp::field::TYPE], icmp::v4::TIME_EXCEEDED);
    assert_eq!(icmp::nd::NS_MIN_LEN, 24);
    assert_eq!(icmp::nd::WITH_LLADDR_LEN, 32);
}

#[test]
fn arp_fields() {
    let p = ArpPacket::new(
        etherparse::ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        etherparse::ArpOperation::REPLY,
        &[1, 2, 3, 4, 5, 6],
        &[10, 0, 0, 1],
        &[7, 8, 9, 10, 11, 12],
        &[10, 0, 0, 2],
    )
    .unwrap();
    let b = p.to_bytes();
    assert_eq!(arp::PACKET_LEN, b.len());
    assert_eq!(b[arp::field::FORMAT], arp::FORMAT_ETHERNET_IPV4);
    assert_eq!(arp::oper(&b), arp::OP_REPLY);
    assert_eq!(b[arp::field::SHA], [1, 2, 3, 4, 5, 6]);
    assert_eq!(b[arp::field::SPA], [10, 0, 0, 1]);
    assert_eq!(b[arp::field::THA], [7, 8, 9, 10, 11, 12]);
    assert_eq!(b[arp::field::TPA], [10, 0, 0, 2]);
    assert_eq!(b[arp::field::HLEN], 6);
    assert_eq!(b[arp::field::PLEN], 4);
    assert_eq!(b[arp::field::PTYPE], [0x08, 0]);
}
