//! The ports and the policy set of an in-memory pipeline, as the `pipeline` fuzz target
//! and `fwdbench --memio`'s NAT and policy runs build theirs: an uplink, pods behind
//! their host-side MAC, and pods told apart by their `app` label.

use crate::arp::HOST_SIDE_MAC;
use crate::nexthop::PortId;
use crate::pipeline::{Port, PortKind};
use crate::policy::set::{LocalEndpoint, PolicySet};
use datastore::policy::{Endpoint, Policy};
use std::net::IpAddr;

/// An uplink port with our MAC `mac` (MTU 1500).
pub fn uplink_port(mac: [u8; 6]) -> Port {
    Port {
        mac,
        mtu: 1500,
        kind: PortKind::Uplink,
    }
}

/// A pod's port (MTU 1500): its gateway's MAC, the addresses the pod may use.
pub fn pod_port(v4: &[[u8; 4]], v6: &[[u8; 16]]) -> Port {
    Port {
        mac: HOST_SIDE_MAC,
        mtu: 1500,
        kind: PortKind::Endpoint {
            v4: v4.iter().map(|a| u32::from_be_bytes(*a)).collect(),
            v6: v6.iter().map(|a| u128::from_be_bytes(*a)).collect(),
        },
    }
}

/// A pod on this node, as the policy set knows it.
pub struct LocalPod<'a> {
    /// The endpoint's name (logs and counters).
    pub name: &'a str,
    /// Its only label's value, `app=<app>`.
    pub app: &'a str,
    pub port: PortId,
    pub nh: u32,
    /// The worker owning its port.
    pub worker: u16,
}

impl<'a> LocalPod<'a> {
    pub fn new(name: &'a str, app: &'a str, port: PortId, nh: u32, worker: u16) -> Self {
        LocalPod {
            name,
            app,
            port,
            nh,
            worker,
        }
    }
}

/// The policy set (generation 1) of `policies` for the pods `locals`, with `workloads`
/// the address and `app` of every pod policies may name (ours included), all of them in
/// `namespace`.
pub fn policy_set(
    namespace: &str,
    policies: &[Policy],
    locals: &[LocalPod],
    workloads: &[(IpAddr, &str)],
) -> PolicySet {
    let pod = |app: &str| Endpoint::new(namespace, &[("app", app)], &[]);
    let locals: Vec<LocalEndpoint> = locals
        .iter()
        .map(|p| LocalEndpoint {
            name: p.name.into(),
            port: p.port.0 as usize,
            nh: p.nh,
            worker: p.worker,
            identity: pod(p.app),
        })
        .collect();
    let workloads: Vec<(IpAddr, Endpoint)> =
        workloads.iter().map(|&(ip, app)| (ip, pod(app))).collect();
    PolicySet::build(1, policies, &locals, &workloads)
}
