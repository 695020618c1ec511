//! `WorkerHost`: vrouterd's `Host` — the node's changes carried to the workers (commands
//! on their channels) and to the kernel (XDP programs and their prefix maps, routes to
//! the pods).
//!
//! It is the one owner of every endpoint's XDP program, whether the endpoint came from
//! the file at start, a reload or the API: closing an endpoint drops the program, and
//! the kernel detaches it with its last link fd.

use crate::config::{EndpointKind, XdpMode};
use crate::io::PortSpec;
use crate::kroute::KernelRoutes;
use crate::nexthop::PortId;
use crate::node::error::{NodeError, NodeResult};
use crate::node::host::Host;
use crate::node::interface::{if_info, interface_stat, IfInfo};
use crate::node::plan::EndpointPlan;
use crate::pipeline::Port;
use crate::tunnel::Overlay;
use crate::worker::{PodProbe, WorkerCmd, WorkerTx};
use crate::xdp::{AttachMode, PrefixClass, Preloaded, XdpProgram, XdpRole};
use ipnet::IpNet;
use std::collections::HashMap;
use std::io;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tracing::{error, info, warn};

pub struct WorkerHost {
    pub workers: Vec<WorkerTx>,
    pub uplinks: Vec<Arc<XdpProgram>>,
    /// Every open veth endpoint's program, by interface.
    pub endpoints: HashMap<String, Arc<XdpProgram>>,
    pub xdp_mode: XdpMode,
    /// The node's own addresses, as host prefixes (kept for the kernel on endpoints).
    pub local: Vec<IpNet>,
    /// The node's kernel routes to its pods.
    pub routes: KernelRoutes,
    /// Endpoint programs loaded ahead (`SparePrograms`), so that a pod's ADD does not
    /// wait for the verifier.
    pub spares: SparePrograms,
    /// Endpoint closes finished off the control loop.
    pub reaper: Reaper,
    /// NAT outgoing's ports, kept from the kernel while a pool asks for NAT.
    pub nat: crate::nat_ports::NatPorts,
    /// Programs and sockets kept across restarts.
    pub store: Arc<crate::restart::FdStore>,
    /// Each worker's socket opener: endpoints' sockets are bound here, not on a worker.
    pub openers: Vec<crate::io::afxdp::xsk::Opener>,
    /// The uplinks' NAPI settings `[afxdp]` changed, written back at shutdown.
    pub napi: Vec<crate::io::afxdp::NapiRestore>,
}

impl WorkerHost {
    /// NAT outgoing on or off: the kernel keeps off its ports, and the uplinks' programs
    /// steer what returns to them to us. Fails (NAT left off) if the kernel's ports
    /// cannot be kept clear.
    pub fn sync_nat(&mut self, wanted: bool) -> io::Result<()> {
        if wanted == self.nat.on {
            return Ok(());
        }
        if wanted {
            self.nat.reserve()?;
            for p in &self.uplinks {
                p.nat_ports(Some(self.nat.range.clone()))?;
            }
            info!(ports = ?self.nat.range, "NAT outgoing on");
        } else {
            for p in &self.uplinks {
                p.nat_ports(None)?;
            }
            self.nat.release();
            info!("NAT outgoing off");
        }
        Ok(())
    }
}

/// Endpoint programs loaded (verified) ahead by a background thread, `SPARES` at a time:
/// loading costs ~7 ms of the ~9 ms of attaching one, and endpoints come in bursts.
pub struct SparePrograms {
    ready: crossbeam_channel::Receiver<Preloaded>,
}

const SPARES: usize = 2;

/// Closing an endpoint without waiting for it, and without a worker waiting: the worker
/// hands over the socket, this thread closes it (a kernel RCU wait, ~20 ms, and the RTNL
/// lock, seconds while interfaces churn), tells the worker its frames are free, then
/// drops the program (the detach, another ~15 ms), while the control loop answers the
/// next request. A new program for the same interface waits for the old one's detach
/// (`wait_for`).
pub struct Reaper {
    jobs: mpsc::Sender<ReapJob>,
    pending: Arc<(std::sync::Mutex<HashMap<String, usize>>, std::sync::Condvar)>,
}

/// An endpoint closing: its interface, the worker's answer (its socket and slot), its
/// program, and the worker to tell.
type ReapJob = (
    String,
    mpsc::Receiver<Option<(crate::io::Prepared, usize)>>,
    Option<Arc<XdpProgram>>,
    WorkerTx,
);

fn finish_close(job: ReapJob) {
    let (ifname, closed, steer, worker) = job;
    match closed.recv_timeout(Duration::from_secs(10)) {
        Ok(Some((socket, slot))) => {
            drop(socket);
            let _ = worker.send(WorkerCmd::Reclaim(slot));
        }
        Ok(None) => {}
        Err(_) => warn!(%ifname, "the worker did not confirm the close"),
    }
    // The last holder: the program detaches here.
    drop(steer);
}

impl Reaper {
    pub fn start() -> io::Result<Reaper> {
        let (jobs, rx) = mpsc::channel::<ReapJob>();
        let pending = Arc::new((
            std::sync::Mutex::new(HashMap::new()),
            std::sync::Condvar::new(),
        ));
        let shared = pending.clone();
        std::thread::Builder::new()
            .name("xdp-reaper".into())
            .spawn(move || {
                for job in rx {
                    let ifname = job.0.clone();
                    finish_close(job);
                    let (lock, cv) = &*shared;
                    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(n) = p.get_mut(&ifname) {
                        *n -= 1;
                        if *n == 0 {
                            p.remove(&ifname);
                        }
                    }
                    cv.notify_all();
                }
            })?;
        Ok(Reaper { jobs, pending })
    }

    fn reap(
        &self,
        ifname: &str,
        closed: mpsc::Receiver<Option<(crate::io::Prepared, usize)>>,
        steer: Option<Arc<XdpProgram>>,
        worker: WorkerTx,
    ) {
        let (lock, _) = &*self.pending;
        *lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ifname.to_string())
            .or_insert(0) += 1;
        if let Err(mpsc::SendError(job)) =
            self.jobs.send((ifname.to_string(), closed, steer, worker))
        {
            // No reaper thread: close in line.
            finish_close(job);
            lock.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(ifname);
        }
    }

    /// Until no close of `ifname` is pending (at most 10 s).
    fn wait_for(&self, ifname: &str) {
        let (lock, cv) = &*self.pending;
        let p = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout_while(p, Duration::from_secs(10), |p| p.contains_key(ifname));
    }
}

impl SparePrograms {
    pub fn start() -> SparePrograms {
        let (tx, ready) = crossbeam_channel::bounded(SPARES);
        let spawned = std::thread::Builder::new()
            .name("xdp-preload".into())
            .spawn(move || loop {
                match XdpProgram::preload(XdpRole::Endpoint) {
                    // Blocks while SPARES are waiting; ends when the host goes.
                    Ok(p) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "loading a spare endpoint program; loading on demand");
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "no spare-program thread; loading on demand");
        }
        SparePrograms { ready }
    }

    fn take(&self) -> Option<Preloaded> {
        self.ready.try_recv().ok()
    }
}

/// Attach our program to `ifname`, in the mode the configuration asks.
pub fn attach(ifname: &str, role: XdpRole, mode: XdpMode) -> io::Result<XdpProgram> {
    attach_loaded(ifname, preload_for(ifname, role)?, mode)
}

/// A program loaded now, for `ifname` (named in the error).
fn preload_for(ifname: &str, role: XdpRole) -> io::Result<Preloaded> {
    XdpProgram::preload(role)
        .map_err(|e| io::Error::new(e.kind(), format!("interface {ifname}: {e}")))
}

fn attach_loaded(ifname: &str, pre: Preloaded, mode: XdpMode) -> io::Result<XdpProgram> {
    let first = match mode {
        XdpMode::Generic => AttachMode::Generic,
        XdpMode::Native | XdpMode::Auto => AttachMode::Native,
    };
    match XdpProgram::attach_preloaded(ifname, pre, first) {
        Ok(p) => Ok(p),
        // Only the driver refusing native mode is worth a try in generic mode: another
        // program attached (another vrouterd?) would refuse that just the same.
        Err((e, pre)) if mode == XdpMode::Auto && e.kind() == io::ErrorKind::Unsupported => {
            warn!(%ifname, error = %e, "native XDP refused; using generic mode");
            XdpProgram::attach_preloaded(ifname, pre, AttachMode::Generic).map_err(|(e, _)| e)
        }
        Err((e, _)) => Err(e),
    }
}

/// An endpoint's program: everything to the pod's socket but the node's own addresses.
/// `spare`: one loaded ahead, if any.
pub fn attach_endpoint(
    ifname: &str,
    mode: XdpMode,
    local: &[IpNet],
    spare: Option<Preloaded>,
) -> io::Result<XdpProgram> {
    let pre = match spare {
        Some(p) => p,
        None => preload_for(ifname, XdpRole::Endpoint)?,
    };
    let prog = attach_loaded(ifname, pre, mode)?;
    add_local_prefixes(&prog, local)?;
    Ok(prog)
}

/// The node's own addresses go to the kernel on `prog`'s interface.
pub fn add_local_prefixes(prog: &XdpProgram, local: &[IpNet]) -> io::Result<()> {
    for l in local {
        prog.add_prefix(*l, PrefixClass::Local)?;
    }
    Ok(())
}

/// How a worker opens endpoint `e`'s port.
pub fn port_spec(e: &EndpointPlan) -> PortSpec {
    match e.kind {
        EndpointKind::Veth => PortSpec::Xsk {
            ifname: e.interface.clone(),
            queue: 0,
            uplink: false,
        },
        EndpointKind::Tap => PortSpec::Tap {
            name: e.interface.clone(),
        },
    }
}

/// The command that opens endpoint `ep` on its worker (`steer`: its XDP program).
pub fn open_command(
    ep: &EndpointPlan,
    steer: Option<Arc<XdpProgram>>,
    socket: Option<crate::io::Prepared>,
    done: mpsc::Sender<io::Result<()>>,
) -> WorkerCmd {
    WorkerCmd::Open {
        id: ep.port,
        spec: port_spec(ep),
        probe: PodProbe {
            port: ep.port,
            nh: ep.nh,
            v4: ep.v4,
            v6: ep.v6,
        },
        steer,
        socket,
        done,
    }
}

/// `ip` as a host prefix (/32, /128).
fn host_prefix(ip: &IpNet) -> IpNet {
    IpNet::from(ip.addr())
}

impl WorkerHost {
    fn ask<T>(&self, w: usize, make: impl FnOnce(mpsc::Sender<T>) -> WorkerCmd) -> NodeResult<T> {
        let (tx, rx) = mpsc::channel();
        self.workers[w]
            .send(make(tx))
            .map_err(|_| NodeError::Internal(format!("worker {w} has stopped")))?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| NodeError::Internal(format!("worker {w} did not answer")))
    }
}

impl Host for WorkerHost {
    fn interface(&self, name: &str) -> io::Result<IfInfo> {
        if_info(name)
    }

    fn interface_counter(&self, name: &str, key: &str) -> u64 {
        interface_stat(name, key)
    }

    fn set_port(&mut self, id: PortId, port: &Port) {
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetPort(id, port.clone()));
        }
    }

    fn flows(
        &mut self,
        filter: &crate::conntrack::view::FlowFilter,
        limit: usize,
        flush: bool,
    ) -> NodeResult<(Vec<crate::conntrack::view::FlowView>, usize)> {
        let mut all = (Vec::new(), 0);
        for w in 0..self.workers.len() {
            let (v, n) = self.ask(w, |done| WorkerCmd::Flows {
                filter: filter.clone(),
                limit,
                flush,
                done,
            })?;
            all.0.extend(v);
            all.1 += n;
        }
        Ok(all)
    }

    fn nat_ports(&self) -> Option<std::ops::RangeInclusive<u16>> {
        self.nat.on.then(|| self.nat.range.clone())
    }

    fn set_overlay(&mut self, overlay: &Overlay) {
        if let Err(e) = self.sync_nat(overlay.nat_wanted()) {
            error!("NAT outgoing: {e}");
        }
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetOverlay(overlay.clone()));
        }
    }

    fn set_policy(&mut self, set: &Arc<crate::policy::set::PolicySet>) {
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetPolicy(set.clone()));
        }
    }

    fn open_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        // The last run's socket of an adopted program waits in the worker (parked).
        let mut adopted = false;
        let xdp_failed =
            |err: io::Error| NodeError::Precondition(format!("XDP on {}: {err}", ep.interface));
        let steer = match ep.kind {
            EndpointKind::Veth => Some(Arc::new({
                self.reaper.wait_for(&ep.interface);
                let kept = self.store.take_xdp(&ep.interface);
                adopted = kept.is_some();
                let prog = match kept {
                    Some(p) => {
                        // The node's addresses may have changed while no process ran.
                        add_local_prefixes(&p, &self.local).map_err(xdp_failed)?;
                        p
                    }
                    None => attach_endpoint(
                        &ep.interface,
                        self.xdp_mode,
                        &self.local,
                        self.spares.take(),
                    )
                    .map_err(xdp_failed)?,
                };
                self.store.keep_xdp(&prog);
                prog
            })),
            EndpointKind::Tap => None,
        };
        let failed =
            |err: io::Error| NodeError::Precondition(format!("opening {}: {err}", ep.interface));
        let socket = match (&ep.kind, adopted, self.openers.get(ep.worker)) {
            (EndpointKind::Veth, false, Some(opener)) => Some(crate::io::Prepared::Xsk(
                opener.open(&ep.interface, 0).map_err(failed)?,
            )),
            (EndpointKind::Tap, _, Some(_)) => Some(crate::io::Prepared::Tap(
                crate::io::tap::TapDevice::open(&ep.interface).map_err(failed)?,
            )),
            _ => None,
        };
        let opened = self.ask(ep.worker, |done| {
            open_command(ep, steer.clone(), socket, done)
        })?;
        opened.map_err(failed)?;
        if let Some(p) = steer {
            self.endpoints.insert(ep.interface.clone(), p);
        }
        Ok(())
    }

    fn sweep_kept_programs(&mut self) {
        for p in self.uplinks.iter().chain(self.endpoints.values()) {
            match p.sweep_stale() {
                Ok(gone) if !gone.is_empty() => {
                    info!(interface = p.ifname(), prefixes = ?gone, "stale prefixes of the last run removed")
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(interface = p.ifname(), error = %e, "sweeping the last run's prefixes")
                }
            }
        }
    }

    fn close_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let steer = self.endpoints.remove(&ep.interface);
        self.store.forget_xdp(&ep.interface);
        let (done, closed) = mpsc::channel();
        self.workers[ep.worker]
            .send(WorkerCmd::Close {
                id: ep.port,
                steer: steer.clone(),
                done,
            })
            .map_err(|_| NodeError::Internal(format!("worker {} has stopped", ep.worker)))?;
        // The worker's commands are taken in order: a new endpoint in this slot is opened
        // after this close. The socket closes on the reaper's thread (the kernel waits
        // for an RCU grace period, and for RTNL), then the program detaches.
        self.reaper.reap(
            &ep.interface,
            closed,
            steer,
            self.workers[ep.worker].clone(),
        );
        Ok(())
    }

    fn steer_to_us(&mut self, prefix: IpNet, on: bool) {
        for u in &self.uplinks {
            let _ = if on {
                u.add_prefix(prefix, PrefixClass::Ours)
            } else {
                u.remove_prefix(prefix)
            };
        }
    }

    fn host_routes(&mut self, interface: &str, ips: &[IpNet], on: bool) -> NodeResult<()> {
        let ifindex = match if_info(interface) {
            Ok(i) => i.ifindex,
            // The kernel deleted the routes with the interface.
            Err(_) if !on => return Ok(()),
            Err(e) => return Err(NodeError::NotFound(format!("interface {interface}: {e}"))),
        };
        for ip in ips.iter().map(host_prefix) {
            let done = if on {
                self.routes.replace(ifindex, ip)
            } else {
                self.routes.remove(ifindex, ip)
            };
            match done {
                // IPv6 off on the interface (disable_ipv6): the node's kernel cannot
                // reach the pod over IPv6 at all; the dataplane still forwards to it.
                Err(e) if ip.addr().is_ipv6() && e.raw_os_error() == Some(libc::EACCES) => {
                    tracing::warn!(%ip, %interface, "IPv6 is off on the interface: no kernel route to the pod");
                }
                Err(e) => {
                    return Err(NodeError::Internal(format!(
                        "kernel route {ip} dev {interface}: {e}"
                    )))
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    fn prune_host_routes(&mut self, keep: &[(String, IpNet)]) -> NodeResult<usize> {
        let failed = |e: io::Error| NodeError::Internal(format!("kernel routes: {e}"));
        let keep: Vec<(u32, IpNet)> = keep
            .iter()
            .filter_map(|(name, ip)| Some((if_info(name).ok()?.ifindex, host_prefix(ip))))
            .collect();
        let mut removed = 0;
        for (ifindex, prefix) in self.routes.list().map_err(failed)? {
            if !keep.contains(&(ifindex, prefix)) {
                self.routes.remove(ifindex, prefix).map_err(failed)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
