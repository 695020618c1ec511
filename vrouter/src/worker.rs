//! A poll-mode worker: owns its I/O (sockets, rings, buffers) and its pipeline, and loops
//! rx burst → pipeline → tx per port, then housekeeping once per loop (never per packet):
//! TX kick and ring refill, retrying held frames, asking unresolved pods for their MAC.
//! `PollMode::Busy` spins; `Adaptive` sleeps in poll() after some tens of microseconds of
//! empty loops, going offline for the FIB first so route updates never wait for an idle
//! worker. The spin is timed, not counted: a loop over a hundred ports is far slower
//! than one over two, and a counted spin kept such a worker awake for good.

use crate::arp::{self, HOST_SIDE_MAC, POD_GATEWAY_V4};
use crate::burst::BURST;
use crate::config::PollMode;
use crate::io::mailbox::Mailbox;
use crate::io::Io;
use crate::nd::{self, POD_GATEWAY_V6};
use crate::nexthop::{Adjacency, NextHopTable, PortId};
use crate::pipeline::Pipeline;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How the control side reaches a worker: its command queue, and the bell of its
/// mailbox that wakes it if it sleeps (an adaptive worker sleeps up to `IDLE_SLEEP`:
/// an endpoint add waited that long for its port, ~17 ms of a 56 ms add measured).
#[derive(Clone)]
pub struct WorkerTx {
    tx: mpsc::Sender<WorkerCmd>,
    bell: Arc<Mailbox>,
}

impl WorkerTx {
    pub fn new(tx: mpsc::Sender<WorkerCmd>, bell: Arc<Mailbox>) -> WorkerTx {
        WorkerTx { tx, bell }
    }

    /// `Err` when the worker has stopped.
    pub fn send(&self, cmd: WorkerCmd) -> Result<(), WorkerGone> {
        self.tx.send(cmd).map_err(|_| WorkerGone)?;
        self.bell.command_posted();
        Ok(())
    }
}

/// A command for a worker that has stopped.
#[derive(Debug)]
pub struct WorkerGone;

/// What the control loop asks a worker while it runs (endpoints added or removed).
pub enum WorkerCmd {
    /// Every worker: the pools we decapsulate toward changed.
    SetOverlay(crate::tunnel::Overlay),
    /// Every worker: enforce these policies from now on.
    SetPolicy(Arc<crate::policy::set::PolicySet>),
    /// Every worker: port `id` is now this (its MTU, the addresses its pod may use).
    SetPort(PortId, crate::pipeline::Port),
    /// The owning worker: open the endpoint's socket, steer its queue 0 to it, and
    /// ask the pod for its MAC until it answers.
    Open {
        id: PortId,
        spec: crate::io::PortSpec,
        probe: PodProbe,
        steer: Option<Arc<crate::xdp::XdpProgram>>,
        /// Its socket, opened and bound by the control side (binding can wait seconds
        /// for the kernel's RTNL lock); None: the worker opens it.
        socket: Option<crate::io::Prepared>,
        done: mpsc::Sender<std::io::Result<()>>,
    },
    /// List (or, with `flush`, remove) this worker's flows that `filter` picks.
    Flows {
        filter: crate::conntrack::view::FlowFilter,
        limit: usize,
        flush: bool,
        done: mpsc::Sender<(Vec<crate::conntrack::view::FlowView>, usize)>,
    },
    /// Every worker: close the sockets a previous run left that no endpoint claimed.
    DropParked,
    /// The owning worker: close it (the frames its rings held come back).
    Close {
        id: PortId,
        steer: Option<Arc<crate::xdp::XdpProgram>>,
        /// Answered with the port's socket, to be closed off the worker, and the slot
        /// to `Reclaim` once it is.
        done: mpsc::Sender<Option<(crate::io::Prepared, usize)>>,
    },
    /// The socket of a slot `Close` handed over is closed: its frames are free.
    Reclaim(usize),
}

/// Bursts taken from one port per loop at most.
const BURSTS_PER_LOOP: usize = 4;
/// Empty loops for this long and an adaptive worker sleeps.
const IDLE_SPIN: Duration = Duration::from_micros(50);
/// Longest sleep of an idle adaptive worker (it wakes at once when frames arrive).
const IDLE_SLEEP: Duration = Duration::from_millis(20);
/// How often held frames are retried, and an unresolved pod is asked again.
const RETRY_EVERY: Duration = Duration::from_millis(1);
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// A pod whose MAC the worker learns (from its ARP / ND) or asks for.
#[derive(Debug, Clone)]
pub struct PodProbe {
    pub port: PortId,
    pub nh: u32,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

pub struct Worker<I: Io> {
    pub io: I,
    pub pipeline: Pipeline,
    nexthops: Arc<NextHopTable>,
    probes: Vec<PodProbe>,
    /// Endpoints' programs still sending the pod's ARP / ND answers to us: once the pod's
    /// MAC is known they go to the kernel (for its routes to the pod).
    handover: Vec<(PortId, Arc<crate::xdp::XdpProgram>)>,
    poll_mode: PollMode,
    last_retry: Instant,
    last_probe: Instant,
    started: Instant,
    /// When the current run of empty loops began (adaptive mode), and the last loop's clock.
    idle_since: Option<Instant>,
    now: Instant,
    commands: Option<mpsc::Receiver<WorkerCmd>>,
    /// Where this worker's sockets are kept across restarts, and its index there.
    store: Option<(Arc<crate::restart::FdStore>, usize)>,
}

impl<I: Io> Worker<I> {
    pub fn new(
        io: I,
        pipeline: Pipeline,
        nexthops: Arc<NextHopTable>,
        probes: Vec<PodProbe>,
        poll_mode: PollMode,
    ) -> Worker<I> {
        let now = Instant::now();
        Worker {
            io,
            pipeline,
            nexthops,
            probes,
            handover: Vec::new(),
            poll_mode,
            last_retry: now,
            started: now,
            last_probe: now - PROBE_EVERY,
            idle_since: None,
            now,
            commands: None,
            store: None,
        }
    }

    /// Keep endpoints' sockets opened from now on in `store` (as worker `w`).
    pub fn with_fd_store(mut self, store: Arc<crate::restart::FdStore>, w: usize) -> Worker<I> {
        self.store = Some((store, w));
        self
    }

    /// Take commands from the control loop (checked every millisecond or so).
    pub fn with_commands(mut self, commands: mpsc::Receiver<WorkerCmd>) -> Worker<I> {
        self.commands = Some(commands);
        self
    }

    fn take_commands(&mut self) {
        let Some(rx) = self.commands.take() else {
            return;
        };
        while let Ok(cmd) = rx.try_recv() {
            self.command(cmd);
        }
        self.commands = Some(rx);
    }

    /// Carry out one command of the control loop (between bursts).
    pub fn command(&mut self, cmd: WorkerCmd) {
        match cmd {
            WorkerCmd::SetPort(id, port) => self.pipeline.set_port(id, port),
            WorkerCmd::SetOverlay(o) => self.pipeline.set_overlay(o),
            WorkerCmd::SetPolicy(p) => self.pipeline.set_policy(p),
            WorkerCmd::Flows {
                filter,
                limit,
                flush,
                done,
            } => {
                let _ = done.send(self.pipeline.nat_mut().flows(&filter, limit, flush));
            }
            WorkerCmd::Open {
                id,
                spec,
                probe,
                steer,
                socket,
                done,
            } => {
                let opened = match socket {
                    Some(s) => self.io.open_prepared(id, &spec, s),
                    None => self.io.open_port(id, &spec),
                };
                let r = opened.and_then(|fd| {
                    if let (Some(prog), Some(fd)) = (&steer, fd) {
                        prog.register_socket(0, fd)?;
                    }
                    Ok(())
                });
                if let (true, Some((store, w)), Some((ifname, queue, fd))) =
                    (r.is_ok(), &self.store, self.io.port_socket(id))
                {
                    store.keep_socket(*w, &ifname, queue, fd);
                }
                if r.is_ok() {
                    self.probes.retain(|p| p.port != id);
                    self.probes.push(probe);
                    self.handover.retain(|(p, _)| *p != id);
                    self.handover.extend(steer.map(|prog| (id, prog)));
                    // Ask at once: the pod's first packets need its MAC.
                    self.last_probe = Instant::now() - PROBE_EVERY;
                } else {
                    self.io.close_port(id);
                }
                let _ = done.send(r);
            }
            WorkerCmd::Close { id, steer, done } => {
                if let Some(prog) = steer {
                    let _ = prog.unregister_socket(0);
                }
                self.probes.retain(|p| p.port != id);
                self.handover.retain(|(p, _)| *p != id);
                if let (Some((store, w)), Some((ifname, queue, _))) =
                    (&self.store, self.io.port_socket(id))
                {
                    store.forget_socket(*w, &ifname, queue);
                }
                let _ = done.send(self.io.detach_port(id));
            }
            WorkerCmd::Reclaim(slot) => self.io.reclaim(slot),
            WorkerCmd::DropParked => {
                for (ifname, queue) in self.io.drop_parked() {
                    if let Some((store, w)) = &self.store {
                        store.forget_socket(*w, &ifname, queue);
                    }
                }
            }
        }
    }

    /// Loop until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if self.poll_once() == 0 {
                self.idle();
            } else {
                self.idle_since = None;
            }
        }
        self.pipeline.offline();
    }

    /// One loop: a burst from every port, then housekeeping. Returns frames received.
    pub fn poll_once(&mut self) -> usize {
        let mut got = 0;
        self.io.refresh_readiness();
        let ports = self.io.rx_ports().len();
        for i in 0..ports {
            let port = self.io.rx_ports()[i];
            let pipeline = &mut self.pipeline;
            // A busy port gets a few bursts per loop: the TX kicks of a loop cost far
            // more than a burst, and a port must not fill its rings meanwhile.
            for _ in 0..BURSTS_PER_LOOP {
                let n = self.io.rx_burst(port, &mut |frames, lens, actions| {
                    pipeline.process(port, frames, lens, actions)
                });
                let io = &mut self.io;
                pipeline.drain_extra(&mut |p, f| {
                    io.send(p, f);
                });
                got += n;
                if n < BURST {
                    break;
                }
            }
        }
        let pipeline = &mut self.pipeline;
        got += self.io.rx_handoffs(&mut |port, frames, lens, actions| {
            pipeline.process(port, frames, lens, actions)
        });
        self.now = Instant::now();
        self.housekeeping(self.now);
        self.io.flush();
        got
    }

    fn housekeeping(&mut self, now: Instant) {
        // The flow tables' clock, and a little ageing, every loop.
        let now_s = now.duration_since(self.started).as_secs() as u32;
        self.pipeline.nat_mut().housekeep(now_s);
        if now.duration_since(self.last_retry) >= RETRY_EVERY {
            self.last_retry = now;
            self.take_commands();
            let pipeline = &mut self.pipeline;
            let expired = self
                .io
                .retry_held(now, &mut |frame, len, nh| pipeline.resume(frame, len, nh));
            if expired > 0 {
                pipeline.count_unresolved(expired);
            }
        }
        if now.duration_since(self.last_probe) >= PROBE_EVERY {
            self.last_probe = now;
            self.probe_pods();
            self.pipeline
                .publish_backend(self.io.backend_stats().values());
            self.pipeline.publish_conntrack();
        }
    }

    /// Ask every pod whose MAC is still unknown (ARP / neighbour solicitation from the
    /// gateway address). Its answer is learnt by the pipeline like any ARP / ND frame.
    fn probe_pods(&mut self) {
        let mut buf = [0u8; 128];
        for p in &self.probes {
            if self.nexthops.get(p.nh) != Some(Adjacency::Incomplete) {
                continue;
            }
            if let Some(ip) = p.v4 {
                let n = arp::request(&mut buf, HOST_SIDE_MAC, POD_GATEWAY_V4, ip);
                self.io.send(p.port, &buf[..n]);
            }
            if let Some(ip) = p.v6 {
                let n = nd::solicit(&mut buf, HOST_SIDE_MAC, POD_GATEWAY_V6, ip);
                self.io.send(p.port, &buf[..n]);
            }
        }
        let (probes, nexthops) = (&self.probes, &self.nexthops);
        self.handover.retain(|(port, prog)| {
            let known = probes.iter().any(|p| {
                p.port == *port && matches!(nexthops.get(p.nh), Some(Adjacency::Forward { .. }))
            });
            // Tried again at the next round if the kernel refused.
            !(known && prog.answers_to_kernel(true).is_ok())
        });
    }

    fn idle(&mut self) {
        match self.poll_mode {
            PollMode::Busy => std::hint::spin_loop(),
            PollMode::Adaptive => {
                let since = *self.idle_since.get_or_insert(self.now);
                if self.now.duration_since(since) >= IDLE_SPIN {
                    // A command queued meanwhile is carried out before sleeping; one
                    // queued from here on stops the sleep (`Mailbox::command_posted`).
                    self.take_commands();
                    self.pipeline.offline();
                    // Held frames need their retries: sleep briefly while any wait.
                    self.io.wait(IDLE_SLEEP);
                    // Woken: half a spin before sleeping again.
                    self.idle_since = Some(Instant::now() - IDLE_SPIN / 2);
                }
            }
        }
    }
}
