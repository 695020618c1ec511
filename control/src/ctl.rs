//! `vrouterctl`: the command-line client of the API (like calicoctl). Every command
//! prints a table or, with `--json`, the reply as JSON; failures print one line on
//! stderr and exit 1.

use crate::api::{self, pb};
use clap::{Parser, Subcommand};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod pool_file;
pub mod table;
pub use pool_file::{parse_pool_file, pool_name, pools_yaml};
pub use table::{print, status_message, table};

#[derive(Parser, Debug)]
#[command(name = "vrouterctl", version, about = "Drive vrouterd through its API")]
pub struct Cli {
    /// The API socket (or https://HOST:PORT for its TCP listener, with --tls-*).
    #[arg(long, global = true, env = "VROUTER_SOCKET", default_value = api::DEFAULT_SOCKET)]
    pub socket: String,
    /// Over TCP: this client's certificate (PEM), signed by the node's client_ca_file.
    #[arg(long, global = true, env = "VROUTER_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Over TCP: this client's private key (PEM, mode 0600).
    #[arg(long, global = true, env = "VROUTER_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<std::path::PathBuf>,
    /// Over TCP: the CA that signed the node's certificate.
    #[arg(long, global = true, env = "VROUTER_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Print the reply as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The cluster datastore, for the commands that read it directly.
    #[command(flatten)]
    pub etcd: crate::ctl_cluster::EtcdArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The node and its BGP peers.
    Node {
        #[command(subcommand)]
        what: NodeCmd,
    },
    /// Routes in the FIB.
    Route {
        #[command(subcommand)]
        what: RouteCmd,
    },
    /// Pods' endpoints (veth or tap).
    Endpoint {
        #[command(subcommand)]
        what: EndpointCmd,
    },
    /// IP pools.
    Pool {
        #[command(subcommand)]
        what: PoolCmd,
    },
    /// BGP peers.
    Peer {
        #[command(subcommand)]
        what: PeerCmd,
    },
    /// Counters: totals, per worker, per endpoint, drops by reason.
    Stats,
    /// Print route and endpoint events as they happen (Ctrl-C to stop).
    Watch,
    /// Re-read the configuration file (as SIGHUP does).
    Reload,
    /// Network policies (Calico or Kubernetes resources): apply -f, list, show, del.
    Policy {
        #[command(subcommand)]
        what: crate::ctl_policy::PolicyCmd,
    },
    /// The workers' tracked flows (NAT outgoing's): list, stats, flush.
    Conntrack {
        #[command(subcommand)]
        what: crate::ctl_conntrack::ConntrackCmd,
    },
    /// The cluster's shared IPAM, read from the datastore (as calicoctl ipam).
    Ipam {
        #[command(subcommand)]
        what: crate::ctl_cluster::IpamCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// The BGP peer table, as `calicoctl node status` prints it.
    Status,
    /// The cluster's nodes, from the datastore.
    List,
}

#[derive(Subcommand, Debug)]
pub enum RouteCmd {
    List {
        /// An address: the routes covering it; a prefix: the routes inside it.
        #[arg(long)]
        filter: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 0)]
        limit: u32,
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

#[derive(Subcommand, Debug)]
pub enum EndpointCmd {
    List,
    Add {
        name: String,
        /// Host side of the veth, or the tap.
        #[arg(long)]
        interface: String,
        #[arg(long, default_value = "veth")]
        kind: String,
        /// Addresses (default: allocated from a pool).
        #[arg(long = "ip")]
        ips: Vec<String>,
        #[arg(long)]
        mac: Option<String>,
        /// Also allocate an IPv6 address.
        #[arg(long)]
        ipv6: bool,
        /// The pod's labels, `KEY=VALUE` (network policy selects on them); repeat it.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The pod's Kubernetes namespace (policy: namespaced policies and namespace
        /// selectors); the endpoint is then a k8s workload, profile `kns.<namespace>`.
        #[arg(long)]
        namespace: Option<String>,
    },
    #[command(alias = "remove")]
    Del {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    List {
        /// `yaml`: Calico's IPPoolList, as `calicoctl get ippools -o yaml` prints it
        /// (what `pool apply -f` takes back).
        #[arg(short = 'o', long = "output", value_parser = ["table", "yaml"], default_value = "table")]
        output: String,
    },
    /// Create or update pools from a Calico-shaped IPPool file (YAML or TOML).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
    },
    #[command(alias = "remove")]
    Del { cidr: String },
}

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    List,
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
    Del {
        address: String,
    },
}

/// calicoctl's SINCE column: the time of day today, the date before.
fn since(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (day, secs) = (unix / 86_400, unix % 86_400);
    if day == now / 86_400 {
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = day as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// `node status` as text.
pub fn node_status_text(s: &pb::NodeStatusReply) -> String {
    let mut out = format!(
        "vrouterd is running on node {} ({} worker(s), up {}s).\n",
        s.node_name, s.workers, s.uptime_seconds
    );
    if !s.datastore.is_empty() {
        out.push_str(&format!(
            "Datastore: {}; {} other node(s) in the cluster.\n",
            s.datastore, s.cluster_nodes
        ));
    }
    if !s.bgp_enabled {
        out.push_str("\nBGP is not enabled ([bgp] absent from the configuration).\n");
        return out;
    }
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        let rows: Vec<Vec<String>> = s
            .peers
            .iter()
            .filter(|p| p.address.contains(':') == v6)
            .map(|p| {
                let up = p.state == "Established";
                vec![
                    p.address.clone(),
                    p.peer_type.clone(),
                    if up { "up" } else { "start" }.into(),
                    since(p.since),
                    if p.info.is_empty() || up {
                        p.state.clone()
                    } else {
                        format!("{} {}", p.state, p.info)
                    },
                ]
            })
            .collect();
        out.push_str(&format!("\n{family} BGP status\n"));
        if rows.is_empty() {
            out.push_str(&format!("No {family} peers found.\n"));
        } else {
            out.push_str(&table(
                &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                &rows,
            ));
        }
    }
    out
}

fn counters_text(c: &[pb::Counter]) -> String {
    c.iter()
        .filter(|c| c.value > 0)
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run one command. Errors are the one line to print.
pub async fn run(cli: Cli) -> Result<(), String> {
    let json = cli.json;
    // The datastore's own commands need no vrouterd.
    match cli.command {
        Command::Ipam { what } => return crate::ctl_cluster::ipam(&cli.etcd, what, json).await,
        Command::Node {
            what: NodeCmd::List,
        } => return crate::ctl_cluster::node_list(&cli.etcd, json).await,
        // With a datastore named, pools are the cluster's (as calicoctl's).
        Command::Pool { what } if cli.etcd.given() => {
            use crate::ctl_cluster::PoolOp;
            let op = match what {
                PoolCmd::List { output } => PoolOp::List {
                    yaml: output == "yaml",
                },
                PoolCmd::Apply { file } => PoolOp::Apply { file },
                PoolCmd::Del { cidr } => PoolOp::Del { cidr },
            };
            return crate::ctl_cluster::pool(&cli.etcd, op, json).await;
        }
        _ => {}
    }
    let tls = match (&cli.tls_cert, &cli.tls_key, &cli.tls_ca) {
        (Some(c), Some(k), Some(ca)) => Some(api::ClientTlsFiles {
            cert_file: c.clone(),
            key_file: k.clone(),
            ca_file: ca.clone(),
        }),
        _ => None,
    };
    let mut c = api::connect_with(&cli.socket, tls.as_ref()).await?;
    match cli.command {
        Command::Ipam { .. }
        | Command::Node {
            what: NodeCmd::List,
        } => unreachable!("answered above"),
        Command::Pool { .. } if cli.etcd.given() => unreachable!("answered above"),
        Command::Node {
            what: NodeCmd::Status,
        } => {
            let r = c
                .node_status(pb::NodeStatusRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(json, &r, node_status_text);
        }
        Command::Route { what } => match what {
            RouteCmd::List { filter, limit } => {
                let r = c
                    .list_routes(pb::ListRoutesRequest {
                        filter: filter.unwrap_or_default(),
                        limit,
                    })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |r| {
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
                    let mut t = table(&["PREFIX", "SOURCE", "NEXT HOPS", "ENCAP", "OUT"], &rows);
                    if r.total as usize > r.routes.len() {
                        t.push_str(&format!("({} of {} routes)\n", r.routes.len(), r.total));
                    }
                    t
                });
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
                print(json, &r, |r| format!("route {} added\n", r.prefix));
            }
            RouteCmd::Del { prefix } => {
                let r = c
                    .remove_route(pb::RemoveRouteRequest {
                        prefix: prefix.clone(),
                    })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |_| format!("route {prefix} removed\n"));
            }
        },
        Command::Endpoint { what } => match what {
            EndpointCmd::List => {
                let r = c
                    .list_endpoints(pb::ListEndpointsRequest {})
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |r| {
                    let rows: Vec<Vec<String>> = r
                        .endpoints
                        .iter()
                        .map(|e| {
                            vec![
                                e.name.clone(),
                                e.kind.clone(),
                                e.interface.clone(),
                                e.addresses.join(","),
                                if e.mac.is_empty() {
                                    "-".into()
                                } else {
                                    e.mac.clone()
                                },
                                e.worker.to_string(),
                                e.origin.clone(),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "NAME",
                            "KIND",
                            "INTERFACE",
                            "ADDRESSES",
                            "MAC",
                            "WORKER",
                            "ORIGIN",
                        ],
                        &rows,
                    )
                });
            }
            EndpointCmd::Add {
                name,
                interface,
                kind,
                ips,
                mac,
                ipv6,
                labels,
                namespace,
            } => {
                let workload = namespace.map(|ns| pb::Workload {
                    orchestrator: "k8s".into(),
                    pod: name.rsplit('/').next().unwrap_or(&name).to_string(),
                    endpoint: "eth0".into(),
                    profiles: vec![format!("kns.{ns}")],
                    namespace: ns,
                });
                let r = c
                    .add_endpoint(pb::Endpoint {
                        name,
                        kind,
                        interface,
                        addresses: ips,
                        mac: mac.unwrap_or_default(),
                        ipv6,
                        labels: labels.into_iter().collect(),
                        workload,
                        ..Default::default()
                    })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |e| {
                    format!("endpoint {} added: {}\n", e.name, e.addresses.join(", "))
                });
            }
            EndpointCmd::Del { name } => {
                let r = c
                    .remove_endpoint(pb::RemoveEndpointRequest { name: name.clone() })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |r| {
                    format!(
                        "endpoint {name} removed; released {}\n",
                        r.released.join(", ")
                    )
                });
            }
        },
        Command::Pool { what } => match what {
            PoolCmd::List { output } => {
                let r = c
                    .list_pools(pb::ListPoolsRequest {})
                    .await
                    .map_err(status_message)?
                    .into_inner();
                if output == "yaml" {
                    print!("{}", pools_yaml(&r.pools));
                    return Ok(());
                }
                print(json, &r, |r| {
                    let rows: Vec<Vec<String>> = r
                        .pools
                        .iter()
                        .map(|p| {
                            vec![
                                p.cidr.clone(),
                                p.block_size.to_string(),
                                p.ipip_mode.clone(),
                                p.vxlan_mode.clone(),
                                p.disabled.to_string(),
                                p.blocks.join(","),
                                p.origin.clone(),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "CIDR",
                            "BLOCK SIZE",
                            "IPIP",
                            "VXLAN",
                            "DISABLED",
                            "BLOCKS",
                            "ORIGIN",
                        ],
                        &rows,
                    )
                });
            }
            PoolCmd::Apply { file } => {
                let name = file.display().to_string();
                let text = std::fs::read_to_string(&file).map_err(|e| format!("{name}: {e}"))?;
                let mut applied = Vec::new();
                for p in parse_pool_file(&name, &text)? {
                    let cidr = p.cidr.clone();
                    let r = c
                        .apply_pool(p)
                        .await
                        .map_err(|s| format!("pool {cidr}: {}", status_message(s)))?
                        .into_inner();
                    applied.push(r);
                }
                print(json, &applied, |a| {
                    a.iter()
                        .map(|p| format!("pool {} applied\n", p.cidr))
                        .collect()
                });
            }
            PoolCmd::Del { cidr } => {
                let r = c
                    .remove_pool(pb::RemovePoolRequest { cidr: cidr.clone() })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |_| format!("pool {cidr} removed\n"));
            }
        },
        Command::Peer { what } => match what {
            PeerCmd::List => {
                let r = c
                    .list_peers(pb::ListPeersRequest {})
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |r| {
                    let rows: Vec<Vec<String>> = r
                        .peers
                        .iter()
                        .map(|p| {
                            vec![
                                p.address.clone(),
                                p.asn.to_string(),
                                p.peer_type.clone(),
                                p.state.clone(),
                                since(p.since),
                                p.prefixes_received.to_string(),
                                p.prefixes_sent.to_string(),
                                p.info.clone(),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "ADDRESS", "ASN", "TYPE", "STATE", "SINCE", "RECEIVED", "SENT", "INFO",
                        ],
                        &rows,
                    )
                });
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
                print(json, &r, |p| format!("peer {} added\n", p.address));
            }
            PeerCmd::Del { address } => {
                let r = c
                    .remove_peer(pb::RemovePeerRequest {
                        address: address.clone(),
                    })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(json, &r, |_| format!("peer {address} removed\n"));
            }
        },
        Command::Stats => {
            let r = c
                .get_stats(pb::StatsRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(json, &r, |s| {
                let mut out = format!(
                    "total: {}\ndrops: {}\nroutes: {} IPv4, {} IPv6; FIB {} bytes\n",
                    counters_text(&s.total),
                    counters_text(&s.drops),
                    s.routes4,
                    s.routes6,
                    s.fib_bytes
                );
                for w in &s.workers {
                    out.push_str(&format!(
                        "worker {}: {} drops: {}\n",
                        w.worker,
                        counters_text(&w.counters),
                        counters_text(&w.drops)
                    ));
                }
                for e in &s.endpoints {
                    out.push_str(&format!(
                        "endpoint {}: {}\n",
                        e.name,
                        counters_text(&e.counters)
                    ));
                }
                out
            });
        }
        Command::Watch => {
            let mut stream = c
                .watch(pb::WatchRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(ev)) => {
                        if json {
                            println!("{}", serde_json::to_string(&ev).expect("serialises"));
                        } else {
                            println!("{}", event_text(&ev));
                        }
                    }
                    Ok(None) => return Err("vrouterd closed the stream".into()),
                    Err(s) => return Err(status_message(s)),
                }
            }
        }
        Command::Conntrack { what } => crate::ctl_conntrack::conntrack(&mut c, what, json).await?,
        Command::Policy { what } => crate::ctl_policy::policy(&mut c, what, json).await?,
        Command::Reload => {
            let r = c
                .reload(pb::ReloadRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(json, &r, |r| {
                if r.changes.is_empty() {
                    "reloaded: nothing changed\n".into()
                } else {
                    format!("reloaded:\n  {}\n", r.changes.join("\n  "))
                }
            });
        }
    }
    Ok(())
}

fn event_text(ev: &pb::Event) -> String {
    match &ev.what {
        Some(pb::event::What::Route(r)) => {
            let route = r.route.clone().unwrap_or_default();
            format!(
                "route {} {} {} via {}",
                r.op,
                route.prefix,
                route.source,
                route.next_hops.join(",")
            )
        }
        Some(pb::event::What::Endpoint(e)) => {
            let ep = e.endpoint.clone().unwrap_or_default();
            format!("endpoint {} {} {}", e.op, ep.name, ep.addresses.join(","))
        }
        None => "?".into(),
    }
}

/// A `--label KEY=VALUE`: a Kubernetes label key (optionally `prefix/name`) and value.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: want KEY=VALUE"))?;
    let name_ok = |s: &str, max: usize| {
        s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && name_ok(p, 253));
    if name.is_empty() || !name_ok(name, 63) || !prefix_ok {
        return Err(format!("label key {k:?}: not a Kubernetes label key"));
    }
    if !name_ok(v, 63) {
        return Err(format!("label value {v:?}: not a Kubernetes label value"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The binary's entry point.
pub fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        // A daemon that accepts but never answers must not hang a script forever.
        let watch = matches!(cli.command, Command::Watch);
        if watch {
            run(cli).await
        } else {
            tokio::time::timeout(Duration::from_secs(30), run(cli))
                .await
                .unwrap_or_else(|_| Err("vrouterd did not answer within 30 s".into()))
        }
    });
    if let Err(e) = result {
        eprintln!("vrouterctl: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_like_calicoctl() {
        let t = table(
            &["PEER ADDRESS", "STATE"],
            &[vec!["10.0.0.2".into(), "up".into()]],
        );
        assert_eq!(
            t,
            "+--------------+-------+\n| PEER ADDRESS | STATE |\n+--------------+-------+\n| 10.0.0.2     | up    |\n+--------------+-------+\n"
        );
        assert_eq!(since(0), "-");
        assert_eq!(
            parse_label("app.kubernetes.io/name=web").unwrap(),
            ("app.kubernetes.io/name".into(), "web".into())
        );
        assert_eq!(
            parse_label("tier=").unwrap(),
            ("tier".into(), String::new())
        );
        for bad in ["app", "=x", "a b=c", "app=-web", "/x=y", "x=y z"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        assert_eq!(since(86_400 * 365), "1971-01-01");
    }
}
