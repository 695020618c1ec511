//! What survives a restart: each worker's UMEM and AF_XDP sockets and each interface's
//! XDP link (with its program and maps) are kept in systemd's file-descriptor store
//! (`FileDescriptorStoreMax=` in configs/vrouterd.service). The next run is handed them
//! (`LISTEN_FDS`), takes over what still fits its configuration and gives back the rest:
//! the kernel keeps receiving into the sockets' rings while no process runs, and
//! nothing is detached, rebound or reloaded.
//!
//! Names (`FDNAME`): `umem/W/FRAME_SIZE`, `xsk/W/IFNAME/QUEUE`, `xdp/IFNAME` (`/`
//! cannot appear in an interface name; `:` is systemd's separator).

use crate::fdstore::Inherited;
use crate::notify::Notifier;
use crate::xdp::XdpProgram;
use std::collections::HashSet;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;
use tracing::{debug, info, warn};

pub struct FdStore {
    notifier: Notifier,
    state: Mutex<State>,
}

struct State {
    /// None once the unclaimed rest was released.
    inherited: Option<Inherited>,
    /// Names the store holds now (inherited ones included: storing them again would
    /// hand the next run two copies).
    stored: HashSet<String>,
}

fn umem_name(worker: usize, frame_size: u32) -> String {
    format!("umem/{worker}/{frame_size}")
}

fn xsk_name(worker: usize, ifname: &str, queue: u32) -> String {
    format!("xsk/{worker}/{ifname}/{queue}")
}

fn xdp_name(ifname: &str) -> String {
    format!("xdp/{ifname}")
}

impl FdStore {
    /// The store systemd gave us (none without `NOTIFY_SOCKET`: every call a no-op).
    pub fn from_env() -> std::io::Result<FdStore> {
        let inherited = Inherited::from_env();
        let stored = inherited.names().into_iter().collect();
        if !inherited.is_empty() {
            info!(fds = ?inherited.names(), "fds kept by the last run");
        }
        Ok(FdStore {
            notifier: Notifier::from_env()?,
            state: Mutex::new(State {
                inherited: Some(inherited),
                stored,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Worker `w`'s UMEM and sockets from the last run, if its frames are this size and
    /// it holds at least `min_frames(sockets kept)`. Else they are given back at once: a
    /// socket still bound would keep its queue busy for the new one.
    pub fn take_worker(
        &self,
        w: usize,
        frame_size: u32,
        min_frames: impl Fn(usize) -> usize,
    ) -> Option<crate::io::afxdp::adopt::Kept> {
        let mut st = self.state();
        let inherited = st.inherited.as_mut()?;
        let umem = inherited.take(&umem_name(w, frame_size));
        let prefix = format!("xsk/{w}/");
        let min_frames = min_frames(
            inherited
                .names()
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .count(),
        );
        let fits = umem.as_ref().is_some_and(|fd| {
            fd.try_clone()
                .and_then(|fd| std::fs::File::from(fd).metadata())
                .is_ok_and(|m| m.len() >= (min_frames * frame_size as usize) as u64)
        });
        if !fits {
            drop(st);
            if umem.is_some() {
                info!(
                    worker = w,
                    "the kept UMEM is too small for this start; a new one"
                );
                self.forget(&umem_name(w, frame_size));
            }
            let umems = format!("umem/{w}/");
            self.release_where(|n| n.starts_with(&prefix) || n.starts_with(&umems));
            return None;
        }
        let umem = umem.expect("checked");
        let mut sockets = Vec::new();
        for name in inherited.names() {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let Some((ifname, queue)) = rest.rsplit_once('/') else {
                continue;
            };
            let (Ok(queue), Some(fd)) = (queue.parse::<u32>(), inherited.take(&name)) else {
                continue;
            };
            sockets.push((ifname.to_string(), queue, fd));
        }
        info!(
            worker = w,
            sockets = sockets.len(),
            "taking over the last run's UMEM"
        );
        Some(crate::io::afxdp::adopt::Kept { umem, sockets })
    }

    /// The program the last run attached to `ifname`.
    pub fn take_xdp(&self, ifname: &str) -> Option<XdpProgram> {
        let fds = match self.state().inherited.as_mut() {
            Some(i) => i.take_all(&xdp_name(ifname)),
            None => Vec::new(),
        };
        if fds.is_empty() {
            return None;
        }
        match XdpProgram::adopt(ifname, fds) {
            Ok(p) => Some(p),
            Err(e) => {
                info!(error = %e, "the kept XDP program is not usable; attaching anew");
                self.forget(&xdp_name(ifname));
                None
            }
        }
    }

    fn keep(&self, name: String, fds: &[BorrowedFd<'_>]) {
        let mut st = self.state();
        if st.stored.contains(&name) {
            return;
        }
        match self.notifier.store_fds(&name, fds) {
            Ok(true) => {
                st.stored.insert(name);
            }
            Ok(false) => {}
            Err(e) => warn!(%name, error = %e, "keeping fds in systemd's store"),
        }
    }

    fn forget(&self, name: &str) {
        if self.state().stored.remove(name) {
            self.notifier.remove_fds(name);
        }
    }

    pub fn keep_umem(&self, w: usize, frame_size: u32, fd: BorrowedFd<'_>) {
        self.keep(umem_name(w, frame_size), &[fd]);
    }

    pub fn keep_socket(&self, w: usize, ifname: &str, queue: u32, fd: BorrowedFd<'_>) {
        self.keep(xsk_name(w, ifname, queue), &[fd]);
    }

    pub fn forget_socket(&self, w: usize, ifname: &str, queue: u32) {
        self.forget(&xsk_name(w, ifname, queue));
    }

    pub fn keep_xdp(&self, prog: &XdpProgram) {
        self.keep(xdp_name(prog.ifname()), &prog.keepable());
    }

    pub fn forget_xdp(&self, ifname: &str) {
        self.forget(&xdp_name(ifname));
    }

    /// Whether the store takes our fds (systemd is there): then a stop leaves the
    /// sockets registered in the programs' maps, for the next run.
    pub fn active(&self) -> bool {
        self.notifier.addr().is_some()
    }

    /// Give back what the last run kept for workers we no longer have (before opening
    /// sockets: theirs would keep queues busy).
    pub fn release_workers_from(&self, count: usize) {
        self.release_where(|n| {
            let w = n
                .strip_prefix("xsk/")
                .or_else(|| n.strip_prefix("umem/"))
                .and_then(|r| r.split('/').next())
                .and_then(|w| w.parse::<usize>().ok());
            w.is_some_and(|w| w >= count)
        });
    }

    fn release_where(&self, pick: impl Fn(&str) -> bool) {
        let picked: Vec<(String, OwnedFd)> = {
            let mut st = self.state();
            let Some(inherited) = st.inherited.as_mut() else {
                return;
            };
            inherited
                .names()
                .into_iter()
                .filter(|n| pick(n))
                .flat_map(|n| {
                    let fds = inherited.take_all(&n);
                    fds.into_iter().map(move |fd| (n.clone(), fd))
                })
                .collect()
        };
        self.release(picked);
    }

    /// Give back whatever the last run kept that nobody took (interfaces gone, another
    /// configuration). Call once every endpoint of the start has been opened.
    pub fn release_unclaimed(&self) {
        let rest: Vec<(String, OwnedFd)> = {
            let mut st = self.state();
            st.inherited
                .take()
                .map(Inherited::into_rest)
                .unwrap_or_default()
        };
        self.release(rest);
    }

    fn release(&self, rest: Vec<(String, OwnedFd)>) {
        for (name, fd) in rest {
            debug!(%name, "a kept fd nobody took; released");
            drop(fd);
            self.forget(&name);
        }
    }
}
