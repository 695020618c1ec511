//! VXLAN (RFC 7348) as Calico's vxlan.calico device speaks it: UDP 4789, VNI 4096, one
//! VTEP per node whose MAC is 0x66 followed by sha1(node name)[0..5] ("-v6" appended to
//! the name for the IPv6 VTEP). The inner Ethernet header carries the VTEP MACs.
//!
//! Encapsulation is in place: the outer headers (50 bytes over IPv4, 70 over IPv6) are
//! written into the headroom before the frame. The outer UDP source port comes from
//! the inner flow's hash (entropy for the underlay's ECMP, as Linux does) unless fixed;
//! the UDP checksum is 0 over IPv4 (as Linux sends it) and computed over IPv6, where
//! it is mandatory.

use crate::flow;
use crate::rewrite::{fold, sum16, ETH_HDR_LEN};
use crate::tunnel::{
    inspect, read_outer, write_outer, DecapError, EncapError, Encapsulation, OuterEth, Underlay,
};
use crate::wire::ip::protocol;
use crate::wire::{ethernet, ipv6, udp, vxlan as wire};
use sha1::{Digest, Sha1};
use std::net::IpAddr;
use std::ops::Range;

pub const VXLAN_PORT: u16 = 4789;
/// Calico's default VNI.
pub const CALICO_VNI: u32 = 4096;
const UDP_LEN: usize = udp::HEADER_LEN;
const VXLAN_LEN: usize = wire::HEADER_LEN;

/// Calico's VTEP MAC for a node: 0x66, then the first five bytes of sha1(name).
pub fn vtep_mac(node_name: &str) -> [u8; 6] {
    let d = Sha1::digest(node_name.as_bytes());
    [0x66, d[0], d[1], d[2], d[3], d[4]]
}

/// Calico's IPv6 VTEP MAC: as `vtep_mac` of the name with "-v6" appended.
pub fn vtep_mac_v6(node_name: &str) -> [u8; 6] {
    vtep_mac(&format!("{node_name}-v6"))
}

/// The outer UDP source port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePort {
    /// From the inner flow's hash (Linux's behaviour; spreads flows over underlay ECMP).
    FlowHash,
    /// Always this port (Calico VPP uses 4789).
    Fixed(u16),
}

/// A VXLAN tunnel toward one remote VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    pub local_vtep_mac: [u8; 6],
    pub remote_vtep_mac: [u8; 6],
    pub underlay: Underlay,
    pub eth: OuterEth,
    pub source_port: SourcePort,
}

impl Encapsulation for Vxlan {
    fn eth(&self) -> &OuterEth {
        &self.eth
    }

    /// Bytes added in front of the frame: outer Ethernet, IP, UDP and VXLAN headers.
    fn overhead(&self) -> usize {
        ETH_HDR_LEN + self.underlay.ip_len() + UDP_LEN + VXLAN_LEN
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
        let hash = self.source_port == SourcePort::FlowHash
            || matches!(self.underlay, Underlay::V6 { .. });
        let inner = inspect(buf, start, len, over, hash)?;
        let (tos, hash) = (inner.tos, inner.flow_hash);
        // The inner Ethernet header names the VTEPs.
        ethernet::set_addrs(&mut buf[start..], self.remote_vtep_mac, self.local_vtep_mac);

        let begin = start - over;
        let udp_len = UDP_LEN + VXLAN_LEN + len;
        let ip_at = begin + ETH_HDR_LEN;
        // The outer packet may be fragmented by the underlay (Linux sends VXLAN without DF).
        let hdr = write_outer(
            &mut buf[begin..],
            eth,
            &self.underlay,
            protocol::UDP,
            udp_len,
            tos,
            false,
            hash,
            ident,
        );
        let sport = match self.source_port {
            SourcePort::FlowHash => flow::source_port(hash),
            SourcePort::Fixed(p) => p,
        };
        let udp_at = begin + hdr;
        let udp = &mut buf[udp_at..udp_at + UDP_LEN + VXLAN_LEN];
        udp::set_src_port(udp, sport);
        udp::set_dst_port(udp, VXLAN_PORT);
        udp::set_len(udp, udp_len as u16);
        udp[udp::field::CHECKSUM].fill(0);
        let vx = &mut udp[UDP_LEN..];
        vx[..wire::field::VNI.start].copy_from_slice(&[wire::FLAG_I, 0, 0, 0]);
        vx[wire::field::VNI].copy_from_slice(&wire::vni_bytes(self.vni));
        if let Underlay::V6 { .. } = self.underlay {
            let ip = &buf[ip_at..ip_at + ipv6::HEADER_LEN];
            let pseudo = sum16(&ip[ipv6::field::ADDRS]) + udp_len as u32 + protocol::UDP as u32;
            let sum = !fold(pseudo + sum16(&buf[udp_at..udp_at + udp_len]));
            // 0 means "no checksum": a computed 0 is sent as 0xffff (RFC 8200 §8.1).
            let sum = if sum == 0 { 0xffff } else { sum };
            udp::set_checksum(&mut buf[udp_at..], sum);
        }
        Ok(begin..start + len)
    }
}

/// A decapsulated VXLAN packet: where its inner Ethernet frame is, and from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    pub vni: u32,
    pub inner: Range<usize>,
    pub outer_src: IpAddr,
}

/// If `frame` is VXLAN (UDP 4789) with VNI `vni`, where its inner frame is.
pub fn decapsulate(frame: &[u8], vni: u32) -> Result<Decapsulated, DecapError> {
    let (proto, at, outer_src, payload) = read_outer(frame)?;
    if proto != protocol::UDP {
        return Err(DecapError::NotTunnel);
    }
    if payload < UDP_LEN {
        return Err(DecapError::Malformed);
    }
    let udp = &frame[at..at + payload];
    if udp::dst_port(udp) != VXLAN_PORT {
        return Err(DecapError::NotTunnel);
    }
    let udp_len = udp::len(udp);
    if udp_len < UDP_LEN + VXLAN_LEN + ETH_HDR_LEN || udp_len > payload {
        return Err(DecapError::Malformed);
    }
    let vx = &udp[UDP_LEN..];
    let got = wire::vni(vx);
    if vx[wire::field::FLAGS] & wire::FLAG_I == 0 || got != vni {
        return Err(DecapError::WrongVni);
    }
    let inner = at + UDP_LEN + VXLAN_LEN..at + udp_len;
    Ok(Decapsulated {
        vni: got,
        inner,
        outer_src,
    })
}
