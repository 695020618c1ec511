//! The BGP speaker's settings from the configuration (`[bgp]`, `[[bgp.peers]]`, the mesh
//! over `[[nodes]]`) and the graceful-restart marker left at a clean stop.

use super::plan::exported_blocks;
use crate::config::Config;
use control::speaker::{PeerConfig, SpeakerConfig};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tracing::warn;

/// A `[[bgp.peers]]` entry as the speaker takes it.
pub fn peer_config(b: &crate::config::BgpSettings, p: &crate::config::BgpPeer) -> PeerConfig {
    PeerConfig {
        address: p.address,
        asn: p.asn.unwrap_or(b.asn),
        passive: p.passive,
        hold_time: p.hold_time,
        keepalive: p.keepalive,
        rr_client: p.rr_client,
        port: p.port,
        // A file reference is read here, when the speaker is configured, and kept in
        // memory only (checked at start: `Config::check_machine`).
        password: p.password.clone().or_else(|| {
            let f = p.password_file.as_ref()?;
            crate::config::read_password_file(f)
                .map_err(|e| tracing::error!(peer = %p.address, error = %e, "BGP password"))
                .ok()
        }),
        enforce_first_as: p.enforce_first_as,
        max_prefixes: p.max_prefixes,
        max_prefixes_warning: p.max_prefixes_warning,
        ttl_security: p.ttl_security,
    }
}

/// The node-to-node mesh session with `n`: over IPv4 when it has it (one session
/// carries both families); Calico's rule: the lower address waits, the higher connects.
pub fn mesh_peer(config: &Config, n: &crate::config::Node) -> Option<PeerConfig> {
    let b = config.bgp.as_ref()?;
    let addr = n
        .ips
        .iter()
        .map(|i| i.addr())
        .find(|a| a.is_ipv4())
        .or(n.ips.first().map(|i| i.addr()))?;
    let mine = config
        .node_ips
        .iter()
        .map(|i| i.addr())
        .find(|a| a.is_ipv4() == addr.is_ipv4());
    Some(PeerConfig {
        passive: mine.is_some_and(|m| addr > m),
        ..PeerConfig::new(addr, b.asn)
    })
}

/// The speaker's settings from `[bgp]`, `[[nodes]]` (the mesh) and our blocks (those
/// of pools with disable_bgp_export kept back).
pub fn speaker_config(config: &Config, own_blocks: &[IpNet]) -> Option<SpeakerConfig> {
    let b = config.bgp.as_ref()?;
    let first_v4 = config.node_ips.iter().find_map(|n| match n.addr() {
        IpAddr::V4(a) => Some(a),
        _ => None,
    });
    let first_v6 = config.node_ips.iter().find_map(|n| match n.addr() {
        IpAddr::V6(a) => Some(a),
        _ => None,
    });
    let router_id = b.router_id.or(first_v4).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut peers = Vec::new();
    if b.mesh {
        peers.extend(config.nodes.iter().filter_map(|n| mesh_peer(config, n)));
    }
    peers.extend(b.peers.iter().map(|p| peer_config(b, p)));
    Some(SpeakerConfig {
        asn: b.asn,
        router_id,
        listen: Some(
            b.listen
                .unwrap_or_else(|| "[::]:179".parse().expect("a valid address")),
        ),
        local_address: None,
        peers,
        advertise: exported_blocks(config, own_blocks),
        next_hop_v4: first_v4,
        next_hop_v6: first_v6,
        batch: Duration::from_millis(b.batch_ms),
        graceful_restart: (b.graceful_restart > 0).then_some(b.graceful_restart),
        restarting: restarted_recently(&config.restart_marker(), b.graceful_restart),
        connect_retry: Duration::from_secs(5),
        cluster_id: b.cluster_id,
    })
}

/// Whether the previous run stopped cleanly less than the restart time ago (its marker
/// holds the Unix time of the stop). The marker is consumed.
pub fn restarted_recently(marker: &std::path::Path, restart_time: u16) -> bool {
    let Ok(text) = std::fs::read_to_string(marker) else {
        return false;
    };
    let _ = std::fs::remove_file(marker);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    text.trim()
        .parse::<u64>()
        .is_ok_and(|at| restart_time > 0 && now.saturating_sub(at) < restart_time as u64)
}

/// At a clean stop with graceful restart on: leave the marker for the next start (the
/// sessions close without a NOTIFICATION, so peers keep our routes meanwhile).
pub fn mark_clean_stop(config: &Config) {
    let Some(_) = config.bgp.as_ref().filter(|b| b.graceful_restart > 0) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let marker = config.restart_marker();
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&marker, now.to_string()) {
        warn!(path = %marker.display(), error = %e, "cannot leave the restart marker");
    }
}
