//! Which parts of the running configuration came from the API (kept in api.json); the
//! rest are the file's.

use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Which endpoints and pools came from the API (the rest are the file's).
#[derive(Debug, Default)]
pub struct Origins {
    pub endpoints: BTreeSet<String>,
    pub pools: BTreeSet<IpNet>,
    pub routes: BTreeSet<IpNet>,
    pub peers: BTreeSet<IpAddr>,
}
