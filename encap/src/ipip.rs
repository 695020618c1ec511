//! IP-in-IP as Calico's tunl0 speaks it (IPv4 in IPv4, protocol 4), and the IPv6 forms
//! Calico refuses but we carry: IPv6 in IPv4 (protocol 41), IPv4 in IPv6 (next header
//! 4) and IPv6 in IPv6 (41). The inner packet's Ethernet header is replaced by the outer
//! Ethernet and IP headers, so encapsulation needs 20 (or 40) bytes of headroom. The
//! outer IPv4 header carries DF when the inner packet forbids fragmentation (Linux's
//! default pmtudisc), so path MTU discovery works through the tunnel.

use crate::rewrite::ETH_HDR_LEN;
use crate::tunnel::{
    inspect, read_outer, write_outer, DecapError, EncapError, Encapsulation, OuterEth, Underlay,
};
use crate::wire::ip::{self as l3, protocol};
use crate::wire::{ipv4, ipv6};
use std::net::IpAddr;
use std::ops::Range;

pub const PROTO_IPV4: u8 = protocol::IPIP;
pub const PROTO_IPV6: u8 = protocol::IPV6;

/// An IPIP tunnel toward one remote node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipip {
    pub underlay: Underlay,
    pub eth: OuterEth,
}

impl Encapsulation for Ipip {
    fn eth(&self) -> &OuterEth {
        &self.eth
    }

    /// Bytes added in front of the frame (the inner Ethernet header is reused).
    fn overhead(&self) -> usize {
        self.underlay.ip_len()
    }

    fn encapsulate_with(
        &self,
        eth: &OuterEth,
        buf: &mut [u8],
        start: usize,
        len: usize,
        ident: u16,
    ) -> Result<Range<usize>, EncapError> {
        let over = self.overhead();
        // The flow hash only feeds the IPv6 flow label.
        let v6_outer = matches!(self.underlay, Underlay::V6 { .. });
        let inner = inspect(buf, start, len, over, v6_outer)?;
        let proto = if inner.v6 { PROTO_IPV6 } else { PROTO_IPV4 };
        let begin = start - over;
        write_outer(
            &mut buf[begin..],
            eth,
            &self.underlay,
            proto,
            len - ETH_HDR_LEN,
            inner.tos,
            inner.df,
            inner.flow_hash,
            ident,
        );
        Ok(begin..start + len)
    }
}

/// A decapsulated IPIP packet: where its inner IP packet is, which family, from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    pub inner_ip: Range<usize>,
    pub inner_v6: bool,
    pub outer_src: IpAddr,
}

/// If `frame` is IP-in-IP (protocol 4 or 41, over IPv4 or IPv6), where its inner packet
/// is. The caller writes an Ethernet header in the 14 bytes before `inner_ip` (they are
/// the outer headers' last bytes) to forward it as a frame.
pub fn decapsulate(frame: &[u8]) -> Result<Decapsulated, DecapError> {
    let (proto, at, outer_src, payload) = read_outer(frame)?;
    let inner_v6 = match proto {
        PROTO_IPV4 => false,
        PROTO_IPV6 => true,
        _ => return Err(DecapError::NotTunnel),
    };
    let inner = &frame[at..at + payload];
    let version_ok = match l3::version(inner) {
        Some(ipv4::VERSION) => !inner_v6 && inner.len() >= ipv4::HEADER_LEN,
        Some(ipv6::VERSION) => inner_v6 && inner.len() >= ipv6::HEADER_LEN,
        _ => false,
    };
    if !version_ok {
        return Err(DecapError::Malformed);
    }
    Ok(Decapsulated {
        inner_ip: at..at + payload,
        inner_v6,
        outer_src,
    })
}
