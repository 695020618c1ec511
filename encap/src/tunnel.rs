//! What IPIP and VXLAN share: the underlay (outer IPv4 or IPv6 addresses), the outer
//! Ethernet addresses, and writing the outer IP header. Outer IPv4 headers get a full
//! checksum; IPv6 has none. TTL / hop limit 64; traffic class and ECN copied from the
//! inner packet (RFC 6040 normal mode).

use crate::rewrite::{ipv4_checksum, ETH_HDR_LEN};
use crate::wire::{ethernet, ip as l3, ipv4, ipv6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// The outer addresses of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underlay {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Underlay {
    /// Outer IP header length.
    pub fn ip_len(&self) -> usize {
        match self {
            Underlay::V4 { .. } => ipv4::HEADER_LEN,
            Underlay::V6 { .. } => ipv6::HEADER_LEN,
        }
    }

    pub fn ethertype(&self) -> u16 {
        match self {
            Underlay::V4 { .. } => ethernet::ethertype::IPV4,
            Underlay::V6 { .. } => ethernet::ethertype::IPV6,
        }
    }

    pub fn remote(&self) -> IpAddr {
        match *self {
            Underlay::V4 { dst, .. } => dst.into(),
            Underlay::V6 { dst, .. } => dst.into(),
        }
    }
}

/// The outer Ethernet addresses: the underlay next hop's MAC and our NIC's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterEth {
    pub dst: [u8; 6],
    pub src: [u8; 6],
}

/// What the tunnels (IPIP, VXLAN) offer.
pub trait Encapsulation {
    /// Bytes added in front of the frame.
    fn overhead(&self) -> usize;

    /// The tunnel's outer Ethernet addresses (the underlay neighbour's and ours).
    fn eth(&self) -> &OuterEth;

    /// Encapsulate the Ethernet frame `buf[start..start + len]` in place, using the
    /// headroom before it, with outer Ethernet addresses `eth` (they follow the
    /// underlay neighbour; the rest of a tunnel does not change); `ident` is the outer
    /// IPv4 identification (a per-worker counter). Returns the new frame's range.
    fn encapsulate_with(
        &self,
        eth: &OuterEth,
        buf: &mut [u8],
        start: usize,
        len: usize,
        ident: u16,
    ) -> Result<Range<usize>, EncapError>;

    /// `encapsulate_with` the tunnel's own outer Ethernet addresses.
    fn encapsulate(
        &self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        ident: u16,
    ) -> Result<Range<usize>, EncapError> {
        self.encapsulate_with(self.eth(), buf, start, len, ident)
    }
}

/// Why a packet could not be encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapError {
    /// Not enough room before the frame for the outer headers.
    NoHeadroom,
    /// The inner frame is not a well-formed IPv4 / IPv6 packet.
    Malformed,
}

/// Why a packet is not a tunnel packet for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapError {
    /// Outer headers truncated or inconsistent.
    Malformed,
    /// A well-formed packet of another protocol / port.
    NotTunnel,
    /// VXLAN with a VNI we do not serve (or the I flag clear).
    WrongVni,
}

/// What encapsulation needs to know about the inner packet.
pub(crate) struct Inner {
    pub tos: u8,
    /// The inner packet forbids fragmentation (IPv4 DF, or IPv6).
    pub df: bool,
    pub v6: bool,
    pub flow_hash: u32,
}

/// Check that `buf[start..start + len]` is an Ethernet frame carrying IP with `over`
/// bytes of headroom before it, and describe its packet (the flow hash only if `hash`:
/// it costs more than the rest). Always inlined: returned through the stack, `Inner`
/// was written as two stores and read back as one wider load (a store-forwarding stall
/// that cost ~25 cycles per packet).
#[inline(always)]
pub(crate) fn inspect(
    buf: &[u8],
    start: usize,
    len: usize,
    over: usize,
    hash: bool,
) -> Result<Inner, EncapError> {
    if start < over || start + len > buf.len() {
        return Err(EncapError::NoHeadroom);
    }
    if len < ETH_HDR_LEN {
        return Err(EncapError::Malformed);
    }
    let ip = &buf[start + ETH_HDR_LEN..start + len];
    let (tos, df, v6) = inner_tos_df(ip)?;
    Ok(Inner {
        tos,
        df,
        v6,
        flow_hash: if hash { crate::flow::hash(ip) } else { 0 },
    })
}

/// The inner packet's traffic class (TOS) byte and whether it forbids fragmentation.
fn inner_tos_df(ip: &[u8]) -> Result<(u8, bool, bool), EncapError> {
    match l3::version(ip) {
        Some(ipv4::VERSION) if ip.len() >= ipv4::HEADER_LEN => {
            Ok((ip[ipv4::field::DSCP_ECN], ipv4::dont_frag(ip), false))
        }
        Some(ipv6::VERSION) if ip.len() >= ipv6::HEADER_LEN => {
            Ok((ipv6::traffic_class(ip), true, true))
        }
        _ => Err(EncapError::Malformed),
    }
}

/// Write Ethernet + outer IP headers at the start of `out` for a payload of
/// `payload_len` bytes of protocol `proto`. `flow` gives the IPv6 flow label (RFC 6438),
/// `ident` the IPv4 identification. Returns the header length written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_outer(
    out: &mut [u8],
    eth: &OuterEth,
    underlay: &Underlay,
    proto: u8,
    payload_len: usize,
    tos: u8,
    df: bool,
    flow: u32,
    ident: u16,
) -> usize {
    ethernet::set_addrs(out, eth.dst, eth.src);
    ethernet::set_ethertype(out, underlay.ethertype());
    let ip = &mut out[ETH_HDR_LEN..];
    match underlay {
        Underlay::V4 { src, dst } => {
            use ipv4::field;
            let total = (ipv4::HEADER_LEN + payload_len) as u16;
            ip[field::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
            ip[field::DSCP_ECN] = tos;
            ipv4::set_total_len(ip, total);
            ip[field::IDENT].copy_from_slice(&ident.to_be_bytes());
            ipv4::set_flg_off(ip, if df { ipv4::FLAG_DF } else { 0 });
            ip[field::TTL] = ipv4::DEFAULT_TTL;
            ip[field::PROTOCOL] = proto;
            ip[field::CHECKSUM].fill(0);
            ip[field::SRC_ADDR].copy_from_slice(&src.octets());
            ip[field::DST_ADDR].copy_from_slice(&dst.octets());
            let sum = ipv4_checksum(&ip[..ipv4::HEADER_LEN]);
            ipv4::set_checksum(ip, sum);
            ETH_HDR_LEN + ipv4::HEADER_LEN
        }
        Underlay::V6 { src, dst } => {
            use ipv6::field;
            let word = ipv6::ver_tc_flow(tos, flow);
            ip[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
            ipv6::set_payload_len(ip, payload_len as u16);
            ip[field::NXT_HDR] = proto;
            ip[field::HOP_LIMIT] = ipv6::DEFAULT_HOP_LIMIT;
            ip[field::SRC_ADDR].copy_from_slice(&src.octets());
            ip[field::DST_ADDR].copy_from_slice(&dst.octets());
            ETH_HDR_LEN + ipv6::HEADER_LEN
        }
    }
}

/// Parse the outer Ethernet + IP header of `frame`: (protocol, offset of the payload,
/// outer source, payload length).
pub(crate) fn read_outer(frame: &[u8]) -> Result<(u8, usize, IpAddr, usize), DecapError> {
    if frame.len() < ETH_HDR_LEN {
        return Err(DecapError::Malformed);
    }
    let ip = &frame[ETH_HDR_LEN..];
    match ethernet::ethertype(frame) {
        ethernet::ethertype::IPV4 => {
            if ip.len() < ipv4::HEADER_LEN || ipv4::version(ip) != ipv4::VERSION {
                return Err(DecapError::Malformed);
            }
            let ihl = ipv4::header_len(ip);
            let total = ipv4::total_len(ip);
            if ihl < ipv4::HEADER_LEN || total < ihl || total > ip.len() {
                return Err(DecapError::Malformed);
            }
            if ipv4::flg_off(ip) & ipv4::FRAGMENT != 0 {
                // A fragmented tunnel packet: not reassembled here.
                return Err(DecapError::NotTunnel);
            }
            let src = Ipv4Addr::from(ipv4::src_addr(ip));
            let proto = ip[ipv4::field::PROTOCOL];
            Ok((proto, ETH_HDR_LEN + ihl, src.into(), total - ihl))
        }
        ethernet::ethertype::IPV6 => {
            if ip.len() < ipv6::HEADER_LEN || ipv6::version(ip) != ipv6::VERSION {
                return Err(DecapError::Malformed);
            }
            let payload = ipv6::payload_len(ip);
            if ipv6::HEADER_LEN + payload > ip.len() {
                return Err(DecapError::Malformed);
            }
            let src = Ipv6Addr::from(ipv6::src_addr(ip));
            let proto = ip[ipv6::field::NXT_HDR];
            Ok((proto, ETH_HDR_LEN + ipv6::HEADER_LEN, src.into(), payload))
        }
        _ => Err(DecapError::NotTunnel),
    }
}
