//! `vrouterctl` commands that talk to the cluster datastore itself, as calicoctl does
//! (no vrouterd needed): `ipam show / check / release`, `node list`. etcd is found
//! from `--etcd-endpoints` or Calico's `ETCD_ENDPOINTS` (and `ETCD_CA_CERT_FILE`,
//! `ETCD_CERT_FILE`, `ETCD_KEY_FILE`).

use crate::ctl::table::{print, table, Output};
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

pub async fn ipam(etcd: &EtcdArgs, what: IpamCmd, out: Output) -> Result<(), String> {
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
            print(out, &rows, |rows| {
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
                table(
                    &[
                        "GROUPING",
                        "CIDR",
                        "NODE",
                        "IPS TOTAL",
                        "IPS IN USE",
                        "IPS FREE",
                    ],
                    &cells,
                )
            });
            Ok(())
        }
        IpamCmd::Check => {
            let snap = IpamSnapshot::read(&store)
                .await
                .map_err(|e| e.to_string())?;
            let names: BTreeSet<String> = nodes(&store).await?.into_keys().collect();
            let problems = snap.problems(&names);
            let allocated = snap.allocations().len();
            if out.structured() {
                let v = serde_json::json!({
                    "blocks": snap.blocks.len(),
                    "allocations": allocated,
                    "handles": snap.handles.len(),
                    "problems": problems,
                });
                print(out, &v, |_| String::new());
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
pub async fn node_list(etcd: &EtcdArgs, out: Output) -> Result<(), String> {
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
    print(out, &rows, |rows| {
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
        table(
            &[
                "NAME",
                "IPV4",
                "IPV6",
                "ASN",
                "VXLAN TUNNEL",
                "VTEP MAC",
                "BLOCKS",
            ],
            &cells,
        )
    });
    Ok(())
}

/// A stored IPPool as the API's message (for the same tables and YAML as vrouterd's).
fn pool_pb(p: &IpPoolSpec) -> crate::api::pb::Pool {
    crate::api::pb::Pool {
        cidr: p.cidr.clone(),
        block_size: p.block_size() as u32,
        ipip_mode: if p.ipip_mode.is_empty() {
            "Never".into()
        } else {
            p.ipip_mode.clone()
        },
        vxlan_mode: if p.vxlan_mode.is_empty() {
            "Never".into()
        } else {
            p.vxlan_mode.clone()
        },
        nat_outgoing: p.nat_outgoing,
        disabled: p.disabled,
        origin: "datastore".into(),
        node_selector: p.node_selector.clone(),
        disable_bgp_export: p.disable_bgp_export,
        allowed_uses: p.allowed_uses.clone(),
        assignment_mode: p.assignment_mode.clone(),
        ..Default::default()
    }
}

/// What we store for a pool applied from a file, with Calico's defaults (as
/// `lib/clientv3/ippool.go` fills them on create).
fn pool_spec(p: &crate::api::pb::Pool) -> Result<(IpNet, IpPoolSpec), String> {
    let cidr: IpNet = p
        .cidr
        .parse()
        .map_err(|e| format!("cidr {:?}: {e}", p.cidr))?;
    if cidr != cidr.trunc() {
        return Err(format!(
            "cidr {cidr}: host bits set (did you mean {}?)",
            cidr.trunc()
        ));
    }
    let default_bs = if cidr.addr().is_ipv4() { 26 } else { 122 };
    let bs = if p.block_size == 0 {
        default_bs
    } else {
        p.block_size as u8
    };
    let (lo, hi) = if cidr.addr().is_ipv4() {
        (20, 32)
    } else {
        (116, 128)
    };
    if !(lo..=hi).contains(&bs) || bs < cidr.prefix_len() {
        return Err(format!(
            "pool {cidr}: blockSize {bs} must be in {lo}..={hi} and not shorter than the pool"
        ));
    }
    let mode = |m: &str| {
        if m.is_empty() {
            "Never".to_string()
        } else {
            m.to_string()
        }
    };
    let spec = IpPoolSpec {
        cidr: cidr.to_string(),
        vxlan_mode: mode(&p.vxlan_mode),
        ipip_mode: mode(&p.ipip_mode),
        nat_outgoing: p.nat_outgoing,
        disabled: p.disabled,
        disable_bgp_export: p.disable_bgp_export,
        block_size: Some(bs),
        node_selector: if p.node_selector.is_empty() {
            "all()".into()
        } else {
            p.node_selector.clone()
        },
        namespace_selector: String::new(),
        allowed_uses: if p.allowed_uses.is_empty() {
            vec!["Workload".into(), "Tunnel".into()]
        } else {
            p.allowed_uses.clone()
        },
        assignment_mode: if p.assignment_mode.is_empty() {
            "Automatic".into()
        } else {
            p.assignment_mode.clone()
        },
        other: Default::default(),
    };
    if spec.ipip_mode != "Never" && spec.vxlan_mode != "Never" {
        return Err(format!(
            "pool {cidr}: ipipMode and vxlanMode cannot both be on"
        ));
    }
    if cidr.addr().is_ipv6() && spec.ipip_mode != "Never" {
        return Err(format!("pool {cidr}: IPIP is refused on an IPv6 pool"));
    }
    Ok((cidr, spec))
}

/// What `pool` asks of the datastore.
#[derive(Debug)]
pub enum PoolOp {
    List,
    Apply { file: std::path::PathBuf },
    Del { cidr: String },
}

/// `pool list / apply -f / del` against the datastore (`--etcd-endpoints` given):
/// the cluster's IPPools, as calicoctl manages them.
pub async fn pool(etcd: &EtcdArgs, what: PoolOp, out: Output) -> Result<(), String> {
    use crate::ctl::pool_file::{parse_pool_file, pool_name, pool_row, pools_yaml, POOL_COLUMNS};
    use datastore::store::encode;
    let store = etcd.store().await?;
    let stored = pools(&store).await?;
    match what {
        PoolOp::List => {
            let list: Vec<_> = stored.iter().map(|p| pool_pb(&p.spec)).collect();
            if out == Output::Yaml {
                print!("{}", pools_yaml(&list));
            } else if out == Output::Json {
                let v = serde_json::json!({ "pools": list });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let cells: Vec<Vec<String>> = stored
                    .iter()
                    .zip(&list)
                    .map(|(r, p)| {
                        let mut row = vec![r.metadata.name.clone()];
                        row.extend(pool_row(p));
                        row
                    })
                    .collect();
                let mut columns = vec!["NAME"];
                columns.extend(POOL_COLUMNS);
                print!("{}", table(&columns, &cells));
            }
            Ok(())
        }
        PoolOp::Apply { file } => {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{name}: {e}"))?;
            for p in parse_pool_file(&name, &text)? {
                let (cidr, spec) = pool_spec(&p)?;
                // The same CIDR keeps its name; another pool overlapping it is refused.
                let mut res_name = pool_name(&cidr.to_string());
                for r in &stored {
                    let Ok(other) = r.spec.cidr.parse::<IpNet>() else {
                        continue;
                    };
                    if other == cidr {
                        res_name = r.metadata.name.clone();
                    } else if other.contains(&cidr.addr()) || cidr.contains(&other.addr()) {
                        return Err(format!(
                            "pool {cidr} overlaps pool {} ({other}): refused",
                            r.metadata.name
                        ));
                    }
                }
                let key = keys::resource(&store.prefix, "ippools", &res_name);
                let done = match store.get(&key).await.map_err(|e| e.to_string())? {
                    Some(e) => {
                        let mut r: Resource<IpPoolSpec> = e.decode().map_err(|e| e.to_string())?;
                        if r.spec.block_size() != spec.block_size() {
                            return Err(format!("pool {cidr}: the block size cannot change"));
                        }
                        r.spec = spec;
                        store.update(&key, encode(&r), e.mod_revision).await
                    }
                    None => {
                        let mut r = Resource::new(&res_name, spec);
                        r.metadata.creation_timestamp = datastore::member::rfc3339_now();
                        store.create(&key, encode(&r)).await
                    }
                }
                .map_err(|e| e.to_string())?;
                if !done {
                    return Err(format!("pool {cidr}: changed meanwhile, apply again"));
                }
                println!("pool {cidr} applied ({res_name})");
            }
            Ok(())
        }
        PoolOp::Del { cidr } => {
            let cidr: IpNet = cidr.parse().map_err(|e| format!("cidr {cidr:?}: {e}"))?;
            let Some(r) = stored
                .iter()
                .find(|r| r.spec.cidr.parse::<IpNet>().ok() == Some(cidr))
            else {
                return Err(format!("no pool {cidr}"));
            };
            let snap = IpamSnapshot::read(&store)
                .await
                .map_err(|e| e.to_string())?;
            let used = snap
                .allocations()
                .iter()
                .filter(|(a, ..)| cidr.contains(a))
                .count();
            if used > 0 {
                return Err(format!(
                    "pool {cidr} has {used} address(es) in use: release them first"
                ));
            }
            let key = keys::resource(&store.prefix, "ippools", &r.metadata.name);
            if let Some(e) = store.get(&key).await.map_err(|e| e.to_string())? {
                store
                    .delete(&key, e.mod_revision)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            println!("pool {cidr} removed");
            Ok(())
        }
    }
}
