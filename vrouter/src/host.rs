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
use crate::worker::{PodProbe, WorkerCmd};
use crate::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};
use ipnet::IpNet;
use std::collections::HashMap;
use std::io;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tracing::warn;

pub struct WorkerHost {
    pub workers: Vec<mpsc::Sender<WorkerCmd>>,
    pub uplinks: Vec<Arc<XdpProgram>>,
    /// Every open veth endpoint's program, by interface.
    pub endpoints: HashMap<String, Arc<XdpProgram>>,
    pub xdp_mode: XdpMode,
    /// The node's own addresses, as host prefixes (kept for the kernel on endpoints).
    pub local: Vec<IpNet>,
    /// The node's kernel routes to its pods.
    pub routes: KernelRoutes,
}

/// Attach our program to `ifname`, in the mode the configuration asks.
pub fn attach(ifname: &str, role: XdpRole, mode: XdpMode) -> io::Result<XdpProgram> {
    match mode {
        XdpMode::Native => XdpProgram::attach(ifname, role, AttachMode::Native),
        XdpMode::Generic => XdpProgram::attach(ifname, role, AttachMode::Generic),
        XdpMode::Auto => XdpProgram::attach(ifname, role, AttachMode::Native).or_else(|e| {
            warn!(%ifname, error = %e, "native XDP refused; using generic mode");
            XdpProgram::attach(ifname, role, AttachMode::Generic)
        }),
    }
}

/// An endpoint's program: everything to the pod's socket but the node's own addresses.
pub fn attach_endpoint(ifname: &str, mode: XdpMode, local: &[IpNet]) -> io::Result<XdpProgram> {
    let prog = attach(ifname, XdpRole::Endpoint, mode)?;
    for l in local {
        prog.add_prefix(*l, PrefixClass::Local)?;
    }
    Ok(prog)
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

    fn set_overlay(&mut self, overlay: &Overlay) {
        for w in &self.workers {
            let _ = w.send(WorkerCmd::SetOverlay(overlay.clone()));
        }
    }

    fn open_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let steer = match ep.kind {
            EndpointKind::Veth => Some(Arc::new(
                attach_endpoint(&ep.interface, self.xdp_mode, &self.local).map_err(|err| {
                    NodeError::Precondition(format!("XDP on {}: {err}", ep.interface))
                })?,
            )),
            EndpointKind::Tap => None,
        };
        let opened = self.ask(ep.worker, |done| open_command(ep, steer.clone(), done))?;
        opened
            .map_err(|err| NodeError::Precondition(format!("opening {}: {err}", ep.interface)))?;
        if let Some(p) = steer {
            self.endpoints.insert(ep.interface.clone(), p);
        }
        Ok(())
    }

    fn close_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let steer = self.endpoints.remove(&ep.interface);
        self.ask(ep.worker, |done| WorkerCmd::Close {
            id: ep.port,
            steer: steer.clone(),
            done,
        })?;
        // The program detaches as its last holder (here) lets it go.
        drop(steer);
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
