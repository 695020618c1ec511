//! What survives a restart: what was added through the API (`state_dir/api.json`) and
//! IPAM (`state_dir/ipam.json`), both written atomically; at start, IPAM is made to
//! agree with the configuration, which is the authority.

use super::error::{NodeError, NodeResult};
use super::origins::Origins;
use super::NodeState;
use crate::config::{AssignmentMode, BgpPeer, Config, Endpoint, Pool, StaticRoute};
use control::ipam::{self, Ipam};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use tracing::warn;

/// What was added through the API, kept in `state_dir/api.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiState {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
    /// Network policy resources as applied (YAML documents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

impl ApiState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("api.json")
    }

    pub fn load(dir: &Path) -> io::Result<ApiState> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ApiState::default()),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialises");
        ipam::write_atomic(&Self::path(dir), text.as_bytes())
    }

    /// Add what the file does not already have (the file wins on a name or cidr clash).
    pub fn merge_into(&self, config: &mut Config) {
        for p in &self.pools {
            if config.pools.iter().any(|q| q.cidr == p.cidr) {
                warn!(pool = %p.cidr, "pool added through the API is now in the file: the file's wins");
            } else {
                config.pools.push(p.clone());
            }
        }
        for e in &self.endpoints {
            if config.endpoints.iter().any(|f| f.name == e.name) {
                warn!(endpoint = %e.name, "endpoint added through the API is now in the file: the file's wins");
            } else {
                config.endpoints.push(e.clone());
            }
        }
        for r in &self.routes {
            if !config.routes.iter().any(|f| f.dst.trunc() == r.dst.trunc()) {
                config.routes.push(r.clone());
            }
        }
        if let Some(b) = config.bgp.as_mut() {
            for p in &self.peers {
                if !b.peers.iter().any(|f| f.address == p.address) {
                    b.peers.push(p.clone());
                }
            }
        }
    }

    /// What of `config` came from here (not from `file`).
    pub fn origins(&self, file: &Config) -> Origins {
        Origins {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| e.name.clone())
                .filter(|n| !file.endpoints.iter().any(|f| &f.name == n))
                .collect(),
            pools: self
                .pools
                .iter()
                .map(|p| p.cidr)
                .filter(|c| !file.pools.iter().any(|f| &f.cidr == c))
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| r.dst.trunc())
                .filter(|d| !file.routes.iter().any(|f| f.dst.trunc() == *d))
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|p| p.address)
                .filter(|a| {
                    !file
                        .bgp
                        .as_ref()
                        .is_some_and(|b| b.peers.iter().any(|f| f.address == *a))
                })
                .collect(),
        }
    }
}

/// IPAM pools of a configuration. A pool hands out addresses unasked only when it is
/// Automatic, for workloads, and its node selector matches this node's labels.
pub fn ipam_pools(config: &Config) -> Vec<ipam::Pool> {
    let labels = config.labels();
    config
        .pools
        .iter()
        .map(|p| ipam::Pool {
            cidr: p.cidr.trunc(),
            block_size: p.block_size(),
            disabled: p.disabled,
            automatic: p.assignment_mode == AssignmentMode::Automatic
                && p.for_workloads()
                && p.selects(&labels),
        })
        .collect()
}

/// The effective configuration vrouterd starts from: the file plus what the API added
/// (`state_dir/api.json`), validated as one. An address the API gave one endpoint that
/// the file now gives another (or the node) fails the start: neither takes it.
pub fn effective_config(file: &Config) -> io::Result<(Config, ApiState)> {
    let mut config = file.clone();
    let api_state = ApiState::load(&config.state_dir)?;
    api_state.merge_into(&mut config);
    config.validate().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/api.json with the file: {e}", config.state_dir.display()),
        )
    })?;
    Ok((config, api_state))
}

/// Open IPAM and make it agree with the configuration: an address held by an endpoint
/// that the configuration does not give it is released (that address alone; a
/// vrouter-ipam handle's addresses are kept, see `handles`), then
/// every endpoint's pool addresses are assigned to it. The configuration is the
/// authority and gives each address one owner (validated); if it does not, this
/// fails and the state file is left as it was.
pub fn open_ipam(config: &Config) -> io::Result<Ipam> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.state_dir.display())))?;
    let mut ipam = Ipam::open(ipam_pools(config), Some(config.state_dir.join("ipam.json")))?;
    for (addr, owner) in ipam.allocations() {
        // A handle's addresses (vrouter-ipam) are held until the handle is released.
        if owner.starts_with(super::handles::HANDLE_OWNER) {
            continue;
        }
        let given = config
            .endpoints
            .iter()
            .any(|e| e.name == owner && e.ips.iter().any(|ip| ip.addr() == addr));
        if !given {
            ipam.release_address(addr);
        }
    }
    for e in &config.endpoints {
        for ip in &e.ips {
            if config.pools.iter().any(|p| p.cidr.contains(ip)) {
                ipam.assign(&e.name, ip.addr()).map_err(|err| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("IPAM: endpoint {}: {err}", e.name),
                    )
                })?;
            }
        }
    }
    ipam.save()?;
    Ok(ipam)
}

impl NodeState {
    /// Keep what the API added, and IPAM, for the next start.
    pub(super) fn persist(&self) -> NodeResult<()> {
        let o = &self.origins;
        let c = &self.config;
        let state = ApiState {
            endpoints: c
                .endpoints
                .iter()
                .filter(|e| o.endpoints.contains(&e.name))
                .cloned()
                .collect(),
            pools: c
                .pools
                .iter()
                .filter(|p| o.pools.contains(&p.cidr))
                .cloned()
                .collect(),
            routes: c
                .routes
                .iter()
                .filter(|r| o.routes.contains(&r.dst.trunc()))
                .cloned()
                .collect(),
            peers: c
                .bgp
                .iter()
                .flat_map(|b| &b.peers)
                .filter(|p| o.peers.contains(&p.address))
                .cloned()
                .collect(),
            policies: self.policies.documents(),
        };
        state
            .save(&c.state_dir)
            .and_then(|_| self.ipam.save())
            .map_err(|e| NodeError::Internal(format!("saving the state: {e}")))
    }
}
