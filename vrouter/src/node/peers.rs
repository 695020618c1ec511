//! BGP peers added and removed while running.

use super::bgp_config::peer_config;
use super::error::{invalid, NodeError, NodeResult};
use super::{NodeState, Origin};
use crate::config::BgpPeer;
use std::net::IpAddr;
use tracing::info;

impl NodeState {
    /// Start a session with a `[[bgp.peers]]`-shaped peer (validated as the file's are).
    pub fn install_peer(&mut self, peer: BgpPeer, origin: Origin) -> NodeResult<()> {
        let Some(sp) = &self.speaker else {
            return Err(NodeError::Precondition(
                "BGP is not enabled ([bgp] absent from the configuration)".into(),
            ));
        };
        let mut candidate = self.config.clone();
        let Some(b) = candidate.bgp.as_mut() else {
            return Err(NodeError::Internal("a speaker runs only with [bgp]".into()));
        };
        b.peers.push(peer.clone());
        candidate.validate().map_err(|e| invalid(e.0))?;
        let Some(b) = candidate.bgp.as_ref() else {
            return Err(NodeError::Internal("a speaker runs only with [bgp]".into()));
        };
        sp.add_peer(peer_config(b, &peer))
            .map_err(NodeError::AlreadyExists)?;
        self.config = candidate;
        if origin == Origin::Api {
            self.origins.peers.insert(peer.address);
        }
        info!(peer = %peer.address, "BGP peer added");
        Ok(())
    }

    /// Add a BGP peer through the API (kept in api.json).
    pub fn add_peer(&mut self, peer: BgpPeer) -> NodeResult<()> {
        self.install_peer(peer, Origin::Api)?;
        self.persist()
    }

    /// Remove a peer the API added (the file's and the mesh's stay).
    pub fn remove_peer(&mut self, address: IpAddr) -> NodeResult<()> {
        if !self.origins.peers.contains(&address) {
            let known = self.speaker.as_ref().is_some_and(|sp| {
                sp.status
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|p| p.address == address)
            });
            return Err(if known {
                NodeError::Precondition(format!(
                    "peer {address} comes from the configuration (file or mesh): remove it there"
                ))
            } else {
                NodeError::NotFound(format!("{address} is not a peer"))
            });
        }
        self.uninstall_peer(address)?;
        self.persist()
    }

    /// `vrouterctl peer reset`: what the speaker did.
    pub fn reset_peer(&mut self, address: IpAddr, soft: bool) -> NodeResult<String> {
        let Some(sp) = &self.speaker else {
            return Err(NodeError::Precondition("BGP is not enabled".into()));
        };
        sp.reset_peer(address, soft).map_err(|e| {
            if e.ends_with("is not a peer") {
                NodeError::NotFound(e)
            } else {
                NodeError::Precondition(e)
            }
        })
    }

    pub fn uninstall_peer(&mut self, address: IpAddr) -> NodeResult<()> {
        let Some(sp) = &self.speaker else {
            return Err(NodeError::Precondition("BGP is not enabled".into()));
        };
        sp.remove_peer(address).map_err(NodeError::NotFound)?;
        if let Some(b) = self.config.bgp.as_mut() {
            b.peers.retain(|p| p.address != address);
        }
        self.origins.peers.remove(&address);
        info!(peer = %address, "BGP peer removed");
        Ok(())
    }
}
