//! Addresses held by an IPAM handle rather than an endpoint: `vrouter-ipam` serving
//! another CNI plugin (bridge, ptp, macvlan...), which plumbs the pod itself. Local IPAM
//! keeps them under the owner `ipam:<handle>`, a name no endpoint may take (validated),
//! so a restart, which releases what no endpoint holds, keeps them. They are reserved,
//! not routed: the plugin that made the pod's interface routes to it.

use super::error::{invalid, NodeResult};
use super::NodeState;
use std::net::IpAddr;

/// The local IPAM owner of a handle's addresses.
pub const HANDLE_OWNER: &str = "ipam:";

/// A handle the API accepts (either IPAM: this node's, or the datastore's).
pub fn check_handle(handle: &str) -> NodeResult<()> {
    if handle.is_empty() || handle.len() > 128 || handle.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "handle {handle:?}: 1 to 128 characters, no spaces"
        )));
    }
    Ok(())
}

fn owner(handle: &str) -> NodeResult<String> {
    check_handle(handle)?;
    Ok(format!("{HANDLE_OWNER}{handle}"))
}

impl NodeState {
    /// What `handle` holds (nothing: an empty list).
    pub fn handle_addresses(&self, handle: &str) -> NodeResult<Vec<IpAddr>> {
        Ok(self.ipam.addresses_of(&owner(handle)?))
    }

    /// One IPv4 address (and one IPv6 when `v6`) for `handle`; what it already holds if
    /// anything (a runtime retrying an ADD gets the same addresses).
    pub fn allocate_for_handle(&mut self, handle: &str, v6: bool) -> NodeResult<Vec<IpAddr>> {
        let owner = owner(handle)?;
        let held = self.ipam.addresses_of(&owner);
        if !held.is_empty() {
            return Ok(held);
        }
        let got = self.allocate_families(&owner, v6)?;
        self.persist()?;
        Ok(got)
    }

    /// Free what `handle` holds (nothing held: an empty list, not an error).
    pub fn release_handle(&mut self, handle: &str) -> NodeResult<Vec<IpAddr>> {
        let released = self.ipam.release(&owner(handle)?);
        if !released.is_empty() {
            self.persist()?;
        }
        Ok(released)
    }
}
