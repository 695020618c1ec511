//! The speaker's data, shared by its tasks and its handle (a leaf of the speaker: it
//! imports none of the tasks): peer and speaker settings, route changes, peer status,
//! and the commands the handle sends the driver.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;

/// One configured neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub asn: u32,
    /// Only accept its connections (the node-to-node mesh: toward a higher address).
    pub passive: bool,
    pub hold_time: u16,
    /// Seconds between keepalives (default: a third of the negotiated hold time).
    pub keepalive: Option<u16>,
    /// We reflect routes to it (RFC 4456); reserved for the route-reflector role.
    pub rr_client: bool,
    /// Its port (179 unless a test says otherwise).
    pub port: u16,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// eBGP: refuse announcements whose AS_PATH does not start with its AS.
    pub enforce_first_as: bool,
    /// At most this many prefixes from it (both families); over: Cease / Maximum
    /// Number of Prefixes Reached and a minute before reconnecting. `None`: no limit.
    pub max_prefixes: Option<u32>,
    /// Warn when it holds this share (percent) of `max_prefixes`.
    pub max_prefixes_warning: u8,
    /// TTL security (GTSM, RFC 5082): send TTL 255, accept only ≥ 255 - hops.
    pub ttl_security: Option<u8>,
}

impl PeerConfig {
    /// A neighbour with the usual settings: hold time 90, port 179, active, first AS
    /// enforced, no key, no prefix limit, no TTL security.
    pub fn new(address: IpAddr, asn: u32) -> PeerConfig {
        PeerConfig {
            address,
            asn,
            passive: false,
            hold_time: 90,
            keepalive: None,
            rr_client: false,
            port: 179,
            password: None,
            enforce_first_as: true,
            max_prefixes: None,
            max_prefixes_warning: 75,
            ttl_security: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Where to listen (None: connect out only).
    pub listen: Option<SocketAddr>,
    /// Source address for outgoing connections.
    pub local_address: Option<IpAddr>,
    pub peers: Vec<PeerConfig>,
    /// Our own blocks, announced to every peer with our node address as next hop.
    pub advertise: Vec<IpNet>,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
    /// Changes are collected this long before they go to the FIB.
    pub batch: Duration,
    pub graceful_restart: Option<u16>,
    /// We came back from a restart (R bit).
    pub restarting: bool,
    /// Act as a route reflector (RFC 4456) with this cluster id: routes from clients go
    /// to every iBGP peer, routes from other iBGP peers to clients.
    pub cluster_id: Option<Ipv4Addr>,
    pub connect_retry: Duration,
}

/// A prefix's usable next hops after a change (empty: no route any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    pub prefix: IpNet,
    /// Shared by the changes of a batch with the same next hops: a full table is not
    /// a million small allocations made on the speaker's thread and freed on the
    /// daemon's (glibc kept that memory: RSS per route varied by several bytes).
    pub next_hops: Arc<[IpAddr]>,
}

/// What `vrouterctl node status` shows of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub asn: u32,
    pub ibgp: bool,
    pub state: String,
    pub since: SystemTime,
    /// The last error, or what the session is waiting for.
    pub info: String,
    pub prefixes_received: usize,
    pub prefixes_sent: usize,
    /// Its settings as configured (defaults filled in: what the session uses).
    pub hold_time: u16,
    pub port: u16,
    pub passive: bool,
    pub rr_client: bool,
    /// What the OPEN exchange agreed, while a session is up.
    pub session: Option<SessionInfo>,
    pub counters: crate::bgp::counters::PeerCounters,
    /// Why the last session ended ("" while none has).
    pub last_error: String,
}

/// A session's negotiated terms, as `vrouterctl peer show` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub hold_time: u16,
    pub keepalive: u16,
    /// The peer's BGP identifier.
    pub router_id: std::net::Ipv4Addr,
    pub local_capabilities: Vec<String>,
    pub peer_capabilities: Vec<String>,
}

/// Peer status, shared with whoever reports it.
pub type Status = Arc<Mutex<Vec<PeerStatus>>>;

pub(super) type Reply = oneshot::Sender<Result<(), String>>;

/// What a reset did, or why it could not.
pub(super) type ResetReply = oneshot::Sender<Result<String, String>>;

/// A change of peers asked of the running speaker.
pub(super) enum Command {
    Add(PeerConfig, Reply),
    Remove(IpAddr, Reply),
    /// Hard (false) or soft (true) reset of a peer's session.
    Reset(IpAddr, bool, ResetReply),
    BestPeers(Vec<IpNet>, oneshot::Sender<Vec<Option<IpAddr>>>),
    Paths(Vec<IpNet>, oneshot::Sender<Vec<Vec<PathDetail>>>),
}

/// One path in the RIB, as `vrouterctl route list --detail` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDetail {
    pub peer: IpAddr,
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<u32>,
    /// 0 IGP, 1 EGP, 2 incomplete.
    pub origin: u8,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    /// RFC 1997 communities, `ASN:VALUE` as u32.
    pub communities: Vec<u32>,
    /// Among the best (the winner, or equal to it: ECMP).
    pub best: bool,
    /// Kept from before the peer restarted (graceful restart).
    pub stale: bool,
    /// Since its attributes were first held (see `Rib::attrs_age`).
    pub age: std::time::Duration,
}

pub(super) fn initial_status(local_asn: u32, p: &PeerConfig) -> PeerStatus {
    PeerStatus {
        address: p.address,
        asn: p.asn,
        ibgp: p.asn == local_asn,
        state: "Idle".into(),
        since: SystemTime::now(),
        info: String::new(),
        prefixes_received: 0,
        prefixes_sent: 0,
        hold_time: p.hold_time,
        port: p.port,
        passive: p.passive,
        rr_client: p.rr_client,
        session: None,
        counters: Default::default(),
        last_error: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_status_carries_the_peer_settings() {
        let p = PeerConfig {
            passive: true,
            rr_client: true,
            ..PeerConfig::new("192.0.2.1".parse().unwrap(), 65001)
        };
        let s = initial_status(65000, &p);
        assert_eq!((s.hold_time, s.port), (90, 179));
        assert!(s.passive && s.rr_client && !s.ibgp);
    }
}
