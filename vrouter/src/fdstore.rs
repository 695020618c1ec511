//! systemd's file descriptor store, so that fds outlive the process: vrouterd's AF_XDP
//! sockets, UMEM memfd and XDP link fds kept across a crash or a restart
//! (`FileDescriptorStoreMax=` in configs/vrouterd.service).
//!
//! The service's side: [`Notifier::store_fds`] hands fds to the service manager
//! (`FDSTORE=1`), [`Notifier::remove_fds`] has it close them (`FDSTOREREMOVE=1`), and
//! [`Inherited`] takes them back at the next start (`LISTEN_PID`, `LISTEN_FDS`,
//! `LISTEN_FDNAMES`, fds from 3 on, as `sd_listen_fds_with_names` reads them). The
//! manager's side, for a supervisor playing systemd in tests: [`recv_fds`].

// sendmsg(2) / recvmsg(2) with SCM_RIGHTS and fcntl(2) through libc: std cannot pass fds.
#![allow(unsafe_code)]

use crate::notify::Notifier;
use std::ffi::{c_int, c_void};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// The kernel's limit on fds in one SCM_RIGHTS message (SCM_MAX_FD).
pub const MAX_FDS_PER_MESSAGE: usize = 253;
/// The first inherited fd (after stdin, stdout and stderr).
pub const FIRST_FD: RawFd = 3;
/// The name systemd gives an inherited fd that has none.
const UNNAMED: &str = "unknown";
/// The environment a service manager passes fds in.
const LISTEN_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Whether `name` is a name systemd accepts in `FDNAME=` (its `fdname_is_valid`, less
/// the empty name): 1 to 255 printable ASCII characters, no ':' (the separator in
/// `LISTEN_FDNAMES`).
pub fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b':')
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl Notifier {
    /// Store `fds` in the service manager under `name` (one message, the fds as SCM_RIGHTS).
    /// The same name may be stored again: systemd appends, and hands all of them back
    /// (an open file already in the store is kept once).
    /// Ok(false) without `NOTIFY_SOCKET`. InvalidInput for a name systemd would refuse,
    /// no fds or more than [`MAX_FDS_PER_MESSAGE`].
    pub fn store_fds(&self, name: &str, fds: &[BorrowedFd<'_>]) -> io::Result<bool> {
        if !valid_name(name) {
            return Err(invalid(format!(
                "fd name {name:?}: 1-255 printable ASCII, no ':'"
            )));
        }
        if fds.is_empty() || fds.len() > MAX_FDS_PER_MESSAGE {
            return Err(invalid(format!(
                "{} fds: 1 to {MAX_FDS_PER_MESSAGE} per message",
                fds.len()
            )));
        }
        let Some(addr) = self.addr() else {
            return Ok(false);
        };
        // A connected socket of its own: sendmsg then needs no sockaddr built by hand.
        let socket = UnixDatagram::unbound()?;
        socket.connect_addr(addr)?;
        // FDPOLL=0: systemd would drop an fd on POLLHUP / POLLERR, and these are kept
        // for the next process whatever state they are in.
        let text = format!("FDSTORE=1\nFDPOLL=0\nFDNAME={name}");
        send_with_fds(&socket, text.as_bytes(), fds)?;
        Ok(true)
    }

    /// Have the service manager close every fd stored under `name`.
    pub fn remove_fds(&self, name: &str) {
        // An invalid name was never stored (and could carry a line of its own).
        if valid_name(name) {
            self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"));
        }
    }
}

/// A header for sendmsg / recvmsg over `iov`, with `control` made room for `fds` fds
/// (u64s: aligned for cmsghdr). It points at both: they must outlive its use.
fn message(iov: &mut libc::iovec, control: &mut Vec<u64>, fds: usize) -> libc::msghdr {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((fds * size_of::<c_int>()) as u32) } as usize;
    *control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    msg
}

fn send_with_fds(socket: &UnixDatagram, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<c_int> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let mut control = Vec::new();
    let msg = message(&mut iov, &mut control, raw.len());
    // SAFETY: the control buffer is aligned and CMSG_SPACE(fds) long, so CMSG_FIRSTHDR is
    // not null and CMSG_DATA has room for every fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN((raw.len() * size_of::<c_int>()) as u32) as _;
        std::ptr::copy_nonoverlapping(
            raw.as_ptr().cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            raw.len() * size_of::<c_int>(),
        );
    }
    loop {
        // SAFETY: msg points at `iov` (over `data`) and `control`, both alive for the call;
        // the fds are borrowed, so open.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            // A datagram goes whole or not at all.
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The manager's side: one datagram from the notify socket into `buf` (its length
/// returned) and the fds that came with it, now ours and close-on-exec. Blocks as the
/// socket does. A datagram longer than `buf`, or whose fds did not all arrive, is an
/// InvalidData error (the datagram is gone, what did arrive of it is closed).
pub fn recv_fds(socket: &UnixDatagram, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Vec::new();
    let mut msg = message(&mut iov, &mut control, MAX_FDS_PER_MESSAGE);
    let n = loop {
        // SAFETY: msg points at `iov` (over `buf`) and `control`, both alive and writable
        // for their stated lengths.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel wrote msg_controllen bytes of well-formed headers, which
    // CMSG_FIRSTHDR / CMSG_NXTHDR stay within; each SCM_RIGHTS fd is a new one the kernel
    // installed for this call, owned by nothing else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / size_of::<c_int>() {
                    let fd = data
                        .add(i * size_of::<c_int>())
                        .cast::<c_int>()
                        .read_unaligned();
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "notify datagram or its fds truncated",
        ));
    }
    Ok((n, fds))
}

/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` as `sd_listen_fds_with_names` reads
/// them: (name, fd) from fd 3 on. Nothing when the variables are absent or `LISTEN_PID`
/// is not `my_pid` (they were meant for another process); a name missing or empty is
/// "unknown". Err when a variable does not parse or there are more names than fds.
pub fn parse_listen(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    my_pid: u32,
) -> Result<Vec<(String, RawFd)>, String> {
    let Some(pid) = listen_pid else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?} is not a pid"))?;
    if pid != my_pid {
        return Ok(Vec::new());
    }
    let Some(count) = listen_fds else {
        return Ok(Vec::new());
    };
    let n: usize = count
        .parse()
        .ok()
        .filter(|&n: &usize| n <= (RawFd::MAX - FIRST_FD) as usize)
        .ok_or_else(|| format!("LISTEN_FDS={count:?} is not a count of fds"))?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut named: Vec<String> = names
        .map(|list| {
            list.split(':')
                .map(|s| if s.is_empty() { UNNAMED } else { s }.to_string())
                .collect()
        })
        .unwrap_or_default();
    if named.len() > n {
        return Err(format!(
            "LISTEN_FDNAMES has {} names for LISTEN_FDS={n}",
            named.len()
        ));
    }
    named.resize(n, UNNAMED.to_string());
    Ok(named.into_iter().zip(FIRST_FD..).collect())
}

/// The fds the service manager passed at start (the store's, after a restart), by name,
/// in the order they came.
#[derive(Debug, Default)]
pub struct Inherited {
    fds: Vec<(String, OwnedFd)>,
}

impl Inherited {
    /// Take the fds passed in this process's environment and remove the variables, so
    /// that neither a child nor a second call sees them. Each fd is made close-on-exec.
    /// Call once, early, before other threads read the environment. Variables that do not
    /// parse are logged and nothing is taken.
    pub fn from_env() -> Inherited {
        let var = |k: &str| std::env::var(k).ok();
        let listed = parse_listen(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        );
        for k in LISTEN_VARS {
            std::env::remove_var(k);
        }
        let listed = listed.unwrap_or_else(|e| {
            tracing::warn!("inherited fds ignored: {e}");
            Vec::new()
        });
        let mut fds = Vec::with_capacity(listed.len());
        for (name, fd) in listed {
            // SAFETY: fcntl on any number is harmless: EBADF when it is not open.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            // SAFETY: as above; fd is open.
            if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0
            {
                tracing::warn!(fd, name, "inherited fd not open: skipped");
                continue;
            }
            // SAFETY: fd is open and was passed to this process (LISTEN_PID is ours); the
            // variables are gone, so nothing else in the process will claim it.
            fds.push((name, unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        Inherited { fds }
    }

    /// The first fd stored under `name`.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let at = self.fds.iter().position(|(n, _)| n == name)?;
        Some(self.fds.remove(at).1)
    }

    /// Every fd stored under `name`, in order.
    pub fn take_all(&mut self, name: &str) -> Vec<OwnedFd> {
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.fds)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.fds = rest;
        taken.into_iter().map(|(_, fd)| fd).collect()
    }

    /// The names of the fds not taken yet, each once, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (n, _) in &self.fds {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Whatever nobody took (to close, or to store again).
    pub fn into_rest(self) -> Vec<(String, OwnedFd)> {
        self.fds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn listen_variables_parse_as_systemd_reads_them() {
        let me = 4242;
        let named = |v: &[(&str, RawFd)]| -> Vec<(String, RawFd)> {
            v.iter().map(|&(n, fd)| (n.to_string(), fd)).collect()
        };
        assert_eq!(
            parse_listen(None, None, None, me),
            Ok(vec![]),
            "no variables"
        );
        assert_eq!(
            parse_listen(Some("4242"), Some("3"), Some("xsk:xsk:umem"), me),
            Ok(named(&[("xsk", 3), ("xsk", 4), ("umem", 5)]))
        );
        assert_eq!(
            parse_listen(Some("17"), Some("3"), Some("a:b:c"), me),
            Ok(vec![]),
            "meant for another process"
        );
        assert_eq!(
            parse_listen(Some("4242"), Some("3"), Some("a"), me),
            Ok(named(&[("a", 3), ("unknown", 4), ("unknown", 5)])),
            "fewer names than fds"
        );
        assert_eq!(
            parse_listen(Some("4242"), Some("2"), None, me),
            Ok(named(&[("unknown", 3), ("unknown", 4)])),
            "no names"
        );
        assert_eq!(
            parse_listen(Some("4242"), Some("2"), Some(":b"), me),
            Ok(named(&[("unknown", 3), ("b", 4)]))
        );
        assert_eq!(
            parse_listen(Some("4242"), Some("0"), Some(""), me),
            Ok(vec![])
        );
        assert_eq!(parse_listen(Some("4242"), None, None, me), Ok(vec![]));
        for bad in ["", "x", "-1", "2147483647"] {
            assert!(
                parse_listen(Some("4242"), Some(bad), None, me).is_err(),
                "LISTEN_FDS={bad:?}"
            );
        }
        assert!(parse_listen(Some("me"), Some("1"), None, me).is_err());
        assert!(
            parse_listen(Some("4242"), Some("1"), Some("a:b"), me).is_err(),
            "more names than fds"
        );
    }

    #[test]
    fn names_are_checked_as_systemd_does() {
        for ok in ["xsk-0", "umem", "a b", &"x".repeat(255)] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in ["", "a:b", "a\nREADY=1", "tab\t", "é", &"x".repeat(256)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    /// systemd's notify socket (in a directory that goes when dropped) and a notifier
    /// sending to it.
    fn systemd() -> (UnixDatagram, Notifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_path(&path, None).unwrap();
        (socket, notifier, dir)
    }

    #[test]
    fn stored_fds_reach_the_manager_as_the_same_open_files() {
        let (socket, notifier, _dir) = systemd();
        let (mut reader, writer) = std::io::pipe().unwrap();
        assert!(notifier.store_fds("pipe-w", &[writer.as_fd()]).unwrap());
        drop(writer);
        let mut buf = [0u8; 4096];
        let (n, fds) = recv_fds(&socket, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"FDSTORE=1\nFDPOLL=0\nFDNAME=pipe-w");
        assert_eq!(fds.len(), 1);
        // SAFETY: F_GETFD reads the flags of an fd the test owns.
        let flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
        assert_eq!(
            flags & libc::FD_CLOEXEC,
            libc::FD_CLOEXEC,
            "received close-on-exec"
        );
        // The manager's copy is the pipe's write end: what goes in comes out of ours.
        let mut w = std::fs::File::from(fds.into_iter().next().unwrap());
        w.write_all(b"kept").unwrap();
        drop(w);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(
            got, "kept",
            "EOF once the manager's copy closed: no other left"
        );

        // Several fds in one message, in order; then the removal.
        let (a, b) = std::io::pipe().unwrap();
        assert!(notifier.store_fds("xsk", &[a.as_fd(), b.as_fd()]).unwrap());
        let (_, fds) = recv_fds(&socket, &mut buf).unwrap();
        assert_eq!(fds.len(), 2);
        notifier.remove_fds("xsk");
        let (n, fds) = recv_fds(&socket, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"FDSTOREREMOVE=1\nFDNAME=xsk");
        assert!(fds.is_empty());
    }

    #[test]
    fn bad_requests_are_refused_before_sending() {
        let (_socket, notifier, _dir) = systemd();
        let (r, _w) = std::io::pipe().unwrap();
        for name in ["", "a:b", "x\nREADY=1"] {
            let e = notifier.store_fds(name, &[r.as_fd()]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
        let e = notifier.store_fds("none", &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let many = vec![r.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        let e = notifier.store_fds("many", &many).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Not started by a service manager: nothing to store into.
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            let none = Notifier::from_env().unwrap();
            assert!(!none.store_fds("pipe", &[r.as_fd()]).unwrap());
        }
    }

    #[test]
    fn inherited_fds_are_taken_by_name() {
        let fd = || OwnedFd::from(std::io::pipe().unwrap().0);
        let mut got = Inherited {
            fds: ["xsk", "umem", "xsk", "link"]
                .iter()
                .map(|n| (n.to_string(), fd()))
                .collect(),
        };
        let (first, second) = (got.fds[0].1.as_raw_fd(), got.fds[2].1.as_raw_fd());
        assert_eq!(got.names(), ["xsk", "umem", "link"]);
        assert!(got.take("nothing").is_none());
        let xsks: Vec<RawFd> = got.take_all("xsk").iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(xsks, [first, second], "in order");
        assert!(got.take("umem").is_some());
        assert!(got.take("umem").is_none());
        assert!(!got.is_empty());
        let rest = got.into_rest();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, "link");
    }
}
