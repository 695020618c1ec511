//! What connection tracking reads of a packet (from its IP header on): the flow tuple
//! and TCP flags, or — for an ICMP error — the tuple of the packet it quotes, whose
//! flow the error is RELATED to. No panic on any input: what cannot be read is
//! `Untrackable` (counted by the caller).

use super::{Tuple, ICMP, ICMPV6, TCP, UDP};
use encap::nat::{is_echo, is_error, layout, Layout};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A packet of a flow (TCP's flags byte; 0 for other protocols).
    Flow { tuple: Tuple, tcp_flags: u8 },
    /// An ICMP error about the packet `quoted` (as that packet was sent).
    Related { quoted: Tuple },
    /// Fragments after the first, other protocols, short or malformed headers.
    Untrackable,
}

/// The tuple of the IP packet at `ip`, its TCP flags and the transport's offset. Length
/// fields are not trusted (a packet quoted in an ICMP error is cut short).
fn tuple_of(ip: &[u8]) -> Option<(Tuple, u8, usize)> {
    let Layout {
        v6,
        l4,
        proto,
        src,
        dst,
    } = layout(ip, true).ok()?;
    let mut t = Tuple {
        v6,
        proto,
        ..Tuple::default()
    };
    t.src[..src.len()].copy_from_slice(&ip[src]);
    t.dst[..dst.len()].copy_from_slice(&ip[dst]);
    let l = ip.get(l4..)?;
    let mut flags = 0;
    match t.proto {
        TCP | UDP => {
            if l.len() < 4 {
                return None;
            }
            t.sport = u16::from_be_bytes([l[0], l[1]]);
            t.dport = u16::from_be_bytes([l[2], l[3]]);
            if t.proto == TCP {
                // A quote may stop at 8 bytes: no flags then (it is not tracked itself).
                flags = l.get(13).copied().unwrap_or(0);
            }
        }
        ICMP | ICMPV6 => {
            if l.len() < 8 {
                return None;
            }
            let id = u16::from_be_bytes([l[4], l[5]]);
            (t.sport, t.dport) = (id, id);
        }
        _ => return None,
    }
    Some((t, flags, l4))
}

pub fn classify(ip: &[u8]) -> Seen {
    match plain_v4(ip) {
        Some(seen) => seen,
        None => classify_any(ip),
    }
}

/// The common case read straight from the header: IPv4 without options, not a later
/// fragment, TCP or UDP. What `classify_any` says of such a packet, at a third of the
/// cost (checked by a property test).
#[inline]
fn plain_v4(ip: &[u8]) -> Option<Seen> {
    let h: &[u8; 24] = ip.get(..24)?.try_into().ok()?;
    let proto = h[9];
    if h[0] != 0x45 || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
        return None;
    }
    if proto != TCP && proto != UDP {
        return None;
    }
    let mut tuple = Tuple {
        proto,
        sport: u16::from_be_bytes([h[20], h[21]]),
        dport: u16::from_be_bytes([h[22], h[23]]),
        ..Tuple::default()
    };
    tuple.src[..4].copy_from_slice(&h[12..16]);
    tuple.dst[..4].copy_from_slice(&h[16..20]);
    let tcp_flags = if proto == TCP {
        ip.get(33).copied().unwrap_or(0)
    } else {
        0
    };
    Some(Seen::Flow { tuple, tcp_flags })
}

/// Any packet, the long way.
fn classify_any(ip: &[u8]) -> Seen {
    let Some((tuple, tcp_flags, l4)) = tuple_of(ip) else {
        return Seen::Untrackable;
    };
    if tuple.proto != ICMP && tuple.proto != ICMPV6 {
        return Seen::Flow { tuple, tcp_flags };
    }
    let kind = ip[l4];
    if is_echo(tuple.proto, kind) {
        return Seen::Flow {
            tuple,
            tcp_flags: 0,
        };
    }
    if is_error(tuple.proto, kind) {
        let quote = &ip[l4 + 8..];
        return match tuple_of(quote) {
            // An error about an error is about nothing we track.
            Some((quoted, _, ql4))
                if quoted.v6 == tuple.v6
                    && (!matches!(quoted.proto, ICMP | ICMPV6)
                        || is_echo(quoted.proto, quote[ql4])) =>
            {
                Seen::Related { quoted }
            }
            _ => Seen::Untrackable,
        };
    }
    Seen::Untrackable
}

#[cfg(test)]
mod tests {
    use super::super::tcp::{ACK, SYN};
    use super::*;
    use etherparse::{icmpv4, Icmpv4Type, PacketBuilder};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ip4(a: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    #[test]
    fn flows_echoes_and_errors() {
        let (pod, far) = ([10, 244, 0, 5], [198, 51, 100, 7]);
        let mut syn = Vec::new();
        PacketBuilder::ipv4(pod, far, 64)
            .tcp(40000, 443, 1, 100)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        assert_eq!(
            classify(&syn),
            Seen::Flow {
                tuple: Tuple::v4(ip4(pod), ip4(far), 40000, 443, TCP),
                tcp_flags: SYN
            }
        );
        let mut ack = Vec::new();
        PacketBuilder::ipv4(far, pod, 64)
            .tcp(443, 40000, 1, 100)
            .ack(2)
            .write(&mut ack, &[])
            .unwrap();
        assert!(matches!(classify(&ack), Seen::Flow { tcp_flags: ACK, .. }));
        let mut ping = Vec::new();
        PacketBuilder::ipv4(pod, far, 64)
            .icmpv4_echo_request(0x77, 1)
            .write(&mut ping, &[0; 8])
            .unwrap();
        assert_eq!(
            classify(&ping),
            Seen::Flow {
                tuple: Tuple::v4(ip4(pod), ip4(far), 0x77, 0x77, ICMP),
                tcp_flags: 0
            }
        );
        let mut err = Vec::new();
        PacketBuilder::ipv4([203, 0, 113, 1], pod, 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
            ))
            .write(&mut err, &syn[..28])
            .unwrap();
        assert_eq!(
            classify(&err),
            Seen::Related {
                quoted: Tuple::v4(ip4(pod), ip4(far), 40000, 443, TCP)
            }
        );
        // An error about an error is not related to anything.
        let mut err2 = Vec::new();
        PacketBuilder::ipv4(far, pod, 64)
            .icmpv4(Icmpv4Type::TimeExceeded(
                icmpv4::TimeExceededCode::TtlExceededInTransit,
            ))
            .write(&mut err2, &err[..28])
            .unwrap();
        assert_eq!(classify(&err2), Seen::Untrackable);
        assert_eq!(classify(&syn[..22]), Seen::Untrackable);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = classify(&bytes);
        }

        /// The short cut says what the long way says, on plain IPv4 headers with random
        /// fields (fragment bits, protocol, lengths, cut anywhere).
        #[test]
        fn the_plain_v4_short_cut_agrees(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..80),
            proto in proptest::sample::select(vec![6u8, 17, 1, 58]),
            frag in proptest::sample::select(vec![0u16, 0x4000, 0x2000, 0x0001, 0x1fff]),
        ) {
            bytes[0] = 0x45;
            bytes[9] = proto;
            bytes[6..8].copy_from_slice(&frag.to_be_bytes());
            if let Some(fast) = plain_v4(&bytes) {
                prop_assert_eq!(fast, classify_any(&bytes));
            }
        }
    }
}
