//! TTL security for BGP sessions (GTSM, RFC 5082): we send with TTL (hop limit) 255 and
//! the kernel drops the peer's segments that arrive with less than 255 - hops
//! (`IP_MINTTL`, `IPV6_MINHOPCOUNT`), so a packet forged from further away than the
//! peer can be never reaches the session. Set on an outgoing socket before it connects
//! and on a connection accepted from the peer.
//!
//! socket2 binds `IP_TTL` but not the minimum: both are set through `sockopt::set`.

use std::io;
use std::os::fd::AsRawFd;

/// `IP_MINTTL` (linux/in.h) and `IPV6_MINHOPCOUNT` (linux/in6.h).
const IP_MINTTL: libc::c_int = 21;
const IPV6_MINHOPCOUNT: libc::c_int = 73;

/// Send with TTL 255 and accept only TTL ≥ 255 - `hops` (1 for a directly connected
/// peer). `v6`: the peer is an IPv6 address (an IPv4 peer on a dual-stack socket uses
/// the IPv4 options, as the kernel applies them to mapped traffic).
pub fn set(socket: &impl AsRawFd, v6: bool, hops: u8) -> io::Result<()> {
    if hops == 0 || hops == 255 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ttl_security {hops}: hops must be 1 to 254"),
        ));
    }
    let min = 255 - libc::c_int::from(hops);
    let (level, ttl, minimum) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            IPV6_MINHOPCOUNT,
        )
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL, IP_MINTTL)
    };
    setsockopt_int(socket, level, ttl, 255)?;
    setsockopt_int(socket, level, minimum, min)
        .map_err(|e| io::Error::new(e.kind(), format!("TTL security (minimum {min}): {e}")))
}

/// A listener that will take a GTSM peer's connection: what it sends (the SYN-ACK, and
/// what accepted connections inherit) goes out with TTL 255, or the peer, which accepts
/// only that, never completes its connection. The minimum is per peer: set on the
/// accepted connection (`set`). Harmless for the other peers.
pub fn listener_sends_255(listener: &impl AsRawFd, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt_int(listener, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
    }
    // A dual-stack listener carries IPv4 peers too.
    setsockopt_int(listener, libc::IPPROTO_IP, libc::IP_TTL, 255).or_else(|e| {
        if v6 {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// An `int` option.
fn setsockopt_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    crate::sockopt::set(socket, level, name, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TTL / hop limit read back (std and socket2); the minimum is proven by the
    /// next test (the kernel drops what is below it).
    #[test]
    fn the_options_take_on_both_families_and_hops_are_bounded() {
        let s4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set(&s4, false, 1).unwrap();
        assert_eq!(s4.ttl().unwrap(), 255);
        let s6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        set(&s6, true, 2).unwrap();
        assert_eq!(socket2::SockRef::from(&s6).unicast_hops_v6().unwrap(), 255);
        assert!(set(&s4, false, 0).is_err());
        assert!(set(&s4, false, 255).is_err());
    }

    /// A peer one hop further than allowed is never heard: its segments arrive below
    /// the minimum (loopback keeps TTL 255 - 0 hops; a sender with TTL 64 is "191 hops"
    /// away).
    #[test]
    fn a_sender_from_too_far_is_not_heard() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut near = std::net::TcpStream::connect(addr).unwrap();
        let (mut got, _) = l.accept().unwrap();
        set(&got, false, 1).unwrap();
        // TTL 255 (as a GTSM peer sends): heard.
        near.set_ttl(255).unwrap();
        near.write_all(b"open").unwrap();
        let mut buf = [0u8; 4];
        got.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        got.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"open");
        // TTL 64: dropped by the kernel, nothing arrives.
        near.set_ttl(64).unwrap();
        near.write_all(b"fake").unwrap();
        got.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        assert!(
            got.read(&mut buf).is_err(),
            "a TTL-64 segment was delivered"
        );
    }
}
