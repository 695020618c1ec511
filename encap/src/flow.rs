//! A flow hash over an IP packet's 5-tuple: picks one ECMP next hop per flow and gives
//! VXLAN its UDP source port (entropy for the underlay's own ECMP, as Linux does).
//! Not cryptographic; stable for a flow, spread over flows. Fragments other than the
//! first have no ports: all fragments of a packet hash on addresses and protocol only.

use crate::wire::ip::{protocol, PORTS};
use crate::wire::{ip as l3, ipv4, ipv6};

/// Hash of the IPv4 or IPv6 packet starting at `ip` (0 for anything unparseable).
/// Always inlined: as a call, its callers spilled their small results around it and
/// read them back wider than written (store-forwarding stalls).
#[inline(always)]
pub fn hash(ip: &[u8]) -> u32 {
    match l3::version(ip) {
        Some(ipv4::VERSION) if ip.len() >= ipv4::HEADER_LEN => {
            let ihl = ipv4::header_len(ip);
            let proto = ip[ipv4::field::PROTOCOL];
            let frag = ipv4::flg_off(ip) & ipv4::FRAGMENT != 0;
            let addrs = u64::from_be_bytes(ip[ipv4::field::ADDRS].try_into().unwrap());
            mix(addrs, proto, ports(ip, ihl, proto, frag))
        }
        Some(ipv6::VERSION) if ip.len() >= ipv6::HEADER_LEN => {
            let proto = ip[ipv6::field::NXT_HDR];
            let src = u128::from_be_bytes(ip[ipv6::field::SRC_ADDR].try_into().unwrap());
            let dst = u128::from_be_bytes(ip[ipv6::field::DST_ADDR].try_into().unwrap());
            let folded = (src ^ src >> 64 ^ dst.rotate_left(32) ^ dst >> 64) as u64;
            mix(folded, proto, ports(ip, ipv6::HEADER_LEN, proto, false))
        }
        _ => 0,
    }
}

/// Source and destination ports of TCP, UDP, SCTP and UDP-Lite, else 0.
#[inline]
fn ports(ip: &[u8], l4: usize, proto: u8, fragment: bool) -> u32 {
    match proto {
        protocol::TCP | protocol::UDP | protocol::SCTP | protocol::UDPLITE
            if !fragment && ip.len() >= l4 + PORTS.end =>
        {
            u32::from_be_bytes(ip[l4 + PORTS.start..l4 + PORTS.end].try_into().unwrap())
        }
        _ => 0,
    }
}

/// A 64-bit finaliser (murmur3's) over the fields.
#[inline]
fn mix(addrs: u64, proto: u8, ports: u32) -> u32 {
    let mut h = addrs ^ ((ports as u64) << 8 | proto as u64).rotate_left(29);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32
}

/// The UDP source port for a flow, in Linux's default ephemeral range 32768..=60999
/// (what the kernel's VXLAN device picks from).
#[inline]
pub fn source_port(hash: u32) -> u16 {
    32768 + ((hash as u64 * 28232) >> 32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut v, &[0; 8])
            .unwrap();
        v
    }

    #[test]
    fn same_flow_same_hash_other_flows_spread() {
        let a = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
        assert_eq!(hash(&a), hash(&a.clone()));
        let mut buckets = [0u32; 8];
        for sport in 0..8000u16 {
            let p = udp4([10, 0, 0, 1], [10, 0, 0, 2], 10000 + sport, 80);
            buckets[(hash(&p) % 8) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
        assert_eq!(hash(&[]), 0);
        assert_eq!(hash(&[0x45; 10]), 0);
    }

    #[test]
    fn source_ports_stay_in_the_ephemeral_range() {
        for h in [0, 1, u32::MAX / 2, u32::MAX] {
            assert!((32768..=60999).contains(&source_port(h)));
        }
    }
}
