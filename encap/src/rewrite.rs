//! In-place header rewrites on the forwarding path: TTL / hop-limit decrement with the
//! IPv4 header checksum patched incrementally (RFC 1624), and the Ethernet MAC rewrite.
//! Pure functions over byte slices: no allocation, no panics on short input.

use crate::wire::{ethernet, ipv4, ipv6};

/// Ethernet header length (no VLAN tag).
pub const ETH_HDR_LEN: usize = ethernet::HEADER_LEN;
/// Minimum IPv4 header length.
pub const IPV4_MIN_LEN: usize = ipv4::HEADER_LEN;
/// IPv6 fixed header length.
pub const IPV6_HDR_LEN: usize = ipv6::HEADER_LEN;

/// What a TTL / hop-limit decrement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Decremented (and, for IPv4, checksum patched): forward the packet.
    Forward,
    /// TTL / hop limit was 0 or 1: the packet must not be forwarded (send time exceeded).
    /// The header is left untouched, as the ICMP error quotes it.
    Expired,
    /// Too short to hold the header: count a drop.
    Truncated,
}

/// Sum of `data` as big-endian 16-bit words (an odd byte padded), not yet folded:
/// partial sums of several pieces (pseudo-header, header, payload) can be added up.
pub fn sum16(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [last] = words.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

/// Fold a sum of 16-bit words into one's-complement 16 bits (end-around carry).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The IPv4 header checksum of `hdr` (its checksum field is treated as zero).
pub fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum = fold(sum16(hdr)) as u32;
    if hdr.len() >= ipv4::field::CHECKSUM.end {
        // Take the stored checksum back out rather than copying the header.
        sum += (!ipv4::checksum(hdr)) as u32;
    }
    !fold(sum)
}

/// Decrement the TTL of the IPv4 header at the start of `ip`, patching the checksum
/// with RFC 1624 equation 3: HC' = ~(~HC + ~m + m'), where m is the 16-bit word holding
/// TTL and protocol. Two adds and a fold instead of summing the whole header.
#[inline]
pub fn ipv4_decrement_ttl(ip: &mut [u8]) -> Hop {
    if ip.len() < IPV4_MIN_LEN {
        return Hop::Truncated;
    }
    use ipv4::field::TTL;
    if ip[TTL] <= 1 {
        return Hop::Expired;
    }
    let hc = ipv4::checksum(ip);
    ip[TTL] -= 1;
    // m' = m - 0x0100 (TTL is the high byte), so ~m + m' = 0xfeff whatever m is: the
    // sum is below 0x1ff00 and one fold ends it (no loop, no branch).
    let sum = (!hc) as u32 + 0xfeff;
    ipv4::set_checksum(ip, !((sum & 0xffff) + (sum >> 16)) as u16);
    Hop::Forward
}

/// Decrement the hop limit of the IPv6 header at the start of `ip` (no checksum).
#[inline]
pub fn ipv6_decrement_hop_limit(ip: &mut [u8]) -> Hop {
    if ip.len() < IPV6_HDR_LEN {
        return Hop::Truncated;
    }
    if ip[ipv6::field::HOP_LIMIT] <= 1 {
        return Hop::Expired;
    }
    ip[ipv6::field::HOP_LIMIT] -= 1;
    Hop::Forward
}

/// Rewrite the destination and source MAC addresses of an Ethernet frame.
/// Returns false (and changes nothing) when the frame is shorter than an Ethernet header.
#[inline]
pub fn set_eth_addrs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> bool {
    if frame.len() < ETH_HDR_LEN {
        return false;
    }
    ethernet::set_addrs(frame, dst, src);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::field::{CHECKSUM, IDENT, TTL};
    use crate::wire::ipv6::field::HOP_LIMIT;
    use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice};
    use proptest::prelude::*;

    /// A header from a real capture (ICMP echo, 10.0.0.1 -> 10.0.0.2, TTL 64).
    const GOLDEN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0x3c, 0x1d, 0x40, 0x00, 0x40, 0x01, 0xea, 0x89, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    #[test]
    fn golden_ttl_decrement() {
        assert_eq!(ipv4_checksum(&GOLDEN), 0xea89, "the golden header is valid");
        let mut h = GOLDEN;
        assert_eq!(ipv4_decrement_ttl(&mut h), Hop::Forward);
        // TTL 64 -> 63, checksum 0xea89 -> 0xeb89 (the TTL byte is the high half).
        let mut want = GOLDEN;
        want[TTL] = 0x3f;
        want[CHECKSUM].copy_from_slice(&[0xeb, 0x89]);
        assert_eq!(h, want);
        assert_eq!(ipv4_checksum(&h), 0xeb89);
    }

    #[test]
    fn expired_and_truncated_leave_the_packet_alone() {
        for ttl in [0u8, 1] {
            let mut h = GOLDEN;
            h[TTL] = ttl;
            let before = h;
            assert_eq!(ipv4_decrement_ttl(&mut h), Hop::Expired);
            assert_eq!(h, before);
        }
        let mut short = [0x45u8; 19];
        assert_eq!(ipv4_decrement_ttl(&mut short), Hop::Truncated);
        let mut v6 = [0u8; 40];
        v6[HOP_LIMIT] = 1;
        assert_eq!(ipv6_decrement_hop_limit(&mut v6), Hop::Expired);
        v6[HOP_LIMIT] = 64;
        assert_eq!(ipv6_decrement_hop_limit(&mut v6), Hop::Forward);
        assert_eq!(v6[HOP_LIMIT], 63);
        assert_eq!(ipv6_decrement_hop_limit(&mut [0u8; 39]), Hop::Truncated);
        assert!(!set_eth_addrs(&mut [0u8; 13], [1; 6], [2; 6]));
    }

    /// Every identification value, so every checksum value (0x0000 and 0xffff edges
    /// included) goes through the incremental update once.
    #[test]
    fn incremental_equals_full_for_every_checksum_value() {
        for ttl in [2u8, 64, 255] {
            for id in 0..=u16::MAX {
                let mut h = GOLDEN;
                h[TTL] = ttl;
                h[IDENT].copy_from_slice(&id.to_be_bytes());
                let c = ipv4_checksum(&h);
                h[CHECKSUM].copy_from_slice(&c.to_be_bytes());
                assert_eq!(ipv4_decrement_ttl(&mut h), Hop::Forward);
                assert_eq!(ipv4::checksum(&h), ipv4_checksum(&h), "id {id} ttl {ttl}");
            }
        }
    }

    #[test]
    fn mac_rewrite() {
        let mut f = [0u8; 60];
        ethernet::set_ethertype(&mut f, ethernet::ethertype::IPV4);
        assert!(set_eth_addrs(&mut f, [0xee; 6], [0x66, 1, 2, 3, 4, 5]));
        assert_eq!(
            &f[..ethernet::field::ETHERTYPE.start],
            &[0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0x66, 1, 2, 3, 4, 5]
        );
        assert_eq!(ethernet::ethertype(&f), ethernet::ethertype::IPV4);
    }

    proptest! {
        /// Incremental update == recomputing from scratch, checked by etherparse, for
        /// random headers (with options), including checksums near 0x0000 / 0xffff.
        #[test]
        fn incremental_checksum_matches_full_recompute(
            ttl in 2u8..=255,
            proto in any::<u8>(),
            id in any::<u16>(),
            tos in any::<u8>(),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            opts in prop::collection::vec(any::<u8>(), 0..10).prop_map(|mut v| { v.truncate(v.len() / 4 * 4); v }),
        ) {
            let mut h = Ipv4Header::new(100, ttl, IpNumber(proto), src, dst).unwrap();
            h.identification = id;
            h.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap();
            h.options = etherparse::Ipv4Options::try_from(&opts[..]).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut bytes = h.to_bytes().to_vec();
            prop_assert_eq!(ipv4_checksum(&bytes), h.header_checksum);
            prop_assert_eq!(ipv4_decrement_ttl(&mut bytes), Hop::Forward);
            let parsed = Ipv4HeaderSlice::from_slice(&bytes).unwrap().to_header();
            prop_assert_eq!(parsed.time_to_live, ttl - 1);
            prop_assert_eq!(parsed.header_checksum, parsed.calc_header_checksum());
            prop_assert_eq!(parsed.header_checksum, ipv4_checksum(&bytes));
        }

        /// Random bytes never panic.
        #[test]
        fn random_bytes_never_panic(mut data in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = ipv4_decrement_ttl(&mut data);
            let _ = ipv6_decrement_hop_limit(&mut data);
            let _ = ipv4_checksum(&data);
            let _ = set_eth_addrs(&mut data, [0; 6], [0; 6]);
        }
    }
}
