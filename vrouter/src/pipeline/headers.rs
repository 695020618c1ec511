//! Reading a frame's headers as the pipeline classifies it: ethertype, plausible IPv4 /
//! IPv6 addresses (etherparse's checked views), ND messages, address classes.

use crate::burst::DropReason;
use encap::rewrite::{self, Hop, ETH_HDR_LEN};
use encap::wire::{icmp as icmp_wire, ip::protocol, ipv6};

/// ICMPv6 neighbour / router solicitation or advertisement (types 133..=136) with no
/// extension headers, as ND sends it.
pub(super) fn is_icmpv6_nd(frame: &[u8]) -> bool {
    use icmp_wire::v6::{NEIGHBOR_ADVERT, ROUTER_SOLICIT};
    let icmp_at = ETH_HDR_LEN + ipv6::HEADER_LEN;
    frame.len() > icmp_at + icmp_wire::field::TYPE
        && frame[ETH_HDR_LEN + ipv6::field::NXT_HDR] == protocol::ICMPV6
        && (ROUTER_SOLICIT..=NEIGHBOR_ADVERT).contains(&frame[icmp_at + icmp_wire::field::TYPE])
}

pub(super) fn ethertype(frame: &[u8]) -> Option<u16> {
    etherparse::Ethernet2HeaderSlice::from_slice(frame)
        .ok()
        .map(|e| e.ether_type().0)
}

/// Source and destination of a plausible IPv4 header (version 4, IHL ≥ 5, lengths fit),
/// through etherparse's checked view (no copy; measured as fast as hand-written checks).
pub(super) fn ipv4_addrs(ip: &[u8]) -> Option<(u32, u32)> {
    let h = etherparse::Ipv4HeaderSlice::from_slice(ip).ok()?;
    let total = h.total_len() as usize;
    if total < h.slice().len() || total > ip.len() {
        return None;
    }
    Some((u32::from(h.source_addr()), u32::from(h.destination_addr())))
}

/// Source and destination of a plausible IPv6 header.
pub(super) fn ipv6_addrs(ip: &[u8]) -> Option<(u128, u128)> {
    let h = etherparse::Ipv6HeaderSlice::from_slice(ip).ok()?;
    if ipv6::HEADER_LEN + h.payload_length() as usize > ip.len() {
        return None;
    }
    Some((
        u128::from(h.source_addr()),
        u128::from(h.destination_addr()),
    ))
}

/// In ff00::/8.
#[inline]
pub(super) fn is_multicast_v6(addr: u128) -> bool {
    addr >> 120 == ipv6::MULTICAST_PREFIX as u128
}

/// In fe80::/10.
#[inline]
pub(super) fn is_link_local(addr: u128) -> bool {
    addr >> 118 == 0xfe80 >> 6
}

/// TTL / hop limit of the packet in `frame[..len]`.
#[inline(always)]
pub fn decrement_hop(frame: &mut [u8], len: usize, v6: bool) -> Result<(), DropReason> {
    let ip = &mut frame[ETH_HDR_LEN..len];
    let hop = if v6 {
        rewrite::ipv6_decrement_hop_limit(ip)
    } else {
        rewrite::ipv4_decrement_ttl(ip)
    };
    match hop {
        Hop::Forward => Ok(()),
        Hop::Expired => Err(DropReason::TtlExpired),
        Hop::Truncated => Err(DropReason::Malformed),
    }
}

/// TTL / hop limit and MACs of a packet leaving for `dst_mac` from `src_mac`.
#[inline(always)]
pub fn rewrite_hop(
    frame: &mut [u8],
    len: usize,
    v6: bool,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
) -> Result<(), DropReason> {
    decrement_hop(frame, len, v6)?;
    rewrite::set_eth_addrs(frame, dst_mac, src_mac);
    Ok(())
}

/// What a pod may not send (it would act as the network): a DHCP server's reply (UDP
/// 67 → 68, DHCPv6 547 → 546, as Calico's workload chains drop), a router advertisement or redirect (ICMPv6 134, 137), a tunnel
/// packet (IP in IP, IPv6 in IPv4, VXLAN to UDP 4789). `ip` is the packet from its IP
/// header; only the fixed header's protocol is looked at (no extension-header walk).
pub(super) fn pod_forbidden(ip: &[u8], v6: bool) -> bool {
    let (proto, l4) = if v6 {
        match ip.get(ipv6::field::NXT_HDR) {
            Some(&p) => (p, ipv6::HEADER_LEN),
            None => return false,
        }
    } else {
        match (ip.first(), ip.get(9)) {
            (Some(&vihl), Some(&p)) => (p, usize::from(vihl & 0x0f) * 4),
            _ => return false,
        }
    };
    let port = |at: usize| {
        ip.get(l4 + at..l4 + at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    match proto {
        4 | 41 => true,
        protocol::UDP => {
            matches!(
                (port(0), port(2)),
                (Some(67), Some(68)) | (Some(547), Some(546))
            ) || port(2) == Some(encap::vxlan::VXLAN_PORT)
        }
        protocol::ICMPV6 if v6 => matches!(ip.get(l4), Some(134 | 137)),
        _ => false,
    }
}
