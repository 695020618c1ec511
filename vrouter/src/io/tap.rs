//! A tap endpoint: the pod (a VM, or a namespace the tap was moved into) is the other
//! side of the tap device; we read and write whole Ethernet frames on its fd. Reads are
//! batched (up to a burst until EAGAIN) and the fd is non-blocking, so an idle or slow
//! tap never stalls a worker; readiness for idle sleeps comes through mio.

// A tap device is open(2) + ioctl(TUNSETIFF) + read/write on its fd: libc FFI.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct TapDevice {
    fd: OwnedFd,
    name: String,
}

impl TapDevice {
    /// Attach to tap `name` (created if it does not exist; a persistent tap made with
    /// `ip tuntap add NAME mode tap` is attached to). The fd is non-blocking.
    pub fn open(name: &str) -> io::Result<TapDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tap name {name:?} must be 1..{} bytes", libc::IFNAMSIZ),
            ));
        }
        let path = CString::new("/dev/net/tun").unwrap();
        // SAFETY: a valid NUL-terminated path; the returned fd is checked.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")));
        }
        // SAFETY: `raw` is a freshly opened fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The kernel's ifreq, TUNSETIFF and the flags from libc (not written out here).
        let mut req = libc::ifreq {
            ifr_name: [0; libc::IFNAMSIZ],
            ifr_ifru: libc::__c_anonymous_ifr_ifru {
                ifru_flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
            },
        };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads an ifreq, which `req` is (libc's own struct).
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        Ok(TapDevice {
            fd,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One frame into `buf`; None when nothing is waiting.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        (n > 0).then_some(n as usize)
    }

    /// Send one frame; false when the tap's queue is full or the tap is down.
    #[inline]
    pub fn write(&self, frame: &[u8]) -> bool {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        n == frame.len() as isize
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
