//! Proxy neighbour discovery for pods: an IPv6 pod's gateway is the host side's
//! link-local address (Calico runs the host veth with proxy_ndp=1). We answer a Neighbor
//! Solicitation for it with a Neighbor Advertisement (Router, Solicited, Override) from
//! ee:ee:ee:ee:ee:ee, built in place in the request's buffer.

use encap::rewrite::{fold, sum16};
use encap::wire::icmp::{field as icmp_field, nd, v6 as t6};
use encap::wire::{ethernet, ip::protocol, ipv6};
use std::net::Ipv6Addr;

/// The link-local address of a host-side interface with MAC ee:ee:ee:ee:ee:ee (EUI-64).
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

const ETH_LEN: usize = ethernet::HEADER_LEN;
const IP6_LEN: usize = ipv6::HEADER_LEN;
const NS_MIN: usize = nd::NS_MIN_LEN; // type, code, checksum, reserved, target
const NA_LEN: usize = nd::WITH_LLADDR_LEN; // header + target + target link-layer address option
const ICMPV6: u8 = protocol::ICMPV6;
/// The solicited-node multicast prefix ff02::1:ff00:0/104 (RFC 4291 2.7.1).
const SOLICITED_NODE: [u8; 13] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
/// The Ethernet multicast prefix for IPv6 (33:33 and the address's last 4 bytes).
const MCAST_MAC_PREFIX: [u8; 2] = [0x33, 0x33];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOutcome {
    /// The buffer now holds the advertisement, `len` bytes long: send it back.
    Replied { len: usize },
    /// IPv6 but not a solicitation for the gateway (other target, DAD, other ICMPv6).
    Ignored,
    /// Not an IPv6 frame.
    NotIpv6,
    /// A solicitation that breaks RFC 4861 validation (hop limit, checksum, length):
    /// count a drop.
    Malformed,
}

/// ICMPv6 checksum over the pseudo-header and `msg` (whose checksum field is zero).
fn icmpv6_checksum(src: &[u8], dst: &[u8], msg: &[u8]) -> u16 {
    let pseudo = sum16(src) + sum16(dst) + msg.len() as u32 + ICMPV6 as u32;
    !fold(pseudo + sum16(msg))
}

/// Write a Neighbor Solicitation for `target` from `src` / `mac` to the target's
/// solicited-node multicast address into `buf` (at least 86 bytes); returns its length.
pub fn solicit(buf: &mut [u8], mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> usize {
    let t = target.octets();
    let mut dst = [0u8; 16];
    let n = SOLICITED_NODE.len();
    dst[..n].copy_from_slice(&SOLICITED_NODE);
    dst[n..].copy_from_slice(&t[n..]);
    let f = &mut buf[..ETH_LEN + IP6_LEN + nd::WITH_LLADDR_LEN];
    let mut group_mac = [0u8; 6];
    group_mac[..2].copy_from_slice(&MCAST_MAC_PREFIX);
    group_mac[2..].copy_from_slice(&dst[12..]);
    ethernet::set_addrs(f, group_mac, mac);
    ethernet::set_ethertype(f, ethernet::ethertype::IPV6);
    let ip = &mut f[ETH_LEN..];
    write_ipv6_header(ip, nd::WITH_LLADDR_LEN as u16, &src.octets(), &dst);
    let msg = &mut ip[IP6_LEN..];
    msg[..nd::field::TARGET.start].fill(0);
    msg[icmp_field::TYPE] = t6::NEIGHBOR_SOLICIT;
    msg[nd::field::TARGET].copy_from_slice(&t);
    msg[nd::field::OPT_TYPE] = nd::OPT_SOURCE_LLADDR;
    msg[nd::field::OPT_LEN] = 1; // in 8-byte units
    msg[nd::field::OPT_LLADDR].copy_from_slice(&mac);
    let sum = icmpv6_checksum(
        &src.octets(),
        &dst,
        &ip[IP6_LEN..IP6_LEN + nd::WITH_LLADDR_LEN],
    );
    ip[IP6_LEN..][icmp_field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    ETH_LEN + IP6_LEN + nd::WITH_LLADDR_LEN
}

/// An IPv6 header for ND: no traffic class or flow label, hop limit 255.
fn write_ipv6_header(ip: &mut [u8], payload_len: u16, src: &[u8; 16], dst: &[u8; 16]) {
    ip[ipv6::field::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(0, 0).to_be_bytes());
    ipv6::set_payload_len(ip, payload_len);
    ip[ipv6::field::NXT_HDR] = ICMPV6;
    ip[ipv6::field::HOP_LIMIT] = nd::HOP_LIMIT;
    ip[ipv6::field::SRC_ADDR].copy_from_slice(src);
    ip[ipv6::field::DST_ADDR].copy_from_slice(dst);
}

/// If the first `len` bytes of `buf` are a Neighbor Solicitation for `gateway`, write the
/// advertisement from `mac` into `buf` (which needs room for 86 bytes).
pub fn answer_gateway(buf: &mut [u8], len: usize, gateway: Ipv6Addr, mac: [u8; 6]) -> NdOutcome {
    let len = len.min(buf.len());
    if len < ETH_LEN || ethernet::ethertype(buf) != ethernet::ethertype::IPV6 {
        return NdOutcome::NotIpv6;
    }
    if len < ETH_LEN + IP6_LEN {
        return NdOutcome::Malformed;
    }
    let ip = &buf[ETH_LEN..len];
    let payload_len = ipv6::payload_len(ip);
    // Type and code.
    const TC: usize = icmp_field::CODE + 1;
    if ip[ipv6::field::NXT_HDR] != ICMPV6
        || payload_len < TC
        || IP6_LEN + TC > ip.len()
        || ip[IP6_LEN + icmp_field::TYPE] != t6::NEIGHBOR_SOLICIT
    {
        return NdOutcome::Ignored;
    }
    let msg_end = IP6_LEN + payload_len;
    if ip[ipv6::field::HOP_LIMIT] != nd::HOP_LIMIT
        || payload_len < NS_MIN
        || msg_end > ip.len()
        || ip[IP6_LEN + icmp_field::CODE] != 0
    {
        return NdOutcome::Malformed;
    }
    let (src_addr, dst_addr) = (&ip[ipv6::field::SRC_ADDR], &ip[ipv6::field::DST_ADDR]);
    if icmpv6_checksum(src_addr, dst_addr, &ip[IP6_LEN..msg_end]) != 0 {
        // A valid message sums to zero with its checksum in place.
        return NdOutcome::Malformed;
    }
    let target = &ip[IP6_LEN..][nd::field::TARGET];
    let src = ipv6::src_addr(ip);
    if target != gateway.octets() || src == [0; 16] {
        // Not ours, or duplicate address detection (unspecified source): stay silent.
        return NdOutcome::Ignored;
    }
    if buf.len() < ETH_LEN + IP6_LEN + NA_LEN {
        return NdOutcome::Malformed;
    }
    let requester_mac = ethernet::source(buf);
    // Ethernet: back to the requester.
    ethernet::set_addrs(buf, requester_mac, mac);
    // IPv6: from the gateway to the solicitation's source, hop limit 255.
    let ip = &mut buf[ETH_LEN..ETH_LEN + IP6_LEN + NA_LEN];
    write_ipv6_header(ip, NA_LEN as u16, &gateway.octets(), &src);
    // ICMPv6 Neighbor Advertisement: R, S and O set; target; target link-layer option.
    let na = &mut ip[IP6_LEN..];
    na[icmp_field::TYPE] = t6::NEIGHBOR_ADVERT;
    na[icmp_field::CODE] = 0;
    na[icmp_field::CHECKSUM].fill(0);
    na[nd::field::FLAGS].copy_from_slice(&[nd::FLAGS_R_S_O, 0, 0, 0]);
    na[nd::field::TARGET].copy_from_slice(&gateway.octets());
    na[nd::field::OPT_TYPE] = nd::OPT_TARGET_LLADDR;
    na[nd::field::OPT_LEN] = 1; // in 8-byte units
    na[nd::field::OPT_LLADDR].copy_from_slice(&mac);
    let (hdr, na) = ip.split_at_mut(IP6_LEN);
    let sum = icmpv6_checksum(&hdr[ipv6::field::SRC_ADDR], &hdr[ipv6::field::DST_ADDR], na);
    na[icmp_field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    NdOutcome::Replied {
        len: ETH_LEN + IP6_LEN + NA_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arp::HOST_SIDE_MAC;
    use etherparse::{Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    const POD_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
    const POD_LL: [u8; 16] = [
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x42, 0xac, 0xff, 0xfe, 0x11, 0, 2,
    ];

    /// A pod's solicitation for its gateway, as the kernel sends it (with its source
    /// link-layer option), to the solicited-node multicast address.
    fn solicitation(src: [u8; 16], mac: [u8; 6]) -> Vec<u8> {
        let dst: [u8; 16] = [
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xee, 0xee, 0xee,
        ];
        let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&POD_GATEWAY_V6.octets());
        msg.extend_from_slice(&[1, 1]);
        msg.extend_from_slice(&mac);
        let sum = icmpv6_checksum(&src, &dst, &msg);
        msg[icmp_field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        let mut f = vec![0x33, 0x33, 0xff, 0xee, 0xee, 0xee];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        f.extend_from_slice(&[ICMPV6, 255]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&msg);
        f
    }

    #[test]
    fn advertisement_is_valid_for_an_independent_parser() {
        let mut f = solicitation(POD_LL, POD_MAC);
        let len = f.len();
        f.resize(2048, 0);
        let NdOutcome::Replied { len: out } =
            answer_gateway(&mut f, len, POD_GATEWAY_V6, HOST_SIDE_MAC)
        else {
            panic!("no reply")
        };
        assert_eq!(out, 86);
        let p = SlicedPacket::from_ethernet(&f[..out]).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("ipv6")
        };
        assert_eq!(ip.header().source(), POD_GATEWAY_V6.octets());
        assert_eq!(ip.header().destination(), POD_LL);
        assert_eq!(ip.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("icmpv6")
        };
        assert!(
            matches!(icmp.icmp_type(), Icmpv6Type::Unknown { type_u8: 136, .. })
                || icmp.type_u8() == 136
        );
        let checksum_ok = icmp.icmp_type().calc_checksum(
            ip.header().source(),
            ip.header().destination(),
            icmp.payload(),
        );
        assert_eq!(checksum_ok.unwrap(), icmp.checksum());
        let body = &f[ETH_LEN + IP6_LEN..out];
        assert_eq!(
            body[nd::field::FLAGS.start],
            nd::FLAGS_R_S_O,
            "router, solicited, override"
        );
        assert_eq!(&body[nd::field::TARGET], &POD_GATEWAY_V6.octets());
        assert_eq!(
            &body[nd::field::OPT_TYPE..nd::field::OPT_LLADDR.end],
            &[2, 1, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]
        );
        assert_eq!(
            &f[..ethernet::field::ETHERTYPE.start],
            &[0x02, 0x42, 0xac, 0x11, 0, 2, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]
        );
    }

    #[test]
    fn not_ours_dad_and_broken_solicitations() {
        let mut other = solicitation(POD_LL, POD_MAC);
        let len = other.len();
        assert_eq!(
            answer_gateway(&mut other, len, Ipv6Addr::LOCALHOST, HOST_SIDE_MAC),
            NdOutcome::Ignored
        );
        let mut dad = solicitation([0; 16], POD_MAC);
        assert_eq!(
            answer_gateway(&mut dad, len, POD_GATEWAY_V6, HOST_SIDE_MAC),
            NdOutcome::Ignored
        );
        let mut bad_sum = solicitation(POD_LL, POD_MAC);
        bad_sum[ETH_LEN + IP6_LEN + icmp_field::CHECKSUM.start] ^= 1;
        assert_eq!(
            answer_gateway(&mut bad_sum, len, POD_GATEWAY_V6, HOST_SIDE_MAC),
            NdOutcome::Malformed
        );
        let mut routed = solicitation(POD_LL, POD_MAC);
        routed[ETH_LEN + ipv6::field::HOP_LIMIT] = 64; // hop limit must be 255
        assert_eq!(
            answer_gateway(&mut routed, len, POD_GATEWAY_V6, HOST_SIDE_MAC),
            NdOutcome::Malformed
        );
        let mut arp = crate::arp::tests_support::request();
        let alen = arp.len();
        assert_eq!(
            answer_gateway(&mut arp, alen, POD_GATEWAY_V6, HOST_SIDE_MAC),
            NdOutcome::NotIpv6
        );
        // The reply needs 86 bytes: a 78-byte buffer is refused, not overrun.
        let mut short = solicitation(POD_LL, POD_MAC);
        short.truncate(ETH_LEN + IP6_LEN + NS_MIN);
        ipv6::set_payload_len(&mut short[ETH_LEN..], NS_MIN as u16);
        let src = ipv6::src_addr(&short[ETH_LEN..]);
        let dst: [u8; 16] = short[ETH_LEN..][ipv6::field::DST_ADDR].try_into().unwrap();
        let sum_at = ETH_LEN + IP6_LEN + icmp_field::CHECKSUM.start;
        short[sum_at..sum_at + 2].copy_from_slice(&[0, 0]);
        let sum = icmpv6_checksum(&src, &dst, &short[ETH_LEN + IP6_LEN..]);
        short[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
        let slen = short.len();
        assert_eq!(
            answer_gateway(&mut short, slen, POD_GATEWAY_V6, HOST_SIDE_MAC),
            NdOutcome::Malformed
        );
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(mut f in prop::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>(), len in 0usize..130) {
            if v6 && f.len() >= ETH_LEN {
                ethernet::set_ethertype(&mut f, ethernet::ethertype::IPV6);
            }
            let _ = answer_gateway(&mut f, len, POD_GATEWAY_V6, HOST_SIDE_MAC);
        }
    }
}
