//! `vrouterctl`: the command-line client of the API (like calicoctl). Every command
//! prints a table or, with `--json`, the reply as JSON; failures print one line on
//! stderr and exit 1.

use crate::api::{self, pb};
use clap::{CommandFactory, Parser, Subcommand};
use std::time::Duration;

pub mod peer;
pub mod pool_file;
pub mod route;
pub mod table;
pub mod watch;
pub use peer::PeerCmd;
pub use pool_file::{parse_pool_file, pool_name, pool_row, pools_yaml, POOL_COLUMNS};
pub use route::RouteCmd;
pub use table::{duration_text, print, since, status_message, table, Output};

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
    /// Print the reply as JSON (as `-o json`).
    #[arg(long, global = true)]
    pub json: bool,
    /// How to print replies: tables (`wide`: more columns where a command has them),
    /// or the API's reply as JSON or YAML (Calico's resources in Calico's shape).
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
    /// This client's version and the daemon's.
    Version,
    /// vrouterd's log.
    Log {
        #[command(subcommand)]
        what: LogCmd,
    },
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
    /// Print this command's completion script: `source <(vrouterctl completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: crate::clidocs::Shell,
    },
    /// Write vrouterctl.1 and a page per subcommand into DIR (scripts/package.sh).
    #[command(hide = true)]
    GenerateMan { dir: std::path::PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// The BGP peer table, as `calicoctl node status` prints it.
    Status,
    /// The cluster's nodes, from the datastore.
    List,
}

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// The level now, or set it while running: `info`, `debug`,
    /// `info,control::speaker=debug` (until a restart, or a reload that changes
    /// `[log] level`).
    Level { level: Option<String> },
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
    /// The pools; `-o yaml` prints Calico's IPPoolList, as `calicoctl get ippools -o
    /// yaml` does (what `pool apply -f` takes back).
    List,
    /// Create or update pools from a Calico-shaped IPPool file (YAML or TOML).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
    },
    #[command(alias = "remove")]
    Del { cidr: String },
}

/// `node status` as text.
pub fn node_status_text(s: &pb::NodeStatusReply) -> String {
    // The first line as calicoctl's ("Calico process is running."), for scripts that
    // grep it.
    let mut out = format!(
        "vrouterd process is running.\nNode {}: {} worker(s), up {}s.\n",
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
    let out = if cli.json { Output::Json } else { cli.output };
    // The datastore's own commands need no vrouterd, nor do the documentation's.
    match cli.command {
        Command::Completion { shell } => {
            crate::clidocs::completion(Cli::command(), shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::GenerateMan { dir } => {
            let pages = crate::clidocs::write_man_pages(Cli::command(), "1", &dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            println!("{} man page(s) written to {}", pages.len(), dir.display());
            return Ok(());
        }
        Command::Ipam { what } => return crate::ctl_cluster::ipam(&cli.etcd, what, out).await,
        Command::Node {
            what: NodeCmd::List,
        } => return crate::ctl_cluster::node_list(&cli.etcd, out).await,
        // With a datastore named, pools are the cluster's (as calicoctl's).
        Command::Pool { what } if cli.etcd.given() => {
            use crate::ctl_cluster::PoolOp;
            let op = match what {
                PoolCmd::List => PoolOp::List,
                PoolCmd::Apply { file } => PoolOp::Apply { file },
                PoolCmd::Del { cidr } => PoolOp::Del { cidr },
            };
            return crate::ctl_cluster::pool(&cli.etcd, op, out).await;
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
    if let Command::Version = cli.command {
        return version(&cli.socket, tls.as_ref(), out).await;
    }
    let mut c = api::connect_with(&cli.socket, tls.as_ref()).await?;
    match cli.command {
        Command::Ipam { .. }
        | Command::Node {
            what: NodeCmd::List,
        } => unreachable!("answered above"),
        Command::Pool { .. } if cli.etcd.given() => unreachable!("answered above"),
        Command::Version | Command::Completion { .. } | Command::GenerateMan { .. } => {
            unreachable!("answered above")
        }
        Command::Route { what } => route::route(&mut c, what, out).await?,
        Command::Peer { what } => peer::peer(&mut c, what, out).await?,
        Command::Log {
            what: LogCmd::Level { level },
        } => {
            let r = c
                .log_level(pb::LogLevelRequest {
                    level: level.unwrap_or_default(),
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| {
                if r.previous.is_empty() {
                    format!("log level: {}\n", r.level)
                } else {
                    format!("log level: {} (was {})\n", r.level, r.previous)
                }
            });
        }
        Command::Node {
            what: NodeCmd::Status,
        } => {
            let r = c
                .node_status(pb::NodeStatusRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, node_status_text);
        }
        Command::Endpoint { what } => match what {
            EndpointCmd::List => {
                let r = c
                    .list_endpoints(pb::ListEndpointsRequest {})
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(out, &r, |r| {
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
                print(out, &r, |e| {
                    format!("endpoint {} added: {}\n", e.name, e.addresses.join(", "))
                });
            }
            EndpointCmd::Del { name } => {
                let r = c
                    .remove_endpoint(pb::RemoveEndpointRequest { name: name.clone() })
                    .await
                    .map_err(status_message)?
                    .into_inner();
                print(out, &r, |r| {
                    format!(
                        "endpoint {name} removed; released {}\n",
                        r.released.join(", ")
                    )
                });
            }
        },
        Command::Pool { what } => match what {
            PoolCmd::List => {
                let r = c
                    .list_pools(pb::ListPoolsRequest {})
                    .await
                    .map_err(status_message)?
                    .into_inner();
                if out == Output::Yaml {
                    print!("{}", pools_yaml(&r.pools));
                    return Ok(());
                }
                print(out, &r, |r| {
                    let rows: Vec<Vec<String>> = r
                        .pools
                        .iter()
                        .map(|p| {
                            let mut row = pool_row(p);
                            row.extend([p.blocks.join(","), p.origin.clone()]);
                            row
                        })
                        .collect();
                    let mut columns = POOL_COLUMNS.to_vec();
                    columns.extend(["BLOCKS", "ORIGIN"]);
                    table(&columns, &rows)
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
                print(out, &applied, |a| {
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
                print(out, &r, |_| format!("pool {cidr} removed\n"));
            }
        },
        Command::Stats => {
            let r = c
                .get_stats(pb::StatsRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |s| {
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
        Command::Watch => watch::watch(&mut c, &cli.socket, out.structured()).await?,
        Command::Conntrack { what } => crate::ctl_conntrack::conntrack(&mut c, what, out).await?,
        Command::Policy { what } => crate::ctl_policy::policy(&mut c, what, out).await?,
        Command::Reload => {
            let r = c
                .reload(pb::ReloadRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, reload_text);
        }
    }
    Ok(())
}

/// `vrouterctl version`: ours, then the daemon's (an error when it does not answer,
/// after ours is printed).
async fn version(
    socket: &str,
    tls: Option<&api::ClientTlsFiles>,
    out: Output,
) -> Result<(), String> {
    #[derive(serde::Serialize)]
    struct Versions {
        client: String,
        daemon: Option<pb::NodeStatusReply>,
    }
    let client = env!("CARGO_PKG_VERSION").to_string();
    let daemon = async {
        let mut c = api::connect_with(socket, tls).await?;
        c.node_status(pb::NodeStatusRequest {})
            .await
            .map_err(status_message)
            .map(|r| r.into_inner())
    }
    .await;
    if !out.structured() {
        println!("Client Version:    {client}");
    }
    let d = daemon?;
    let v = Versions {
        client,
        daemon: Some(d),
    };
    print(out, &v, |v| {
        let d = v.daemon.as_ref().expect("set above");
        format!(
            "Daemon Version:    {} (node {}, up {})\n",
            d.version,
            d.node_name,
            duration_text(d.uptime_seconds)
        )
    });
    Ok(())
}

/// A reload's reply: what was applied, then what waits for a restart.
fn reload_text(r: &pb::ReloadReply) -> String {
    if r.changes.is_empty() && r.needs_restart.is_empty() {
        return "reloaded: nothing changed\n".into();
    }
    let mut out = format!(
        "reloaded: {} change(s) applied, {} needing a restart\n",
        r.changes.len(),
        r.needs_restart.len()
    );
    for line in r.changes.iter().chain(&r.needs_restart) {
        out.push_str(&format!("  {line}\n"));
    }
    out
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

    #[test]
    fn man_pages_and_completions_cover_every_subcommand() {
        let paths = crate::clidocs::subcommand_paths(&Cli::command());
        assert!(paths.len() > 30, "{paths:?}");
        assert!(!paths.iter().any(|p| p[0] == "generate-man"), "hidden");
        let dir = tempfile::tempdir().unwrap();
        let pages = crate::clidocs::write_man_pages(Cli::command(), "1", dir.path()).unwrap();
        assert_eq!(pages.len(), paths.len() + 1);
        let top = std::fs::read_to_string(dir.path().join("vrouterctl.1")).unwrap();
        for path in &paths {
            let page = dir.path().join(format!("vrouterctl-{}.1", path.join("-")));
            let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
            assert!(text.contains(".SH SYNOPSIS"), "{page:?}");
            if path.len() == 1 {
                assert!(
                    top.contains(&format!("vrouterctl\\-{}(1)", path[0])),
                    "{path:?}"
                );
            }
        }
        for shell in [crate::clidocs::Shell::Bash, crate::clidocs::Shell::Zsh] {
            let mut out = Vec::new();
            crate::clidocs::completion(Cli::command(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for path in &paths {
                let word = path.last().unwrap();
                assert!(text.contains(word.as_str()), "{shell}: no {path:?}");
            }
        }
    }

    #[test]
    fn a_reload_counts_only_what_it_applied() {
        let r = pb::ReloadReply {
            changes: vec!["pool 10.69.0.0/16 removed".into()],
            needs_restart: vec!["workers changed: needs a restart (running value kept)".into()],
        };
        assert_eq!(
            reload_text(&r),
            "reloaded: 1 change(s) applied, 1 needing a restart\n  pool 10.69.0.0/16 removed\n  \
             workers changed: needs a restart (running value kept)\n"
        );
        assert_eq!(
            reload_text(&pb::ReloadReply::default()),
            "reloaded: nothing changed\n"
        );
    }
}
