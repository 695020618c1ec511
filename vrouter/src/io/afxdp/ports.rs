//! The ports of one worker's UMEM and where each of its frames is: free (with us), or
//! on the rings of one port. Every path that moves frames keeps this exact (a lost frame
//! would slowly starve the fill rings; a frame free twice would carry two packets).
//! Slots: a port keeps its slot while it lives; an adopted socket waits `PARKED` until a
//! port claims it; a socket closing on another thread keeps its frames `CLOSING` until
//! `reclaim`; then the slot is `SPARE` for the next port.

use super::adopt;
use super::frames::mark;
use super::tuning::{Tuning, MAX_FILL};
use super::xsk::{Desc, Socket, Umem};
use crate::io::tap::TapDevice;
use crate::io::{PortSpec, Prepared};
use crate::nexthop::PortId;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

pub const RING_SIZE: u32 = 4096;
/// Frames per port set aside for TX in flight.
pub const TX_BUDGET: usize = 512;
/// The port id of an adopted socket no port has claimed yet.
pub const PARKED: PortId = PortId(u16::MAX);
/// A slot whose socket is being closed elsewhere (its frames wait for `reclaim`).
pub const CLOSING: PortId = PortId(u16::MAX - 1);
/// A slot free for the next port.
pub const SPARE: PortId = PortId(u16::MAX - 2);

/// Frames of a UMEM for these ports and `spare_pods` endpoints added later.
pub fn frames_needed(ports: &[(PortId, PortSpec)], spare_pods: usize) -> usize {
    ports
        .iter()
        .map(|(_, spec)| match spec {
            // Room for the deepest fill ring `[afxdp]` allows, uplink or pod.
            PortSpec::Xsk { .. } => MAX_FILL + TX_BUDGET,
            PortSpec::Tap { .. } => TX_BUDGET,
        })
        .sum::<usize>()
        + spare_pods * (MAX_FILL + TX_BUDGET)
        + 2 * crate::burst::BURST
        + crate::io::HOLD_CAPACITY
        + crate::io::mailbox::MAILBOX_FRAMES / 4
}

/// The least a kept UMEM must hold to be taken over: frames for these ports and for
/// every kept socket (the endpoints of the last run). Its room for endpoints added
/// later was sized by the last run's plan (a slot per endpoint of the file, plus the
/// spare ones) and can't grow: a UMEM is registered once.
pub fn frames_kept_need(ports: &[(PortId, PortSpec)], kept_sockets: usize) -> usize {
    frames_needed(ports, kept_sockets.saturating_sub(ports.len()))
}

#[allow(clippy::large_enum_variant)] // few ports, in one Vec, touched every loop
pub enum Port {
    Xsk(Xsk),
    Tap(TapDevice),
    /// An endpoint removed at run time (its slot may be opened again).
    Closed,
}

pub struct Xsk {
    pub socket: Socket,
    /// Interface and queue (the socket's name in the fd store).
    pub at: (String, u32),
    pub pending: Vec<Desc>,
    pub in_fill: usize,
    pub fill_target: usize,
    /// Kicks needed per `pending` frames sent (1 when the budget option took).
    pub frames_per_kick: usize,
    /// An empty RX ring is polled with a recvfrom (busy polling).
    pub busy_poll: bool,
    /// Kick TX only when the ring says the kernel needs it (need_wakeup is in effect).
    pub wakeup_flags: bool,
}

pub struct Ports {
    /// Shared (Arc) so a frame's bytes can be borrowed while the owner is called, and
    /// with the opener that binds sockets off the worker.
    pub umem: Arc<Umem>,
    pub free: Vec<Desc>,
    /// Where each frame of the UMEM is, by index (address / frame size): 0 with us,
    /// `i + 1` in the fill, RX, TX or completion ring of `list[i]`. Closing a socket
    /// takes back exactly the frames its rings held.
    pub owner: Vec<u16>,
    pub frame_size: usize,
    pub list: Vec<(PortId, Port)>,
    /// PortId → index into `list` (u16::MAX: another worker's port).
    pub by_id: Vec<u16>,
    pub rx_ids: Vec<PortId>,
    pub tuning: Tuning,
    /// need_wakeup is in effect on this UMEM's sockets: asked for, and the UMEM is new
    /// (an adopted one keeps the last run's binding, which we can't read back).
    pub wakeup_flags: bool,
}

impl Ports {
    /// Every frame of `umem` free, no port.
    pub fn new(umem: Umem) -> Ports {
        let frame_size = umem.frame_size();
        let frames = umem.frames();
        let mut ports = Ports {
            umem: Arc::new(umem),
            owner: vec![0; frames],
            frame_size,
            free: Vec::new(),
            list: Vec::new(),
            by_id: Vec::new(),
            rx_ids: Vec::new(),
            tuning: Tuning::default(),
            wakeup_flags: false,
        };
        ports.free_unowned();
        ports
    }

    /// Frame `k` of the UMEM, from its start.
    fn frame(&self, k: usize) -> Desc {
        Desc {
            addr: (k * self.frame_size) as u64,
            ..Desc::default()
        }
    }

    /// The free list is every frame on no ring, low addresses handed out first (popped
    /// from the end).
    fn free_unowned(&mut self) {
        self.free = (0..self.owner.len())
            .rev()
            .filter(|&k| self.owner[k] == 0)
            .map(|k| self.frame(k))
            .collect();
    }

    /// The slot of port `id`.
    pub fn index_of(&self, id: PortId) -> Option<usize> {
        self.by_id
            .get(id.0 as usize)
            .filter(|&&i| i != u16::MAX)
            .map(|&i| i as usize)
    }

    /// The parked socket of `ifname` / `queue` from the last run, if any.
    pub fn parked(&self, ifname: &str, queue: u32) -> Option<usize> {
        self.list.iter().position(|(p, port)| {
            *p == PARKED && matches!(port, Port::Xsk(x) if x.at.0 == ifname && x.at.1 == queue)
        })
    }

    /// Close port `id`; its slot stays its own.
    pub fn close_port(&mut self, id: PortId) {
        if let Some(i) = self.index_of(id) {
            self.rx_ids.retain(|&p| p != id);
            self.close_index(i);
        }
    }

    /// Install a previous run's sockets, parked (no port id yet), and keep the frames
    /// their rings hold off the free list. Returns the sockets that could not be taken
    /// over (their interface went while no process ran: the kernel unbound them, so
    /// their frames are free); they are closed.
    pub fn adopt(&mut self, sockets: Vec<(String, u32, OwnedFd)>) -> Vec<(String, u32)> {
        let mut failed = Vec::new();
        if sockets.is_empty() {
            return failed;
        }
        for (ifname, queue, fd) in sockets {
            match Socket::adopt(fd, RING_SIZE)
                .and_then(|s| self.xsk(s, (ifname.clone(), queue), false))
            {
                Ok(x) => self.list.push((PARKED, Port::Xsk(x))),
                // Dropped (closed) here, before any frame is counted free.
                Err(e) => {
                    tracing::info!(%ifname, queue, error = %e, "a kept socket not taken over");
                    failed.push((ifname, queue));
                }
            }
        }
        let sockets: Vec<&Socket> = self
            .list
            .iter()
            .filter_map(|(_, p)| match p {
                Port::Xsk(x) => Some(&x.socket),
                _ => None,
            })
            .collect();
        adopt::drain_tx(&sockets, Duration::from_millis(20));
        for (i, (_, port)) in self.list.iter_mut().enumerate() {
            let Port::Xsk(x) = port else { continue };
            let held = adopt::held_frames(&x.socket, self.frame_size);
            x.in_fill = held.fill_or_rx.len();
            for k in held.fill_or_rx.into_iter().chain(held.sending) {
                if let Some(o) = self.owner.get_mut(k) {
                    *o = (i + 1) as u16;
                }
            }
        }
        self.free_unowned();
        failed
    }

    /// Close the adopted sockets no port claimed (endpoints gone while we were down).
    /// Returns their interfaces and queues.
    pub fn drop_parked(&mut self) -> Vec<(String, u32)> {
        let parked: Vec<usize> = (0..self.list.len())
            .filter(|&i| self.list[i].0 == PARKED && matches!(self.list[i].1, Port::Xsk(_)))
            .collect();
        let mut gone = Vec::new();
        for i in parked {
            if let Port::Xsk(x) = &self.list[i].1 {
                gone.push(x.at.clone());
            }
            self.close_index(i);
            self.list[i].0 = SPARE;
        }
        gone
    }

    /// The fds a restart can take over: the UMEM's memfd, and every socket with its
    /// interface and queue.
    pub fn keepable(&self) -> (BorrowedFd<'_>, Vec<(&str, u32, BorrowedFd<'_>)>) {
        let sockets = self
            .list
            .iter()
            .filter_map(|(_, p)| match p {
                Port::Xsk(x) => Some((x.at.0.as_str(), x.at.1, x.socket.as_fd())),
                _ => None,
            })
            .collect();
        (self.umem.memfd(), sockets)
    }

    /// Port `id` is `port` from now on: in its old slot, a spare one, or a new one.
    pub fn place(&mut self, id: PortId, port: Port) -> usize {
        let index = match self.by_id.get(id.0 as usize).copied().unwrap_or(u16::MAX) {
            u16::MAX => match self.list.iter().position(|(p, _)| *p == SPARE) {
                Some(i) => {
                    self.list[i] = (id, port);
                    i
                }
                None => {
                    self.list.push((id, port));
                    self.list.len() - 1
                }
            },
            i => {
                self.list[i as usize] = (id, port);
                i as usize
            }
        };
        self.install(id, index);
        index
    }

    /// Port `id` is `list[index]` from now on.
    pub fn install(&mut self, id: PortId, index: usize) {
        let slot = id.0 as usize;
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, u16::MAX);
        }
        self.by_id[slot] = index as u16;
        if !self.rx_ids.contains(&id) {
            self.rx_ids.push(id);
        }
    }

    /// Close slot `i` (the kernel stops using its rings before close returns; a closed
    /// fd leaves the poller by itself) and free every frame its rings held.
    pub fn close_index(&mut self, i: usize) {
        match std::mem::replace(&mut self.list[i].1, Port::Closed) {
            Port::Xsk(x) => {
                self.free.extend_from_slice(&x.pending);
                // Closing the socket: the kernel stops using its rings before close returns.
                drop(x);
            }
            Port::Tap(t) => drop(t),
            Port::Closed => {}
        }
        let mine = (i + 1) as u16;
        for k in 0..self.owner.len() {
            if self.owner[k] == mine {
                self.owner[k] = 0;
                self.free.push(self.frame(k));
            }
        }
    }

    pub fn port_fd(&self, i: usize) -> Option<RawFd> {
        match &self.list[i].1 {
            Port::Xsk(x) => Some(x.socket.as_raw_fd()),
            Port::Tap(t) => Some(t.as_raw_fd()),
            Port::Closed => None,
        }
    }

    /// A bound socket of this UMEM to share it through (the first may have been closed).
    pub fn share_fd(&self) -> Option<BorrowedFd<'_>> {
        self.list.iter().find_map(|(_, p)| match p {
            Port::Xsk(x) => Some(x.socket.as_fd()),
            _ => None,
        })
    }

    /// Take port `id` out of service without closing its socket or tap (the caller took
    /// it off the poller): it is returned with the slot whose frames stay off the free
    /// list until [`Self::reclaim`] says the socket is closed (closing waits for the
    /// kernel: not on a worker). None for an unknown or closed port.
    pub fn detach(&mut self, id: PortId) -> Option<(Prepared, usize)> {
        let i = self.index_of(id)?;
        self.rx_ids.retain(|&p| p != id);
        match std::mem::replace(&mut self.list[i].1, Port::Closed) {
            Port::Xsk(x) => {
                self.by_id[id.0 as usize] = u16::MAX;
                self.list[i].0 = CLOSING;
                self.free.extend_from_slice(&x.pending);
                Some((Prepared::Xsk(x.socket), i))
            }
            // A tap's frames are never on a ring: its slot stays the port's.
            Port::Tap(t) => Some((Prepared::Tap(t), usize::MAX)),
            Port::Closed => None,
        }
    }

    /// The socket of `slot` ([`Self::detach`]) is closed: its frames are free.
    pub fn reclaim(&mut self, slot: usize) {
        if self.list.get(slot).is_some_and(|(p, _)| *p == CLOSING) {
            self.close_index(slot);
            self.list[slot].0 = SPARE;
        }
    }

    /// The fill ring's target for an uplink's socket or a pod's.
    pub fn fill_target(&self, uplink: bool) -> usize {
        if uplink {
            self.tuning.uplink_fill
        } else {
            self.tuning.pod_fill
        }
    }

    /// A port for `socket`, with the tuning's options set on it. Busy polling the
    /// kernel refuses is an error: the configuration asked for it.
    pub fn xsk(&self, socket: Socket, at: (String, u32), uplink: bool) -> std::io::Result<Xsk> {
        let (frames_per_kick, busy_poll) = self.tuning.apply(&socket);
        let busy_poll = busy_poll.map_err(|e| {
            std::io::Error::new(e.kind(), format!("AF_XDP {} queue {}: {e}", at.0, at.1))
        })?;
        Ok(Xsk {
            socket,
            at,
            pending: Vec::with_capacity(RING_SIZE as usize),
            in_fill: 0,
            fill_target: self.fill_target(uplink),
            frames_per_kick,
            busy_poll,
            wakeup_flags: self.wakeup_flags,
        })
    }

    /// Every frame is free exactly once or on exactly one port's rings (tests).
    pub fn check_frames(&self) -> Result<(), String> {
        let mut seen = vec![false; self.owner.len()];
        for d in &self.free {
            let k = d.addr as usize / self.frame_size;
            if std::mem::replace(&mut seen[k], true) {
                return Err(format!("frame {k} is free twice"));
            }
            if self.owner[k] != 0 {
                return Err(format!(
                    "frame {k} is free and on port {}'s rings",
                    self.owner[k] - 1
                ));
            }
        }
        let lost = (0..seen.len())
            .filter(|&k| !seen[k] && self.owner[k] == 0)
            .count();
        // Frames lent to a burst, held or in flight to a mailbox are neither; between
        // calls there are none.
        if lost > 0 {
            return Err(format!("{lost} frames neither free nor on a ring"));
        }
        Ok(())
    }

    pub fn refill(&mut self) {
        for (i, (_, port)) in self.list.iter_mut().enumerate() {
            let Port::Xsk(x) = port else { continue };
            let want = x.fill_target.saturating_sub(x.in_fill).min(self.free.len());
            if want == 0 {
                continue;
            }
            let start = self.free.len() - want;
            let n = x.socket.fill.produce_with(&self.free[start..], |d| d.addr);
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
