//! The commands, over three seams so tests can run them in memory: vrouterd's API
//! (`Vrouter`), the kernel's links (`Host`) and a delegated IPAM plugin (`Delegate`).
//!
//! ADD: veth (pod end made straight in the netns) → endpoint registered with vrouterd,
//! which allocates the address (or takes the delegated IPAM's) and forwards at once →
//! the pod's addresses and routes. Whatever fails undoes what was done before it.
//! DEL: endpoint removed (vrouterd releases the address), veth deleted; every "already
//! gone" is success, and a container's DEL never removes a newer container's endpoint.

use crate::naming;
use crate::spec::{code, CniError, CniResult, Env, IpConfig, NetConf, Outcome, Route};
use control::api::pb;
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::path::Path;

/// The pod's gateways, as Calico sets them (answered by vrouterd).
pub const GATEWAY_V4: &str = "169.254.1.1";
pub const GATEWAY_V6: &str = "fe80::ecee:eeff:feee:eeee";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// vrouterd is not there (or did not answer in time): try again later.
    Unreachable(String),
    NotFound(String),
    /// vrouterd answered no (no address left, a clash...).
    Refused(String),
}

pub trait Vrouter {
    fn add(&mut self, ep: pb::Endpoint) -> Result<pb::Endpoint, ApiError>;
    fn remove(&mut self, name: &str) -> Result<Vec<String>, ApiError>;
    fn list(&mut self) -> Result<Vec<pb::Endpoint>, ApiError>;
    /// A handle's addresses (`lookup`: only what it holds), for vrouter-ipam.
    fn allocate(&mut self, handle: &str, v6: bool, lookup: bool) -> Result<Vec<String>, ApiError>;
    fn release_handle(&mut self, handle: &str) -> Result<Vec<String>, ApiError>;
}

/// What CHECK reads of the pod's interface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodView {
    pub addresses: Vec<IpNet>,
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
}

pub trait Host {
    /// The veth pair: `host` here, up, offloads off; `pod` in `netns` with `pod_mac`.
    /// All or nothing. Returns the host end's MAC.
    fn create(
        &mut self,
        host: &str,
        netns: &Path,
        pod: &str,
        pod_mac: [u8; 6],
    ) -> io::Result<[u8; 6]>;
    /// The pod's end: up, with `ips` and the routes via the gateways.
    fn configure_pod(&mut self, netns: &Path, pod: &str, ips: &[IpNet]) -> io::Result<()>;
    /// Delete the host end (and so the pair); false if it was not there.
    fn delete(&mut self, host: &str) -> io::Result<bool>;
    /// The pod's interface as it is; None if it is not there.
    fn inspect_pod(&mut self, netns: &Path, pod: &str) -> io::Result<Option<PodView>>;
}

pub trait Delegate {
    /// Run IPAM plugin `kind` for the current command with the network configuration;
    /// its result for ADD.
    fn run(&mut self, kind: &str, add: bool, conf: &[u8]) -> CniResult<Option<Value>>;
}

pub struct Plugin<'a> {
    pub env: &'a Env,
    pub conf: &'a NetConf,
    /// The configuration as received (what a delegated plugin is given).
    pub raw: &'a [u8],
    pub api: &'a mut dyn Vrouter,
    pub host: &'a mut dyn Host,
    pub ipam: &'a mut dyn Delegate,
}

pub(crate) fn api_error(e: ApiError, doing: &str) -> CniError {
    match e {
        ApiError::Unreachable(m) => CniError::new(
            code::TRY_AGAIN_LATER,
            format!("{doing}: vrouterd is not reachable"),
        )
        .details(m),
        ApiError::NotFound(m) | ApiError::Refused(m) => {
            CniError::new(code::REFUSED, format!("{doing}: vrouterd refused")).details(m)
        }
    }
}

fn io_error(e: io::Error, doing: &str) -> CniError {
    CniError::new(code::IO_FAILURE, doing.to_string()).details(e.to_string())
}

/// Remove an endpoint; one already gone is not an error.
fn remove_endpoint(api: &mut dyn Vrouter, name: &str, doing: &str) -> CniResult<()> {
    match api.remove(name) {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(api_error(e, doing)),
    }
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

impl Plugin<'_> {
    fn netns(&self) -> CniResult<&Path> {
        self.env
            .netns
            .as_deref()
            .ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, "CNI_NETNS is required"))
    }

    fn endpoints(&mut self) -> CniResult<Vec<pb::Endpoint>> {
        self.api
            .list()
            .map_err(|e| api_error(e, "listing endpoints"))
    }

    fn ipam_kind(&self) -> String {
        self.conf
            .ipam
            .as_ref()
            .map(|i| i.kind.clone())
            .unwrap_or_default()
    }

    fn ours<'e>(&self, endpoints: &'e [pb::Endpoint], name: &str) -> Option<&'e pb::Endpoint> {
        endpoints.iter().find(|e| e.name == name)
    }

    pub fn add(&mut self) -> CniResult<Outcome> {
        let netns = self.netns()?.to_path_buf();
        if !netns.exists() {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("network namespace {} does not exist", netns.display()),
            ));
        }
        let name = naming::endpoint(self.env);
        let veth = naming::host_veth(self.env);
        let pod_mac = naming::pod_mac(self.env);
        // A leftover of this pod (an ADD that died half-way, or a container whose DEL
        // never came): ours by name, so it goes first.
        let existing = self.endpoints()?;
        if self.ours(&existing, &name).is_some() {
            remove_endpoint(self.api, &name, "removing a leftover endpoint")?;
        }
        self.host
            .delete(&veth)
            .map_err(|e| io_error(e, "removing a leftover veth"))?;
        let host_mac = self
            .host
            .create(&veth, &netns, &self.env.ifname, pod_mac)
            .map_err(|e| {
                let exists = e.raw_os_error() == Some(libc::EEXIST);
                io_error(
                    e,
                    &if exists {
                        format!("creating the veth: {} or {} exists", veth, self.env.ifname)
                    } else {
                        "creating the veth".to_string()
                    },
                )
            })?;
        let undo_veth = |host: &mut dyn Host| {
            let _ = host.delete(&veth);
        };
        // Addresses: vrouterd's IPAM (with the endpoint), or the delegated plugin's.
        let mut given = Vec::new();
        if !self.conf.own_ipam() {
            let kind = self.ipam_kind();
            let r = match self.ipam.run(&kind, true, self.raw) {
                Ok(r) => r,
                Err(e) => {
                    undo_veth(self.host);
                    return Err(e);
                }
            };
            let out = r
                .as_ref()
                .map(Outcome::from_json)
                .transpose()?
                .unwrap_or_default();
            given = out
                .ips
                .iter()
                .map(|i| i.address.addr().to_string())
                .collect();
            if given.is_empty() {
                undo_veth(self.host);
                let _ = self.ipam.run(&kind, false, self.raw);
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("IPAM plugin {kind} gave no address"),
                ));
            }
        }
        let undo_ipam = |p: &mut Plugin| {
            if !p.conf.own_ipam() {
                let kind = p.ipam_kind();
                let _ = p.ipam.run(&kind, false, p.raw);
            }
        };
        let request = pb::Endpoint {
            name: name.clone(),
            kind: "veth".into(),
            interface: veth.clone(),
            addresses: given,
            mac: naming::mac_text(&pod_mac),
            ipv6: self.conf.ipv6,
            labels: self.conf.labels().into_iter().collect(),
            container_id: self.env.container_id.clone(),
            workload: Some(naming::workload(self.env, &self.conf.name)),
            ..Default::default()
        };
        let ep = match self.api.add(request) {
            Ok(ep) => ep,
            Err(e) => {
                undo_veth(self.host);
                undo_ipam(self);
                return Err(api_error(e, "adding the endpoint"));
            }
        };
        let ips: Vec<IpNet> = ep
            .addresses
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(host_net)
            .collect();
        if let Err(e) = self.host.configure_pod(&netns, &self.env.ifname, &ips) {
            let _ = self.api.remove(&name);
            undo_veth(self.host);
            undo_ipam(self);
            return Err(io_error(e, "setting up the pod's interface"));
        }
        let mut out = match &self.conf.prev_result {
            Some(prev) => Outcome::from_json(prev)?,
            None => Outcome::default(),
        };
        let base = out.interfaces.len();
        out.interfaces.push(crate::spec::Interface {
            name: veth,
            mac: naming::mac_text(&host_mac),
            sandbox: None,
        });
        out.interfaces.push(crate::spec::Interface {
            name: self.env.ifname.clone(),
            mac: naming::mac_text(&pod_mac),
            sandbox: Some(netns.display().to_string()),
        });
        for ip in &ips {
            out.ips.push(IpConfig {
                address: *ip,
                gateway: None,
                interface: Some(base + 1),
            });
        }
        if ips.iter().any(|i| i.addr().is_ipv4()) {
            out.routes.push(Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some(GATEWAY_V4.parse().unwrap()),
            });
        }
        if ips.iter().any(|i| i.addr().is_ipv6()) {
            out.routes.push(Route {
                dst: "::/0".parse().unwrap(),
                gw: Some(GATEWAY_V6.parse().unwrap()),
            });
        }
        Ok(out)
    }

    pub fn del(&mut self) -> CniResult<()> {
        let name = naming::endpoint(self.env);
        let veth = naming::host_veth(self.env);
        let endpoints = self.endpoints()?;
        // A newer container of the same pod may own the name now: leave it alone.
        let newer = self
            .ours(&endpoints, &name)
            .is_some_and(|e| !e.container_id.is_empty() && e.container_id != self.env.container_id);
        if !newer {
            remove_endpoint(self.api, &name, "removing the endpoint")?;
            self.host
                .delete(&veth)
                .map_err(|e| io_error(e, "deleting the veth"))?;
        }
        if !self.conf.own_ipam() {
            let kind = self.ipam_kind();
            self.ipam.run(&kind, false, self.raw)?;
        }
        Ok(())
    }

    pub fn check(&mut self) -> CniResult<()> {
        let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
        let prev = self
            .conf
            .prev_result
            .as_ref()
            .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult"))?;
        let prev = Outcome::from_json(prev)?;
        let netns = self.netns()?.to_path_buf();
        let name = naming::endpoint(self.env);
        let endpoints = self.endpoints()?;
        let ep = self
            .ours(&endpoints, &name)
            .ok_or_else(|| failed(format!("vrouterd has no endpoint {name}")))?;
        if !ep.container_id.is_empty() && ep.container_id != self.env.container_id {
            return Err(failed(format!(
                "endpoint {name} belongs to container {}",
                ep.container_id
            )));
        }
        let held: BTreeSet<IpAddr> = ep.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        let want: BTreeSet<IpAddr> = prev.ips.iter().map(|i| i.address.addr()).collect();
        if !want.is_subset(&held) {
            return Err(failed(format!(
                "endpoint {name} holds {held:?}, the result says {want:?}"
            )));
        }
        let view = self
            .host
            .inspect_pod(&netns, &self.env.ifname)
            .map_err(|e| io_error(e, "reading the pod's interface"))?
            .ok_or_else(|| failed(format!("no {} in the pod", self.env.ifname)))?;
        for ip in &want {
            if !view.addresses.iter().any(|a| a.addr() == *ip) {
                return Err(failed(format!(
                    "{ip} is not on the pod's {}",
                    self.env.ifname
                )));
            }
        }
        for (v6, gw) in [(false, GATEWAY_V4), (true, GATEWAY_V6)] {
            let needed = want.iter().any(|i| i.is_ipv6() == v6);
            let gw: IpAddr = gw.parse().unwrap();
            if needed
                && !view
                    .routes
                    .iter()
                    .any(|(d, g)| d.prefix_len() == 0 && *g == Some(gw))
            {
                return Err(failed(format!("the pod has no default route via {gw}")));
            }
        }
        Ok(())
    }

    /// CNI 1.1 GC: endpoints made by a CNI plugin whose attachment the runtime no
    /// longer lists go (address released, veth deleted).
    pub fn gc(&mut self) -> CniResult<()> {
        let valid: BTreeSet<String> = self
            .conf
            .other
            .get("cni.dev/valid-attachments")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|a| a.get("containerID")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let endpoints = self.endpoints()?;
        for e in endpoints {
            let made_by_cni = !e.container_id.is_empty()
                && e.kind == "veth"
                && e.interface.starts_with(naming::VETH_PREFIX);
            if made_by_cni && !valid.contains(&e.container_id) {
                remove_endpoint(self.api, &e.name, "removing a stale endpoint")?;
                self.host
                    .delete(&e.interface)
                    .map_err(|err| io_error(err, "deleting a stale veth"))?;
            }
        }
        Ok(())
    }

    /// CNI 1.1 STATUS: ready when vrouterd answers.
    pub fn status(&mut self) -> CniResult<()> {
        status(self.api)
    }
}

/// STATUS: vrouterd answers.
pub(crate) fn status(api: &mut dyn Vrouter) -> CniResult<()> {
    api.list().map(drop).map_err(|e| {
        let detail = match e {
            ApiError::Unreachable(m) | ApiError::NotFound(m) | ApiError::Refused(m) => m,
        };
        CniError::new(code::NOT_AVAILABLE, "vrouterd is not reachable").details(detail)
    })
}

#[cfg(test)]
mod tests;
