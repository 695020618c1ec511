//! `vrouterctl conntrack`: the workers' tracked flows (as conntrack(8) shows the
//! kernel's): list with a filter, the tables' figures, flush.

use crate::api::pb;
use crate::ctl::table::{print, status_message, table, Output};
use clap::Subcommand;
use tonic::transport::Channel;

#[derive(Subcommand, Debug)]
pub enum ConntrackCmd {
    /// Flows, both directions (NAT: the reply to the node's address and port).
    List {
        /// "key=value ...": src, dst, addr, port, proto (tcp, udp, icmp, icmpv6); each
        /// must match one direction of the flow.
        #[arg(long, default_value = "")]
        filter: String,
        /// At most this many flows are listed (all are counted).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// How many flows, made, aged out, evicted and refused; NAT's counts; per worker.
    Stats,
    /// Remove flows (all, or those the filter picks): their next packets start anew.
    Flush {
        #[arg(long, default_value = "")]
        filter: String,
    },
}

fn end(e: &Option<pb::FlowEnd>) -> String {
    let e = e.clone().unwrap_or_default();
    let host = |a: &str, p: u32| {
        if a.contains(':') {
            format!("[{a}]:{p}")
        } else {
            format!("{a}:{p}")
        }
    };
    format!("{} > {}", host(&e.src, e.sport), host(&e.dst, e.dport))
}

fn counters(c: &[pb::Counter]) -> String {
    let v: Vec<String> = c
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect();
    v.join(" ")
}

pub async fn conntrack(
    c: &mut pb::vrouter_client::VrouterClient<Channel>,
    what: ConntrackCmd,
    out: Output,
) -> Result<(), String> {
    match what {
        ConntrackCmd::List { filter, limit } => {
            let r = c
                .list_flows(pb::ListFlowsRequest { filter, limit })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| {
                let rows: Vec<Vec<String>> = r
                    .flows
                    .iter()
                    .map(|f| {
                        vec![
                            f.proto.clone(),
                            end(&f.orig),
                            end(&f.reply),
                            f.state.clone(),
                            f.idle_s.to_string(),
                            if f.translated { "snat" } else { "" }.into(),
                            f.worker.to_string(),
                        ]
                    })
                    .collect();
                let head = [
                    "PROTO", "ORIGINAL", "REPLY", "STATE", "IDLE S", "NAT", "WORKER",
                ];
                format!(
                    "{}{} flow(s) matched, {} listed\n",
                    table(&head, &rows),
                    r.matched,
                    r.flows.len()
                )
            });
        }
        ConntrackCmd::Stats => {
            let r = c
                .conntrack_stats(pb::ConntrackStatsRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| {
                let ports = match r.nat_ports.as_str() {
                    "" => "off".to_string(),
                    p => format!("ports {p}"),
                };
                let mut out = format!("total: {}\nNAT outgoing: {ports}\n", counters(&r.total));
                for w in &r.workers {
                    out.push_str(&format!("worker {}: {}\n", w.worker, counters(&w.counters)));
                }
                out
            });
        }
        ConntrackCmd::Flush { filter } => {
            let r = c
                .flush_flows(pb::FlushFlowsRequest { filter })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| format!("{} flow(s) flushed\n", r.flushed));
        }
    }
    Ok(())
}
