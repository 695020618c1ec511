//! ICMP / ICMPv6 errors built in place from the offending packet: time exceeded, no
//! route (destination unreachable) and frag-needed / packet-too-big. The original packet
//! is shifted right to become the quote; no allocation. Never sent about an ICMP error,
//! a non-first fragment, a packet from an unspecified / multicast source, or one sent to
//! a multicast or broadcast address (IPv6: except packet-too-big) (RFC 1812 4.3.2.7,
//! RFC 4443 2.4).

use encap::rewrite::{fold, sum16};
use std::net::{Ipv4Addr, Ipv6Addr};

const ETH: usize = 14;

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
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let src_addr = Ipv4Addr::from(src);
    let dst_addr = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if frag_offset != 0
        || src_addr.is_unspecified()
        || src_addr.is_multicast()
        || src_addr.is_broadcast()
        || dst_addr.is_multicast()
        || dst_addr.is_broadcast()
    {
        return None;
    }
    if ip[9] == 1 {
        // Never about an ICMP error (only echo request/reply and the like).
        let icmp_type = *ip.get(ihl)?;
        if !matches!(icmp_type, 0 | 8 | 13 | 14) {
            return None;
        }
    }
    // Quote as much of the original as fits in 576 bytes (RFC 1812 4.3.2.3).
    let quote = ip.len().min(576 - 28);
    let total = ETH + 28 + quote;
    if buf.len() < total {
        return None;
    }
    let peer_mac: [u8; 6] = buf[6..12].try_into().unwrap();
    buf.copy_within(ETH..ETH + quote, ETH + 28);
    buf[0..6].copy_from_slice(&peer_mac);
    buf[6..12].copy_from_slice(&mac);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    let h = &mut buf[ETH..ETH + 20];
    h.copy_from_slice(&[
        0x45, 0xc0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    h[2..4].copy_from_slice(&((28 + quote) as u16).to_be_bytes());
    h[12..16].copy_from_slice(&source.octets());
    h[16..20].copy_from_slice(&src);
    let c = !fold(sum16(h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let (t, code, rest) = match kind {
        IcmpError::TimeExceeded => (11, 0, [0u8; 4]),
        IcmpError::NoRoute => (3, 0, [0; 4]),
        IcmpError::TooBig { mtu } => {
            let m = mtu.to_be_bytes();
            (3, 4, [0, 0, m[0], m[1]])
        }
    };
    let icmp = &mut buf[ETH + 20..total];
    icmp[0..4].copy_from_slice(&[t, code, 0, 0]);
    icmp[4..8].copy_from_slice(&rest);
    let c = !fold(sum16(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
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
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let src: [u8; 16] = ip[8..24].try_into().unwrap();
    let src_addr = Ipv6Addr::from(src);
    if src_addr.is_unspecified() || src_addr.is_multicast() {
        return None;
    }
    if ip[24] == 0xff && !matches!(kind, IcmpError::TooBig { .. }) {
        return None; // to a multicast group: only packet-too-big (RFC 4443 2.4 (e.3))
    }
    if ip[6] == 58 && ip.get(40).is_some_and(|&t| t < 128) {
        return None; // an ICMPv6 error itself
    }
    // Quote as much as fits in the minimum MTU, 1280 (RFC 4443 2.4 (c)).
    let quote = ip.len().min(1280 - 48);
    let total = ETH + 48 + quote;
    if buf.len() < total {
        return None;
    }
    let peer_mac: [u8; 6] = buf[6..12].try_into().unwrap();
    buf.copy_within(ETH..ETH + quote, ETH + 48);
    buf[0..6].copy_from_slice(&peer_mac);
    buf[6..12].copy_from_slice(&mac);
    buf[12..14].copy_from_slice(&[0x86, 0xdd]);
    let h = &mut buf[ETH..ETH + 40];
    h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    h[4..6].copy_from_slice(&((8 + quote) as u16).to_be_bytes());
    h[6] = 58;
    h[7] = 64;
    h[8..24].copy_from_slice(&source.octets());
    h[24..40].copy_from_slice(&src);
    let (t, code, rest) = match kind {
        IcmpError::TimeExceeded => (3, 0, [0u8; 4]),
        IcmpError::NoRoute => (1, 0, [0; 4]),
        IcmpError::TooBig { mtu } => (2, 0, (mtu as u32).to_be_bytes()),
    };
    let (hdr, icmp) = buf[ETH..total].split_at_mut(40);
    icmp[0..4].copy_from_slice(&[t, code, 0, 0]);
    icmp[4..8].copy_from_slice(&rest);
    let pseudo = sum16(&hdr[8..40]) + (icmp.len() as u32) + 58;
    let c = !fold(pseudo + sum16(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(total)
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
        if self.tokens == 0 {
            let now = std::time::Instant::now();
            let refill = (now - self.last).as_secs_f64() * self.per_second as f64;
            if refill >= 1.0 {
                self.tokens = (refill as u32).min(self.burst);
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
            &orig[14..],
            "the whole original IP packet is quoted"
        );
        assert_eq!(&buf[0..6], &PEER);
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
        assert_eq!(n, 14 + 1280, "quote truncated to the IPv6 minimum MTU");
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
        frag[14 + 7] = 8; // offset 64 bytes
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
        to_multicast[30..34].copy_from_slice(&[224, 0, 0, 5]);
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
        assert_eq!((0..10).filter(|_| r.allow()).count(), 5);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(r.allow());
    }
}
