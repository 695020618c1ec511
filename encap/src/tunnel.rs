//! What IPIP and VXLAN share: the underlay (outer IPv4 or IPv6 addresses), the outer
//! Ethernet addresses, and writing the outer IP header. Outer IPv4 headers get a full
//! checksum; IPv6 has none. TTL / hop limit 64; traffic class and ECN copied from the
//! inner packet (RFC 6040 normal mode).

use crate::rewrite::{ipv4_checksum, ETH_HDR_LEN};
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
            Underlay::V4 { .. } => 20,
            Underlay::V6 { .. } => 40,
        }
    }

    pub fn ethertype(&self) -> u16 {
        match self {
            Underlay::V4 { .. } => 0x0800,
            Underlay::V6 { .. } => 0x86dd,
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
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => Ok((ip[1], ip[6] & 0x40 != 0, false)),
        Some(6) if ip.len() >= 40 => Ok(((ip[0] << 4) | (ip[1] >> 4), true, true)),
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
    out[0..6].copy_from_slice(&eth.dst);
    out[6..12].copy_from_slice(&eth.src);
    out[12..14].copy_from_slice(&underlay.ethertype().to_be_bytes());
    let ip = &mut out[ETH_HDR_LEN..];
    match underlay {
        Underlay::V4 { src, dst } => {
            let total = (20 + payload_len) as u16;
            ip[0] = 0x45;
            ip[1] = tos;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[4..6].copy_from_slice(&ident.to_be_bytes());
            ip[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
            ip[8] = 64;
            ip[9] = proto;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            let sum = ipv4_checksum(&ip[..20]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ETH_HDR_LEN + 20
        }
        Underlay::V6 { src, dst } => {
            let label = flow & 0x000f_ffff;
            let word = 6u32 << 28 | (tos as u32) << 20 | label;
            ip[0..4].copy_from_slice(&word.to_be_bytes());
            ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&src.octets());
            ip[24..40].copy_from_slice(&dst.octets());
            ETH_HDR_LEN + 40
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
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return Err(DecapError::Malformed);
            }
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if ihl < 20 || total < ihl || total > ip.len() {
                return Err(DecapError::Malformed);
            }
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                // A fragmented tunnel packet: not reassembled here.
                return Err(DecapError::NotTunnel);
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap());
            Ok((ip[9], ETH_HDR_LEN + ihl, src.into(), total - ihl))
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return Err(DecapError::Malformed);
            }
            let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if 40 + payload > ip.len() {
                return Err(DecapError::Malformed);
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
            Ok((ip[6], ETH_HDR_LEN + 40, src.into(), payload))
        }
        _ => Err(DecapError::NotTunnel),
    }
}
