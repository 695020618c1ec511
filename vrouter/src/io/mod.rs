//! How frames get in and out of a worker. A backend owns its frame buffers; the worker
//! lends them to the pipeline one burst at a time and the backend carries out the
//! actions (send on a port, hold, drop). Backends: `afxdp` (uplink queues and pods'
//! veths), `tap` (tap endpoints) and `memory` (deterministic tests, `fwdbench --memio`).

pub mod afxdp;
pub mod mailbox;
pub mod memory;
pub mod tap;

use crate::burst::{Action, BackendStats};
use crate::nexthop::PortId;
use std::time::{Duration, Instant};

/// A burst's frames as the pipeline sees them: whole buffers, received lengths, actions.
pub type Process<'a> = dyn FnMut(&mut [&mut [u8]], &[usize], &mut [Action]) + 'a;
/// The same, for frames that arrived on different ports (handed over by other workers).
pub type Handoffs<'a> = dyn FnMut(PortId, &mut [&mut [u8]], &[usize], &mut [Action]) + 'a;

/// A port's socket or device, opened (or to be closed) off the worker: binding an AF_XDP
/// socket and attaching a tap take the kernel's RTNL lock, closing either waits for it
/// or for an RCU grace period, and a worker waiting stops every flow it carries.
#[allow(clippy::large_enum_variant)] // one per endpoint added, moved once
pub enum Prepared {
    /// Bound by `afxdp::xsk::Opener` on the worker's UMEM.
    Xsk(afxdp::xsk::Socket),
    Tap(tap::TapDevice),
}

pub trait Io {
    /// At the start of every worker loop: learn which ports that cost a syscall to
    /// read (taps) have frames, so the loop reads only those.
    fn refresh_readiness(&mut self) {}
    /// Ports this backend receives on; each is polled once per worker loop.
    fn rx_ports(&self) -> &[PortId];
    /// Receive up to `BURST` frames on `port`, let `process` choose each frame's action
    /// and carry them out. Returns the number of frames received.
    fn rx_burst(&mut self, port: PortId, process: &mut Process<'_>) -> usize;
    /// Offer held frames (`Action::Hold`) again: `resume(frame, len, nh)` gives the action
    /// now; frames held longer than `HOLD_TIME` are dropped. Returns frames dropped.
    fn retry_held(
        &mut self,
        now: Instant,
        resume: &mut dyn FnMut(&mut [u8], usize, u32) -> Action,
    ) -> u64;
    /// Process frames other workers handed to this one (`Action::Handoff`: NAT replies
    /// whose flows this worker holds), as bursts received on their ports: `process(port,
    /// frames, lens, actions)`. Returns the number of frames.
    fn rx_handoffs(&mut self, _process: &mut Handoffs<'_>) -> usize {
        0
    }
    /// Send a frame the worker built itself (an ARP / ND probe), copied into a buffer.
    fn send(&mut self, port: PortId, frame: &[u8]) -> bool;
    /// Once per loop: kick transmission, recycle sent buffers, refill receive rings.
    fn flush(&mut self);
    /// Sleep until some port may have frames, or `timeout` passed.
    fn wait(&mut self, timeout: Duration);
    /// Open a port while running (an endpoint added through the API). Returns the
    /// AF_XDP socket's fd for the XDP program's map, if it has one.
    fn open_port(
        &mut self,
        _id: PortId,
        _spec: &PortSpec,
    ) -> std::io::Result<Option<std::os::fd::RawFd>> {
        Err(std::io::Error::other("this backend has fixed ports"))
    }
    /// Close a port opened before; frames queued for it afterwards are dropped.
    fn close_port(&mut self, _id: PortId) {}
    /// Port `id`'s AF_XDP socket with its interface and queue (kept across restarts).
    fn port_socket(&self, _id: PortId) -> Option<(String, u32, std::os::fd::BorrowedFd<'_>)> {
        None
    }
    /// `open_port` with a socket another thread opened (backends without one open it).
    fn open_prepared(
        &mut self,
        id: PortId,
        spec: &PortSpec,
        _socket: Prepared,
    ) -> std::io::Result<Option<std::os::fd::RawFd>> {
        self.open_port(id, spec)
    }
    /// Take port `id` out of service; its socket is returned to be closed on another
    /// thread, then `reclaim(slot)` frees what its rings held. (Others: closed here.)
    fn detach_port(&mut self, id: PortId) -> Option<(Prepared, usize)> {
        self.close_port(id);
        None
    }
    fn reclaim(&mut self, _slot: usize) {}
    /// Close what a previous run left that no port claimed; returns interfaces and queues.
    fn drop_parked(&mut self) -> Vec<(String, u32)> {
        Vec::new()
    }
    /// What the backend itself counted (drops the pipeline never saw).
    fn backend_stats(&self) -> BackendStats {
        BackendStats::default()
    }
}

/// A port a backend opens: an AF_XDP socket on an interface's queue, or a tap.
#[derive(Debug, Clone)]
pub enum PortSpec {
    /// AF_XDP socket on `ifname` queue `queue`; `uplink` ones get deeper fill rings.
    Xsk {
        ifname: String,
        queue: u32,
        uplink: bool,
    },
    /// A tap device.
    Tap { name: String },
}

/// How long a frame waits for its next hop to resolve (the kernel waits about as long
/// for ARP: 3 probes, 1 s apart, before dropping its queue).
pub const HOLD_TIME: Duration = Duration::from_millis(1000);
/// Frames held per worker at most (the kernel's unresolved queue holds ~100 frames).
pub const HOLD_CAPACITY: usize = 128;

/// Frames waiting for their next hop: a fixed-capacity queue of backend frame handles.
pub struct HoldQueue<H> {
    entries: std::collections::VecDeque<Held<H>>,
    /// Frames refused since the last `retry` because the queue was full: dropped for
    /// want of a MAC as much as the expired ones, so `retry` reports them with those.
    refused: u64,
}

pub struct Held<H> {
    pub frame: H,
    pub nh: u32,
    pub len: usize,
    pub since: Instant,
}

impl<H> Default for HoldQueue<H> {
    fn default() -> Self {
        HoldQueue {
            entries: std::collections::VecDeque::with_capacity(HOLD_CAPACITY),
            refused: 0,
        }
    }
}

impl<H> HoldQueue<H> {
    /// Keep `frame`; gives it back when the queue is full (the caller drops it).
    pub fn push(&mut self, frame: H, nh: u32, len: usize, now: Instant) -> Result<(), H> {
        if self.entries.len() >= HOLD_CAPACITY {
            self.refused += 1;
            return Err(frame);
        }
        self.entries.push_back(Held {
            frame,
            nh,
            len,
            since: now,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing held and nothing refused to report.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.refused == 0
    }

    /// The oldest held frame (the caller `keep`s it again if it must still wait).
    pub fn pop(&mut self) -> Option<Held<H>> {
        self.entries.pop_front()
    }

    /// Put back a frame that must still wait.
    pub fn keep(&mut self, held: Held<H>) {
        self.entries.push_back(held);
    }

    /// Offer every held frame to `resume` (its handle, length and next hop): frames
    /// still unresolved wait on unless older than `HOLD_TIME`, when they go to `done`
    /// with no action; the others go to `done` with their action. Returns how many
    /// expired, and were refused by a full queue since the last call (the `unresolved`
    /// drops). The backend's `resume` lends the frame's bytes for the call only.
    pub fn retry(
        &mut self,
        now: Instant,
        resume: &mut dyn FnMut(&mut H, usize, u32) -> Action,
        done: &mut dyn FnMut(H, Option<Action>),
    ) -> u64 {
        let mut expired = std::mem::take(&mut self.refused);
        for _ in 0..self.entries.len() {
            let mut h = self.entries.pop_front().unwrap();
            match resume(&mut h.frame, h.len, h.nh) {
                Action::Hold { .. } if now.duration_since(h.since) < HOLD_TIME => self.keep(h),
                Action::Hold { .. } => {
                    expired += 1;
                    done(h.frame, None);
                }
                a => done(h.frame, Some(a)),
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_full_hold_queue_refuses_are_reported_as_unresolved_drops() {
        let mut q = HoldQueue::<u32>::default();
        let t0 = Instant::now();
        for i in 0..HOLD_CAPACITY as u32 + 5 {
            let _ = q.push(i, 7, 60, t0);
        }
        let still = |_: &mut u32, len, nh| Action::Hold { nh, len };
        let mut out = Vec::new();
        // Within HOLD_TIME: the 5 refused are reported, the held wait on.
        let n = q.retry(t0, &mut { still }, &mut |h, a| out.push((h, a)));
        assert_eq!((n, out.len(), q.len()), (5, 0, HOLD_CAPACITY));
        // Reported once: then the held ones expire, and the queue is empty.
        let n = q.retry(t0 + HOLD_TIME, &mut { still }, &mut |h, a| out.push((h, a)));
        assert_eq!((n, out.len()), (HOLD_CAPACITY as u64, HOLD_CAPACITY));
        assert!(q.is_empty());
    }
}
