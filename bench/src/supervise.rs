//! A tiny service manager playing systemd for tests and benchmarks: a notify socket
//! (`READY=1`, and the file descriptor store's `FDSTORE=1` / `FDSTOREREMOVE=1`) and the
//! start of a service with the fds it stored, as systemd starts a unit with
//! `FileDescriptorStoreMax=`: fds 3, 4, ... with `LISTEN_FDS`, `LISTEN_FDNAMES` and
//! `LISTEN_PID`. The service's side is `vrouter::fdstore`.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let store = bench::supervise::FdStore::bind(std::path::Path::new("/tmp/n1.notify"))?;
//! let child = store
//!     .command(&["ip", "netns", "exec", "ns1"], "/usr/local/bin/vrouterd")?
//!     .arg("--config")
//!     .arg("/tmp/n1.toml")
//!     .spawn()?;
//! // ... the child dies; the next one started by `store.command` gets its stored fds.
//! # drop(child);
//! # Ok(())
//! # }
//! ```

// fcntl(2), dup2(2) after fork and kcmp(2) through libc: std cannot place fds in a child.
#![allow(unsafe_code)]

use std::ffi::{c_int, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vrouter::fdstore::{recv_fds, valid_name, FIRST_FD};

/// At most this many fds stored, as `FileDescriptorStoreMax=` in configs/vrouterd.service:
/// more are closed (systemd: "Hit fd store limit").
pub const MAX_FDS: usize = 512;
/// Stored fds are duplicated at or above this in the parent before a start, so that the
/// child's dup2 onto 3, 4, ... never overwrites one still to be placed.
const HIGH_FD: usize = 64;
/// Sets `LISTEN_PID` to the pid of the program it execs (the same process): whatever
/// runs first (`ip netns exec`) cannot know it.
const WRAPPER: &str = r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#;
/// The supervisor's own marker datagram (see [`FdStore::sync`]).
const SYNC: &str = "X_SUPERVISE_SYNC=1";
/// How long [`FdStore::sync`] waits for the receiver.
const SYNC_WITHIN: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// In the order stored; one name may repeat.
    fds: Vec<(String, OwnedFd)>,
    ready: u64,
    syncs_sent: u64,
    syncs_seen: u64,
    stop: bool,
    /// Why the receiver stopped, when it did on its own.
    failed: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the store as consistent as before it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One unit's notify socket and file descriptor store. Stored fds live as long as the
/// store, across any number of the service's processes, until removed, cleared or
/// dropped.
pub struct FdStore {
    path: PathBuf,
    socket: UnixDatagram,
    shared: Arc<Shared>,
    receiver: Option<JoinHandle<()>>,
}

impl FdStore {
    /// Bind the notify socket at `path` (a stale one there is replaced) and start its
    /// receiver thread.
    pub fn bind(path: &Path) -> io::Result<FdStore> {
        let path = std::path::absolute(path)?;
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)?;
        let shared = Arc::new(Shared::default());
        let (rx, sh) = (socket.try_clone()?, shared.clone());
        let receiver = std::thread::Builder::new()
            .name("fdstore".into())
            .spawn(move || receive(&rx, &sh))?;
        Ok(FdStore {
            path,
            socket,
            shared,
            receiver: Some(receiver),
        })
    }

    /// The notify socket (`NOTIFY_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Until every datagram sent before this call has been handled (a service that
    /// exited has sent all it will). Err when the receiver stopped or hangs.
    pub fn sync(&self) -> io::Result<()> {
        let want = {
            let mut st = self.shared.lock();
            st.syncs_sent += 1;
            st.syncs_sent
        };
        // Not under the lock: with the queue full, the send waits for the receiver.
        UnixDatagram::unbound()?.send_to(SYNC.as_bytes(), &self.path)?;
        let end = Instant::now() + SYNC_WITHIN;
        let mut st = self.shared.lock();
        while st.syncs_seen < want {
            if let Some(e) = &st.failed {
                return Err(io::Error::other(format!("fd store receiver: {e}")));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::other("fd store receiver did not answer"));
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// `prefix` then `program` (add its arguments with `.arg`), started as systemd
    /// would: `NOTIFY_SOCKET`, and with fds stored, these as 3, 4, ... in the order
    /// stored, with `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID`. `prefix` (e.g.
    /// `ip netns exec NS`) must exec what follows it: `LISTEN_PID` is set by a shell
    /// between the two that execs `program` (so it is `program`'s pid). The store is
    /// synced first; the fds go to the child of the Command's next spawn (the Command
    /// holds copies until dropped).
    pub fn command<S: AsRef<OsStr>>(
        &self,
        prefix: &[S],
        program: impl AsRef<OsStr>,
    ) -> io::Result<Command> {
        self.sync()?;
        let (names, fds) = {
            let st = self.shared.lock();
            let floor = HIGH_FD.max(FIRST_FD as usize + st.fds.len());
            let mut fds = Vec::with_capacity(st.fds.len());
            for (_, fd) in &st.fds {
                fds.push(dup_at_least(fd, floor)?);
            }
            let names: Vec<&str> = st.fds.iter().map(|(n, _)| n.as_str()).collect();
            (names.join(":"), fds)
        };
        let mut argv: Vec<&OsStr> = prefix.iter().map(AsRef::as_ref).collect();
        if !fds.is_empty() {
            argv.extend(["sh", "-c", WRAPPER].map(OsStr::new));
        }
        argv.push(program.as_ref());
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).env("NOTIFY_SOCKET", &self.path);
        for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            cmd.env_remove(k);
        }
        if fds.is_empty() {
            return Ok(cmd);
        }
        cmd.env("LISTEN_FDS", fds.len().to_string())
            .env("LISTEN_FDNAMES", names);
        let child_fd = |i: usize| FIRST_FD + i as c_int;
        // SAFETY: the closure only calls dup2 (async-signal-safe) from fds it owns (open
        // until the Command drops) at or above 3 + n onto 3..3 + n: no source is ever a
        // target, and dup2 clears close-on-exec on the copy.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in fds.iter().enumerate() {
                    if libc::dup2(fd.as_raw_fd(), child_fd(i)) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// The stored names, each once, in the order first stored.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (n, _) in &self.shared.lock().fds {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// How many fds are stored.
    pub fn len(&self) -> usize {
        self.shared.lock().fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `READY=1` came (from every process of the unit).
    pub fn ready(&self) -> u64 {
        self.shared.lock().ready
    }

    /// Close every stored fd: the unit stopped for good.
    pub fn clear(&self) {
        self.shared.lock().fds.clear();
    }
}

impl Drop for FdStore {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        // Wakes the receiver blocked in recvmsg (it then reads 0 bytes).
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
        self.clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A close-on-exec copy of `fd` numbered `floor` or more.
fn dup_at_least(fd: &OwnedFd, floor: usize) -> io::Result<OwnedFd> {
    let floor = c_int::try_from(floor).map_err(io::Error::other)?;
    // SAFETY: F_DUPFD_CLOEXEC on an open fd; no memory is passed.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Whether two fds are the same open file (systemd's `same_fd`, by kcmp(2)): a file
/// stored twice is kept once.
fn same_file(a: &OwnedFd, b: &OwnedFd) -> bool {
    const KCMP_FILE: c_int = 0;
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: kcmp compares two of our own fds; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            KCMP_FILE,
            a.as_raw_fd(),
            b.as_raw_fd(),
        )
    };
    r == 0
}

fn receive(socket: &UnixDatagram, shared: &Shared) {
    // systemd's notify buffer is as large (NOTIFY_BUFFER_MAX).
    let mut buf = vec![0u8; 4096];
    loop {
        let got = recv_fds(socket, &mut buf);
        let mut st = shared.lock();
        if st.stop {
            return;
        }
        match got {
            Ok((n, fds)) => handle(&mut st, &String::from_utf8_lossy(&buf[..n]), fds),
            // Only that datagram is lost (systemd ignores it too).
            Err(e) if e.kind() == io::ErrorKind::InvalidData => eprintln!("fd store: {e}"),
            Err(e) => {
                st.failed = Some(e.to_string());
                shared.changed.notify_all();
                return;
            }
        }
        drop(st);
        shared.changed.notify_all();
    }
}

/// One notify datagram as systemd handles it. The fds that came with it and are not
/// kept are closed when `fds` drops.
fn handle(st: &mut State, text: &str, fds: Vec<OwnedFd>) {
    let (mut store, mut remove, mut name) = (false, false, None);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("FDSTORE", "1")) => store = true,
            Some(("FDSTOREREMOVE", "1")) => remove = true,
            Some(("FDNAME", n)) if name.is_none() => name = Some(n),
            Some(("READY", "1")) => st.ready += 1,
            _ if line == SYNC => st.syncs_seen += 1,
            _ => {}
        }
    }
    let name = name.filter(|n| valid_name(n));
    if remove {
        if let Some(n) = name {
            st.fds.retain(|(k, _)| k != n);
        }
    }
    if !store {
        return;
    }
    for fd in fds {
        if st.fds.iter().any(|(_, kept)| same_file(kept, &fd)) {
            continue;
        }
        if st.fds.len() >= MAX_FDS {
            eprintln!("fd store: full ({MAX_FDS} fds), one closed");
            continue;
        }
        // systemd's name for an fd stored without a valid one.
        st.fds.push((name.unwrap_or("stored").to_string(), fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use vrouter::notify::Notifier;

    fn scratch(what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("supervise-{what}-{}", std::process::id()))
    }

    #[test]
    fn a_started_child_gets_the_stored_fds_as_systemd_passes_them() {
        let path = scratch("start");
        let store = FdStore::bind(&path).unwrap();
        let service = Notifier::to_path(&path, None).unwrap();
        // Two pipes under one name (in order), a third under another.
        let pipes: Vec<_> = (0..3).map(|_| std::io::pipe().unwrap()).collect();
        let reads =
            |i: std::ops::Range<usize>| pipes[i].iter().map(|(r, _)| r.as_fd()).collect::<Vec<_>>();
        assert!(service.store_fds("in", &reads(0..2)).unwrap());
        assert!(service.store_fds("more", &reads(2..3)).unwrap());
        let mut writers = Vec::new();
        for (i, (r, mut w)) in pipes.into_iter().enumerate() {
            drop(r); // the store's copy is the only one left
            writeln!(w, "line{i}").unwrap();
            writers.push(w);
        }
        store.sync().unwrap();
        assert_eq!(store.names(), ["in", "more"]);
        assert_eq!(store.len(), 3);
        let script = r#"[ "$LISTEN_PID" = "$$" ] || { echo "LISTEN_PID=$LISTEN_PID, pid $$"; exit 1; }
            read -r a <&3; read -r b <&4; read -r c <&5
            echo "$LISTEN_FDS $LISTEN_FDNAMES $a $b $c $NOTIFY_SOCKET""#;
        // `env` stands in for `ip netns exec NS`: something that execs what follows.
        let out = store
            .command(&["env"], "sh")
            .unwrap()
            .args(["-c", script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.trim(),
            format!("3 in:in:more line0 line1 line2 {}", path.display())
        );
        // The store keeps them for the next process.
        assert_eq!(store.len(), 3);
        store.clear();
        assert!(store.is_empty());
        let out = store
            .command(&[] as &[&str], "sh")
            .unwrap()
            .args(["-c", r#"echo "[${LISTEN_FDS-none}]""#])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[none]");
    }

    #[test]
    fn removal_closes_and_duplicates_are_kept_once() {
        let path = scratch("remove");
        let store = FdStore::bind(&path).unwrap();
        let service = Notifier::to_path(&path, None).unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        assert!(service.store_fds("w", &[w.as_fd()]).unwrap());
        assert!(service.store_fds("w", &[w.as_fd()]).unwrap());
        assert!(service.store_fds("again", &[w.as_fd()]).unwrap());
        service.send("READY=1\nSTATUS=up");
        drop(w);
        store.sync().unwrap();
        assert_eq!(store.names(), ["w"], "the same open file, kept once");
        assert_eq!(store.ready(), 1);
        service.remove_fds("w");
        store.sync().unwrap();
        assert!(store.is_empty());
        // The store's copy was the last writer: the read end sees EOF.
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        drop(store);
        assert!(!path.exists(), "the socket goes with the store");
    }
}
