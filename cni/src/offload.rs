//! Offloads off on a veth end, as AF_XDP needs: a frame that leaves a veth with its
//! checksum left to "hardware" (CHECKSUM_PARTIAL) reaches vrouterd's socket with the
//! checksum unfinished, and segmentation offload makes frames larger than the MTU.
//! The kernel's interface for this is the SIOCETHTOOL ioctl (or ethtool's genetlink
//! family); the ioctl is four calls and no dependency.

// The ioctl is the kernel's interface: each call says why its pointers are valid.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq`: the name, then a union whose pointer member we use (40 bytes).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Transmit checksumming off (required), and TSO / GSO / GRO off where the driver has
/// them, on `ifname` in the calling thread's network namespace.
pub fn disable(ifname: &str) -> io::Result<()> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: socket(2) with constant arguments; the fd is checked, then owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let set = |cmd: u32| -> io::Result<()> {
        let mut value = EthtoolValue { cmd, data: 0 };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        // SAFETY: `req` is a properly laid out ifreq whose data pointer points at
        // `value`; both live on this stack frame for the whole call.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    set(ETHTOOL_STXCSUM)?;
    for cmd in [ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO] {
        let _ = set(cmd);
    }
    Ok(())
}
