//! `vrouterctl peer list | show ADDR | reset ADDR [--soft] | add | del`: BGP peers as
//! `gobgp neighbor` and `birdc show protocols all` show them.

use super::table::{duration_text, print, print_as, since, status_message, table, Output};
use crate::api::pb;
use clap::Subcommand;

type Client = pb::vrouter_client::VrouterClient<tonic::transport::Channel>;

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Every peer (`-o wide`: timers, message counts, last error).
    List,
    /// One peer in detail: state, uptime, timers, capabilities both ways, messages
    /// and prefixes in and out, the last error.
    Show { address: String },
    /// End the session and start a new one (Cease / Administrative Reset; the peer's
    /// routes are dropped meanwhile), or with --soft ask the peer to send its routes
    /// again and send ours again (route refresh, RFC 2918; the session stays up).
    Reset {
        address: String,
        #[arg(long)]
        soft: bool,
    },
    Add {
        address: String,
        #[arg(long)]
        asn: u32,
        #[arg(long)]
        passive: bool,
        #[arg(long, default_value_t = 0)]
        port: u32,
        #[arg(long, default_value_t = 0)]
        hold_time: u32,
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// The TCP MD5 key from this file (its first line; mode 0600), read by the
        /// daemon: only the path is kept in its state.
        #[arg(long)]
        password_file: Option<String>,
        #[arg(long)]
        rr_client: bool,
    },
    #[command(alias = "remove")]
    Del { address: String },
}

pub async fn peer(c: &mut Client, what: PeerCmd, out: Output) -> Result<(), String> {
    match what {
        PeerCmd::List => {
            let r = c
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print_as(out, &r, |r, wide| peers_table(&r.peers, wide));
        }
        PeerCmd::Show { address } => {
            let p = c
                .get_peer(pb::GetPeerRequest { address })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &p, peer_text);
        }
        PeerCmd::Reset { address, soft } => {
            let r = c
                .reset_peer(pb::ResetPeerRequest {
                    address: address.clone(),
                    soft,
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| format!("peer {address}: {}\n", r.done));
        }
        PeerCmd::Add {
            address,
            asn,
            passive,
            port,
            hold_time,
            password,
            password_file,
            rr_client,
        } => {
            let r = c
                .add_peer(pb::Peer {
                    address,
                    asn,
                    passive,
                    port,
                    hold_time,
                    password: password.unwrap_or_default(),
                    password_file: password_file.unwrap_or_default(),
                    rr_client,
                    ..Default::default()
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |p| format!("peer {} added\n", p.address));
        }
        PeerCmd::Del { address } => {
            let r = c
                .remove_peer(pb::RemovePeerRequest {
                    address: address.clone(),
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |_| format!("peer {address} removed\n"));
        }
    }
    Ok(())
}

fn peers_table(peers: &[pb::Peer], wide: bool) -> String {
    let mut header = vec![
        "ADDRESS", "ASN", "TYPE", "STATE", "SINCE", "RECEIVED", "SENT", "INFO",
    ];
    if wide {
        header.extend(["ROUTER ID", "HOLD", "MSGS IN", "MSGS OUT", "LAST ERROR"]);
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            let mut row = vec![
                p.address.clone(),
                p.asn.to_string(),
                p.peer_type.clone(),
                p.state.clone(),
                since(p.since),
                p.prefixes_received.to_string(),
                p.prefixes_sent.to_string(),
                p.info.clone(),
            ];
            if wide {
                let s = p.session.clone().unwrap_or_default();
                let total = |m: &Option<pb::MessageCounts>| m.as_ref().map_or(0, |m| m.total);
                row.extend([
                    dash(&s.router_id),
                    if s.hold_time > 0 {
                        s.hold_time.to_string()
                    } else {
                        "-".into()
                    },
                    total(&s.messages_received).to_string(),
                    total(&s.messages_sent).to_string(),
                    dash(&s.last_error),
                ]);
            }
            row
        })
        .collect();
    table(&header, &rows)
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// `peer show` as text.
pub fn peer_text(p: &pb::Peer) -> String {
    let s = p.session.clone().unwrap_or_default();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut out = format!(
        "BGP neighbor is {}, remote AS {} ({}, {})\n",
        p.address,
        p.asn,
        if p.ibgp { "iBGP" } else { "eBGP" },
        p.peer_type
    );
    if p.state == "Established" {
        out.push_str(&format!(
            "  BGP state: Established, up for {}\n",
            duration_text(s.uptime_seconds)
        ));
    } else {
        out.push_str(&format!(
            "  BGP state: {} since {}{}\n",
            p.state,
            since(p.since),
            if p.info.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.info)
            }
        ));
    }
    out.push_str(&format!(
        "  Peer router id: {}; port {}; passive: {}; route-reflector client: {}\n",
        dash(&s.router_id),
        p.port,
        yes(p.passive),
        yes(p.rr_client)
    ));
    let negotiated = if s.hold_time > 0 || p.state == "Established" {
        format!(
            "{} s negotiated, keepalive every {} s",
            s.hold_time, s.keepalive
        )
    } else {
        "none negotiated (no session)".into()
    };
    out.push_str(&format!(
        "  Hold time: {} s configured, {negotiated}\n",
        p.hold_time
    ));
    out.push_str("  Capabilities:\n");
    for (who, caps) in [
        ("sent", &s.local_capabilities),
        ("received", &s.peer_capabilities),
    ] {
        out.push_str(&format!(
            "    {who:<9} {}\n",
            if caps.is_empty() {
                "-".into()
            } else {
                caps.join(", ")
            }
        ));
    }
    let (rx, tx) = (
        s.messages_received.unwrap_or_default(),
        s.messages_sent.unwrap_or_default(),
    );
    out.push_str(&format!(
        "  {:<16}{:>10} {:>10}\n",
        "Messages:", "received", "sent"
    ));
    for (name, a, b) in [
        ("Opens", rx.open, tx.open),
        ("Updates", rx.update, tx.update),
        ("Notifications", rx.notification, tx.notification),
        ("Keepalives", rx.keepalive, tx.keepalive),
        ("Route refresh", rx.route_refresh, tx.route_refresh),
        ("Total", rx.total, tx.total),
    ] {
        out.push_str(&format!("    {name:<14}{a:>10} {b:>10}\n"));
    }
    out.push_str(&format!(
        "  Prefixes: {} announced and {} withdrawn in UPDATEs received; {} accepted \
         (in the RIB); {} advertised\n",
        s.prefixes_announced, s.prefixes_withdrawn, s.prefixes_accepted, s.prefixes_advertised
    ));
    out.push_str(&format!("  Last error: {}\n", dash(&s.last_error)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_show_reads_like_gobgp_neighbor() {
        let p = pb::Peer {
            address: "10.0.0.2".into(),
            asn: 64513,
            peer_type: "global".into(),
            state: "Established".into(),
            hold_time: 90,
            port: 179,
            session: Some(pb::PeerSession {
                uptime_seconds: 3723,
                router_id: "10.0.0.2".into(),
                hold_time: 90,
                keepalive: 30,
                local_capabilities: vec!["ipv4-unicast".into(), "route-refresh".into()],
                peer_capabilities: vec!["ipv4-unicast".into()],
                messages_received: Some(pb::MessageCounts {
                    open: 1,
                    update: 3,
                    keepalive: 5,
                    total: 9,
                    ..Default::default()
                }),
                messages_sent: Some(pb::MessageCounts::default()),
                prefixes_announced: 4,
                prefixes_withdrawn: 1,
                prefixes_accepted: 3,
                prefixes_advertised: 2,
                last_error: "received NOTIFICATION 6/4: Cease / Administrative Reset".into(),
            }),
            ..Default::default()
        };
        let t = peer_text(&p);
        assert!(t.starts_with("BGP neighbor is 10.0.0.2, remote AS 64513 (eBGP, global)\n"));
        assert!(
            t.contains("  BGP state: Established, up for 01:02:03\n"),
            "{t}"
        );
        assert!(t.contains("Hold time: 90 s configured, 90 s negotiated, keepalive every 30 s"));
        assert!(
            t.contains("    sent      ipv4-unicast, route-refresh\n"),
            "{t}"
        );
        assert!(
            t.contains("    Updates                3          0\n"),
            "{t}"
        );
        assert!(t.contains("4 announced and 1 withdrawn"));
        assert!(t.contains("Last error: received NOTIFICATION 6/4"));
        assert_eq!(duration_text(90_061), "1d01h01m01s");
        let wide = peers_table(std::slice::from_ref(&p), true);
        assert!(
            wide.contains("LAST ERROR") && wide.contains("| 9 "),
            "{wide}"
        );
    }
}
