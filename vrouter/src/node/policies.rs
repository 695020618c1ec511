//! Network policies the node holds (issue 18): applied through the API as Calico or
//! Kubernetes resources, kept as written in `state_dir/api.json`, listed and removed.
//! Every change (a policy, an endpoint, labels, the datastore's workloads) builds a new
//! `PolicySet` and publishes it to the workers; a file is taken whole or refused
//! whole, and a set is swapped whole, so no half-applied policy is ever seen.

use super::error::{invalid, NodeError, NodeResult};
use super::plan::Slot;
pub use super::policy_store::PolicyStore;
use super::NodeState;
use crate::policy::set::{LocalEndpoint, PolicySet};
use control::api::pb;
use datastore::policy::{self, Endpoint, Policy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

fn info_pb(key: &str, p: &Policy, doc: &str, origin: &str) -> pb::PolicyInfo {
    let rules = |r: &Option<Vec<policy::Rule>>| r.as_ref().map_or(-1, |r| r.len() as i32);
    pb::PolicyInfo {
        key: key.to_string(),
        namespace: p.namespace.clone().unwrap_or_default(),
        name: p.name.clone(),
        order: if p.order.is_finite() {
            p.order.to_string()
        } else {
            String::new()
        },
        selector: p.applies_to.selector.to_string(),
        ingress_rules: rules(&p.ingress),
        egress_rules: rules(&p.egress),
        document: doc.to_string(),
        origin: origin.to_string(),
        ..Default::default()
    }
}

impl NodeState {
    pub fn apply_policies(
        &mut self,
        r: pb::ApplyPoliciesRequest,
    ) -> NodeResult<pb::ApplyPoliciesReply> {
        let name = if r.file_name.is_empty() {
            "policy"
        } else {
            r.file_name.as_str()
        };
        let mut next = self.policies.clone();
        let applied = next.apply(name, &r.text).map_err(invalid)?;
        if applied.is_empty() {
            return Err(invalid(format!("{name}: no policy in it")));
        }
        self.policies = next;
        for k in &applied {
            info!(policy = %k, "policy applied");
        }
        self.publish_policies();
        self.persist()?;
        Ok(pb::ApplyPoliciesReply { applied })
    }

    pub fn list_policies(&self) -> pb::ListPoliciesReply {
        pb::ListPoliciesReply {
            policies: self
                .policies
                .all()
                .map(|(k, (p, d), origin)| {
                    let mut info = info_pb(k, p, d, origin);
                    let hits = self.rule_hits(k);
                    let per_rule = |dir: &'static str, n: Option<&Vec<policy::Rule>>| {
                        (0..n.map_or(0, Vec::len))
                            .map(|i| hits.get(&(dir, i)).copied().unwrap_or(0))
                            .collect()
                    };
                    info.ingress_packets = per_rule("ingress", p.ingress.as_ref());
                    info.egress_packets = per_rule("egress", p.egress.as_ref());
                    info
                })
                .collect(),
        }
    }

    pub fn remove_policy(&mut self, key: &str) -> NodeResult<()> {
        if self.policies.by_key.remove(key).is_none() {
            return Err(NodeError::NotFound(format!("no policy {key:?}")));
        }
        info!(policy = %key, "policy removed");
        self.publish_policies();
        self.persist()
    }
}

impl NodeState {
    /// An endpoint's identity as policy sees it: its workload's namespace (else
    /// `default`), its labels and its namespace's (the file's over the datastore's).
    fn policy_identity(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Endpoint {
        let mut ns_labels = self
            .cluster
            .as_ref()
            .and_then(|c| c.namespaces.get(namespace).cloned())
            .unwrap_or_default();
        if let Some(n) = self.config.namespaces.get(namespace) {
            ns_labels.extend(n.labels.clone());
        }
        Endpoint {
            namespace: namespace.to_string(),
            labels: labels.clone(),
            namespace_labels: ns_labels,
        }
    }

    /// What the workers should enforce now: built and published when it changed.
    pub fn publish_policies(&mut self) {
        self.publish_policies_with(None);
    }

    /// The same, with `pending` (an endpoint about to open in its slot) already in:
    /// published before its port opens, so that its pod's first packet meets its
    /// policies (the workers take commands in order).
    pub fn publish_policies_with(&mut self, pending: Option<(&crate::config::Endpoint, Slot)>) {
        let policies: Vec<Policy> = self
            .policies
            .all()
            .map(|(_, (p, _), _)| p.clone())
            .collect();
        let mut locals = Vec::new();
        let mut workloads = Vec::new();
        let placed = self.config.endpoints.iter().filter_map(|e| {
            let plan = self.ports.endpoints.iter().find(|p| p.name == e.name)?;
            Some((e, plan.port, plan.nh, plan.worker))
        });
        let pending = pending.map(|(e, s)| (e, s.port, s.nh, s.worker));
        for (e, port, nh, worker) in placed.chain(pending) {
            let ns = e
                .workload
                .as_ref()
                .map(|w| w.namespace.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            let identity = self.policy_identity(ns, &e.labels);
            for ip in &e.ips {
                workloads.push((ip.addr(), identity.clone()));
            }
            locals.push(LocalEndpoint {
                name: e.name.clone(),
                port: port.0 as usize,
                nh,
                worker: worker as u16,
                identity,
            });
        }
        let me = self.config.node_name.clone();
        // Other nodes' endpoints only matter to policies' peer selectors: with no
        // policy they are not gathered (each view and each endpoint add publishes).
        if let Some(cs) = self.cluster.as_ref().filter(|_| !policies.is_empty()) {
            for w in cs.workloads.values().filter(|w| w.node != me) {
                let mut labels = w.labels.clone();
                labels.retain(|k, _| !k.starts_with("projectcalico.org/"));
                let identity = self.policy_identity(&w.namespace, &labels);
                for ip in &w.ips {
                    workloads.push((ip.addr(), identity.clone()));
                }
            }
        }
        let inputs = (policies, locals, workloads);
        if self.policies.built_from.as_ref() == Some(&inputs) {
            return;
        }
        let started = Instant::now();
        let generation = self.policies.generation.wrapping_add(1).max(1);
        let set = Arc::new(PolicySet::build(
            generation, &inputs.0, &inputs.1, &inputs.2,
        ));
        let compiled = started.elapsed();
        if let Some(old) = self.policies.published.take() {
            fold_hits(&old, &mut self.policies.past_hits);
        }
        self.host.set_policy(&set);
        info!(
            generation,
            policies = inputs.0.len(),
            endpoints = inputs.1.len(),
            rules = set.rules,
            active = set.active(),
            compile_ms = compiled.as_secs_f64() * 1e3,
            "policy set published"
        );
        self.policies.generation = generation;
        self.policies.published = Some(set);
        self.policies.built_from = Some(inputs);
    }

    /// Packets each rule of policy `key` decided or logged, per direction (summed over
    /// endpoints and over the sets published so far).
    pub fn rule_hits(&self, key: &str) -> BTreeMap<(&'static str, usize), u64> {
        let mut all = self.policies.past_hits.clone();
        if let Some(set) = &self.policies.published {
            fold_hits(set, &mut all);
        }
        all.into_iter()
            .filter(|((k, _, _), _)| k == key)
            .map(|((_, d, i), n)| ((d, i), n))
            .collect()
    }
}

/// Add `set`'s per-rule counts into `into` (each compiled classifier once: endpoints
/// of one identity share theirs).
fn fold_hits(set: &PolicySet, into: &mut BTreeMap<(String, &'static str, usize), u64>) {
    let mut seen = std::collections::HashSet::new();
    for e in set.endpoints() {
        for (c, dir) in [(&e.ingress, "ingress"), (&e.egress, "egress")] {
            if !seen.insert(Arc::as_ptr(c)) {
                continue;
            }
            for i in 0..c.rules() {
                let n = c.hits(i);
                if n > 0 {
                    let at = &c.rule(i).at;
                    *into.entry((at.policy.clone(), dir, at.rule)).or_default() += n;
                }
            }
        }
    }
}
