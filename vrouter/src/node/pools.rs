//! IP pools (Calico's IPPool) applied and removed while running.

use super::error::{invalid, NodeError, NodeResult};
use super::persist::ipam_pools;
use super::plan::overlay;
use super::{NodeState, Origin};
use crate::config::Pool;
use ipnet::IpNet;
use tracing::info;

impl NodeState {
    /// Create or update a pool through the API.
    pub fn apply_pool(&mut self, pool: Pool) -> NodeResult<Pool> {
        let cidr = pool.cidr;
        if cidr != cidr.trunc() {
            return Err(invalid(format!(
                "cidr {cidr}: host bits set (did you mean {}?)",
                cidr.trunc()
            )));
        }
        let file_pool = self
            .config
            .pools
            .iter()
            .find(|p| p.cidr == cidr && !self.origins.pools.contains(&cidr));
        if let Some(file_pool) = file_pool {
            // Applied back as `pool list -o yaml` printed it: unchanged, nothing to do.
            if self.pool_pb(file_pool) == self.pool_pb(&pool) {
                return Ok(file_pool.clone());
            }
            return Err(NodeError::Precondition(format!(
                "pool {cidr} comes from the configuration file: change it there"
            )));
        }
        let pool = self.install_pool(pool, Origin::Api)?;
        self.persist()?;
        Ok(pool)
    }

    /// Create or update a pool.
    pub fn install_pool(&mut self, pool: Pool, origin: Origin) -> NodeResult<Pool> {
        let cidr = pool.cidr;
        let existing = self.config.pools.iter().position(|p| p.cidr == cidr);
        if let Some(i) = existing {
            let old = &self.config.pools[i];
            if old.block_size() != pool.block_size()
                && self.ipam.blocks().iter().any(|b| cidr.contains(b))
            {
                return Err(NodeError::Precondition(format!(
                    "pool {cidr}: the block size cannot change while blocks are in use"
                )));
            }
        }
        let mut candidate = self.config.clone();
        match existing {
            Some(i) => candidate.pools[i] = pool.clone(),
            None => candidate.pools.push(pool.clone()),
        }
        candidate.validate().map_err(|e| invalid(e.0))?;
        self.config = candidate;
        if origin == Origin::Api {
            self.origins.pools.insert(cidr);
        }
        self.ipam.set_pools(ipam_pools(&self.config));
        self.host.steer_to_us(cidr.trunc(), true);
        self.sync_overlay();
        // Its disable_bgp_export may have changed what is announced.
        self.sync_blocks();
        info!(pool = %cidr, "pool applied");
        Ok(pool)
    }

    /// Remove a pool the API added (the file's go by editing the file).
    pub fn remove_pool(&mut self, cidr: IpNet) -> NodeResult<()> {
        if !self.config.pools.iter().any(|p| p.cidr == cidr) {
            return Err(NodeError::NotFound(format!("no pool {cidr}")));
        }
        if !self.origins.pools.contains(&cidr) {
            return Err(NodeError::Precondition(format!(
                "pool {cidr} comes from the configuration file: remove it there"
            )));
        }
        self.uninstall_pool(cidr)?;
        self.persist()
    }

    pub fn uninstall_pool(&mut self, cidr: IpNet) -> NodeResult<()> {
        let Some(i) = self.config.pools.iter().position(|p| p.cidr == cidr) else {
            return Err(NodeError::NotFound(format!("no pool {cidr}")));
        };
        let users: Vec<&str> = self
            .config
            .endpoints
            .iter()
            .filter(|e| e.ips.iter().any(|ip| cidr.contains(ip)))
            .map(|e| e.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(NodeError::Precondition(format!(
                "pool {cidr} is in use by endpoint(s) {}",
                users.join(", ")
            )));
        }
        self.config.pools.remove(i);
        self.origins.pools.remove(&cidr);
        self.ipam.set_pools(ipam_pools(&self.config));
        self.host.steer_to_us(cidr.trunc(), false);
        self.sync_overlay();
        self.sync_blocks();
        info!(pool = %cidr, "pool removed");
        Ok(())
    }

    /// Workers decapsulate only toward our pools and masquerade from natOutgoing ones
    /// to outside the pools and nodes: tell them what changed.
    pub(crate) fn sync_overlay(&mut self) {
        let now = overlay(&self.config);
        if now != self.overlay {
            self.overlay = now;
            self.host.set_overlay(&self.overlay);
        }
    }
}
