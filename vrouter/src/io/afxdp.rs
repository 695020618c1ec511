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

// AF_XDP: xsk-rs marks socket creation and ring access unsafe (the UMEM frames are
// shared with the kernel). Each block says why the descriptors are ours.
#![allow(unsafe_code)]

use super::mailbox::Mailbox;
use super::tap::TapDevice;
use super::{HoldQueue, Io, PortSpec, Process};
use crate::burst::{Action, BackendStats, DropReason, BURST};
use crate::nexthop::PortId;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Copy mode drops frames longer than frame size − 256 (notes §3): 2 KiB frames carry a
/// 1500-byte MTU plus Ethernet and VXLAN headers; larger MTUs need 4 KiB frames.
pub const FRAME_SIZE: u32 = 4096;
pub const SMALL_FRAME_SIZE: u32 = 2048;
/// The largest MTU small frames carry: 2048 − 256 − 14 (Ethernet) − 50 (VXLAN).
pub const SMALL_FRAME_MTU: u16 = 1728;
const RING_SIZE: u32 = 4096;
/// Frames kept in each fill ring. A TX kick in copy mode runs the receiving pod's stack
/// inside the syscall, so a loop can take long; a pod's TCP burst must not empty its
/// ring meanwhile (measured: 512 frames lost ~35k segments in 3 s of iperf3, 2048 none).
const UPLINK_FILL: usize = 2048;
const POD_FILL: usize = 2048;
/// Frames per port set aside for TX in flight.
const TX_BUDGET: usize = 512;
/// setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET): frames sent per kick in copy mode.
const SOL_XDP: libc::c_int = 283;
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

#[allow(clippy::large_enum_variant)] // few ports, in one Vec, touched every loop
enum Port {
    Xsk(Xsk),
    Tap(TapDevice),
    /// An endpoint removed at run time (its slot may be opened again).
    Closed,
}

struct Xsk {
    rx: RxQueue,
    tx: TxQueue,
    fq: FillQueue,
    cq: CompQueue,
    pending: Vec<FrameDesc>,
    in_fill: usize,
    fill_target: usize,
    fd: RawFd,
    /// Kicks needed per `pending` frames sent (1 when the budget option took).
    frames_per_kick: usize,
    _socket: Option<Socket>,
}

pub struct AfXdpIo {
    umem: Umem,
    free: Vec<FrameDesc>,
    /// Every frame of the UMEM by index (address / frame size), and where each is:
    /// 0 with us, `i + 1` in the fill, RX, TX or completion ring of `ports[i]`. Closing
    /// a socket takes back exactly the frames its rings held (else they would leak).
    all_frames: Vec<FrameDesc>,
    owner: Vec<u16>,
    frame_size: usize,
    ports: Vec<(PortId, Port)>,
    /// PortId → index into `ports` (u16::MAX: another worker's port).
    by_id: Vec<u16>,
    rx_ids: Vec<PortId>,
    held: HoldQueue<FrameDesc>,
    /// Readiness of every port's fd, for idle sleeps.
    poll: mio::Poll,
    events: mio::Events,
    /// Sockets join the poller only when the worker first sleeps: a registered socket
    /// costs a wake-up callback on every completion (~7% of a busy core, measured).
    registered: bool,
    /// Frames other workers pass us, and theirs by port (for ports they own).
    inbox: Option<Arc<Mailbox>>,
    outboxes: Vec<Option<Arc<Mailbox>>>,
    posted: Vec<usize>,
    /// Every worker's inbox, for frames handed over (`Action::Handoff`); which of them
    /// got one this loop (a bit per worker); and what others handed us, in our frames.
    workers: Vec<Arc<Mailbox>>,
    handed: u64,
    arrived: Vec<(FrameDesc, PortId, usize)>,
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
        let frame_size = if mtu <= SMALL_FRAME_MTU {
            SMALL_FRAME_SIZE
        } else {
            FRAME_SIZE
        };
        let frames: usize = ports
            .iter()
            .map(|(_, spec)| match spec {
                PortSpec::Xsk { uplink: true, .. } => UPLINK_FILL + TX_BUDGET,
                PortSpec::Xsk { .. } => POD_FILL + TX_BUDGET,
                PortSpec::Tap { .. } => TX_BUDGET,
            })
            .sum::<usize>()
            + spare_pods * (POD_FILL + TX_BUDGET)
            + 2 * BURST
            + super::HOLD_CAPACITY
            + super::mailbox::MAILBOX_FRAMES / 4;
        let config = UmemConfig::builder()
            .frame_size(FrameSize::new(frame_size).map_err(other)?)
            .fill_queue_size(QueueSize::new(RING_SIZE).map_err(other)?)
            .comp_queue_size(QueueSize::new(RING_SIZE).map_err(other)?)
            .build()
            .map_err(other)?;
        let (umem, free) = Umem::new(
            config,
            NonZeroU32::new(frames as u32).expect("at least one frame"),
            false,
        )
        .map_err(|e| io::Error::other(format!("UMEM of {frames} frames: {e}")))?;
        let mut all_frames = free.clone();
        all_frames.sort_by_key(|d| d.addr());
        let mut io = AfXdpIo {
            umem,
            owner: vec![0; all_frames.len()],
            all_frames,
            frame_size: frame_size as usize,
            free,
            ports: Vec::new(),
            by_id: Vec::new(),
            rx_ids: Vec::new(),
            held: HoldQueue::default(),
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(64),
            registered: false,
            inbox: None,
            outboxes: Vec::new(),
            posted: Vec::new(),
            workers: Vec::new(),
            handed: 0,
            arrived: Vec::with_capacity(HANDOFF_ROOM),
            stats: BackendStats::default(),
        };
        for (id, spec) in ports {
            io.open_port(*id, spec)?;
        }
        io.refill();
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
                let fill = if *uplink { UPLINK_FILL } else { POD_FILL };
                Port::Xsk(self.open_xsk(ifname, *queue, fill).map_err(|e| {
                    io::Error::new(e.kind(), format!("AF_XDP {ifname} queue {queue}: {e}"))
                })?)
            }
            PortSpec::Tap { name } => Port::Tap(TapDevice::open(name)?),
        };
        let fd = match &port {
            Port::Xsk(x) => Some(x.fd),
            Port::Tap(_) | Port::Closed => None,
        };
        let slot = id.0 as usize;
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, u16::MAX);
        }
        let index = match self.by_id[slot] {
            u16::MAX => {
                self.ports.push((id, port));
                self.ports.len() - 1
            }
            i => {
                self.ports[i as usize].1 = port;
                i as usize
            }
        };
        self.by_id[slot] = index as u16;
        if !self.rx_ids.contains(&id) {
            self.rx_ids.push(id);
        }
        if self.registered {
            self.register(index);
        }
        Ok(fd)
    }

    /// Close port `id` and take back every frame its rings held. Frames still queued
    /// for it later are freed (and counted as `not_our_port`).
    pub fn close_port(&mut self, id: PortId) {
        let Some(&i) = self.by_id.get(id.0 as usize).filter(|&&i| i != u16::MAX) else {
            return;
        };
        let i = i as usize;
        self.rx_ids.retain(|&p| p != id);
        if let Some(fd) = self.port_fd(i) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&fd));
        }
        match std::mem::replace(&mut self.ports[i].1, Port::Closed) {
            Port::Xsk(x) => {
                self.free.extend_from_slice(&x.pending);
                // Closing the socket: the kernel stops using its rings before close returns.
                drop(x);
            }
            Port::Tap(t) => drop(t),
            Port::Closed => {}
        }
        let mine = (i + 1) as u16;
        for (k, o) in self.owner.iter_mut().enumerate() {
            if *o == mine {
                *o = 0;
                self.free.push(self.all_frames[k]);
            }
        }
    }

    fn port_fd(&self, i: usize) -> Option<RawFd> {
        match &self.ports[i].1 {
            Port::Xsk(x) => Some(x.fd),
            Port::Tap(t) => Some(t.as_raw_fd()),
            Port::Closed => None,
        }
    }

    fn register(&self, i: usize) {
        if let Some(fd) = self.port_fd(i) {
            let _ = self.poll.registry().register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(i),
                mio::Interest::READABLE,
            );
        }
    }

    fn open_xsk(&mut self, ifname: &str, queue: u32, fill_target: usize) -> io::Result<Xsk> {
        let iface: Interface = ifname
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        let config = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(RING_SIZE).map_err(other)?)
            .tx_queue_size(QueueSize::new(RING_SIZE).map_err(other)?)
            // Our own XDP program (crate::xdp) steers frames; libxdp must not load one.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            // A socket sharing the UMEM must bind without mode flags (EINVAL otherwise).
            .bind_flags(BindFlags::empty())
            .build();
        // A queue released by a process that just exited can be busy for a second or two.
        let mut tries = 0;
        let (tx, rx, rings) = loop {
            // SAFETY: every socket of this UMEM is created with INHIBIT_PROG_LOAD, as the
            // shared-UMEM contract of `Socket::new` requires.
            match unsafe { Socket::new(config, &self.umem, &iface, queue) } {
                Ok(s) => break s,
                Err(e) if tries < 20 && format!("{e:?}").contains("Busy") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(io::Error::other(format!("{e}"))),
            }
        };
        let (fq, cq) = rings.ok_or_else(|| io::Error::other("queue bound twice on one UMEM"))?;
        let fd = rx.fd().as_raw_fd();
        let budget: libc::c_int = 256;
        // SAFETY: a plain int option on a socket we own; failure is handled.
        let ok = unsafe {
            libc::setsockopt(
                fd,
                SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&budget as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        } == 0;
        Ok(Xsk {
            rx,
            tx,
            fq,
            cq,
            pending: Vec::with_capacity(RING_SIZE as usize),
            in_fill: 0,
            fill_target,
            fd,
            frames_per_kick: if ok { budget as usize } else { 32 },
            _socket: None,
        })
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
        match &self.ports[*self.by_id.get(id.0 as usize).filter(|&&i| i != u16::MAX)? as usize].1 {
            Port::Xsk(x) => Some(x.fd),
            Port::Tap(_) | Port::Closed => None,
        }
    }

    /// Frame descriptors free right now (tests check nothing leaks).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// AF_XDP socket statistics (rx_dropped, rx_ring_full, ...) of port `id`.
    pub fn xdp_statistics(&self, id: PortId) -> Option<xsk_rs::socket::XdpStatistics> {
        match &self.ports[*self.by_id.get(id.0 as usize)? as usize].1 {
            Port::Xsk(x) => x.rx.fd().xdp_statistics().ok(),
            Port::Tap(_) | Port::Closed => None,
        }
    }

    #[inline]
    fn buffer<'a>(&'a self, desc: &'a mut FrameDesc) -> &'a mut [u8] {
        buffer(&self.umem, desc)
    }
}

impl AfXdpIo {
    /// Queue a frame for `port`, or free it.
    #[inline]
    fn transmit(&mut self, port: PortId, mut desc: FrameDesc, len: usize) -> bool {
        let Some(&i) = self.by_id.get(port.0 as usize).filter(|&&i| i != u16::MAX) else {
            return self.post(port, desc, len);
        };
        match &mut self.ports[i as usize].1 {
            Port::Xsk(x) => {
                set_len(&self.umem, &mut desc, len);
                x.pending.push(desc);
                true
            }
            Port::Tap(t) => {
                let buf = buffer(&self.umem, &mut desc);
                let ok = t.write(&buf[..len.min(buf.len())]);
                self.free.push(desc);
                ok
            }
            Port::Closed => {
                self.stats.not_our_port += 1;
                self.free.push(desc);
                false
            }
        }
    }

    /// Pass a frame to the worker that owns `port`.
    #[cold]
    fn post(&mut self, port: PortId, mut desc: FrameDesc, len: usize) -> bool {
        let ok = match self.outboxes.get(port.0 as usize) {
            Some(Some(m)) => {
                let buf = buffer(&self.umem, &mut desc);
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
        self.free.push(desc);
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
            match self.free.pop() {
                Some(mut d) => {
                    let buf = buffer(&self.umem, &mut d);
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
        descs: &mut [FrameDesc; BURST],
        lens: &[usize; BURST],
        n: usize,
        process: &mut Process<'_>,
    ) {
        let mut frames: [&mut [u8]; BURST] = std::array::from_fn(|_| &mut [][..]);
        for (f, d) in frames.iter_mut().zip(descs.iter_mut()).take(n) {
            *f = buffer(&self.umem, d);
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
    fn hand_off(&mut self, port: PortId, w: u16, mut desc: FrameDesc, len: usize) -> bool {
        let ok = match self.workers.get(w as usize) {
            Some(m) => {
                let buf = buffer(&self.umem, &mut desc);
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
        self.free.push(desc);
        ok
    }

    fn carry_out(&mut self, desc: FrameDesc, action: Action, now: Instant) {
        match action {
            Action::Tx { port, len } => {
                self.transmit(port, desc, len);
            }
            Action::Fragment { port, len, mtu } => {
                let mut desc = desc;
                let umem = self.umem.clone();
                let buf = buffer(&umem, &mut desc);
                let _ = encap::fragment::ipv4_fragments(
                    &buf[..len.min(buf.len())],
                    mtu as usize,
                    |f| {
                        self.send(port, f);
                    },
                );
                self.free.push(desc);
            }
            Action::Hold { nh, len } => {
                if let Err(d) = self.held.push(desc, nh, len, now) {
                    self.stats.hold_full += 1;
                    self.free.push(d);
                }
            }
            // The XDP program passes what is not ours to the kernel before it reaches
            // us; what the pipeline still hands to the kernel is dropped here.
            // (A handoff from a held frame's resume cannot happen: NAT is before the hold.)
            Action::Kernel | Action::Drop(_) | Action::Consumed | Action::Handoff { .. } => {
                self.free.push(desc)
            }
        }
    }

    fn refill(&mut self) {
        for (i, (_, port)) in self.ports.iter_mut().enumerate() {
            let Port::Xsk(x) = port else { continue };
            let want = x.fill_target.saturating_sub(x.in_fill).min(self.free.len());
            if want == 0 {
                continue;
            }
            let start = self.free.len() - want;
            // SAFETY: the descriptors are frames of this UMEM that we own.
            let n = unsafe { x.fq.produce(&self.free[start..]) };
            mark(
                &mut self.owner,
                self.frame_size,
                &self.free[start..start + n],
                Some(i),
            );
            self.free.drain(start..start + n);
            x.in_fill += n;
        }
    }
}

fn other<E: std::fmt::Debug>(e: E) -> io::Error {
    io::Error::other(format!("{e:?}"))
}

impl Io for AfXdpIo {
    fn rx_ports(&self) -> &[PortId] {
        &self.rx_ids
    }

    fn open_port(&mut self, id: PortId, spec: &PortSpec) -> io::Result<Option<RawFd>> {
        let fd = AfXdpIo::open_port(self, id, spec)?;
        self.refill();
        Ok(fd)
    }

    fn close_port(&mut self, id: PortId) {
        AfXdpIo::close_port(self, id)
    }

    fn rx_burst(&mut self, port: PortId, process: &mut Process<'_>) -> usize {
        let Some(&i) = self.by_id.get(port.0 as usize).filter(|&&i| i != u16::MAX) else {
            return 0;
        };
        let mut descs = [FrameDesc::default(); BURST];
        let mut lens = [0usize; BURST];
        let n = match &mut self.ports[i as usize].1 {
            Port::Xsk(x) => {
                // SAFETY: `descs` receive frames of this UMEM, which become ours.
                let n = unsafe { x.rx.consume(&mut descs) };
                x.in_fill -= n;
                mark(&mut self.owner, self.frame_size, &descs[..n], None);
                for (l, d) in lens.iter_mut().zip(&descs).take(n) {
                    *l = d.lengths().data();
                }
                n
            }
            Port::Tap(_) => {
                let mut n = 0;
                while n < BURST {
                    let Some(mut d) = self.free.pop() else {
                        self.stats.no_free_frame += 1;
                        break;
                    };
                    let buf = self.buffer(&mut d);
                    let Port::Tap(t) = &self.ports[i as usize].1 else {
                        unreachable!()
                    };
                    match t.read(buf) {
                        Some(len) => {
                            descs[n] = d;
                            lens[n] = len;
                            n += 1;
                        }
                        None => {
                            self.free.push(d);
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
            let mut descs = [FrameDesc::default(); BURST];
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
        let umem = self.umem.clone();
        let expired = held.retry(
            now,
            &mut |d, len, nh| resume(buffer(&umem, d), len, nh),
            &mut |d, a| match a {
                Some(a) => self.carry_out(d, a, now),
                None => self.free.push(d),
            },
        );
        self.held = held;
        expired
    }

    fn send(&mut self, port: PortId, frame: &[u8]) -> bool {
        let Some(mut d) = self.free.pop() else {
            self.stats.no_free_frame += 1;
            return false;
        };
        // SAFETY: we own the frame (just taken from the free list).
        let written = unsafe {
            let mut data = self.umem.data_mut(&mut d);
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            cursor.write_all(frame).is_ok()
        };
        if !written {
            self.free.push(d);
            return false;
        }
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
        let mut done = [FrameDesc::default(); BURST * 4];
        for (i, (_, port)) in self.ports.iter_mut().enumerate() {
            let Port::Xsk(x) = port else { continue };
            if !x.pending.is_empty() {
                // SAFETY: pending descriptors are frames of this UMEM that we own.
                let sent = unsafe { x.tx.produce(&x.pending) };
                mark(
                    &mut self.owner,
                    self.frame_size,
                    &x.pending[..sent],
                    Some(i),
                );
                if sent < x.pending.len() {
                    self.stats.tx_ring_full += (x.pending.len() - sent) as u64;
                    self.free.extend_from_slice(&x.pending[sent..]);
                }
                let ring_full = sent < x.pending.len();
                x.pending.clear();
                // A full ring is kicked too: frames queued while the link was down (the
                // kernel refuses to send then) fill it, and without a kick after the
                // link comes back nothing would ever drain it.
                if sent > 0 || ring_full {
                    for _ in 0..sent.div_ceil(x.frames_per_kick).max(1) {
                        let _ = x.tx.wakeup();
                    }
                }
            }
            // SAFETY: completed descriptors come back to us.
            let n = unsafe { x.cq.consume(&mut done) };
            mark(&mut self.owner, self.frame_size, &done[..n], None);
            self.free.extend_from_slice(&done[..n]);
        }
        self.refill();
    }

    /// Called a few times a second (a getsockopt per socket), never per packet.
    fn backend_stats(&self) -> BackendStats {
        let mut s = self.stats;
        for (_, port) in &self.ports {
            if let Port::Xsk(x) = port {
                if let Ok(k) = x.rx.fd().xdp_statistics() {
                    s.xdp_rx_dropped += k.rx_dropped();
                    s.xdp_rx_ring_full += k.rx_ring_full();
                    s.xdp_fill_ring_empty += k.rx_fill_ring_empty_descs();
                }
            }
        }
        s
    }

    fn wait(&mut self, timeout: Duration) {
        if !self.registered {
            self.registered = true;
            for i in 0..self.ports.len() {
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
        if let Some(m) = &self.inbox {
            m.awake();
        }
    }
}

mod frames;
use frames::{buffer, letter_room, mark, set_len, HANDOFF_ROOM};
