//! Network policies the node holds (issue 18): applied through the API as Calico or
//! Kubernetes resources, kept as written in `state_dir/api.json`, listed and removed.
//! The dataplane's classifier compiles from them (next step); a file is taken whole
//! or refused whole, so no half-applied set is ever seen.

use super::error::{invalid, NodeError, NodeResult};
pub use super::policy_store::PolicyStore;
use super::NodeState;
use control::api::pb;
use datastore::policy::{self, Policy};
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
        self.persist()?;
        Ok(pb::ApplyPoliciesReply { applied })
    }

    pub fn list_policies(&self) -> pb::ListPoliciesReply {
        pb::ListPoliciesReply {
            policies: self
                .policies
                .all()
                .map(|(k, (p, d), origin)| info_pb(k, p, d, origin))
                .collect(),
        }
    }

    pub fn remove_policy(&mut self, key: &str) -> NodeResult<()> {
        if self.policies.by_key.remove(key).is_none() {
            return Err(NodeError::NotFound(format!("no policy {key:?}")));
        }
        info!(policy = %key, "policy removed");
        self.persist()
    }
}
