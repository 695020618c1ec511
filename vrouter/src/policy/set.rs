//! What the workers enforce: every local endpoint's policies compiled, by port, under
//! one generation number. The node builds a new set whenever policies, labels or
//! workloads change and publishes it to every worker (an `Arc`, swapped between
//! bursts, as the FIB's updates are); a flow admitted under an older generation is
//! judged again on its next packet.

use super::{compile, Compiled};
use datastore::policy::{Direction, Endpoint, Policy};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// One endpoint's policies, both ways.
#[derive(Debug)]
pub struct EndpointPolicies {
    /// The endpoint's name (for logs and counters).
    pub name: String,
    /// Traffic toward the endpoint.
    pub ingress: Arc<Compiled>,
    /// Traffic from it.
    pub egress: Arc<Compiled>,
}

/// A local endpoint as the set is built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEndpoint {
    pub name: String,
    /// Its port (index into the pipeline's ports) and next hop.
    pub port: usize,
    pub nh: u32,
    /// The worker that owns its port.
    pub worker: u16,
    pub identity: Endpoint,
}

/// An endpoint's port in the set.
#[derive(Debug, Clone)]
pub struct PortPolicy {
    pub worker: u16,
    pub policies: Arc<EndpointPolicies>,
}

/// The published set.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub generation: u32,
    /// By port id.
    ports: Vec<Option<PortPolicy>>,
    /// By next hop id: the endpoint's port + 1 (0: not an endpoint's next hop).
    by_nh: Vec<u32>,
    /// Whether any policy applies to any local endpoint (else nothing is checked).
    active: bool,
    /// Rules compiled over all endpoints and directions (shared ones once).
    pub rules: usize,
}

impl PolicySet {
    /// Compile `policies` for each of `endpoints`; peers' selectors are resolved
    /// against `workloads` (local and remote). Endpoints with the same identity share
    /// one compiled pair.
    pub fn build(
        generation: u32,
        policies: &[Policy],
        endpoints: &[LocalEndpoint],
        workloads: &[(IpAddr, Endpoint)],
    ) -> PolicySet {
        let mut set = PolicySet {
            generation,
            ..PolicySet::default()
        };
        type Pair = (Arc<Compiled>, Arc<Compiled>);
        let mut shared: HashMap<String, Pair> = HashMap::new();
        for e in endpoints {
            let key = format!("{:?}", e.identity);
            let (ingress, egress) = shared
                .entry(key)
                .or_insert_with(|| {
                    let i = compile(policies, &e.identity, Direction::Ingress, workloads);
                    let o = compile(policies, &e.identity, Direction::Egress, workloads);
                    set.rules += i.rules() + o.rules();
                    (Arc::new(i), Arc::new(o))
                })
                .clone();
            let policies = Arc::new(EndpointPolicies {
                name: e.name.clone(),
                ingress,
                egress,
            });
            set.active |= !policies.ingress.no_policy || !policies.egress.no_policy;
            if set.ports.len() <= e.port {
                set.ports.resize(e.port + 1, None);
            }
            set.ports[e.port] = Some(PortPolicy {
                worker: e.worker,
                policies,
            });
            let nh = e.nh as usize;
            if nh < 1 << 20 {
                if set.by_nh.len() <= nh {
                    set.by_nh.resize(nh + 1, 0);
                }
                set.by_nh[nh] = e.port as u32 + 1;
            }
        }
        set
    }

    /// Whether anything is to be checked at all.
    #[inline]
    pub fn active(&self) -> bool {
        self.active
    }

    #[inline]
    pub fn port(&self, port: usize) -> Option<&PortPolicy> {
        self.ports.get(port).and_then(Option::as_ref)
    }

    /// The endpoint port behind next hop `nh`, if it is an endpoint's.
    #[inline]
    pub fn port_of_nh(&self, nh: u32) -> Option<usize> {
        match self.by_nh.get(nh as usize) {
            Some(&p) if p > 0 => Some(p as usize - 1),
            _ => None,
        }
    }

    /// Every endpoint's compiled policies (by port).
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<EndpointPolicies>> {
        self.ports.iter().flatten().map(|p| &p.policies)
    }
}
