//! TCP MD5 signatures for BGP sessions (RFC 2385): once a peer's key is set on a socket,
//! the kernel signs every segment to that peer and drops unsigned or wrongly signed ones
//! from it. Set on the listening socket (one key per peer address) and on an outgoing
//! socket before it connects.
//!
//! socket2, nix and rustix have no binding for TCP_MD5SIG (docs/decisions.md): the
//! structure is built in safe code and set through `sockopt::set`.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// `TCP_MD5SIG` (linux/tcp.h).
const TCP_MD5SIG: libc::c_int = 14;
const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` (linux/tcp.h): a `sockaddr_storage`, flags, prefix length, key
/// length, interface index, key.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Md5Sig {
    addr: [u8; 128],
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: u32,
    key: [u8; MAX_KEY_LEN],
}

/// Set (or, with an empty key, clear) the MD5 key for `peer` on `socket`. A socket of
/// the IPv6 family (a dual-stack listener) names an IPv4 peer in its mapped form.
pub fn set_key(socket: &impl AsRawFd, socket_v6: bool, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MAX_KEY_LEN} bytes"),
        ));
    }
    let peer = match peer {
        IpAddr::V4(a) if socket_v6 => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    };
    let mut sig = Md5Sig {
        addr: [0; 128],
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // sockaddr_in / sockaddr_in6: family (host order), port 0, then the address.
    match peer {
        IpAddr::V4(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            sig.addr[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            sig.addr[8..24].copy_from_slice(&a.octets());
        }
    }
    crate::sockopt::set(socket, libc::IPPROTO_TCP, TCP_MD5SIG, &sig)
        .map_err(|e| io::Error::new(e.kind(), format!("TCP MD5 key for {peer}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structure_has_the_kernels_size() {
        // 128 (sockaddr_storage) + 1 + 1 + 2 + 4 + 80.
        assert_eq!(std::mem::size_of::<Md5Sig>(), 216);
    }

    #[test]
    fn keys_are_accepted_and_bounded() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_key(&s, false, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        set_key(&s, false, "127.0.0.2".parse().unwrap(), b"").unwrap();
        assert!(set_key(&s, false, "127.0.0.2".parse().unwrap(), &[b'k'; 81]).is_err());
    }
}
