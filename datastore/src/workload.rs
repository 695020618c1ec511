//! A node's endpoints as Calico's WorkloadEndpoint resources, named as libcalico-go
//! names them (`lib/names/workloadendpoint.go`): `<node>-k8s-<pod>-<endpoint>`,
//! `<node>-cni-<containerID>-<endpoint>` or `<node>-<orchestrator>-<workload>-<endpoint>`,
//! each part's dashes doubled, under `workloadendpoints/<namespace>/<name>`.
//!
//! One task per node keeps them equal to what the node has (`keep`): it is handed the
//! whole wanted set each time it changes, never a diff, so a datastore outage, a restart
//! or a lost write is repaired by the next pass rather than remembered.

use crate::keys;
use crate::member::{rfc3339_now, uuid};
use crate::model::{Kind, Resource, WorkloadEndpointSpec};
use crate::store::{encode, Committed, Store, StoreError, StoreResult};
use etcd_client::TxnOp;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// What a node knows of one of its endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// "k8s", "cni", or another orchestrator's name.
    pub orchestrator: String,
    pub namespace: String,
    /// The pod (k8s).
    pub pod: String,
    /// The container (cni).
    pub container_id: String,
    /// The workload (other orchestrators).
    pub workload: String,
    /// The interface's name inside the pod ("eth0").
    pub endpoint: String,
    /// The host side of the veth (or the tap).
    pub interface: String,
    /// The pod side's MAC, "aa:bb:..", if known.
    pub mac: String,
    pub ip_networks: Vec<IpNet>,
    pub profiles: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// One part of a name: dashes doubled; none may start or end with a dash.
fn escape(field: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("workload endpoint: {field} is empty"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(format!(
            "workload endpoint: {field} {value:?} starts or ends with '-'"
        ));
    }
    Ok(value.replace('-', "--"))
}

/// The resource's name, as libcalico-go computes it.
pub fn name(node: &str, w: &Workload) -> Result<String, String> {
    let middle = match w.orchestrator.as_str() {
        "k8s" => ("pod", &w.pod),
        "cni" => ("containerID", &w.container_id),
        "libnetwork" => ("orchestrator", &w.orchestrator),
        _ => ("workload", &w.workload),
    };
    Ok([
        escape("node", node)?,
        escape("orchestrator", &w.orchestrator)?,
        escape(middle.0, middle.1)?,
        escape("endpoint", &w.endpoint)?,
    ]
    .join("-"))
}

/// A name's parts with their dashes undoubled (libcalico-go's `extractParts`).
pub fn name_parts(name: &str) -> Vec<String> {
    let b = name.as_bytes();
    let (mut parts, mut start, mut i) = (Vec::new(), 0, 1);
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            parts.push(name[start..i].replace("--", "-"));
            start = i + 1;
        }
        i += 1;
    }
    parts.push(name[start.min(name.len())..].replace("--", "-"));
    parts
}

/// The key (under the configured prefix) and the resource, without `uid` and
/// `creationTimestamp` (kept from what is stored, or made when first written).
pub fn resource(
    prefix: &str,
    node: &str,
    w: &Workload,
) -> Result<(String, Resource<WorkloadEndpointSpec>), String> {
    let name = name(node, w)?;
    let namespace = if w.namespace.is_empty() {
        "default"
    } else {
        &w.namespace
    };
    let mut labels = w.labels.clone();
    labels.insert("projectcalico.org/namespace".into(), namespace.into());
    labels.insert(
        "projectcalico.org/orchestrator".into(),
        w.orchestrator.clone(),
    );
    let spec = WorkloadEndpointSpec {
        orchestrator: w.orchestrator.clone(),
        workload: w.workload.clone(),
        node: node.into(),
        container_id: w.container_id.clone(),
        pod: w.pod.clone(),
        endpoint: w.endpoint.clone(),
        ip_networks: w.ip_networks.iter().map(|n| n.to_string()).collect(),
        profiles: w.profiles.clone(),
        interface_name: w.interface.clone(),
        mac: w.mac.clone(),
        ..Default::default()
    };
    let mut r = Resource::new(&name, spec);
    r.metadata.namespace = namespace.into();
    r.metadata.labels = labels;
    let key = keys::namespaced(prefix, WorkloadEndpointSpec::PLURAL, namespace, &name);
    Ok((key, r))
}

/// What a node wants stored: key → resource.
pub type Wanted = BTreeMap<String, Resource<WorkloadEndpointSpec>>;

/// What is stored for this node: key → (mod revision, resource).
type Stored = BTreeMap<String, (i64, Resource<WorkloadEndpointSpec>)>;

/// Equal but for the fields the first write makes.
fn same(a: &Resource<WorkloadEndpointSpec>, b: &Resource<WorkloadEndpointSpec>) -> bool {
    let mut a = a.clone();
    a.metadata.uid.clone_from(&b.metadata.uid);
    a.metadata
        .creation_timestamp
        .clone_from(&b.metadata.creation_timestamp);
    a == *b
}

/// Every WorkloadEndpoint of `node` in the datastore.
pub async fn list(store: &Store, node: &str) -> StoreResult<Stored> {
    let prefix = keys::resources(&store.prefix, WorkloadEndpointSpec::PLURAL);
    let (entries, _) = store.list(&prefix).await?;
    let mut ours = Stored::new();
    for e in entries {
        match e.decode::<Resource<WorkloadEndpointSpec>>() {
            Ok(r) if r.spec.node == node => {
                ours.insert(e.key.clone(), (e.mod_revision, r));
            }
            Ok(_) => {}
            Err(err) => warn!(%err, "skipping a workload endpoint that does not parse"),
        }
    }
    Ok(ours)
}

/// One pass: write what differs, delete what is no longer wanted. Each write compares
/// on the revision we last saw; a lost compare is an error (the caller lists again).
async fn reconcile(store: &Store, stored: &mut Stored, wanted: &Wanted) -> StoreResult<()> {
    for (key, want) in wanted {
        let (rev, write) = match stored.get(key) {
            Some((_, have)) if same(want, have) => continue,
            Some((rev, have)) => {
                let mut w = want.clone();
                w.metadata.uid.clone_from(&have.metadata.uid);
                w.metadata
                    .creation_timestamp
                    .clone_from(&have.metadata.creation_timestamp);
                (*rev, w)
            }
            None => {
                let mut w = want.clone();
                w.metadata.uid = uuid();
                w.metadata.creation_timestamp = rfc3339_now();
                (0, w)
            }
        };
        let value = encode(&write);
        let done = store
            .txn_at(
                vec![Store::unchanged(key, rev)],
                vec![Store::put(key, value.clone())],
                vec![(key.clone(), Some(value))],
            )
            .await?;
        match done {
            Committed::At(at) => {
                stored.insert(key.clone(), (at, write));
            }
            Committed::Unknown => {
                let now = store.get(key).await?;
                match now {
                    Some(e) => stored.insert(key.clone(), (e.mod_revision, write)),
                    None => stored.remove(key),
                };
            }
            Committed::No => return Err(StoreError::Other(format!("{key}: written meanwhile"))),
        }
    }
    let gone: Vec<(String, i64)> = stored
        .iter()
        .filter(|(k, _)| !wanted.contains_key(*k))
        .map(|(k, (rev, _))| (k.clone(), *rev))
        .collect();
    for (key, rev) in gone {
        let done = store
            .txn_at(
                vec![Store::unchanged(&key, rev)],
                vec![TxnOp::delete(key.as_str(), None)],
                vec![(key.clone(), None)],
            )
            .await?;
        if done == Committed::No {
            return Err(StoreError::Other(format!("{key}: written meanwhile")));
        }
        stored.remove(&key);
    }
    Ok(())
}

/// Keep `node`'s WorkloadEndpoints equal to the latest wanted set until the sender goes.
/// Nothing is written (or deleted) before the first set arrives. What a previous run
/// left is found by listing, so an endpoint removed while the node was down goes too.
pub async fn keep(store: Store, node: String, mut wanted: watch::Receiver<Option<Arc<Wanted>>>) {
    let mut stored: Option<Stored> = None;
    let mut failing = false;
    loop {
        let want = wanted.borrow_and_update().clone();
        if let Some(want) = want {
            let pass = async {
                if stored.is_none() {
                    stored = Some(list(&store, &node).await?);
                }
                let s = stored.as_mut().expect("listed just above");
                reconcile(&store, s, &want).await
            };
            match pass.await {
                Ok(()) => {
                    if failing {
                        info!("workload endpoints written again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "workload endpoints: retrying");
                        failing = true;
                    }
                    // What is stored is no longer known: list it again next time.
                    stored = None;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        r = wanted.changed() => if r.is_err() { return } else { continue },
                    }
                }
            }
        }
        if wanted.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
