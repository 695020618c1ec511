//! Address and port translation in place, for NAT: one side (source or destination) of
//! an IPv4 or IPv6 packet rewritten — address, and TCP / UDP port or ICMP echo
//! identifier — with every checksum that covers them patched incrementally (RFC 1624:
//! HC' = ~(~HC + ~m + m') per changed 16-bit word): the IPv4 header's, TCP's and UDP's
//! (pseudo-header included), ICMPv6's (pseudo-header) and ICMP's (identifier only).
//!
//! An ICMP error is about a packet it quotes: translating its destination (the error
//! on its way back to the host that sent the quoted packet) also rewrites the quoted
//! packet's source — address, port, the quoted IPv4 header's checksum, the quoted
//! TCP / UDP checksum when the quote holds it — and the error's own checksum for all of
//! it. So path MTU discovery works through the translation.
//!
//! Pure functions over byte slices starting at the IP header: no allocation, no panic
//! on short or odd input (an error says why).

use crate::rewrite::fold;
use crate::wire::ip::protocol::{ICMP, ICMPV6, TCP, UDP};
use crate::wire::{ipv4, ipv6};

/// Which side of the packet to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// Why a packet was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// Shorter than its headers say.
    Truncated,
    /// A fragment after the first: no ports to translate.
    Fragment,
    /// A protocol (or IPv6 extension header, or ICMP type) we do not translate.
    Unsupported,
    /// The new address is not of the packet's family.
    Family,
}

/// What kind of checksum a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ck {
    Plain,
    /// UDP's: never written as zero (a computed zero goes as 0xffff); over IPv4, zero
    /// means "no checksum" and stays zero.
    Udp {
        v4: bool,
    },
}

impl Ck {
    fn of(udp: bool, v6: bool) -> Ck {
        if udp {
            Ck::Udp { v4: !v6 }
        } else {
            Ck::Plain
        }
    }
}

/// Patch the checksum at `at` for `old` → `new` (equal lengths, even, word-aligned
/// within what the checksum covers).
fn adjust(buf: &mut [u8], at: usize, old: &[u8], new: &[u8], kind: Ck) {
    let hc = u16::from_be_bytes([buf[at], buf[at + 1]]);
    if kind == (Ck::Udp { v4: true }) && hc == 0 {
        // An IPv4 UDP datagram without a checksum stays without one.
        return;
    }
    let mut sum = u32::from(!hc);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    let mut out = !fold(sum);
    if matches!(kind, Ck::Udp { .. }) && out == 0 {
        out = 0xffff;
    }
    buf[at..at + 2].copy_from_slice(&out.to_be_bytes());
}

/// Where a packet's pieces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub v6: bool,
    /// Offset of the transport header.
    pub l4: usize,
    pub proto: u8,
    /// The address field of each side.
    pub src: std::ops::Range<usize>,
    pub dst: std::ops::Range<usize>,
}

/// The layout of the IP packet at `ip` (TCP, UDP, ICMP or ICMPv6 for IPv6; no
/// extension headers), or why it has none. `quoted`: a packet inside an ICMP error,
/// whose length field says what was sent, not what is there.
pub fn layout(ip: &[u8], quoted: bool) -> Result<Layout, NatError> {
    let version = ip.first().ok_or(NatError::Truncated)? >> 4;
    match version {
        4 => {
            if ip.len() < ipv4::HEADER_LEN {
                return Err(NatError::Truncated);
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < ipv4::HEADER_LEN || ip.len() < ihl {
                return Err(NatError::Truncated);
            }
            let flg_off = u16::from_be_bytes([ip[6], ip[7]]);
            if flg_off & ipv4::FRAG_OFFSET != 0 {
                return Err(NatError::Fragment);
            }
            // A quoted packet's length field says what was sent, not what was quoted.
            if !quoted && usize::from(u16::from_be_bytes([ip[2], ip[3]])) > ip.len() {
                return Err(NatError::Truncated);
            }
            Ok(Layout {
                v6: false,
                l4: ihl,
                proto: ip[ipv4::field::PROTOCOL],
                src: ipv4::field::SRC_ADDR,
                dst: ipv4::field::DST_ADDR,
            })
        }
        6 => {
            if ip.len() < ipv6::HEADER_LEN {
                return Err(NatError::Truncated);
            }
            let proto = ip[6];
            if ![TCP, UDP, ICMPV6].contains(&proto) {
                return Err(NatError::Unsupported);
            }
            Ok(Layout {
                v6: true,
                l4: ipv6::HEADER_LEN,
                proto,
                src: 8..24,
                dst: 24..40,
            })
        }
        _ => Err(NatError::Unsupported),
    }
}

/// The checksum field of a transport header (relative to it), and whether it is UDP's
/// (zero: none, for IPv4) — for ICMPv4, whether it covers the pseudo-header (no).
fn l4_checksum(proto: u8) -> Option<(usize, bool, bool)> {
    match proto {
        TCP => Some((16, false, true)),
        UDP => Some((6, true, true)),
        ICMPV6 => Some((2, false, true)),
        ICMP => Some((2, false, false)),
        _ => None,
    }
}

/// An ICMP (or ICMPv6) echo request or reply, by protocol and type.
pub fn is_echo(proto: u8, kind: u8) -> bool {
    matches!((proto, kind), (ICMP, 0 | 8) | (ICMPV6, 128 | 129))
}

/// An ICMP (or ICMPv6) error that quotes the packet it is about, by protocol and type.
pub fn is_error(proto: u8, kind: u8) -> bool {
    matches!((proto, kind), (ICMP, 3 | 11 | 12) | (ICMPV6, 1..=4))
}

/// Rewrite `side` of the packet at `ip` to `addr` (4 or 16 bytes) and `port` (the echo
/// identifier for ICMP echo). For an ICMP error, rewriting its destination rewrites the
/// quoted packet's source too (see the module's docs); its source is left alone
/// (a router's address).
pub fn translate(ip: &mut [u8], side: Side, addr: &[u8], port: u16) -> Result<(), NatError> {
    let l = layout(ip, false)?;
    if addr.len() != if l.v6 { 16 } else { 4 } {
        return Err(NatError::Family);
    }
    let (field, port_at) = match side {
        Side::Source => (l.src.clone(), 0),
        Side::Destination => (l.dst.clone(), 2),
    };
    let l4 = l.l4;
    let (ck, udp, pseudo) = l4_checksum(l.proto).ok_or(NatError::Unsupported)?;
    if ip.len() < l4 + 8 {
        return Err(NatError::Truncated);
    }
    let old_addr: [u8; 16] = {
        let mut a = [0u8; 16];
        a[..field.len()].copy_from_slice(&ip[field.clone()]);
        a
    };
    let old_addr = &old_addr[..field.len()];
    let is_icmp = l.proto == ICMP || l.proto == ICMPV6;
    let kind = ip[l4];
    if is_icmp && is_error(l.proto, kind) {
        if side != Side::Destination {
            return Err(NatError::Unsupported);
        }
        translate_quoted(ip, &l, addr, port)?;
    } else if is_icmp && is_echo(l.proto, kind) {
        // The identifier (bytes 4..6) stands for the port, either way.
        let old = [ip[l4 + 4], ip[l4 + 5]];
        let new = port.to_be_bytes();
        adjust(ip, l4 + ck, &old, &new, Ck::Plain);
        ip[l4 + 4..l4 + 6].copy_from_slice(&new);
    } else if is_icmp {
        return Err(NatError::Unsupported);
    } else {
        let at = l4 + port_at;
        let old = [ip[at], ip[at + 1]];
        let new = port.to_be_bytes();
        if ip.len() < l4 + ck + 2 {
            return Err(NatError::Truncated);
        }
        adjust(ip, l4 + ck, &old, &new, Ck::of(udp, l.v6));
        ip[at..at + 2].copy_from_slice(&new);
    }
    // The address: the pseudo-header's share of the transport checksum, then IPv4's own.
    if pseudo {
        adjust(ip, l4 + ck, old_addr, addr, Ck::of(udp, l.v6));
    }
    if !l.v6 {
        adjust(ip, ipv4::field::CHECKSUM.start, old_addr, addr, Ck::Plain);
    }
    ip[field].copy_from_slice(addr);
    Ok(())
}

/// Write `new` at `at`, patching each checksum in `sums` (offset, UDP's) and the ICMP
/// error's at `outer_ck`, which covers the quote.
fn patch(
    ip: &mut [u8],
    at: std::ops::Range<usize>,
    new: &[u8],
    sums: &[(usize, Ck)],
    outer_ck: usize,
) {
    let mut old = [0u8; 16];
    let old = &mut old[..at.len()];
    old.copy_from_slice(&ip[at.clone()]);
    for &(s, kind) in sums {
        adjust(ip, s, old, new, kind);
    }
    adjust(ip, outer_ck, old, new, Ck::Plain);
    ip[at].copy_from_slice(new);
}

/// The quoted packet of an ICMP error: its source becomes `addr` / `port`, and the
/// error's checksum follows every changed word (the quoted checksums' changes included).
fn translate_quoted(ip: &mut [u8], outer: &Layout, addr: &[u8], port: u16) -> Result<(), NatError> {
    let q = outer.l4 + 8;
    let ck = outer.l4 + 2;
    let inner = layout(&ip[q..], true)?;
    if inner.v6 != outer.v6 {
        return Err(NatError::Family);
    }
    let il4 = q + inner.l4;
    let src = q + inner.src.start..q + inner.src.end;
    if ip.len() < il4 + 4 {
        return Err(NatError::Truncated);
    }
    let (ick, udp, pseudo) = l4_checksum(inner.proto).ok_or(NatError::Unsupported)?;
    let port_field = match inner.proto {
        TCP | UDP => il4..il4 + 2,
        _ if is_echo(inner.proto, ip[il4]) && ip.len() >= il4 + 6 => il4 + 4..il4 + 6,
        _ => return Err(NatError::Unsupported),
    };
    // The quoted transport checksum, when the quote holds it (a router quotes as little
    // as 8 bytes of it).
    let inner_ck = (il4 + ick + 2 <= ip.len()).then_some((il4 + ick, Ck::of(udp, inner.v6)));
    let inner_ck_before = inner_ck.map(|(s, _)| [ip[s], ip[s + 1]]);
    if !inner.v6 {
        // The quoted IPv4 header's checksum, whose own change the error's follows.
        let ihc = q + ipv4::field::CHECKSUM.start;
        let before = [ip[ihc], ip[ihc + 1]];
        let mut old = [0u8; 4];
        old.copy_from_slice(&ip[src.clone()]);
        adjust(ip, ihc, &old, addr, Ck::Plain);
        let after = [ip[ihc], ip[ihc + 1]];
        adjust(ip, ck, &before, &after, Ck::Plain);
    }
    let addr_sums: Vec<(usize, Ck)> = inner_ck.filter(|_| pseudo).into_iter().collect();
    patch(ip, src, addr, &addr_sums, ck);
    let port_sums: Vec<(usize, Ck)> = inner_ck.into_iter().collect();
    patch(ip, port_field, &port.to_be_bytes(), &port_sums, ck);
    if let (Some((s, _)), Some(before)) = (inner_ck, inner_ck_before) {
        let after = [ip[s], ip[s + 1]];
        adjust(ip, ck, &before, &after, Ck::Plain);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
