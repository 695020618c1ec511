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

/// Outer IPv6 (40) + UDP (8) + VXLAN (8): the longest header after the Ethernet one.
const MAX_HDR: usize = 56;
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
        let mut tpl = Self::ip(&t.underlay, 17);
        let at = tpl.hdr_len as usize;
        tpl.bytes[at + 2..at + 4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        tpl.bytes[at + 8] = 0x08;
        tpl.bytes[at + 12..at + 16].copy_from_slice(&(t.vni << 8).to_be_bytes());
        tpl.hdr_len += 16;
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
                bytes[12..16].copy_from_slice(&src.octets());
                bytes[16..20].copy_from_slice(&dst.octets());
                (20, false, sum16(&bytes[12..20]))
            }
            Underlay::V6 { src, dst } => {
                bytes[6] = proto;
                bytes[7] = 64;
                bytes[8..24].copy_from_slice(&src.octets());
                bytes[24..40].copy_from_slice(&dst.octets());
                (40, true, 0)
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
        let inner_v6 = match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 => false,
            Some(6) if ip.len() >= 40 => true,
            _ => return Err(EncapError::Malformed),
        };
        let tos = if inner_v6 {
            ip[0] << 4 | ip[1] >> 4
        } else {
            ip[1]
        };
        let inner_df = inner_v6 || ip[6] & 0x40 != 0;
        let flow_hash = if hash { flow::hash(ip) } else { 0 };
        if len <= SMALL_FRAME && buf.len() >= over + SMALL_FRAME {
            let head: [u8; SMALL_FRAME] = buf[..SMALL_FRAME].try_into().unwrap();
            buf[over..over + SMALL_FRAME].copy_from_slice(&head);
        } else {
            buf.copy_within(0..len, over);
        }
        buf[0..6].copy_from_slice(&eth.dst);
        buf[6..12].copy_from_slice(&eth.src);
        let ethertype: u16 = if self.v6 { 0x86dd } else { 0x0800 };
        buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let out = &mut buf[ETH_HDR_LEN..];
        match self.hdr_len {
            20 => put::<20>(out, &self.bytes),
            36 => put::<36>(out, &self.bytes),
            40 => put::<40>(out, &self.bytes),
            _ => put::<MAX_HDR>(out, &self.bytes),
        }
        let ip_len = if self.v6 { 40 } else { 20 };
        // What follows the outer IP header, and the fields that depend on the packet.
        let (payload, proto, df) = match vteps {
            Some(vteps) => {
                let udp_len = 16 + len;
                let sport = match self.kind {
                    Kind::Vxlan {
                        source_port: SourcePort::Fixed(p),
                        ..
                    } => p,
                    _ => flow::source_port(flow_hash),
                };
                let udp = &mut out[ip_len..ip_len + 8];
                udp[0..2].copy_from_slice(&sport.to_be_bytes());
                udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
                buf[over..over + 12].copy_from_slice(&vteps);
                // Linux sends VXLAN without DF: the underlay may fragment it.
                (udp_len, 17, false)
            }
            None => {
                let proto = if inner_v6 { PROTO_IPV6 } else { PROTO_IPV4 };
                (len - ETH_HDR_LEN, proto, inner_df)
            }
        };
        let ip = &mut buf[ETH_HDR_LEN..ETH_HDR_LEN + ip_len];
        if self.v6 {
            let word = 6u32 << 28 | (tos as u32) << 20 | (flow_hash & 0x000f_ffff);
            ip[0..4].copy_from_slice(&word.to_be_bytes());
            ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
            ip[6] = proto;
            if vteps.is_some() {
                // The UDP checksum is mandatory over IPv6 and covers the whole payload.
                let udp_at = ETH_HDR_LEN + 40;
                let pseudo = sum16(&buf[ETH_HDR_LEN + 8..udp_at]) + payload as u32 + 17;
                let sum = !fold(pseudo + sum16(&buf[udp_at..udp_at + payload]));
                let sum = if sum == 0 { 0xffff } else { sum };
                buf[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
            }
        } else {
            let total = (20 + payload) as u16;
            let flags: u16 = if df { 0x4000 } else { 0 };
            let ttl_proto = 64u16 << 8 | proto as u16;
            ip[0] = 0x45;
            ip[1] = tos;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[4..6].copy_from_slice(&ident.to_be_bytes());
            ip[6..8].copy_from_slice(&flags.to_be_bytes());
            ip[8..10].copy_from_slice(&ttl_proto.to_be_bytes());
            let sum = self.base_sum
                + (0x4500 | tos as u32)
                + total as u32
                + ident as u32
                + flags as u32
                + ttl_proto as u32;
            ip[10..12].copy_from_slice(&(!fold(sum)).to_be_bytes());
        }
        Ok(len + over)
    }
}

/// Copy the first N bytes (a constant: a few vector moves, no call).
#[inline(always)]
fn put<const N: usize>(out: &mut [u8], from: &[u8; MAX_HDR]) {
    out[..N].copy_from_slice(&from[..N]);
}
