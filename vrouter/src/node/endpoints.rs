//! Endpoints (pods' veths, VMs' taps) added and removed while the node runs: one path
//! whether the request came from the file (reload) or the API.

use super::error::{invalid, NodeError, NodeResult};
use super::plan::{endpoint_port, idle_port, EndpointPlan, Slot};
use super::{NodeState, Origin};
use crate::config::{address_clash, Endpoint, EndpointKind};
use crate::nexthop::Adjacency;
use control::api::pb;
use ipnet::IpNet;
use std::net::IpAddr;
use tracing::{info, warn};

/// An endpoint asked for through the API: addresses given, or allocated from the pools'
/// IPAM (IPv4, and IPv6 when `ipv6`).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRequest {
    pub name: String,
    pub kind: EndpointKind,
    pub interface: String,
    pub ips: Vec<IpNet>,
    pub mac: Option<String>,
    pub ipv6: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub container_id: Option<String>,
    pub workload: Option<crate::config::WorkloadIdentity>,
}

impl NodeState {
    pub fn endpoint(&self, name: &str) -> Option<&EndpointPlan> {
        self.ports.endpoints.iter().find(|e| e.name == name)
    }

    pub fn add_endpoint(&mut self, req: EndpointRequest) -> NodeResult<EndpointPlan> {
        if req.name.is_empty() || req.interface.is_empty() {
            return Err(invalid("an endpoint needs a name and an interface"));
        }
        if self.endpoint(&req.name).is_some() {
            return Err(NodeError::AlreadyExists(format!(
                "endpoint {} exists",
                req.name
            )));
        }
        self.interface_mtu(&req.interface, req.kind)?;
        let mut ips = req.ips;
        if ips.is_empty() {
            ips = self
                .allocate_families(&req.name, req.ipv6)?
                .into_iter()
                .map(IpNet::from)
                .collect();
        }
        let endpoint = Endpoint {
            name: req.name,
            kind: req.kind,
            interface: req.interface,
            ips,
            mac: req.mac,
            labels: req.labels,
            container_id: req.container_id,
            workload: req.workload,
        };
        let ep = self.install_endpoint(endpoint, Origin::Api)?;
        self.persist()?;
        Ok(ep)
    }

    /// One IPv4 address for `owner` from the pools (and one IPv6 when `v6`); nothing
    /// held if either family has none left.
    pub(super) fn allocate_families(&mut self, owner: &str, v6: bool) -> NodeResult<Vec<IpAddr>> {
        let mut got = Vec::new();
        for family_v6 in [false, true].into_iter().take(1 + usize::from(v6)) {
            match self.ipam.allocate(owner, family_v6) {
                Ok(a) => got.push(a),
                Err(e) => {
                    self.ipam.release(owner);
                    return Err(NodeError::Exhausted(format!(
                        "allocating an IPv{} address: {e}",
                        if family_v6 { 6 } else { 4 }
                    )));
                }
            }
        }
        Ok(got)
    }

    /// The MTU of an endpoint's interface, if the workers' frames can carry it.
    fn interface_mtu(&self, interface: &str, kind: EndpointKind) -> NodeResult<u16> {
        let mtu = match (self.host.interface(interface), kind) {
            (Ok(i), _) => i.mtu,
            (Err(_), EndpointKind::Tap) => 1500,
            (Err(e), EndpointKind::Veth) => {
                return Err(NodeError::NotFound(format!("interface {interface}: {e}")))
            }
        };
        if mtu > self.endpoint_mtu_limit {
            return Err(NodeError::Precondition(format!(
                "interface {interface} has MTU {mtu}; endpoints added while running carry at most {}",
                self.endpoint_mtu_limit
            )));
        }
        Ok(mtu)
    }

    /// Bring up an endpoint whose addresses are decided (taken in IPAM here when they
    /// are in a pool).
    pub fn install_endpoint(
        &mut self,
        endpoint: Endpoint,
        origin: Origin,
    ) -> NodeResult<EndpointPlan> {
        let name = endpoint.name.clone();
        let installed = self.try_install_endpoint(endpoint, origin);
        // Addresses taken for an endpoint that did not come up go back.
        if installed.is_err() && self.endpoint(&name).is_none() {
            self.ipam.release(&name);
        }
        installed
    }

    fn try_install_endpoint(
        &mut self,
        endpoint: Endpoint,
        origin: Origin,
    ) -> NodeResult<EndpointPlan> {
        // One address, one owner: checked before anything (IPAM, a port) is touched.
        let others = self.config.endpoints.iter();
        if let Some(clash) = address_clash(&self.config.node_ips, others.chain([&endpoint])) {
            return Err(clash.into());
        }
        for ip in &endpoint.ips {
            if self.config.pools.iter().any(|p| p.cidr.contains(ip)) {
                self.ipam
                    .assign(&endpoint.name, ip.addr())
                    .map_err(|e| NodeError::AlreadyExists(e.to_string()))?;
            }
        }
        let mut candidate = self.config.clone();
        candidate.endpoints.push(endpoint.clone());
        candidate.validate().map_err(|e| invalid(e.0))?;
        let mtu = self.interface_mtu(&endpoint.interface, endpoint.kind)?;
        let Some(slot) = self.ports.free_slots.pop() else {
            return Err(NodeError::Exhausted(
                "no free endpoint slot: raise [workers] endpoint_slots and restart".into(),
            ));
        };
        self.publish_policies_with(Some((&endpoint, slot)));
        let ep = match self.open_endpoint(&endpoint, slot, mtu) {
            Ok(ep) => ep,
            Err(e) => {
                self.ports.free_slots.push(slot);
                self.publish_policies();
                return Err(e);
            }
        };
        self.config = candidate;
        if origin == Origin::Api {
            self.origins.endpoints.insert(endpoint.name.clone());
        }
        self.ports.endpoints.push(ep.clone());
        self.sync_blocks();
        self.publish_policies();
        info!(endpoint = %ep.name, interface = %ep.interface, worker = ep.worker, "endpoint added");
        for ip in &endpoint.ips {
            self.publish_route(
                "add",
                pb::Route {
                    prefix: ip.to_string(),
                    source: "connected".into(),
                    out: vec![ep.interface.clone()],
                    encapsulation: "none".into(),
                    ..Default::default()
                },
            );
        }
        if self.watched() {
            self.publish(pb::event::What::Endpoint(pb::EndpointEvent {
                op: "add".into(),
                endpoint: Some(self.endpoint_pb(&ep)),
            }));
        }
        Ok(ep)
    }

    /// Bring an endpoint up in `slot`: port, next hop, socket and steering, routes (ours
    /// and, for a veth, the node kernel's to it).
    fn open_endpoint(&mut self, e: &Endpoint, slot: Slot, mtu: u16) -> NodeResult<EndpointPlan> {
        let ep = EndpointPlan::new(e, slot);
        self.host.set_port(slot.port, &endpoint_port(&e.ips, mtu));
        self.tables.nexthops.set(
            slot.nh,
            match ep.mac {
                Some(mac) => Adjacency::Forward {
                    port: slot.port,
                    mac,
                },
                None => Adjacency::Incomplete,
            },
        );
        let opened = self.host.open_endpoint(&ep).and_then(|()| {
            if e.kind != EndpointKind::Veth {
                return Ok(());
            }
            let routed = self.host.host_routes(&e.interface, &e.ips, true);
            if routed.is_err() {
                let _ = self.host.close_endpoint(&ep);
            }
            routed
        });
        if let Err(err) = opened {
            self.tables.nexthops.set(slot.nh, Adjacency::Incomplete);
            self.host.set_port(slot.port, &idle_port());
            return Err(err);
        }
        for ip in &e.ips {
            self.bgp.set_configured(*ip, true);
            self.tables.insert(*ip, slot.nh);
            self.host.steer_to_us(*ip, true);
        }
        self.ports.names[slot.port.0 as usize] = e.interface.clone();
        Ok(ep)
    }

    /// Remove an endpoint the API added (the file's go by editing the file).
    pub fn remove_endpoint(&mut self, name: &str) -> NodeResult<Vec<IpAddr>> {
        if self.endpoint(name).is_none() {
            return Err(NodeError::NotFound(format!("no endpoint {name}")));
        }
        if !self.origins.endpoints.contains(name) {
            return Err(NodeError::Precondition(format!(
                "endpoint {name} comes from the configuration file: remove it there"
            )));
        }
        let released = self.uninstall_endpoint(name)?;
        self.persist()?;
        Ok(released)
    }

    /// Take an endpoint down: routes, next hop, socket and steering, port, IPAM.
    /// Returns the addresses IPAM released.
    pub fn uninstall_endpoint(&mut self, name: &str) -> NodeResult<Vec<IpAddr>> {
        let Some(i) = self.ports.endpoints.iter().position(|e| e.name == name) else {
            return Err(NodeError::NotFound(format!("no endpoint {name}")));
        };
        let ep = self.ports.endpoints.remove(i);
        let ips = self
            .config
            .endpoints
            .iter()
            .position(|e| e.name == name)
            .map(|k| self.config.endpoints.remove(k).ips)
            .unwrap_or_default();
        // Routes first, so nothing new is sent toward the port while it closes.
        for ip in &ips {
            self.remove_route_of(*ip);
            if !self.config.pools.iter().any(|p| p.cidr.contains(ip)) {
                self.host.steer_to_us(*ip, false);
            }
        }
        if ep.kind == EndpointKind::Veth {
            if let Err(err) = self.host.host_routes(&ep.interface, &ips, false) {
                warn!(endpoint = %name, error = %err, "kernel routes to the pod left");
            }
        }
        self.tables.nexthops.set(ep.nh, Adjacency::Incomplete);
        self.host.close_endpoint(&ep)?;
        self.host.set_port(ep.port, &idle_port());
        self.ports.names[ep.port.0 as usize] = String::new();
        self.ports.free_slots.push(Slot {
            port: ep.port,
            nh: ep.nh,
            worker: ep.worker,
        });
        self.origins.endpoints.remove(name);
        let released = self.ipam.release(name);
        self.sync_blocks();
        self.publish_policies();
        info!(endpoint = %name, "endpoint removed");
        for ip in &ips {
            self.publish_route(
                "remove",
                pb::Route {
                    prefix: ip.to_string(),
                    source: "connected".into(),
                    ..Default::default()
                },
            );
        }
        self.publish(pb::event::What::Endpoint(pb::EndpointEvent {
            op: "remove".into(),
            endpoint: Some(pb::Endpoint {
                name: name.to_string(),
                interface: ep.interface.clone(),
                addresses: ips.iter().map(|i| i.addr().to_string()).collect(),
                ..Default::default()
            }),
        }));
        Ok(released)
    }
}
