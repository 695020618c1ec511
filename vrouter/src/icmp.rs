//! ICMP / ICMPv6 errors built in place from the offending packet: time exceeded, no
//! route (destination unreachable) and frag-needed / packet-too-big. The original packet
//! is shifted right to become the quote; no allocation. Never sent about an ICMP error,
//! a non-first fragment, a packet from an unspecified / multicast source, or one sent to
//! a multicast or broadcast address (IPv6: except packet-too-big) (RFC 1812 4.3.2.7,
//! RFC 4443 2.4).

use encap::rewrite::{fold, sum16};
use encap::wire::icmp::{self as wire, field::TYPE, v4 as t4, v6 as t6};
use encap::wire::{ethernet, ip::protocol, ipv4, ipv6};
use std::net::{Ipv4Addr, Ipv6Addr};

const ETH: usize = ethernet::HEADER_LEN;
/// IPv4 and ICMP headers in front of the quote.
const V4_ERR_HDRS: usize = ipv4::HEADER_LEN + wire::HEADER_LEN;
/// IPv6 and ICMPv6 headers in front of the quote.
const V6_ERR_HDRS: usize = ipv6::HEADER_LEN + wire::HEADER_LEN;
/// The largest IPv4 ICMP error (RFC 1812 4.3.2.3).
const V4_ERR_MAX: usize = 576;
/// The largest ICMPv6 error: the IPv6 minimum MTU (RFC 4443 2.4 (c)).
const V6_ERR_MAX: usize = 1280;
/// DSCP CS6 (internetwork control), as Linux sends ICMP errors.
const TOS_CS6: u8 = 0xc0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    TimeExceeded,
    NoRoute,
    /// The packet is too big for the next link and may not be fragmented.
    TooBig {
        mtu: u16,
    },
}

/// Turn the IPv4 packet in `buf[..len]` (an Ethernet frame) into the ICMP error for its
/// sender, from `source` and `mac`. Returns the new frame length, or `None` when no error
/// may be sent about this packet (or the buffer is too small).
pub fn ipv4_error(
    buf: &mut [u8],
    len: usize,
    kind: IcmpError,
    source: Ipv4Addr,
    mac: [u8; 6],
) -> Option<usize> {
    let len = len.min(buf.len());
    let ip = buf.get(ETH..len)?;
    if ip.len() < ipv4::HEADER_LEN || ipv4::version(ip) != ipv4::VERSION {
        return None;
    }
    let ihl = ipv4::header_len(ip);
    let frag_offset = ipv4::flg_off(ip) & ipv4::FRAG_OFFSET;
    let src = ipv4::src_addr(ip);
    let src_addr = Ipv4Addr::from(src);
    let dst_addr = Ipv4Addr::from(ipv4::dst_addr(ip));
    if frag_offset != 0
        || src_addr.is_unspecified()
        || src_addr.is_multicast()
        || src_addr.is_broadcast()
        || dst_addr.is_multicast()
        || dst_addr.is_broadcast()
    {
        return None;
    }
    if ip[ipv4::field::PROTOCOL] == protocol::ICMP {
        // Never about an ICMP error (only echo request/reply and the like).
        let icmp_type = *ip.get(ihl + TYPE)?;
        if !matches!(
            icmp_type,
            t4::ECHO_REPLY | t4::ECHO_REQUEST | t4::TIMESTAMP | t4::TIMESTAMP_REPLY
        ) {
            return None;
        }
    }
    // Quote as much of the original as fits in 576 bytes (RFC 1812 4.3.2.3).
    let quote = ip.len().min(V4_ERR_MAX - V4_ERR_HDRS);
    let total = ETH + V4_ERR_HDRS + quote;
    if buf.len() < total {
        return None;
    }
    let peer_mac = ethernet::source(buf);
    buf.copy_within(ETH..ETH + quote, ETH + V4_ERR_HDRS);
    ethernet::set_addrs(buf, peer_mac, mac);
    ethernet::set_ethertype(buf, ethernet::ethertype::IPV4);
    let h = &mut buf[ETH..ETH + ipv4::HEADER_LEN];
    h.fill(0);
    h[ipv4::field::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
    h[ipv4::field::DSCP_ECN] = TOS_CS6;
    h[ipv4::field::TTL] = ipv4::DEFAULT_TTL;
    h[ipv4::field::PROTOCOL] = protocol::ICMP;
    ipv4::set_total_len(h, (V4_ERR_HDRS + quote) as u16);
    h[ipv4::field::SRC_ADDR].copy_from_slice(&source.octets());
    h[ipv4::field::DST_ADDR].copy_from_slice(&src);
    let c = !fold(sum16(h));
    ipv4::set_checksum(h, c);
    let (t, code, rest) = match kind {
        IcmpError::TimeExceeded => (t4::TIME_EXCEEDED, 0, [0u8; 4]),
        IcmpError::NoRoute => (t4::DEST_UNREACHABLE, 0, [0; 4]),
        IcmpError::TooBig { mtu } => {
            // Unused 16 bits, then the next-hop MTU (RFC 1191).
            let [hi, lo] = mtu.to_be_bytes();
            (t4::DEST_UNREACHABLE, t4::CODE_FRAG_NEEDED, [0, 0, hi, lo])
        }
    };
    let icmp = &mut buf[ETH + ipv4::HEADER_LEN..total];
    write_icmp_header(icmp, t, code, rest);
    let c = !fold(sum16(icmp));
    icmp[wire::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// The IPv6 counterpart: hop limit exceeded, no route, packet too big (RFC 4443).
pub fn ipv6_error(
    buf: &mut [u8],
    len: usize,
    kind: IcmpError,
    source: Ipv6Addr,
    mac: [u8; 6],
) -> Option<usize> {
    let len = len.min(buf.len());
    let ip = buf.get(ETH..len)?;
    if ip.len() < ipv6::HEADER_LEN || ipv6::version(ip) != ipv6::VERSION {
        return None;
    }
    let src = ipv6::src_addr(ip);
    let src_addr = Ipv6Addr::from(src);
    if src_addr.is_unspecified() || src_addr.is_multicast() {
        return None;
    }
    if ip[ipv6::field::DST_ADDR.start] == ipv6::MULTICAST_PREFIX
        && !matches!(kind, IcmpError::TooBig { .. })
    {
        return None; // to a multicast group: only packet-too-big (RFC 4443 2.4 (e.3))
    }
    if ip[ipv6::field::NXT_HDR] == protocol::ICMPV6
        && ip
            .get(ipv6::HEADER_LEN + TYPE)
            .is_some_and(|&t| t < t6::FIRST_INFORMATIONAL)
    {
        return None; // an ICMPv6 error itself
    }
    // Quote as much as fits in the minimum MTU, 1280 (RFC 4443 2.4 (c)).
    let quote = ip.len().min(V6_ERR_MAX - V6_ERR_HDRS);
    let total = ETH + V6_ERR_HDRS + quote;
    if buf.len() < total {
        return None;
    }
    let peer_mac = ethernet::source(buf);
    buf.copy_within(ETH..ETH + quote, ETH + V6_ERR_HDRS);
    ethernet::set_addrs(buf, peer_mac, mac);
    ethernet::set_ethertype(buf, ethernet::ethertype::IPV6);
    let h = &mut buf[ETH..ETH + ipv6::HEADER_LEN];
    h[ipv6::field::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(0, 0).to_be_bytes());
    ipv6::set_payload_len(h, (wire::HEADER_LEN + quote) as u16);
    h[ipv6::field::NXT_HDR] = protocol::ICMPV6;
    h[ipv6::field::HOP_LIMIT] = ipv6::DEFAULT_HOP_LIMIT;
    h[ipv6::field::SRC_ADDR].copy_from_slice(&source.octets());
    h[ipv6::field::DST_ADDR].copy_from_slice(&src);
    let (t, code, rest) = match kind {
        IcmpError::TimeExceeded => (t6::TIME_EXCEEDED, 0, [0u8; 4]),
        IcmpError::NoRoute => (t6::DEST_UNREACHABLE, 0, [0; 4]),
        IcmpError::TooBig { mtu } => (t6::PACKET_TOO_BIG, 0, (mtu as u32).to_be_bytes()),
    };
    let (hdr, icmp) = buf[ETH..total].split_at_mut(ipv6::HEADER_LEN);
    write_icmp_header(icmp, t, code, rest);
    let pseudo = sum16(&hdr[ipv6::field::ADDRS]) + (icmp.len() as u32) + protocol::ICMPV6 as u32;
    let c = !fold(pseudo + sum16(icmp));
    icmp[wire::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// Type, code, a zero checksum and the rest of the header.
fn write_icmp_header(icmp: &mut [u8], t: u8, code: u8, rest: [u8; 4]) {
    icmp[wire::field::TYPE] = t;
    icmp[wire::field::CODE] = code;
    icmp[wire::field::CHECKSUM].fill(0);
    icmp[wire::field::REST].copy_from_slice(&rest);
}

/// A token bucket, checked only when an error is about to be sent.
#[derive(Debug)]
pub struct RateLimit {
    per_second: u32,
    burst: u32,
    tokens: u32,
    last: std::time::Instant,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst,
            tokens: burst,
            last: std::time::Instant::now(),
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self.tokens == self.burst {
            // A full bucket banks no time: after an idle minute the next flood gets the
            // burst, not the burst plus a minute's worth.
            self.last = now;
        } else {
            let refill = (now - self.last).as_secs_f64() * self.per_second as f64;
            if refill >= 1.0 {
                self.tokens = self.tokens.saturating_add(refill as u32).min(self.burst);
                self.last = now;
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
    };

    const MAC: [u8; 6] = [0xee; 6];
    const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    fn frame4(proto_icmp_type: Option<u8>, len_payload: usize) -> Vec<u8> {
        let mut f = Vec::new();
        let b = PacketBuilder::ethernet2(PEER, MAC).ipv4([10, 244, 1, 4], [8, 8, 8, 8], 1);
        match proto_icmp_type {
            Some(t) => b
                .icmpv4_raw(t, 0, [0; 4])
                .write(&mut f, &vec![7; len_payload])
                .unwrap(),
            None => b.udp(1, 2).write(&mut f, &vec![7; len_payload]).unwrap(),
        }
        f
    }

    #[test]
    fn time_exceeded_v4_quotes_the_packet() {
        let orig = frame4(None, 20);
        let mut buf = orig.clone();
        buf.resize(2048, 0);
        let n = ipv4_error(
            &mut buf,
            orig.len(),
            IcmpError::TimeExceeded,
            Ipv4Addr::new(10, 0, 0, 1),
            MAC,
        )
        .unwrap();
        let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!((h.source, h.destination), ([10, 0, 0, 1], [10, 244, 1, 4]));
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
        assert_eq!(
            icmp.payload(),
            &orig[ETH..],
            "the whole original IP packet is quoted"
        );
        assert_eq!(&buf[ethernet::field::DESTINATION], &PEER);
    }

    #[test]
    fn frag_needed_and_unreachable_v6() {
        let mut buf = Vec::new();
        PacketBuilder::ethernet2(PEER, MAC)
            .ipv6(
                [0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                1,
            )
            .udp(1, 2)
            .write(&mut buf, &[1; 1400])
            .unwrap();
        let len = buf.len();
        buf.resize(2048, 0);
        let n = ipv6_error(
            &mut buf,
            len,
            IcmpError::TooBig { mtu: 1430 },
            "fd00::1".parse().unwrap(),
            MAC,
        )
        .unwrap();
        assert_eq!(
            n,
            ETH + V6_ERR_MAX,
            "quote truncated to the IPv6 minimum MTU"
        );
        let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!()
        };
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!()
        };
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1430 });
        let want = icmp
            .icmp_type()
            .calc_checksum(
                ip.header().source(),
                ip.header().destination(),
                icmp.payload(),
            )
            .unwrap();
        assert_eq!(icmp.checksum(), want);
    }

    #[test]
    fn no_error_about_errors_fragments_or_bad_sources() {
        let err = frame4(Some(11), 20); // an ICMP time exceeded
        let mut buf = err.clone();
        buf.resize(2048, 0);
        assert_eq!(
            ipv4_error(
                &mut buf,
                err.len(),
                IcmpError::NoRoute,
                Ipv4Addr::LOCALHOST,
                MAC
            ),
            None
        );
        let mut frag = frame4(None, 20);
        let fo = ipv4::flg_off(&frag[ETH..]) | 8; // offset 64 bytes
        ipv4::set_flg_off(&mut frag[ETH..], fo);
        let l = frag.len();
        frag.resize(2048, 0);
        assert_eq!(
            ipv4_error(&mut frag, l, IcmpError::NoRoute, Ipv4Addr::LOCALHOST, MAC),
            None
        );
        let mut echo = frame4(Some(8), 20);
        let l = echo.len();
        echo.resize(2048, 0);
        assert!(
            ipv4_error(&mut echo, l, IcmpError::NoRoute, Ipv4Addr::LOCALHOST, MAC).is_some(),
            "echo gets one"
        );
        let mut to_multicast = frame4(None, 20);
        to_multicast[ETH..][ipv4::field::DST_ADDR].copy_from_slice(&[224, 0, 0, 5]);
        let l = to_multicast.len();
        to_multicast.resize(2048, 0);
        assert_eq!(
            ipv4_error(
                &mut to_multicast,
                l,
                IcmpError::NoRoute,
                Ipv4Addr::LOCALHOST,
                MAC
            ),
            None,
            "not about multicast"
        );
        let mut tiny = frame4(None, 20);
        let l = tiny.len();
        assert_eq!(
            ipv4_error(&mut tiny, l, IcmpError::NoRoute, Ipv4Addr::LOCALHOST, MAC),
            None,
            "no room"
        );
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let mut r = RateLimit::new(1000, 5);
        let t = std::time::Instant::now();
        let allowed = (0..10).filter(|_| r.allow()).count();
        // At most the burst, plus what the rate refilled while the loop ran (a loaded
        // machine can stretch it past a millisecond).
        let refilled = (t.elapsed().as_secs_f64() * 1000.0).ceil() as usize;
        assert!((5..=5 + refilled).contains(&allowed), "{allowed} allowed");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(r.allow());
        // Idle while full: the bucket holds the burst, no more.
        let mut idle = RateLimit::new(1000, 5);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(idle.allow(), "a full bucket allows");
        let t = std::time::Instant::now();
        let more = (0..10).filter(|_| idle.allow()).count();
        let refilled = (t.elapsed().as_secs_f64() * 1000.0).ceil() as usize;
        assert!(
            more <= 4 + refilled,
            "{more} more after idling full: time was banked"
        );
    }
}
