//! The node's network policies as applied, each with the resource document it came
//! from (a leaf: the node's state holds one; `policies` has the operations).

use datastore::policy::{self, Policy};
use std::collections::BTreeMap;
use tracing::warn;

/// What a policy set is built from: the policies in force, the local endpoints and
/// every workload (address, identity).
pub type PolicyInputs = (
    Vec<Policy>,
    Vec<crate::policy::set::LocalEndpoint>,
    Vec<(std::net::IpAddr, datastore::policy::Endpoint)>,
);

/// A policy and the resource document it came from (a document may define several:
/// a List).
#[derive(Debug, Clone, Default)]
pub struct PolicyStore {
    pub by_key: BTreeMap<String, (Policy, std::sync::Arc<String>)>,
    /// The datastore's (watched, never persisted here); the API's win on the same key.
    pub cluster: BTreeMap<String, (Policy, std::sync::Arc<String>)>,
    /// The set last published to the workers, and its generation.
    pub published: Option<std::sync::Arc<crate::policy::set::PolicySet>>,
    pub generation: u32,
    /// What the last set was built from (the same again: no new set, no flow judged
    /// again).
    pub built_from: Option<PolicyInputs>,
    /// Per-rule packet counts of the sets before the current one: (policy key,
    /// direction, rule index) → packets.
    pub past_hits: BTreeMap<(String, &'static str, usize), u64>,
}

impl PolicyStore {
    /// What `api.json` keeps: each document once.
    pub fn documents(&self) -> Vec<String> {
        let mut docs: Vec<String> = Vec::new();
        for (_, d) in self.by_key.values() {
            if !docs.iter().any(|x| x == d.as_str()) {
                docs.push(d.to_string());
            }
        }
        docs
    }

    /// Take `text`'s policies (all or none); returns their keys.
    pub fn apply(&mut self, name: &str, text: &str) -> Result<Vec<String>, String> {
        let docs = policy::documents(name, text)?;
        let mut keys = Vec::new();
        for (yaml, policies) in docs {
            let doc = std::sync::Arc::new(yaml);
            for p in policies {
                keys.push(p.key());
                self.by_key.insert(p.key(), (p, doc.clone()));
            }
        }
        Ok(keys)
    }

    /// The datastore's policies now (from a whole view): true if they changed.
    pub fn set_cluster(&mut self, view: &BTreeMap<String, (String, Vec<Policy>)>) -> bool {
        let mut next = BTreeMap::new();
        for (doc, policies) in view.values() {
            let doc = std::sync::Arc::new(doc.clone());
            for p in policies {
                next.insert(p.key(), (p.clone(), doc.clone()));
            }
        }
        let changed = next != self.cluster;
        self.cluster = next;
        changed
    }

    /// Every policy in force, with its origin: the API's, then the datastore's that the
    /// API does not shadow.
    pub fn all(
        &self,
    ) -> impl Iterator<Item = (&String, &(Policy, std::sync::Arc<String>), &'static str)> {
        let api = self.by_key.iter().map(|(k, v)| (k, v, "api"));
        let cluster = self
            .cluster
            .iter()
            .filter(|(k, _)| !self.by_key.contains_key(*k))
            .map(|(k, v)| (k, v, "datastore"));
        api.chain(cluster)
    }

    /// Back from `api.json` at start: a document that no longer reads is skipped, loudly.
    pub fn restore(&mut self, documents: &[String]) {
        for (i, d) in documents.iter().enumerate() {
            if let Err(e) = self.apply(&format!("api.json policy {}", i + 1), d) {
                warn!("a stored policy no longer reads, skipped: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PolicyStore;

    const GNP: &str = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: a\nspec:\n  selector: all()\n";

    #[test]
    fn a_file_is_taken_whole_and_documents_are_kept_once() {
        let mut s = PolicyStore::default();
        assert_eq!(s.apply("f", GNP).unwrap(), vec!["a"]);
        let bad = format!(
            "{}---\n{}",
            GNP.replace("name: a", "name: b"),
            "kind: Nope\n"
        );
        assert!(s.apply("g", &bad).is_err());
        // `apply` on a copy is what the node does; here the failed file left `b` out
        // only because documents() refused before anything was inserted.
        assert_eq!(s.by_key.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(s.documents().len(), 1);
        let mut back = PolicyStore::default();
        back.restore(&[s.documents()[0].clone(), "not: a policy\n".into()]);
        assert_eq!(back.by_key.keys().collect::<Vec<_>>(), vec!["a"]);
    }
}
