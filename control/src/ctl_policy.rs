//! `vrouterctl policy`: network policies (Calico NetworkPolicy / GlobalNetworkPolicy,
//! Kubernetes NetworkPolicy) applied from a file, listed, shown and removed, as
//! calicoctl does for Calico's.

use crate::api::pb;
use crate::ctl::table::{print, status_message, table, Output};
use clap::Subcommand;
use tonic::transport::Channel;

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Apply every policy of a YAML (several documents) or JSON file; all or none.
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// The policies; `-o yaml` prints them as applied (what `apply -f` takes back).
    List,
    /// One policy as applied, by key (`<namespace>/<name>` or `<name>`).
    Show { key: String },
    #[command(alias = "remove")]
    Del { key: String },
}

fn yaml(docs: &[&pb::PolicyInfo]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for d in docs {
        if !seen.contains(&d.document.as_str()) {
            seen.push(&d.document);
        }
    }
    seen.iter()
        .map(|d| d.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

pub async fn policy(
    c: &mut pb::vrouter_client::VrouterClient<Channel>,
    what: PolicyCmd,
    out: Output,
) -> Result<(), String> {
    match what {
        PolicyCmd::Apply { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
            let r = c
                .apply_policies(pb::ApplyPoliciesRequest {
                    file_name: file,
                    text,
                })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |r| {
                r.applied
                    .iter()
                    .map(|k| format!("policy {k} applied\n"))
                    .collect()
            });
        }
        PolicyCmd::List => {
            let r = c
                .list_policies(pb::ListPoliciesRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            if out == Output::Yaml {
                print!("{}", yaml(&r.policies.iter().collect::<Vec<_>>()));
                return Ok(());
            }
            print(out, &r, |r| {
                let n = |x: i32| {
                    if x < 0 {
                        "-".to_string()
                    } else {
                        x.to_string()
                    }
                };
                let rows: Vec<Vec<String>> = r
                    .policies
                    .iter()
                    .map(|p| {
                        vec![
                            p.key.clone(),
                            if p.order.is_empty() {
                                "-".into()
                            } else {
                                p.order.clone()
                            },
                            p.selector.clone(),
                            n(p.ingress_rules),
                            n(p.egress_rules),
                        ]
                    })
                    .collect();
                table(&["POLICY", "ORDER", "SELECTOR", "INGRESS", "EGRESS"], &rows)
            });
        }
        PolicyCmd::Show { key } => {
            let r = c
                .list_policies(pb::ListPoliciesRequest {})
                .await
                .map_err(status_message)?
                .into_inner();
            let p = r
                .policies
                .iter()
                .find(|p| p.key == key)
                .ok_or_else(|| format!("no policy {key:?}"))?;
            if out == Output::Yaml {
                print!("{}", yaml(&[p]));
                return Ok(());
            }
            print(out, p, |p| {
                let n = |v: &[u64]| {
                    let v: Vec<String> = v.iter().map(u64::to_string).collect();
                    format!("[{}]", v.join(", "))
                };
                // A comment: the text still reads back as the policy.
                format!(
                    "{}# packets per rule: ingress {}, egress {}\n",
                    yaml(&[p]),
                    n(&p.ingress_packets),
                    n(&p.egress_packets)
                )
            });
        }
        PolicyCmd::Del { key } => {
            let r = c
                .remove_policy(pb::RemovePolicyRequest { key: key.clone() })
                .await
                .map_err(status_message)?
                .into_inner();
            print(out, &r, |_| format!("policy {key} removed\n"));
        }
    }
    Ok(())
}
