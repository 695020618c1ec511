//! Unit tests of the node's state, on a pretend host (no root, no workers).

mod bgp;
mod calico_pools;
mod cluster;
mod cluster_pools;
mod handles;
mod host_routes;
mod memory;
mod owner;
mod plan;
mod policies;
mod state;

use super::error::{NodeError, NodeResult};
use super::host::Host;
use super::interface::IfInfo;
use super::plan::EndpointPlan;
use super::NodeState;
use crate::config::{Config, EndpointKind};
use crate::nexthop::PortId;
use crate::pipeline::Port;
use crate::test_support::fake_host::{fake_interface, node_on_fake_host};
use crate::tunnel::Overlay;
use ipnet::IpNet;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Interfaces of the unit tests' pretend host: four pods' (`cali-a` to `cali-d`).
pub(super) fn info(name: &str) -> io::Result<IfInfo> {
    fake_interface(name, |n| {
        matches!(n, "cali-a" | "cali-b" | "cali-c" | "cali-d")
    })
}

/// What the workers and the kernel hold, as the fake host keeps it.
#[derive(Debug, Default)]
pub(super) struct Machine {
    /// Interfaces with our XDP program attached.
    pub(super) xdp: BTreeSet<String>,
    /// Endpoint ports open on a worker: port -> interface.
    pub(super) open: BTreeMap<u16, String>,
    /// The last shape each port was given.
    pub(super) ports: BTreeMap<u16, Port>,
    /// Every port told to the workers, in order.
    pub(super) port_updates: Vec<u16>,
    pub(super) overlays: Vec<Overlay>,
    /// Prefixes the uplinks steer to us.
    pub(super) steered: BTreeSet<IpNet>,
    /// The kernel's routes marked ours: (interface, host prefix).
    pub(super) routes: BTreeSet<(String, IpNet)>,
    /// Policy sets published, in order.
    pub(super) policy_sets: Vec<std::sync::Arc<crate::policy::set::PolicySet>>,
    /// Per port opened: how many policy sets had been published when it opened.
    pub(super) sets_at_open: BTreeMap<u16, usize>,
}

pub(super) struct FakeHost(Rc<RefCell<Machine>>);

impl Host for FakeHost {
    fn interface(&self, name: &str) -> io::Result<IfInfo> {
        info(name)
    }
    fn interface_counter(&self, _name: &str, _key: &str) -> u64 {
        0
    }
    fn set_port(&mut self, id: PortId, port: &Port) {
        let mut m = self.0.borrow_mut();
        m.ports.insert(id.0, port.clone());
        m.port_updates.push(id.0);
    }
    fn set_overlay(&mut self, overlay: &Overlay) {
        self.0.borrow_mut().overlays.push(overlay.clone());
    }
    fn set_policy(&mut self, set: &std::sync::Arc<crate::policy::set::PolicySet>) {
        self.0.borrow_mut().policy_sets.push(set.clone());
    }
    fn open_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let mut m = self.0.borrow_mut();
        if ep.kind == EndpointKind::Veth && !m.xdp.insert(ep.interface.clone()) {
            return Err(NodeError::Precondition(format!(
                "XDP on {}: File exists",
                ep.interface
            )));
        }
        m.open.insert(ep.port.0, ep.interface.clone());
        let sets = m.policy_sets.len();
        m.sets_at_open.insert(ep.port.0, sets);
        Ok(())
    }
    fn close_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let mut m = self.0.borrow_mut();
        m.open.remove(&ep.port.0);
        m.xdp.remove(&ep.interface);
        Ok(())
    }
    fn steer_to_us(&mut self, prefix: IpNet, on: bool) {
        let mut m = self.0.borrow_mut();
        if on {
            m.steered.insert(prefix);
        } else {
            m.steered.remove(&prefix);
        }
    }
    fn host_routes(&mut self, interface: &str, ips: &[IpNet], on: bool) -> NodeResult<()> {
        let mut m = self.0.borrow_mut();
        for ip in ips {
            let route = (interface.to_string(), IpNet::from(ip.addr()));
            if on {
                m.routes.insert(route);
            } else {
                m.routes.remove(&route);
            }
        }
        Ok(())
    }
    fn prune_host_routes(&mut self, keep: &[(String, IpNet)]) -> NodeResult<usize> {
        let mut m = self.0.borrow_mut();
        let before = m.routes.len();
        m.routes.retain(|(i, p)| {
            keep.iter()
                .any(|(k, ip)| k == i && IpNet::from(ip.addr()) == *p)
        });
        Ok(before - m.routes.len())
    }
}

pub(super) fn state_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vr-node-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub(super) fn config(text: &str, dir: &std::path::Path) -> Config {
    let mut c = Config::parse(text).unwrap();
    c.state_dir = dir.to_path_buf();
    c
}

/// A node started from `text` as vrouterd starts one (its endpoints installed into their
/// slots), on the fake host.
pub(super) fn node_with(text: &str, dir: &std::path::Path) -> (NodeState, Rc<RefCell<Machine>>) {
    node_on(text, dir, Machine::default())
}

/// `node_with` on a machine holding `machine` already (what an earlier run left).
pub(super) fn node_on(
    text: &str,
    dir: &std::path::Path,
    machine: Machine,
) -> (NodeState, Rc<RefCell<Machine>>) {
    let config = config(text, dir);
    let machine = Rc::new(RefCell::new(machine));
    let node = node_on_fake_host(&config, Box::new(FakeHost(machine.clone())));
    (node, machine)
}
