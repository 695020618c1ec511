//! Proxy ARP for pods: a pod's default gateway is 169.254.1.1, which no interface owns;
//! the host side of the pod's link answers for it with ee:ee:ee:ee:ee:ee, as Calico does
//! with proxy_arp=1. The reply is built in place in the request's buffer (no allocation).

use encap::wire::arp::{self as wire, field};
use encap::wire::ethernet;
use std::net::Ipv4Addr;

/// The gateway address Calico gives every pod.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The MAC of the host side of every pod link.
pub const HOST_SIDE_MAC: [u8; 6] = [0xee; 6];

const ETH_LEN: usize = ethernet::HEADER_LEN;
const ARP_LEN: usize = wire::PACKET_LEN;
const ETHERTYPE_ARP: u16 = ethernet::ethertype::ARP;

/// What the responder did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOutcome {
    /// The frame now holds the reply: send it back out of the port it came from.
    Replied,
    /// An ARP packet not asking for the gateway (another target, a reply, gratuitous).
    Ignored,
    /// Not an ARP frame at all.
    NotArp,
    /// ARP ethertype but not Ethernet/IPv4 ARP, or too short: count a drop.
    Malformed,
}

/// If `frame` is an ARP request for `gateway`, turn it into the reply from `mac` in place.
pub fn answer_gateway(frame: &mut [u8], gateway: Ipv4Addr, mac: [u8; 6]) -> ArpOutcome {
    if frame.len() < ETH_LEN || ethernet::ethertype(frame) != ETHERTYPE_ARP {
        return ArpOutcome::NotArp;
    }
    if frame.len() < ETH_LEN + ARP_LEN {
        return ArpOutcome::Malformed;
    }
    let arp = &frame[ETH_LEN..ETH_LEN + ARP_LEN];
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    if arp[field::FORMAT] != wire::FORMAT_ETHERNET_IPV4 {
        return ArpOutcome::Malformed;
    }
    let oper = wire::oper(arp);
    let sender_ip: [u8; 4] = arp[field::SPA].try_into().unwrap();
    let target_ip: [u8; 4] = arp[field::TPA].try_into().unwrap();
    if oper != wire::OP_REQUEST || target_ip != gateway.octets() || sender_ip == target_ip {
        return ArpOutcome::Ignored;
    }
    let sender_mac: [u8; 6] = arp[field::SHA].try_into().unwrap();

    ethernet::set_addrs(frame, sender_mac, mac);
    let arp = &mut frame[ETH_LEN..ETH_LEN + ARP_LEN];
    arp[field::OPER].copy_from_slice(&wire::OP_REPLY.to_be_bytes());
    arp[field::SHA].copy_from_slice(&mac);
    arp[field::SPA].copy_from_slice(&gateway.octets());
    arp[field::THA].copy_from_slice(&sender_mac);
    arp[field::TPA].copy_from_slice(&sender_ip);
    ArpOutcome::Replied
}

/// Write an ARP request "who has `target`? tell `sender_ip`" (broadcast) into `buf`
/// (at least 42 bytes); returns its length. The worker asks pods this way when it has a
/// packet for a pod whose MAC it has not learnt yet.
pub fn request(
    buf: &mut [u8],
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> usize {
    let f = &mut buf[..ETH_LEN + ARP_LEN];
    ethernet::set_addrs(f, [0xff; 6], sender_mac);
    ethernet::set_ethertype(f, ETHERTYPE_ARP);
    let arp = &mut f[ETH_LEN..];
    arp[field::FORMAT].copy_from_slice(&wire::FORMAT_ETHERNET_IPV4);
    arp[field::OPER].copy_from_slice(&wire::OP_REQUEST.to_be_bytes());
    arp[field::SHA].copy_from_slice(&sender_mac);
    arp[field::SPA].copy_from_slice(&sender_ip.octets());
    arp[field::THA].fill(0);
    arp[field::TPA].copy_from_slice(&target.octets());
    ETH_LEN + ARP_LEN
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) const POD_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];

    /// A pod (10.244.1.5) asking who has 169.254.1.1, as `arping`/the kernel sends it.
    pub(crate) fn request() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&POD_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&POD_MAC);
        f.extend_from_slice(&[10, 244, 1, 5]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[169, 254, 1, 1]);
        f.resize(60, 0); // minimum Ethernet frame, padded
        f
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{request, POD_MAC};
    use super::*;
    use etherparse::{ArpOperation, LinkSlice, NetSlice, SlicedPacket};
    use proptest::prelude::*;

    #[test]
    fn golden_reply() {
        let mut f = request();
        assert_eq!(
            answer_gateway(&mut f, POD_GATEWAY_V4, HOST_SIDE_MAC),
            ArpOutcome::Replied
        );
        let mut want = Vec::new();
        want.extend_from_slice(&POD_MAC);
        want.extend_from_slice(&HOST_SIDE_MAC);
        want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        want.extend_from_slice(&HOST_SIDE_MAC);
        want.extend_from_slice(&[169, 254, 1, 1]);
        want.extend_from_slice(&POD_MAC);
        want.extend_from_slice(&[10, 244, 1, 5]);
        want.resize(60, 0);
        assert_eq!(f, want);

        // An independent parser reads it as the reply we mean.
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(LinkSlice::Ethernet2(eth)) = p.link else {
            panic!("ethernet")
        };
        assert_eq!(eth.destination(), POD_MAC);
        let Some(NetSlice::Arp(arp)) = p.net else {
            panic!("arp")
        };
        assert_eq!(arp.operation(), ArpOperation::REPLY);
        assert_eq!(arp.sender_hw_addr(), HOST_SIDE_MAC);
        assert_eq!(arp.sender_protocol_addr(), [169, 254, 1, 1]);
        assert_eq!(arp.target_hw_addr(), POD_MAC);
        assert_eq!(arp.target_protocol_addr(), [10, 244, 1, 5]);
    }

    #[test]
    fn other_arp_is_left_alone() {
        let mut other_target = request();
        other_target[ETH_LEN..][field::TPA].copy_from_slice(&[10, 244, 1, 1]);
        let mut reply = request();
        reply[ETH_LEN..][field::OPER].copy_from_slice(&wire::OP_REPLY.to_be_bytes());
        let mut gratuitous = request();
        gratuitous[ETH_LEN..][field::SPA].copy_from_slice(&[169, 254, 1, 1]);
        for mut f in [other_target, reply, gratuitous] {
            let before = f.clone();
            assert_eq!(
                answer_gateway(&mut f, POD_GATEWAY_V4, HOST_SIDE_MAC),
                ArpOutcome::Ignored
            );
            assert_eq!(f, before);
        }
        let mut ipv4 = request();
        ethernet::set_ethertype(&mut ipv4, ethernet::ethertype::IPV4);
        assert_eq!(
            answer_gateway(&mut ipv4, POD_GATEWAY_V4, HOST_SIDE_MAC),
            ArpOutcome::NotArp
        );
        let mut short = request();
        short.truncate(30);
        assert_eq!(
            answer_gateway(&mut short, POD_GATEWAY_V4, HOST_SIDE_MAC),
            ArpOutcome::Malformed
        );
        let mut not_ethernet = request();
        not_ethernet[ETH_LEN..][field::HTYPE].copy_from_slice(&6u16.to_be_bytes());
        assert_eq!(
            answer_gateway(&mut not_ethernet, POD_GATEWAY_V4, HOST_SIDE_MAC),
            ArpOutcome::Malformed
        );
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(mut f in prop::collection::vec(any::<u8>(), 0..80), arp in any::<bool>()) {
            if arp && f.len() >= ETH_LEN {
                ethernet::set_ethertype(&mut f, ETHERTYPE_ARP);
            }
            let _ = answer_gateway(&mut f, POD_GATEWAY_V4, HOST_SIDE_MAC);
        }

        /// Any request for the gateway from any pod gets a reply an independent parser accepts.
        #[test]
        fn every_gateway_request_is_answered(mac in any::<[u8; 6]>(), ip in any::<[u8; 4]>()) {
            prop_assume!(ip != [169, 254, 1, 1]);
            let mut f = request();
            f[ethernet::field::SOURCE].copy_from_slice(&mac);
            f[ETH_LEN..][field::SHA].copy_from_slice(&mac);
            f[ETH_LEN..][field::SPA].copy_from_slice(&ip);
            prop_assert_eq!(answer_gateway(&mut f, POD_GATEWAY_V4, HOST_SIDE_MAC), ArpOutcome::Replied);
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(NetSlice::Arp(arp)) = p.net else { panic!("arp") };
            prop_assert_eq!(arp.target_hw_addr(), &mac[..]);
            prop_assert_eq!(arp.target_protocol_addr(), &ip[..]);
        }
    }
}
