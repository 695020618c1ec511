//! The in-memory backend: ports are queues of byte buffers. Deterministic packet tests
//! inject frames and read what was sent; `fwdbench --memio` measures the pipeline's own
//! cost with it. Buffers come from a fixed pool, so a steady run does not allocate.

use super::{HoldQueue, Io, Process};
use crate::burst::{Action, BURST};
use crate::nexthop::PortId;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes per buffer: room for a 1500-byte packet, its Ethernet header and replies.
pub const BUFFER_SIZE: usize = 2048;

type Buffer = Box<[u8]>;

pub struct MemoryIo {
    ports: Vec<PortId>,
    pool: Vec<Buffer>,
    rx: Vec<VecDeque<(Buffer, usize)>>,
    /// Everything sent, in order: (port, buffer, length).
    sent: Vec<(PortId, Buffer, usize)>,
    /// Frames the pipeline handed to the kernel.
    to_kernel: Vec<(Buffer, usize)>,
    held: HoldQueue<Buffer>,
    /// Frames handed to another worker, as (worker, port received on, bytes), and
    /// frames handed to us, waiting for `rx_handoffs`.
    pub handed: Vec<(u16, PortId, Vec<u8>)>,
    arrived: VecDeque<(PortId, Buffer, usize)>,
    /// Frames dropped by the backend itself (pool empty, hold queue full or expired).
    pub backend_drops: u64,
}

impl MemoryIo {
    /// `ports` ports numbered 0.., a pool of `buffers` buffers.
    pub fn new(ports: usize, buffers: usize) -> MemoryIo {
        MemoryIo {
            ports: (0..ports as u16).map(PortId).collect(),
            pool: (0..buffers)
                .map(|_| vec![0u8; BUFFER_SIZE].into_boxed_slice())
                .collect(),
            rx: (0..ports)
                .map(|_| VecDeque::with_capacity(buffers))
                .collect(),
            sent: Vec::with_capacity(buffers),
            to_kernel: Vec::new(),
            held: HoldQueue::default(),
            handed: Vec::new(),
            arrived: VecDeque::new(),
            backend_drops: 0,
        }
    }

    /// `frame` copied into a buffer of the pool (cut to its size); None when it is empty.
    fn copy_in(&mut self, frame: &[u8]) -> Option<(Buffer, usize)> {
        let mut b = self.pool.pop()?;
        let n = frame.len().min(BUFFER_SIZE);
        b[..n].copy_from_slice(&frame[..n]);
        Some((b, n))
    }

    /// Queue `frame` for reception on `port`. False when the pool is empty.
    pub fn inject(&mut self, port: PortId, frame: &[u8]) -> bool {
        let Some((b, n)) = self.copy_in(frame) else {
            return false;
        };
        self.rx[port.0 as usize].push_back((b, n));
        true
    }

    /// Queue `frame` as handed over by another worker, received on `port`.
    pub fn inject_handoff(&mut self, port: PortId, frame: &[u8]) -> bool {
        let Some((b, n)) = self.copy_in(frame) else {
            return false;
        };
        self.arrived.push_back((port, b, n));
        true
    }

    /// What was sent since the last call, as (port, bytes); buffers go back to the pool.
    pub fn take_sent(&mut self) -> Vec<(PortId, Vec<u8>)> {
        let sent = std::mem::take(&mut self.sent);
        sent.into_iter()
            .map(|(p, b, n)| {
                let v = b[..n].to_vec();
                self.pool.push(b);
                (p, v)
            })
            .collect()
    }

    /// Recycle what was sent without looking at it (benchmarks). Returns how many.
    pub fn discard_sent(&mut self) -> usize {
        let n = self.sent.len();
        for (_, b, _) in self.sent.drain(..) {
            self.pool.push(b);
        }
        n
    }

    /// Frames handed to the kernel since the last call.
    pub fn take_to_kernel(&mut self) -> Vec<Vec<u8>> {
        let k = std::mem::take(&mut self.to_kernel);
        k.into_iter()
            .map(|(b, n)| {
                let v = b[..n].to_vec();
                self.pool.push(b);
                v
            })
            .collect()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn carry_out(&mut self, b: Buffer, action: Action, now: Instant) {
        match action {
            Action::Tx { port, len } => self.sent.push((port, b, len)),
            Action::Fragment { port, len, mtu } => {
                let _ = encap::fragment::ipv4_fragments(&b[..len], mtu as usize, |f| {
                    self.send(port, f);
                });
                self.pool.push(b);
            }
            Action::Kernel => self.to_kernel.push((b, 0)),
            Action::Hold { nh, len } => {
                if let Err(b) = self.held.push(b, nh, len, now) {
                    self.backend_drops += 1;
                    self.pool.push(b);
                }
            }
            Action::Drop(_) | Action::Consumed | Action::Handoff { .. } => self.pool.push(b),
        }
    }
}

impl Io for MemoryIo {
    fn rx_ports(&self) -> &[PortId] {
        &self.ports
    }

    /// Every port of a memory backend exists from the start; opening one is accepted
    /// (no socket: no fd to steer to).
    fn open_port(
        &mut self,
        id: PortId,
        _spec: &super::PortSpec,
    ) -> std::io::Result<Option<std::os::fd::RawFd>> {
        if (id.0 as usize) < self.rx.len() {
            Ok(None)
        } else {
            Err(std::io::Error::other(format!("no port {}", id.0)))
        }
    }

    /// Frames waiting on a closed port are dropped.
    fn close_port(&mut self, id: PortId) {
        if let Some(q) = self.rx.get_mut(id.0 as usize) {
            for (b, _) in q.drain(..) {
                self.pool.push(b);
            }
        }
    }

    fn rx_burst(&mut self, port: PortId, process: &mut Process<'_>) -> usize {
        let q = &mut self.rx[port.0 as usize];
        let n = q.len().min(BURST);
        if n == 0 {
            return 0;
        }
        let mut bufs: [Option<Buffer>; BURST] = std::array::from_fn(|_| None);
        let mut lens = [0usize; BURST];
        for i in 0..n {
            let (b, len) = q.pop_front().unwrap();
            bufs[i] = Some(b);
            lens[i] = len;
        }
        let mut actions = [Action::Drop(crate::burst::DropReason::Malformed); BURST];
        {
            let mut frames: [&mut [u8]; BURST] = std::array::from_fn(|_| &mut [][..]);
            for (f, b) in frames.iter_mut().zip(bufs.iter_mut()).take(n) {
                *f = b.as_deref_mut().unwrap();
            }
            process(&mut frames[..n], &lens[..n], &mut actions[..n]);
        }
        let now = Instant::now();
        for (b, (action, len)) in bufs.iter_mut().zip(actions.iter().zip(lens)).take(n) {
            let b = b.take().unwrap();
            match *action {
                Action::Kernel => self.to_kernel.push((b, len)),
                Action::Handoff { worker, len } => {
                    self.handed.push((worker, port, b[..len].to_vec()));
                    self.pool.push(b);
                }
                a => self.carry_out(b, a, now),
            }
        }
        n
    }

    fn rx_handoffs(&mut self, process: &mut super::Handoffs<'_>) -> usize {
        let mut total = 0;
        while let Some((port, mut b, len)) = self.arrived.pop_front() {
            let mut action = [Action::Drop(crate::burst::DropReason::Malformed)];
            process(port, &mut [&mut b[..]], &[len], &mut action);
            self.carry_out(b, action[0], Instant::now());
            total += 1;
        }
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
        let expired = held.retry(
            now,
            &mut |b, len, nh| resume(&mut b[..], len, nh),
            &mut |b, a| match a {
                Some(a) => self.carry_out(b, a, now),
                None => self.pool.push(b),
            },
        );
        self.held = held;
        expired
    }

    fn send(&mut self, port: PortId, frame: &[u8]) -> bool {
        let Some((b, n)) = self.copy_in(frame) else {
            return false;
        };
        self.sent.push((port, b, n));
        true
    }

    fn flush(&mut self) {}

    fn wait(&mut self, timeout: Duration) {
        if self.rx.iter().all(|q| q.is_empty()) {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
        }
    }
}
