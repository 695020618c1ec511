//! `vrouterctl` commands that talk to the cluster datastore itself, as calicoctl does
//! (no vrouterd needed): `ipam show / check / release`, `node list`. etcd is found
//! from `--etcd-endpoints` or Calico's `ETCD_ENDPOINTS` (and `ETCD_CA_CERT_FILE`,
//! `ETCD_CERT_FILE`, `ETCD_KEY_FILE`).

use crate::ctl::table::table;
use clap::{Args, Subcommand};
use datastore::block;
use datastore::ipam::{Ipam, IpamSnapshot};
use datastore::keys;
use datastore::model::{IpPoolSpec, NodeResource, Resource};
use datastore::store::{EtcdSettings, Store};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Where the datastore is (flags or Calico's environment variables).
#[derive(Args, Debug, Clone, Default)]
pub struct EtcdArgs {
    /// etcd client URLs, comma-separated (Calico's ETCD_ENDPOINTS).
    #[arg(long, global = true, env = "ETCD_ENDPOINTS")]
    pub etcd_endpoints: Option<String>,
    #[arg(long, global = true, env = "ETCD_CA_CERT_FILE")]
    pub etcd_ca_cert_file: Option<std::path::PathBuf>,
    #[arg(long, global = true, env = "ETCD_CERT_FILE")]
    pub etcd_cert_file: Option<std::path::PathBuf>,
    #[arg(long, global = true, env = "ETCD_KEY_FILE")]
    pub etcd_key_file: Option<std::path::PathBuf>,
    /// Key prefix of Calico's data.
    #[arg(long, global = true, default_value = "/calico")]
    pub etcd_prefix: String,
}

impl EtcdArgs {
    pub fn given(&self) -> bool {
        self.etcd_endpoints.as_ref().is_some_and(|e| !e.is_empty())
    }

    pub async fn store(&self) -> Result<Store, String> {
        let Some(eps) = self.etcd_endpoints.as_ref().filter(|e| !e.is_empty()) else {
            return Err("no datastore: set --etcd-endpoints or ETCD_ENDPOINTS".into());
        };
        let mut s = EtcdSettings::new(eps.split(',').map(|e| e.trim().to_string()).collect());
        s.ca_cert_file = self.etcd_ca_cert_file.clone();
        s.cert_file = self.etcd_cert_file.clone();
        s.key_file = self.etcd_key_file.clone();
        s.prefix = self.etcd_prefix.clone();
        Store::connect(&s).await.map_err(|e| e.to_string())
    }
}

#[derive(Subcommand, Debug)]
pub enum IpamCmd {
    /// Addresses in use and free, per pool (and per block with --show-blocks).
    Show {
        #[arg(long)]
        show_blocks: bool,
    },
    /// Leaked or doubly allocated addresses and inconsistent records (changes nothing;
    /// exits 1 when it finds a problem).
    Check,
    /// Free one address.
    Release {
        #[arg(long)]
        ip: IpAddr,
    },
}

#[derive(Serialize)]
struct UsageRow {
    grouping: String,
    cidr: String,
    node: String,
    total: u128,
    in_use: u128,
    free: u128,
}

async fn pools(store: &Store) -> Result<Vec<Resource<IpPoolSpec>>, String> {
    let (entries, _) = store
        .list(&keys::resources(&store.prefix, "ippools"))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for e in entries {
        match e.decode() {
            Ok(p) => out.push(p),
            Err(err) => eprintln!("vrouterctl: skipping {err}"),
        }
    }
    Ok(out)
}

async fn nodes(store: &Store) -> Result<BTreeMap<String, NodeResource>, String> {
    let (entries, _) = store
        .list(&keys::resources(&store.prefix, "nodes"))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for e in entries {
        match e.decode::<NodeResource>() {
            Ok(n) => {
                out.insert(n.metadata.name.clone(), n);
            }
            Err(err) => eprintln!("vrouterctl: skipping {err}"),
        }
    }
    Ok(out)
}

fn pct(n: u128, of: u128) -> String {
    format!("{n} ({}%)", (n * 100).checked_div(of).unwrap_or(0))
}

pub async fn ipam(etcd: &EtcdArgs, what: IpamCmd, json: bool) -> Result<(), String> {
    let store = etcd.store().await?;
    match what {
        IpamCmd::Show { show_blocks } => {
            let snap = IpamSnapshot::read(&store)
                .await
                .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for p in pools(&store).await? {
                let Ok(cidr) = p.spec.cidr.parse::<IpNet>() else {
                    continue;
                };
                let total = block::size(cidr);
                let blocks: Vec<_> = snap
                    .blocks
                    .iter()
                    .filter(|(c, _)| cidr.contains(c))
                    .collect();
                let used = |b: &datastore::model::AllocationBlock| {
                    b.allocations.iter().filter(|a| a.is_some()).count() as u128
                };
                let in_use: u128 = blocks.iter().map(|(_, b)| used(b)).sum();
                rows.push(UsageRow {
                    grouping: "IP Pool".into(),
                    cidr: cidr.to_string(),
                    node: String::new(),
                    total,
                    in_use,
                    free: total - in_use,
                });
                if show_blocks {
                    for (c, b) in blocks {
                        let total = block::size(*c);
                        rows.push(UsageRow {
                            grouping: "Block".into(),
                            cidr: c.to_string(),
                            node: b.host().unwrap_or("").to_string(),
                            total,
                            in_use: used(b),
                            free: total - used(b),
                        });
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("rows"));
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.grouping.clone(),
                            r.cidr.clone(),
                            r.node.clone(),
                            r.total.to_string(),
                            pct(r.in_use, r.total),
                            pct(r.free, r.total),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "GROUPING",
                            "CIDR",
                            "NODE",
                            "IPS TOTAL",
                            "IPS IN USE",
                            "IPS FREE"
                        ],
                        &cells
                    )
                );
            }
            Ok(())
        }
        IpamCmd::Check => {
            let snap = IpamSnapshot::read(&store)
                .await
                .map_err(|e| e.to_string())?;
            let names: BTreeSet<String> = nodes(&store).await?.into_keys().collect();
            let problems = snap.problems(&names);
            let allocated = snap.allocations().len();
            if json {
                let v = serde_json::json!({
                    "blocks": snap.blocks.len(),
                    "allocations": allocated,
                    "handles": snap.handles.len(),
                    "problems": problems,
                });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                println!(
                    "Checked {} block(s), {allocated} allocation(s), {} handle(s), {} node(s).",
                    snap.blocks.len(),
                    snap.handles.len(),
                    names.len()
                );
                println!("Found {} problem(s).", problems.len());
                for p in &problems {
                    println!("  {p}");
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(format!("ipam check: {} problem(s)", problems.len()))
            }
        }
        IpamCmd::Release { ip } => {
            let ipam = Ipam::new(store, "vrouterctl");
            match ipam.release_ip(ip).await.map_err(|e| e.to_string())? {
                Some(h) => {
                    println!("Released {ip} (handle {h}).");
                    Ok(())
                }
                None => Err(format!("{ip} is not allocated")),
            }
        }
    }
}

#[derive(Serialize)]
struct NodeRow {
    name: String,
    ipv4: String,
    ipv6: String,
    asn: String,
    vxlan_tunnel_addr: String,
    vtep_mac: String,
    blocks: Vec<String>,
}

/// `node list`: every registered node, with its affine blocks.
pub async fn node_list(etcd: &EtcdArgs, json: bool) -> Result<(), String> {
    let store = etcd.store().await?;
    let snap = IpamSnapshot::read(&store)
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<NodeRow> = nodes(&store)
        .await?
        .into_iter()
        .map(|(name, n)| {
            let bgp = n.spec.bgp.clone().unwrap_or_default();
            let blocks = snap
                .affinities
                .iter()
                .filter(|(h, _, s)| *h == name && s == "confirmed")
                .map(|(_, c, _)| c.to_string())
                .collect();
            NodeRow {
                ipv4: bgp.ipv4_address,
                ipv6: bgp.ipv6_address,
                asn: bgp
                    .as_number
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "(cluster)".into()),
                vxlan_tunnel_addr: n.spec.ipv4_vxlan_tunnel_addr,
                vtep_mac: n.spec.vxlan_tunnel_mac_addr,
                blocks,
                name,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows"));
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.ipv4.clone(),
                    r.ipv6.clone(),
                    r.asn.clone(),
                    r.vxlan_tunnel_addr.clone(),
                    r.vtep_mac.clone(),
                    r.blocks.join(","),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "NAME",
                    "IPV4",
                    "IPV6",
                    "ASN",
                    "VXLAN TUNNEL",
                    "VTEP MAC",
                    "BLOCKS"
                ],
                &cells
            )
        );
    }
    Ok(())
}
