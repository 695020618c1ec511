//! `vrouter-ipam`: the same binary answering as an IPAM plugin, for another CNI plugin
//! (bridge, ptp, macvlan...) that makes the pod's interface itself. Addresses come from
//! vrouterd's IPAM — the node's pools, or the cluster's through etcd — held under
//! calico-ipam's handle `<network>.<container id>` with no endpoint: reserved, not routed
//! by vrouterd. ADD is idempotent (a retried ADD gets the same addresses), DEL releases
//! exactly once (nothing held: success), CHECK compares with what the handle holds.

use crate::plugin::{api_error, ApiError, Vrouter};
use crate::spec::{code, CniError, CniResult, Env, IpConfig, NetConf, Outcome};
use ipnet::IpNet;
use serde_json::Value;
use std::net::IpAddr;

/// The names the binary answers to as an IPAM plugin.
pub const IPAM_NAMES: &[&str] = &["vrouter-ipam", "calico-ipam"];

/// Whether this invocation is the IPAM plugin's: run under one of its names, or given a
/// configuration whose main plugin is someone else's and whose IPAM is ours.
pub fn invoked_as_ipam(program: &str, conf: &NetConf) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    IPAM_NAMES.contains(&base)
        || (conf.kind != "vrouter-cni"
            && conf
                .ipam
                .as_ref()
                .is_some_and(|i| IPAM_NAMES.contains(&i.kind.as_str())))
}

fn ipam_field<'a>(conf: &'a NetConf, key: &str) -> Option<&'a Value> {
    conf.ipam.as_ref()?.other.get(key)
}

/// vrouterd's socket: `ipam.vrouter_socket`, else the top level's.
pub fn socket(conf: &NetConf) -> Option<String> {
    ipam_field(conf, "vrouter_socket")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| conf.vrouter_socket.clone())
}

/// An IPv6 address too: `ipam.ipv6`, else the top level's `ipv6`.
fn wants_v6(conf: &NetConf) -> bool {
    ipam_field(conf, "ipv6")
        .and_then(Value::as_bool)
        .unwrap_or(conf.ipv6)
}

/// calico-ipam's handle for a container's addresses.
pub fn handle(conf: &NetConf, env: &Env) -> String {
    format!("{}.{}", conf.name, env.container_id)
}

fn parse(addresses: &[String]) -> CniResult<Vec<IpAddr>> {
    addresses
        .iter()
        .map(|a| {
            a.parse::<IpAddr>().map_err(|e| {
                CniError::new(code::IO_FAILURE, format!("vrouterd gave {a:?}"))
                    .details(e.to_string())
            })
        })
        .collect()
}

pub struct IpamPlugin<'a> {
    pub env: &'a Env,
    pub conf: &'a NetConf,
    pub api: &'a mut dyn Vrouter,
}

impl IpamPlugin<'_> {
    pub fn add(&mut self) -> CniResult<Outcome> {
        let h = handle(self.conf, self.env);
        let got = self
            .api
            .allocate(&h, wants_v6(self.conf), false)
            .map_err(|e| api_error(e, "allocating"))?;
        let ips = parse(&got)?;
        if ips.is_empty() {
            return Err(CniError::new(code::REFUSED, "vrouterd gave no address"));
        }
        Ok(Outcome {
            ips: ips
                .into_iter()
                .map(|a| IpConfig {
                    address: IpNet::from(a),
                    gateway: None,
                    interface: None,
                })
                .collect(),
            ..Default::default()
        })
    }

    pub fn del(&mut self) -> CniResult<()> {
        let h = handle(self.conf, self.env);
        match self.api.release_handle(&h) {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(api_error(e, "releasing")),
        }
    }

    /// The handle holds addresses, and every address of `prevResult` among them.
    pub fn check(&mut self) -> CniResult<()> {
        let h = handle(self.conf, self.env);
        let held = parse(
            &self
                .api
                .allocate(&h, false, true)
                .map_err(|e| api_error(e, "looking up"))?,
        )?;
        if held.is_empty() {
            return Err(CniError::new(
                code::CHECK_FAILED,
                format!("handle {h} holds no address"),
            ));
        }
        if let Some(prev) = &self.conf.prev_result {
            for ip in Outcome::from_json(prev)?.ips {
                if !held.contains(&ip.address.addr()) {
                    return Err(CniError::new(
                        code::CHECK_FAILED,
                        format!("{} is not held by {h}", ip.address.addr()),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn status(&mut self) -> CniResult<()> {
        crate::plugin::status(self.api)
    }
}

#[cfg(test)]
mod tests;
