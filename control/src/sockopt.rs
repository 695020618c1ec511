//! `setsockopt` for the options no binding in the tree has (TCP_MD5SIG, IP_MINTTL,
//! IPV6_MINHOPCOUNT; docs/decisions.md): the crate's one `unsafe` block.

use std::io;
use std::os::fd::AsRawFd;

/// Set option `name` at `level` on `socket` to `value`, which must be the plain
/// `repr(C)` value the kernel expects for it (an `int`, `struct tcp_md5sig`), fully
/// initialised. Safe with any descriptor: a wrong one fails with an errno.
#[allow(unsafe_code)]
pub(crate) fn set<T: Copy>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is borrowed for the whole call and the length passed is its size;
    // the kernel only reads it. The caller passes the option's own type (see above).
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
