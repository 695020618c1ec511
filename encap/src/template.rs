//! The fast path of encapsulation: a tunnel's outer headers prepared once, so that per
//! packet only the fields that vary are written (lengths, identification, TOS / traffic
//! class, DF, the UDP source port) and the IPv4 checksum is finished arithmetically from
//! a precomputed sum instead of being read back from the bytes just written (a store
//! followed by a load of another width stalls store forwarding).
//!
//! The frame starts at offset 0 of its buffer and is moved up by the overhead (an
//! AF_XDP descriptor from xsk-rs cannot start earlier in its frame); short frames move
//! as one fixed-size block. The output is byte-identical to `Encapsulation::encapsulate_with`
//! (property-tested against it in `tests/tunnels.rs`).

use crate::flow;
use crate::ipip::{Ipip, PROTO_IPV4, PROTO_IPV6};
use crate::rewrite::{fold, sum16, ETH_HDR_LEN};
use crate::tunnel::{EncapError, OuterEth, Underlay};
use crate::vxlan::{SourcePort, Vxlan, VXLAN_PORT};
use crate::wire::ip::{self as l3, protocol};
use crate::wire::{ethernet, ipv4, ipv6, udp, vxlan as wire};

/// UDP and VXLAN headers after the outer IP header.
const UDP_VXLAN_LEN: usize = udp::HEADER_LEN + wire::HEADER_LEN;
/// Outer IPv6 (40) + UDP (8) + VXLAN (8): the longest header after the Ethernet one.
const MAX_HDR: usize = ipv6::HEADER_LEN + UDP_VXLAN_LEN;
/// The header lengths `hdr_len` takes: outer IPv4 (IPIP), IPv4 + UDP + VXLAN, IPv6.
const V4_HDR: usize = ipv4::HEADER_LEN;
const V4_VXLAN_HDR: usize = ipv4::HEADER_LEN + UDP_VXLAN_LEN;
const V6_HDR: usize = ipv6::HEADER_LEN;
/// Frames up to this length move as one fixed-size block.
const SMALL_FRAME: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipip,
    Vxlan {
        /// Inner Ethernet destination and source: the remote and the local VTEP MACs.
        vteps: [u8; 12],
        source_port: SourcePort,
    },
}

/// A tunnel's outer headers after the Ethernet header, with the varying fields zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterTemplate {
    kind: Kind,
    bytes: [u8; MAX_HDR],
    /// Bytes of `bytes` used: the outer IP header, plus UDP and VXLAN.
    hdr_len: u8,
    v6: bool,
    /// IPv4: the one's-complement sum of the header's constant words (addresses).
    base_sum: u32,
}

impl OuterTemplate {
    pub fn vxlan(t: &Vxlan) -> OuterTemplate {
        let mut tpl = Self::ip(&t.underlay, protocol::UDP);
        let at = tpl.hdr_len as usize;
        udp::set_dst_port(&mut tpl.bytes[at..], VXLAN_PORT);
        let vx = &mut tpl.bytes[at + udp::HEADER_LEN..];
        vx[wire::field::FLAGS] = wire::FLAG_I;
        vx[wire::field::VNI].copy_from_slice(&wire::vni_bytes(t.vni));
        tpl.hdr_len += UDP_VXLAN_LEN as u8;
        let mut vteps = [0u8; 12];
        vteps[..6].copy_from_slice(&t.remote_vtep_mac);
        vteps[6..].copy_from_slice(&t.local_vtep_mac);
        tpl.kind = Kind::Vxlan {
            vteps,
            source_port: t.source_port,
        };
        tpl
    }

    pub fn ipip(t: &Ipip) -> OuterTemplate {
        Self::ip(&t.underlay, 0)
    }

    /// The outer IP header: version, hop limit 64, addresses, and `proto` if known.
    fn ip(underlay: &Underlay, proto: u8) -> OuterTemplate {
        let mut bytes = [0u8; MAX_HDR];
        let (hdr_len, v6, base_sum) = match underlay {
            Underlay::V4 { src, dst } => {
                use ipv4::field;
                bytes[field::SRC_ADDR].copy_from_slice(&src.octets());
                bytes[field::DST_ADDR].copy_from_slice(&dst.octets());
                (V4_HDR as u8, false, sum16(&bytes[field::ADDRS]))
            }
            Underlay::V6 { src, dst } => {
                use ipv6::field;
                bytes[field::NXT_HDR] = proto;
                bytes[field::HOP_LIMIT] = ipv6::DEFAULT_HOP_LIMIT;
                bytes[field::SRC_ADDR].copy_from_slice(&src.octets());
                bytes[field::DST_ADDR].copy_from_slice(&dst.octets());
                (V6_HDR as u8, true, 0)
            }
        };
        OuterTemplate {
            kind: Kind::Ipip,
            bytes,
            hdr_len,
            v6,
            base_sum,
        }
    }

    /// Bytes added in front of the frame.
    #[inline]
    pub fn overhead(&self) -> usize {
        match self.kind {
            // The inner Ethernet header becomes the outer one.
            Kind::Ipip => self.hdr_len as usize,
            Kind::Vxlan { .. } => ETH_HDR_LEN + self.hdr_len as usize,
        }
    }

    /// Encapsulate the Ethernet frame `buf[..len]`: it moves up by `overhead()` and the
    /// outer headers (Ethernet addresses `eth`, IPv4 identification `ident`) go in
    /// front. Returns the new length.
    #[inline]
    pub fn encapsulate(
        &self,
        eth: &OuterEth,
        buf: &mut [u8],
        len: usize,
        ident: u16,
    ) -> Result<usize, EncapError> {
        let over = self.overhead();
        if len + over > buf.len() {
            return Err(EncapError::NoHeadroom);
        }
        let (vteps, hash) = match self.kind {
            Kind::Vxlan { vteps, source_port } => {
                (Some(vteps), source_port == SourcePort::FlowHash || self.v6)
            }
            Kind::Ipip => (None, self.v6),
        };
        // Read the inner packet where it is, before it moves. Plain scalars, not
        // `tunnel::inspect`'s struct: LLVM kept that on the stack and read it back
        // wider than it wrote it (a store-forwarding stall of ~20 cycles).
        let ip = buf.get(ETH_HDR_LEN..len).ok_or(EncapError::Malformed)?;
        let inner_v6 = match l3::version(ip) {
            Some(ipv4::VERSION) if ip.len() >= ipv4::HEADER_LEN => false,
            Some(ipv6::VERSION) if ip.len() >= ipv6::HEADER_LEN => true,
            _ => return Err(EncapError::Malformed),
        };
        let tos = if inner_v6 {
            ipv6::traffic_class(ip)
        } else {
            ip[ipv4::field::DSCP_ECN]
        };
        let inner_df = inner_v6 || ipv4::dont_frag(ip);
        let flow_hash = if hash { flow::hash(ip) } else { 0 };
        if len <= SMALL_FRAME && buf.len() >= over + SMALL_FRAME {
            let head: [u8; SMALL_FRAME] = buf[..SMALL_FRAME].try_into().unwrap();
            buf[over..over + SMALL_FRAME].copy_from_slice(&head);
        } else {
            buf.copy_within(0..len, over);
        }
        // Plain slice writes (not the wire setters) in this function: the same stores, in
        // the same order, as before the fields were named; LLVM combined the setters'
        // into a vector store built with inserts.
        buf[ethernet::field::DESTINATION].copy_from_slice(&eth.dst);
        buf[ethernet::field::SOURCE].copy_from_slice(&eth.src);
        let ethertype = if self.v6 {
            ethernet::ethertype::IPV6
        } else {
            ethernet::ethertype::IPV4
        };
        buf[ethernet::field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
        let out = &mut buf[ETH_HDR_LEN..];
        const V4: u8 = V4_HDR as u8;
        const V4_VXLAN: u8 = V4_VXLAN_HDR as u8;
        const V6: u8 = V6_HDR as u8;
        match self.hdr_len {
            V4 => put::<V4_HDR>(out, &self.bytes),
            V4_VXLAN => put::<V4_VXLAN_HDR>(out, &self.bytes),
            V6 => put::<V6_HDR>(out, &self.bytes),
            _ => put::<MAX_HDR>(out, &self.bytes),
        }
        let ip_len = if self.v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        };
        // What follows the outer IP header, and the fields that depend on the packet.
        let (payload, proto, df) = match vteps {
            Some(vteps) => {
                let udp_len = UDP_VXLAN_LEN + len;
                let sport = match self.kind {
                    Kind::Vxlan {
                        source_port: SourcePort::Fixed(p),
                        ..
                    } => p,
                    _ => flow::source_port(flow_hash),
                };
                let udp = &mut out[ip_len..ip_len + udp::HEADER_LEN];
                udp[udp::field::SRC_PORT].copy_from_slice(&sport.to_be_bytes());
                udp[udp::field::LENGTH].copy_from_slice(&(udp_len as u16).to_be_bytes());
                buf[over..over + vteps.len()].copy_from_slice(&vteps);
                // Linux sends VXLAN without DF: the underlay may fragment it.
                (udp_len, protocol::UDP, false)
            }
            None => {
                let proto = if inner_v6 { PROTO_IPV6 } else { PROTO_IPV4 };
                (len - ETH_HDR_LEN, proto, inner_df)
            }
        };
        let ip = &mut buf[ETH_HDR_LEN..ETH_HDR_LEN + ip_len];
        if self.v6 {
            let word = ipv6::ver_tc_flow(tos, flow_hash);
            ip[ipv6::field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
            ip[ipv6::field::LENGTH].copy_from_slice(&(payload as u16).to_be_bytes());
            ip[ipv6::field::NXT_HDR] = proto;
            if vteps.is_some() {
                // The UDP checksum is mandatory over IPv6 and covers the whole payload.
                let udp_at = ETH_HDR_LEN + ipv6::HEADER_LEN;
                let addrs = ETH_HDR_LEN + ipv6::field::ADDRS.start..udp_at;
                let pseudo = sum16(&buf[addrs]) + payload as u32 + protocol::UDP as u32;
                let sum = !fold(pseudo + sum16(&buf[udp_at..udp_at + payload]));
                let sum = if sum == 0 { 0xffff } else { sum };
                let at = udp_at + udp::field::CHECKSUM.start;
                buf[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            }
        } else {
            use ipv4::field;
            let total = (ipv4::HEADER_LEN + payload) as u16;
            let flags: u16 = if df { ipv4::FLAG_DF } else { 0 };
            // TTL and protocol: one 16-bit word of the checksum.
            let ttl_proto = (ipv4::DEFAULT_TTL as u16) << 8 | proto as u16;
            ip[field::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
            ip[field::DSCP_ECN] = tos;
            ip[field::LENGTH].copy_from_slice(&total.to_be_bytes());
            ip[field::IDENT].copy_from_slice(&ident.to_be_bytes());
            ip[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
            ip[field::TTL..field::PROTOCOL + 1].copy_from_slice(&ttl_proto.to_be_bytes());
            let sum = self.base_sum
                + ((ipv4::VER_IHL_NO_OPTIONS as u32) << 8 | tos as u32)
                + total as u32
                + ident as u32
                + flags as u32
                + ttl_proto as u32;
            ip[field::CHECKSUM].copy_from_slice(&(!fold(sum)).to_be_bytes());
        }
        Ok(len + over)
    }
}

/// Copy the first N bytes (a constant: a few vector moves, no call).
#[inline(always)]
fn put<const N: usize>(out: &mut [u8], from: &[u8; MAX_HDR]) {
    out[..N].copy_from_slice(&from[..N]);
}
