//! `vrouterctl route list [--detail] | add | del`: the FIB's routes, and with --detail
//! every BGP path behind them (as `gobgp global rib` shows them).

use super::table::{duration_text, print, print_as, status_message, table, Output};
use crate::api::pb;
use clap::Subcommand;

type Client = pb::vrouter_client::VrouterClient<tonic::transport::Channel>;

#[derive(Subcommand, Debug)]
pub enum RouteCmd {
    List {
        /// An address: the routes covering it; a prefix: the routes inside it.
        #[arg(long)]
        filter: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Every BGP path of each route: next hop, AS path, origin, local preference,
        /// MED, communities, age, best (`-o wide` too).
        #[arg(long)]
        detail: bool,
    },
    /// A static route via neighbour(s) on an uplink, or to a remote node's block.
    Add {
        prefix: String,
        #[arg(long)]
        via: Vec<String>,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        uplink: Option<String>,
    },
    #[command(alias = "remove")]
    Del { prefix: String },
}

pub async fn route(c: &mut Client, what: RouteCmd, out: Output) -> Result<(), String> {
    match what {
        RouteCmd::List {
            filter,
            limit,
            detail,
        } => {
            let r = c
                .list_routes(pb::ListRoutesRequest {
                    filter: filter.unwrap_or_default(),
                    limit,
                    detail: detail || out == Output::Wide,
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print_as(out, &r, |r, wide| routes_text(r, detail || wide));
        }
        RouteCmd::Add {
            prefix,
            via,
            node,
            uplink,
        } => {
            let r = c
                .add_route(pb::AddRouteRequest {
                    prefix,
                    via,
                    node: node.unwrap_or_default(),
                    uplink: uplink.unwrap_or_default(),
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| format!("route {} added\n", r.prefix));
        }
        RouteCmd::Del { prefix } => {
            let r = c
                .remove_route(pb::RemoveRouteRequest {
                    prefix: prefix.clone(),
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |_| format!("route {prefix} removed\n"));
        }
    }
    Ok(())
}

fn routes_text(r: &pb::ListRoutesReply, detail: bool) -> String {
    let mut t = if detail {
        paths_table(&r.routes)
    } else {
        let rows: Vec<Vec<String>> = r
            .routes
            .iter()
            .map(|x| {
                vec![
                    x.prefix.clone(),
                    if x.peer.is_empty() {
                        x.source.clone()
                    } else {
                        format!("{} {}", x.source, x.peer)
                    },
                    x.next_hops.join(","),
                    x.encapsulation.clone(),
                    x.out.join(","),
                ]
            })
            .collect();
        table(&["PREFIX", "SOURCE", "NEXT HOPS", "ENCAP", "OUT"], &rows)
    };
    if r.total as usize > r.routes.len() {
        t.push_str(&format!("({} of {} routes)\n", r.routes.len(), r.total));
    }
    t
}

/// One row per BGP path (`*` best, `s` stale), one per other route.
fn paths_table(routes: &[pb::Route]) -> String {
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let mut rows = Vec::new();
    for x in routes {
        if x.paths.is_empty() {
            rows.push(vec![
                String::new(),
                x.prefix.clone(),
                x.source.clone(),
                x.next_hops.join(","),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                x.out.join(","),
            ]);
            continue;
        }
        for p in &x.paths {
            let flags = format!(
                "{}{}",
                if p.best { "*" } else { "" },
                if p.stale { "s" } else { "" }
            );
            let as_path: Vec<String> = p.as_path.iter().map(u32::to_string).collect();
            rows.push(vec![
                flags,
                x.prefix.clone(),
                format!("bgp {}", p.peer),
                p.next_hop.clone(),
                if as_path.is_empty() {
                    "(local AS)".into()
                } else {
                    as_path.join(" ")
                },
                p.origin.clone(),
                opt(p.local_pref),
                opt(p.med),
                if p.communities.is_empty() {
                    "-".into()
                } else {
                    p.communities.join(" ")
                },
                duration_text(p.age_seconds),
                if p.best {
                    x.out.join(",")
                } else {
                    String::new()
                },
            ]);
        }
    }
    table(
        &[
            "BEST",
            "PREFIX",
            "SOURCE",
            "NEXT HOP",
            "AS PATH",
            "ORIGIN",
            "LOCAL PREF",
            "MED",
            "COMMUNITIES",
            "AGE",
            "OUT",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_lists_every_path_best_first_with_its_attributes() {
        let r = pb::ListRoutesReply {
            routes: vec![
                pb::Route {
                    prefix: "10.65.1.0/26".into(),
                    source: "bgp".into(),
                    out: vec!["uplink".into()],
                    paths: vec![
                        pb::Path {
                            peer: "10.0.0.2".into(),
                            next_hop: "10.0.0.2".into(),
                            as_path: vec![64513],
                            origin: "IGP".into(),
                            local_pref: Some(100),
                            communities: vec!["64513:7".into()],
                            age_seconds: 61,
                            best: true,
                            ..Default::default()
                        },
                        pb::Path {
                            peer: "10.0.0.3".into(),
                            next_hop: "10.0.0.3".into(),
                            as_path: vec![64514, 64513],
                            origin: "incomplete".into(),
                            med: Some(5),
                            stale: true,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                pb::Route {
                    prefix: "10.65.0.5/32".into(),
                    source: "connected".into(),
                    next_hops: vec!["ee:ee:ee:ee:ee:ee".into()],
                    out: vec!["pod1".into()],
                    ..Default::default()
                },
            ],
            total: 3,
        };
        let t = routes_text(&r, true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("AS PATH") && lines[1].contains("COMMUNITIES"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("| *    | 10.65.1.0/26 | bgp 10.0.0.2"),
            "{t}"
        );
        assert!(
            lines[3].contains("| 64513 ") && lines[3].contains("| 64513:7 "),
            "{t}"
        );
        assert!(lines[3].contains("| 00:01:01 | uplink"), "{t}");
        assert!(
            lines[4].starts_with("| s    |") && lines[4].contains("64514 64513"),
            "{t}"
        );
        assert!(
            lines[5].contains("connected") && lines[5].contains("pod1"),
            "{t}"
        );
        assert!(t.ends_with("(2 of 3 routes)\n"), "{t}");
    }
}
