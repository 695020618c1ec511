//! The real backend: AF_XDP sockets (uplink queues, pods' host-side veths) and tap
//! endpoints, all sharing one UMEM per worker, so a frame received on one port is sent
//! on another without a copy: only its descriptor moves between rings.
//!
//! Per loop (`flush`): submit pending TX descriptors and kick (copy-mode AF_XDP always
//! needs a kick; we raise its per-kick budget, see notes/afxdp-on-veth.md #5), collect
//! completions into the free list, and top every fill ring up to its target. Frames
//! for a tap are written to its fd and freed at once; tap reads go into free frames.
//! Ring reservations may return fewer slots than asked: the returned count is always
//! used, never the request (a lost frame would slowly starve the fill rings).

// AF_XDP: the UMEM frames and rings are memory shared with the kernel (xsk.rs maps
// them). Each unsafe block says why the frames are ours.
#![allow(unsafe_code)]

use super::mailbox::Mailbox;
use super::tap::TapDevice;
use super::{HoldQueue, Io, PortSpec, Process};
use crate::burst::{Action, BackendStats, DropReason, BURST};
use crate::nexthop::PortId;
pub use ports::{frames_kept_need, frames_needed};
use ports::{Port, Ports, RING_SIZE};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk::{Desc, Umem};

/// Copy mode drops frames longer than frame size − 256 (notes §3): 2 KiB frames carry a
/// 1500-byte MTU plus Ethernet and VXLAN headers; larger MTUs need 4 KiB frames.
pub const FRAME_SIZE: u32 = 4096;
pub const SMALL_FRAME_SIZE: u32 = 2048;
/// The largest MTU small frames carry: 2048 − 256 − 14 (Ethernet) − 50 (VXLAN).
pub const SMALL_FRAME_MTU: u16 = 1728;
pub struct AfXdpIo {
    /// The ports, the UMEM and where each frame is.
    p: Ports,
    /// Kept sockets of the last run that could not be taken over (interface gone).
    pub not_taken_over: Vec<(String, u32)>,
    held: HoldQueue<Desc>,
    /// Readiness of every port's fd, for idle sleeps.
    poll: mio::Poll,
    events: mio::Events,
    /// Sockets join the poller only when the worker first sleeps: a registered socket
    /// costs a wake-up callback on every completion (~7% of a busy core, measured).
    registered: bool,
    /// Taps with frames to read (a tap read is a syscall: only the ready are read).
    taps: TapReadiness,
    /// The last `wait` slept: look at the taps at once.
    woke: bool,
    /// Frames other workers pass us, and theirs by port (for ports they own).
    inbox: Option<Arc<Mailbox>>,
    outboxes: Vec<Option<Arc<Mailbox>>>,
    posted: Vec<usize>,
    /// Every worker's inbox, for frames handed over (`Action::Handoff`); which of them
    /// got one this loop (a bit per worker); and what others handed us, in our frames.
    workers: Vec<Arc<Mailbox>>,
    handed: u64,
    arrived: Vec<(Desc, PortId, usize)>,
    pub stats: BackendStats,
}

impl AfXdpIo {
    /// Open every port of one worker on one shared UMEM. Errors name the port.
    /// Open with 4 KiB frames (any MTU up to 3,800 bytes).
    pub fn open(ports: &[(PortId, PortSpec)]) -> io::Result<AfXdpIo> {
        Self::open_for_mtu(ports, u16::MAX)
    }

    /// Open with the smallest frames that carry `mtu` (2 KiB up to `SMALL_FRAME_MTU`):
    /// the UMEM is pinned memory, 5 MiB per pod with 2 KiB frames.
    pub fn open_for_mtu(ports: &[(PortId, PortSpec)], mtu: u16) -> io::Result<AfXdpIo> {
        Self::open_with_room(ports, mtu, 0)
    }

    /// The largest MTU the frames chosen for `mtu` carry (endpoints added later must fit).
    pub fn mtu_limit(mtu: u16) -> u16 {
        if mtu <= SMALL_FRAME_MTU {
            SMALL_FRAME_MTU
        } else {
            // 4 KiB frames less the headroom an encapsulation needs.
            3800
        }
    }

    /// As `open_for_mtu`, with frames for `spare_pods` endpoints added later.
    pub fn open_with_room(
        ports: &[(PortId, PortSpec)],
        mtu: u16,
        spare_pods: usize,
    ) -> io::Result<AfXdpIo> {
        Self::open_kept(ports, mtu, spare_pods, None, Tuning::default())
    }

    /// The frame size for `mtu`.
    pub fn frame_size_for(mtu: u16) -> u32 {
        if mtu <= SMALL_FRAME_MTU {
            SMALL_FRAME_SIZE
        } else {
            FRAME_SIZE
        }
    }

    /// As `open_with_room`, taking over what a previous run `kept` (its UMEM, when big
    /// enough for these ports, and its sockets): frames in the adopted rings stay where
    /// they are, sockets for ports not listed here wait for `open_port` (an endpoint the
    /// control side opens soon) until `drop_parked`.
    pub fn open_kept(
        ports: &[(PortId, PortSpec)],
        mtu: u16,
        spare_pods: usize,
        kept: Option<adopt::Kept>,
        tuning: Tuning,
    ) -> io::Result<AfXdpIo> {
        let frame_size = Self::frame_size_for(mtu);
        let frames = frames_needed(ports, spare_pods);
        let need = |sockets| frames_kept_need(ports, sockets);
        let adopted = kept.and_then(|k| k.take_umem(frame_size as usize, frames, need));
        let wakeup_flags = tuning.need_wakeup && adopted.is_none();
        let (umem, kept_sockets) = match adopted {
            Some((u, s)) => (u, s),
            None => (
                Umem::create(frames, frame_size as usize).map_err(|e| {
                    io::Error::new(e.kind(), format!("UMEM of {frames} frames: {e}"))
                })?,
                Vec::new(),
            ),
        };
        let mut io = AfXdpIo {
            p: Ports::new(umem),
            not_taken_over: Vec::new(),
            held: HoldQueue::default(),
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(64),
            registered: false,
            taps: TapReadiness::new()?,
            woke: false,
            inbox: None,
            outboxes: Vec::new(),
            posted: Vec::new(),
            workers: Vec::new(),
            handed: 0,
            arrived: Vec::with_capacity(HANDOFF_ROOM),
            stats: BackendStats::default(),
        };
        (io.p.tuning, io.p.wakeup_flags) = (tuning, wakeup_flags);
        io.not_taken_over = io.p.adopt(kept_sockets);
        for (id, spec) in ports {
            io.open_port(*id, spec)?;
        }
        io.p.refill();
        Ok(io)
    }

    /// Open one more port (an endpoint added at run time, or at start). Returns its
    /// AF_XDP socket fd (None for a tap), for the XDP program's socket map.
    pub fn open_port(&mut self, id: PortId, spec: &PortSpec) -> io::Result<Option<RawFd>> {
        let port = match spec {
            PortSpec::Xsk {
                ifname,
                queue,
                uplink,
            } => {
                let fill = self.p.fill_target(*uplink);
                if let Some(i) = self.p.parked(ifname, *queue) {
                    // A socket of the last run: it becomes this port, with its frames.
                    self.close_port(id);
                    if let Port::Xsk(x) = &mut self.p.list[i].1 {
                        x.fill_target = fill;
                    }
                    self.p.list[i].0 = id;
                    self.p.install(id, i);
                    self.register(i);
                    return Ok(self.socket_fd(id));
                }
                // The UMEM is registered once, on the first socket; the others share it.
                let (umem, share) = (&self.p.umem, self.p.share_fd());
                let wakeup = self.p.wakeup_flags;
                let socket = xsk::open_retrying(umem, share, ifname, *queue, RING_SIZE, wakeup)?;
                Port::Xsk(self.p.xsk(socket, (ifname.clone(), *queue), *uplink)?)
            }
            PortSpec::Tap { name } => Port::Tap(TapDevice::open(name)?),
        };
        Ok(self.place(id, port))
    }

    fn place(&mut self, id: PortId, port: Port) -> Option<RawFd> {
        // A port placed over another (same id) replaces it: the old tap leaves the set.
        self.forget_tap(id);
        let i = self.p.place(id, port);
        if let Port::Tap(t) = &self.p.list[i].1 {
            self.taps.add(i, t.as_raw_fd());
        }
        self.register(i);
        self.socket_fd(id)
    }

    /// Port `id`, if a tap, is no longer read.
    fn forget_tap(&mut self, id: PortId) {
        if let Some(i) = self.p.index_of(id) {
            if let Port::Tap(t) = &self.p.list[i].1 {
                self.taps.remove(i, t.as_raw_fd());
            }
        }
    }

    /// Close port `id` and take back every frame its rings held. Frames still queued
    /// for it later are freed (and counted as `not_our_port`).
    pub fn close_port(&mut self, id: PortId) {
        self.forget_tap(id);
        self.p.close_port(id)
    }

    /// Join the poller (once the worker has slept: see `registered`).
    fn register(&self, i: usize) {
        if !self.registered {
            return;
        }
        if let Some(fd) = self.p.port_fd(i) {
            let _ = self.poll.registry().register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(i),
                mio::Interest::READABLE,
            );
        }
    }

    /// Opens this worker's sockets on another thread (see [`xsk::Opener`]).
    pub fn opener(&self) -> io::Result<xsk::Opener> {
        let share = self
            .p
            .share_fd()
            .map(|fd| fd.try_clone_to_owned())
            .transpose()?;
        let umem = self.p.umem.clone();
        Ok(xsk::Opener::new(
            umem,
            share,
            RING_SIZE,
            self.p.wakeup_flags,
        ))
    }

    /// `open_port` with a socket another thread opened and bound ([`Self::opener`]).
    pub fn open_prepared(
        &mut self,
        id: PortId,
        spec: &PortSpec,
        prepared: super::Prepared,
    ) -> io::Result<Option<RawFd>> {
        let port = match (spec, prepared) {
            (
                PortSpec::Xsk {
                    ifname,
                    queue,
                    uplink,
                },
                super::Prepared::Xsk(socket),
            ) => Port::Xsk(self.p.xsk(socket, (ifname.clone(), *queue), *uplink)?),
            (PortSpec::Tap { .. }, super::Prepared::Tap(t)) => Port::Tap(t),
            _ => return Err(io::Error::other("prepared for another kind of port")),
        };
        Ok(self.place(id, port))
    }

    /// Take port `id` out of service without closing its socket: it is returned with
    /// its slot, whose frames stay taken until [`Self::reclaim`] says the socket is
    /// closed (closing waits for the kernel: not on a worker). None for a tap or an
    /// unknown port (closed here).
    pub fn detach_port(&mut self, id: PortId) -> Option<(super::Prepared, usize)> {
        self.forget_tap(id);
        if let Some(fd) = self.p.index_of(id).and_then(|i| self.p.port_fd(i)) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&fd));
        }
        self.p.detach(id)
    }

    /// The socket of `slot` ([`Self::detach_port`]) is closed: its frames are free.
    pub fn reclaim(&mut self, slot: usize) {
        self.p.reclaim(slot)
    }

    /// Close the adopted sockets no port claimed (endpoints gone while we were down).
    /// Returns their interfaces and queues.
    pub fn drop_parked(&mut self) -> Vec<(String, u32)> {
        self.p.drop_parked()
    }

    /// The fds a restart can take over: the UMEM's memfd, and every socket with its
    /// interface and queue.
    pub fn keepable(&self) -> (BorrowedFd<'_>, Vec<(&str, u32, BorrowedFd<'_>)>) {
        self.p.keepable()
    }

    /// Every frame is free exactly once or on exactly one port's rings (tests).
    pub fn check_frames(&self) -> Result<(), String> {
        self.p.check_frames()
    }

    /// Take frames other workers pass us from `inbox`, and pass frames for port `p` to
    /// `outboxes[p]` (the owning worker's inbox) when `p` is not ours.
    pub fn connect_workers(
        &mut self,
        inbox: Arc<Mailbox>,
        outboxes: Vec<Option<Arc<Mailbox>>>,
        workers: Vec<Arc<Mailbox>>,
    ) -> io::Result<()> {
        inbox.set_waker(mio::Waker::new(
            self.poll.registry(),
            mio::Token(usize::MAX),
        )?);
        self.inbox = Some(inbox);
        self.posted = Vec::with_capacity(outboxes.len());
        self.outboxes = outboxes;
        self.workers = workers;
        Ok(())
    }

    /// The AF_XDP socket fd of port `id` (None for taps and other workers' ports), for
    /// the XDP program's socket map.
    pub fn socket_fd(&self, id: PortId) -> Option<RawFd> {
        match &self.p.list[self.p.index_of(id)?].1 {
            Port::Xsk(x) => Some(x.socket.as_raw_fd()),
            Port::Tap(_) | Port::Closed => None,
        }
    }

    /// Frame descriptors free right now (tests check nothing leaks).
    pub fn free_frames(&self) -> usize {
        self.p.free.len()
    }

    /// Frames of the UMEM.
    pub fn frame_count(&self) -> usize {
        self.p.owner.len()
    }

    /// AF_XDP socket statistics (rx_dropped, rx_ring_full, ...) of port `id`.
    pub fn xdp_statistics(&self, id: PortId) -> Option<libc::xdp_statistics> {
        match &self.p.list[self.p.index_of(id)?].1 {
            Port::Xsk(x) => x.socket.statistics().ok(),
            Port::Tap(_) | Port::Closed => None,
        }
    }

    #[inline]
    fn buffer<'a>(&'a self, desc: &'a mut Desc) -> &'a mut [u8] {
        buffer(&self.p.umem, desc)
    }
}

impl AfXdpIo {
    /// Queue a frame for `port`, or free it.
    #[inline]
    fn transmit(&mut self, port: PortId, mut desc: Desc, len: usize) -> bool {
        let Some(i) = self.p.index_of(port) else {
            return self.post(port, desc, len);
        };
        match &mut self.p.list[i].1 {
            Port::Xsk(x) => {
                desc.len = len as u32;
                x.pending.push(desc);
                true
            }
            Port::Tap(t) => {
                let buf = buffer(&self.p.umem, &mut desc);
                let ok = t.write(&buf[..len.min(buf.len())]);
                self.p.free.push(desc);
                ok
            }
            Port::Closed => {
                self.stats.not_our_port += 1;
                self.p.free.push(desc);
                false
            }
        }
    }

    /// Pass a frame to the worker that owns `port`.
    #[cold]
    fn post(&mut self, port: PortId, mut desc: Desc, len: usize) -> bool {
        let ok = match self.outboxes.get(port.0 as usize) {
            Some(Some(m)) => {
                let buf = buffer(&self.p.umem, &mut desc);
                let ok = m.post(port, &buf[..len.min(buf.len())]);
                if ok {
                    if !self.posted.contains(&(port.0 as usize)) {
                        self.posted.push(port.0 as usize);
                    }
                } else {
                    self.stats.mailbox_full += 1;
                }
                ok
            }
            _ => {
                self.stats.not_our_port += 1;
                false
            }
        };
        self.p.free.push(desc);
        ok
    }

    /// Send what other workers passed us (up to a few bursts per loop); frames handed
    /// over to be processed wait in `arrived` for `rx_handoffs`.
    fn deliver_mail(&mut self) {
        let Some(inbox) = self.inbox.clone() else {
            return;
        };
        for _ in 0..4 * BURST {
            if letter_room(&self.arrived) == 0 {
                break;
            }
            let Some(letter) = inbox.take() else { break };
            match self.p.free.pop() {
                Some(mut d) => {
                    let buf = buffer(&self.p.umem, &mut d);
                    let len = letter.len.min(buf.len());
                    buf[..len].copy_from_slice(&letter.buf[..len]);
                    if letter.handoff {
                        self.arrived.push((d, letter.port, len));
                    } else {
                        self.transmit(letter.port, d, len);
                    }
                    self.stats.mailbox_delivered += 1;
                }
                None => self.stats.no_free_frame += 1,
            }
            inbox.recycle(letter.buf);
        }
    }

    /// Lend `n` frames received on `port` to `process`, then carry out its actions.
    fn run_burst(
        &mut self,
        port: PortId,
        descs: &mut [Desc; BURST],
        lens: &[usize; BURST],
        n: usize,
        process: &mut Process<'_>,
    ) {
        let mut frames: [&mut [u8]; BURST] = std::array::from_fn(|_| &mut [][..]);
        for (f, d) in frames.iter_mut().zip(descs.iter_mut()).take(n) {
            *f = buffer(&self.p.umem, d);
        }
        let mut actions = [Action::Drop(DropReason::Malformed); BURST];
        process(&mut frames[..n], &lens[..n], &mut actions[..n]);
        let now = Instant::now();
        for (d, a) in descs.iter().zip(actions).take(n) {
            match a {
                // (A frame handed to us is never handed on: its owner is us.)
                Action::Handoff { worker, len } => {
                    self.hand_off(port, worker, *d, len);
                }
                a => self.carry_out(*d, a, now),
            }
        }
    }

    /// Pass a frame received on `port` to worker `w`, which owns its flow.
    #[cold]
    fn hand_off(&mut self, port: PortId, w: u16, mut desc: Desc, len: usize) -> bool {
        let ok = match self.workers.get(w as usize) {
            Some(m) => {
                let buf = buffer(&self.p.umem, &mut desc);
                let ok = m.post_handoff(port, &buf[..len.min(buf.len())]);
                if ok {
                    self.handed |= 1 << (w % 64);
                } else {
                    self.stats.mailbox_full += 1;
                }
                ok
            }
            None => {
                self.stats.not_our_port += 1;
                false
            }
        };
        self.p.free.push(desc);
        ok
    }

    fn carry_out(&mut self, desc: Desc, action: Action, now: Instant) {
        match action {
            Action::Tx { port, len } => {
                self.transmit(port, desc, len);
            }
            Action::Fragment { port, len, mtu } => {
                let mut desc = desc;
                let umem = self.p.umem.clone();
                let buf = buffer(&umem, &mut desc);
                let _ = encap::fragment::ipv4_fragments(
                    &buf[..len.min(buf.len())],
                    mtu as usize,
                    |f| {
                        self.send(port, f);
                    },
                );
                self.p.free.push(desc);
            }
            Action::Hold { nh, len } => {
                if let Err(d) = self.held.push(desc, nh, len, now) {
                    self.stats.hold_full += 1;
                    self.p.free.push(d);
                }
            }
            // The XDP program passes what is not ours to the kernel before it reaches
            // us; what the pipeline still hands to the kernel is dropped here.
            // (A handoff from a held frame's resume cannot happen: NAT is before the hold.)
            Action::Kernel | Action::Drop(_) | Action::Consumed | Action::Handoff { .. } => {
                self.p.free.push(desc)
            }
        }
    }
}

impl Io for AfXdpIo {
    fn refresh_readiness(&mut self) {
        self.taps.refresh(std::mem::take(&mut self.woke));
    }

    fn rx_ports(&self) -> &[PortId] {
        &self.p.rx_ids
    }

    fn open_port(&mut self, id: PortId, spec: &PortSpec) -> io::Result<Option<RawFd>> {
        let fd = AfXdpIo::open_port(self, id, spec)?;
        self.p.refill();
        Ok(fd)
    }

    fn close_port(&mut self, id: PortId) {
        AfXdpIo::close_port(self, id)
    }

    fn port_socket(&self, id: PortId) -> Option<(String, u32, std::os::fd::BorrowedFd<'_>)> {
        match &self.p.list[self.p.index_of(id)?].1 {
            Port::Xsk(x) => Some((x.at.0.clone(), x.at.1, x.socket.as_fd())),
            Port::Tap(_) | Port::Closed => None,
        }
    }

    fn drop_parked(&mut self) -> Vec<(String, u32)> {
        AfXdpIo::drop_parked(self)
    }

    fn open_prepared(
        &mut self,
        id: PortId,
        spec: &PortSpec,
        socket: super::Prepared,
    ) -> io::Result<Option<RawFd>> {
        let fd = AfXdpIo::open_prepared(self, id, spec, socket)?;
        self.p.refill();
        Ok(fd)
    }

    fn detach_port(&mut self, id: PortId) -> Option<(super::Prepared, usize)> {
        AfXdpIo::detach_port(self, id)
    }

    fn reclaim(&mut self, slot: usize) {
        AfXdpIo::reclaim(self, slot)
    }

    fn rx_burst(&mut self, port: PortId, process: &mut Process<'_>) -> usize {
        let Some(i) = self.p.index_of(port) else {
            return 0;
        };
        let mut descs = [Desc::default(); BURST];
        let mut lens = [0usize; BURST];
        let n = match &mut self.p.list[i].1 {
            Port::Xsk(x) => {
                // The frames received become ours.
                let n = x
                    .socket
                    .rx
                    .consume_with(&mut descs[..self.p.tuning.rx_batch], |d| d);
                if n == 0 && (x.busy_poll || x.wakeup_flags && x.socket.fill.needs_wakeup()) {
                    x.socket.poke_rx();
                }
                x.in_fill -= n;
                mark(&mut self.p.owner, self.p.frame_size, &descs[..n], None);
                for (l, d) in lens.iter_mut().zip(&descs).take(n) {
                    *l = d.len as usize;
                }
                n
            }
            Port::Tap(_) if !self.taps.is_ready(i) => 0,
            Port::Tap(_) => {
                let mut n = 0;
                while n < BURST {
                    let Some(mut d) = self.p.free.pop() else {
                        self.stats.no_free_frame += 1;
                        break;
                    };
                    let buf = self.buffer(&mut d);
                    let Port::Tap(t) = &self.p.list[i].1 else {
                        unreachable!()
                    };
                    match t.read(buf) {
                        Some(len) => {
                            descs[n] = d;
                            lens[n] = len;
                            n += 1;
                        }
                        None => {
                            self.p.free.push(d);
                            self.taps.drained(i);
                            break;
                        }
                    }
                }
                n
            }
            Port::Closed => 0,
        };
        if n > 0 {
            self.run_burst(port, &mut descs, &lens, n, process);
        }
        n
    }

    fn rx_handoffs(&mut self, process: &mut super::Handoffs<'_>) -> usize {
        let total = self.arrived.len();
        let mut start = 0;
        while start < total {
            // A run of frames from one port, at most a burst.
            let port = self.arrived[start].1;
            let mut descs = [Desc::default(); BURST];
            let mut lens = [0usize; BURST];
            let mut n = 0;
            for (d, p, len) in self.arrived[start..].iter().take(BURST) {
                if *p != port {
                    break;
                }
                (descs[n], lens[n]) = (*d, *len);
                n += 1;
            }
            self.run_burst(port, &mut descs, &lens, n, &mut |f, l, a| {
                process(port, f, l, a)
            });
            start += n;
        }
        self.arrived.clear();
        total
    }

    fn retry_held(
        &mut self,
        now: Instant,
        resume: &mut dyn FnMut(&mut [u8], usize, u32) -> Action,
    ) -> u64 {
        if self.held.is_empty() {
            return 0;
        }
        let mut held = std::mem::take(&mut self.held);
        let umem = self.p.umem.clone();
        let expired = held.retry(
            now,
            &mut |d, len, nh| resume(buffer(&umem, d), len, nh),
            &mut |d, a| match a {
                Some(a) => self.carry_out(d, a, now),
                None => self.p.free.push(d),
            },
        );
        self.held = held;
        expired
    }

    fn send(&mut self, port: PortId, frame: &[u8]) -> bool {
        let Some(mut d) = self.p.free.pop() else {
            self.stats.no_free_frame += 1;
            return false;
        };
        let buf = buffer(&self.p.umem, &mut d);
        let Some(dst) = buf.get_mut(..frame.len()) else {
            self.p.free.push(d);
            return false;
        };
        dst.copy_from_slice(frame);
        self.transmit(port, d, frame.len())
    }

    fn flush(&mut self) {
        for p in self.posted.drain(..) {
            if let Some(Some(m)) = self.outboxes.get(p) {
                m.ring();
            }
        }
        while self.handed != 0 {
            let w = self.handed.trailing_zeros() as usize;
            self.handed &= self.handed - 1;
            if let Some(m) = self.workers.get(w) {
                m.ring();
            }
        }
        if self.inbox.as_ref().is_some_and(|m| !m.is_empty()) {
            self.deliver_mail();
        }
        let mut done = [Desc::default(); BURST * 4];
        for (i, (_, port)) in self.p.list.iter_mut().enumerate() {
            let Port::Xsk(x) = port else { continue };
            if !x.pending.is_empty() {
                let sent = x.socket.tx.produce_with(&x.pending, |&d| d);
                mark(
                    &mut self.p.owner,
                    self.p.frame_size,
                    &x.pending[..sent],
                    Some(i),
                );
                if sent < x.pending.len() {
                    self.stats.tx_ring_full += (x.pending.len() - sent) as u64;
                    self.p.free.extend_from_slice(&x.pending[sent..]);
                }
                let ring_full = sent < x.pending.len();
                x.pending.clear();
                // A full ring is kicked too: frames queued while the link was down (the
                // kernel refuses to send then) fill it, and without a kick after the
                // link comes back nothing would ever drain it.
                if (sent > 0 || ring_full) && (!x.wakeup_flags || x.socket.tx.needs_wakeup()) {
                    for _ in 0..sent.div_ceil(x.frames_per_kick).max(1) {
                        x.socket.kick();
                    }
                }
            }
            // Completed frames come back to us.
            let n = x.socket.comp.consume_with(&mut done, |addr| Desc {
                addr,
                ..Desc::default()
            });
            mark(&mut self.p.owner, self.p.frame_size, &done[..n], None);
            self.p.free.extend_from_slice(&done[..n]);
        }
        self.p.refill();
    }

    /// Called a few times a second (a getsockopt per socket), never per packet.
    fn backend_stats(&self) -> BackendStats {
        let mut s = self.stats;
        for (_, port) in &self.p.list {
            if let Port::Xsk(x) = port {
                if let Ok(k) = x.socket.statistics() {
                    s.xdp_rx_dropped += k.rx_dropped;
                    s.xdp_rx_ring_full += k.rx_ring_full;
                    s.xdp_fill_ring_empty += k.rx_fill_ring_empty_descs;
                }
            }
        }
        s
    }

    fn wait(&mut self, timeout: Duration) {
        if !self.registered {
            self.registered = true;
            for i in 0..self.p.list.len() {
                self.register(i);
            }
            // Frames that arrived before we registered raise no event: look again.
            return;
        }
        // We only sleep when every ring was just empty; mail wakes us through the waker.
        if let Some(m) = &self.inbox {
            if !m.may_sleep() {
                return;
            }
        }
        let _ = self.poll.poll(&mut self.events, Some(timeout));
        self.woke = true;
        if let Some(m) = &self.inbox {
            m.awake();
        }
    }
}

pub mod adopt;
mod frames;
mod ports;
mod tap_ready;
mod tuning;
pub mod xsk;
use frames::{buffer, letter_room, mark, HANDOFF_ROOM};
use tap_ready::TapReadiness;
pub use tuning::{NapiRestore, Tuning};
