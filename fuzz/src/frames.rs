//! The pipeline target's addresses, and the seed frames built from them.

use etherparse::PacketBuilder;

pub const NODE_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
pub const ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];
pub const POD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const NODE4: [u8; 4] = [10, 0, 0, 1];
pub const NODE6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const POD4: [u8; 4] = [10, 244, 1, 4];
pub const TAP4: [u8; 4] = [10, 244, 1, 5];
pub const POD6: [u8; 16] = [0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4];
pub const WORLD4: [u8; 4] = [8, 8, 8, 8];
pub const REMOTE4: [u8; 4] = [10, 244, 2, 7];
const GW: [u8; 6] = vrouter::arp::HOST_SIDE_MAC;

/// UDP from the veth pod.
pub fn pod_udp4(dst: [u8; 4], dport: u16, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, GW)
        .ipv4(POD4, dst, ttl)
        .udp(40000, dport)
        .write(&mut f, b"hello")
        .unwrap();
    f
}

/// TCP SYN from the veth pod.
pub fn pod_tcp4(dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, GW)
        .ipv4(POD4, dst, 64)
        .tcp(40001, dport, 1, 1000)
        .syn()
        .write(&mut f, b"")
        .unwrap();
    f
}

/// ICMP echo from the veth pod.
pub fn pod_ping4(dst: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, GW)
        .ipv4(POD4, dst, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut f, b"ping")
        .unwrap();
    f
}

/// UDP over IPv6 from the veth pod.
pub fn pod_udp6(dst: [u8; 16]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, GW)
        .ipv6(POD6, dst, 64)
        .udp(40000, 53)
        .write(&mut f, b"hello")
        .unwrap();
    f
}

/// UDP from the tap pod.
pub fn tap_udp4(dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(TAP_MAC, GW)
        .ipv4(TAP4, dst, 64)
        .udp(5353, dport)
        .write(&mut f, b"tap")
        .unwrap();
    f
}

/// The pod asking for its gateway (169.254.1.1).
pub fn pod_arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&POD_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&POD_MAC);
    f.extend_from_slice(&POD4);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[169, 254, 1, 1]);
    f
}

/// UDP from the world to the node (a NAT reply), on the uplink.
pub fn world_udp4(dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
        .ipv4(WORLD4, NODE4, 60)
        .udp(53, dport)
        .write(&mut f, b"world")
        .unwrap();
    f
}

/// A remote pod's UDP to the veth pod, VXLAN-encapsulated by node 10.0.0.2.
pub fn vxlan_in() -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([0x66, 1, 2, 3, 4, 5], [0x66, 5, 4, 3, 2, 1])
        .ipv4(REMOTE4, POD4, 63)
        .udp(1000, 2000)
        .write(&mut inner, b"over vxlan")
        .unwrap();
    let mut vx = vec![0x08, 0, 0, 0, 0, 0x10, 0, 0];
    vx.extend_from_slice(&inner);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
        .ipv4([10, 0, 0, 2], NODE4, 64)
        .udp(50000, 4789)
        .write(&mut f, &vx)
        .unwrap();
    f
}

/// The same remote pod's packet over IPIP (node 10.0.0.3).
pub fn ipip_in() -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ipv4(REMOTE4, POD4, 63)
        .udp(1000, 2000)
        .write(&mut inner, b"over ipip")
        .unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&NODE_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + inner.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[10, 0, 0, 3]);
    ip.extend_from_slice(&NODE4);
    let c = encap::rewrite::ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&inner);
    f
}

/// A burst as the pipeline target reads it: `flags`, then each frame length-prefixed.
pub fn burst(flags: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![flags];
    for f in frames {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}
