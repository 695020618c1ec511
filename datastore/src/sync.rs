//! The cluster as one node sees it, kept current the way etcd's own clients and Felix
//! do: list at a revision, watch from the next one, and on any doubt (a compacted
//! revision, a broken stream, etcd away) list again. Each change (or burst of changes,
//! see `VIEW_EVERY`) yields a whole new `ClusterView`, so whoever applies it diffs
//! against what it has: a resync can never lose or repeat a change. A record that does
//! not parse is logged with its key when it arrives and skipped; the watch goes on.

use crate::keys;
use crate::model::{
    BgpConfigurationSpec, BgpPeerSpec, BlockAffinity, IpPoolSpec, Kind, NodeResource, NodeSpec,
    ProfileSpec, Resource, WorkloadEndpointSpec,
};
use crate::store::{Entry, Store, StoreError};
use etcd_client::EventType;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What the datastore says, at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    pub revision: i64,
    pub nodes: BTreeMap<String, NodeResource>,
    pub pools: BTreeMap<String, Resource<IpPoolSpec>>,
    pub peers: BTreeMap<String, Resource<BgpPeerSpec>>,
    /// BGPConfiguration `default`.
    pub bgp: Option<BgpConfigurationSpec>,
    /// Confirmed block affinities: host → blocks.
    pub affinities: BTreeMap<String, Vec<IpNet>>,
    /// NetworkPolicies and GlobalNetworkPolicies, by etcd key: the resource (YAML
    /// text) and the policies it defines.
    pub policies: BTreeMap<String, (String, Vec<crate::policy::Policy>)>,
    /// Every node's workload endpoints, by etcd key (what peer selectors of policies
    /// resolve against).
    /// Shared: the node keeps it as it is, without a copy per view.
    pub workloads: Arc<BTreeMap<String, ViewedWorkload>>,
    /// Namespaces' labels, from the profiles `kns.<namespace>` (their `labelsToApply`
    /// with the `pcns.` prefix taken off).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Keys skipped because their value did not parse.
    pub unreadable: Vec<String>,
    /// Full lists made so far by this syncer (1 + resyncs).
    pub lists: u64,
}

/// A workload endpoint as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewedWorkload {
    pub node: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    View(Arc<ClusterView>),
    /// etcd stopped answering (the first failure's time, and why).
    Unreachable {
        since: SystemTime,
        error: String,
    },
}

/// One record as the view uses it, decoded once when it arrives (every view is made from
/// every record, and decoding each one per view made a view's cost grow with the
/// cluster: 500 pods' workload endpoints re-parsed per event took a third of a node's
/// CPU in clusterbench).
#[derive(Debug, Clone)]
enum Decoded {
    Node(String, NodeResource),
    Pool(String, Resource<IpPoolSpec>),
    Peer(String, Resource<BgpPeerSpec>),
    Bgp(BgpConfigurationSpec),
    Workload(ViewedWorkload),
    Namespace(String, BTreeMap<String, String>),
    Policy(Option<(String, Vec<crate::policy::Policy>)>),
    /// A confirmed affinity: host and block.
    Affinity(String, IpNet),
    /// Read, but nothing the view shows (a pending affinity, another profile).
    Nothing,
    Unreadable,
}

/// The records of the two prefixes watched, by key.
#[derive(Default)]
struct Records {
    resources: BTreeMap<String, Decoded>,
    affinities: BTreeMap<String, Decoded>,
}

/// The key prefixes a record's kind is told by.
struct Prefixes {
    nodes: String,
    pools: String,
    peers: String,
    bgp: String,
    policies: [String; 2],
    weps: String,
    profiles: String,
    hosts: String,
}

impl Prefixes {
    fn new(prefix: &str) -> Prefixes {
        Prefixes {
            nodes: keys::resources(prefix, NodeSpec::PLURAL),
            pools: keys::resources(prefix, IpPoolSpec::PLURAL),
            peers: keys::resources(prefix, BgpPeerSpec::PLURAL),
            bgp: keys::resource(prefix, BgpConfigurationSpec::PLURAL, "default"),
            policies: POLICY_PLURALS.map(|p| keys::resources(prefix, p)),
            weps: keys::resources(prefix, WorkloadEndpointSpec::PLURAL),
            profiles: keys::resources(prefix, ProfileSpec::PLURAL),
            hosts: keys::all_affinities(prefix),
        }
    }

    /// A resource record, decoded; an unreadable one is logged with its key.
    fn resource(&self, e: &Entry) -> Decoded {
        let k = &e.key;
        let name = keys::name_of_key(k).to_string();
        let d = if k.starts_with(&self.nodes) {
            e.decode::<NodeResource>().map(|n| Decoded::Node(name, n))
        } else if k.starts_with(&self.pools) {
            e.decode().map(|p| Decoded::Pool(name, p))
        } else if k.starts_with(&self.peers) {
            e.decode().map(|p| Decoded::Peer(name, p))
        } else if *k == self.bgp {
            e.decode::<Resource<BgpConfigurationSpec>>()
                .map(|c| Decoded::Bgp(c.spec))
        } else if k.starts_with(&self.weps) {
            e.decode::<Resource<WorkloadEndpointSpec>>().map(|w| {
                let ips = w.spec.ip_networks.iter().filter_map(|n| n.parse().ok());
                Decoded::Workload(ViewedWorkload {
                    node: w.spec.node,
                    namespace: w.metadata.namespace,
                    labels: w.metadata.labels,
                    ips: ips.collect(),
                })
            })
        } else if k.starts_with(&self.profiles) {
            e.decode::<Resource<ProfileSpec>>()
                .map(|p| match name.strip_prefix("kns.") {
                    Some(ns) => {
                        let labels = p.spec.labels_to_apply.iter().filter_map(|(k, v)| {
                            Some((k.strip_prefix("pcns.")?.to_string(), v.clone()))
                        });
                        Decoded::Namespace(ns.to_string(), labels.collect())
                    }
                    None => Decoded::Nothing,
                })
        } else if self.policies.iter().any(|p| k.starts_with(p)) {
            let text = String::from_utf8_lossy(&e.value);
            crate::policy::documents(k, &text)
                .map(|docs| Decoded::Policy(docs.into_iter().last()))
                .map_err(|error| StoreError::Decode {
                    key: k.clone(),
                    error,
                })
        } else {
            Ok(Decoded::Nothing)
        };
        d.unwrap_or_else(|err| {
            warn!(%err, "skipping a record that does not parse");
            Decoded::Unreadable
        })
    }

    fn affinity(&self, e: &Entry) -> Decoded {
        let k = &e.key;
        let host = k
            .strip_prefix(&self.hosts)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        match (keys::cidr_of_key(k), e.decode::<BlockAffinity>()) {
            (Some(c), Ok(a)) if a.state == "confirmed" && !a.deleted => {
                Decoded::Affinity(host.to_string(), c)
            }
            (Some(_), Ok(_)) => Decoded::Nothing,
            (_, Err(err)) => {
                warn!(%err, "skipping a record that does not parse");
                Decoded::Unreadable
            }
            (None, _) => Decoded::Unreadable,
        }
    }
}

impl Records {
    /// The records of a list of both prefixes (resources the view is not made of left
    /// out).
    fn listed(
        p: &Prefixes,
        prefix: &str,
        resources: Vec<Entry>,
        affinities: Vec<Entry>,
    ) -> Records {
        let mut rec = Records::default();
        for e in resources.into_iter().filter(|e| viewed(prefix, &e.key)) {
            rec.put(p, false, e);
        }
        for e in affinities {
            rec.put(p, true, e);
        }
        rec
    }

    fn put(&mut self, p: &Prefixes, affinity: bool, e: Entry) {
        if affinity {
            let d = p.affinity(&e);
            self.affinities.insert(e.key, d);
        } else {
            let d = p.resource(&e);
            self.resources.insert(e.key, d);
        }
    }

    fn view(&self, revision: i64, lists: u64) -> ClusterView {
        let mut v = ClusterView {
            revision,
            lists,
            ..Default::default()
        };
        let mut workloads = BTreeMap::new();
        for (k, d) in self.resources.iter().chain(&self.affinities) {
            match d.clone() {
                Decoded::Node(name, n) => {
                    v.nodes.insert(name, n);
                }
                Decoded::Pool(name, p) => {
                    v.pools.insert(name, p);
                }
                Decoded::Peer(name, p) => {
                    v.peers.insert(name, p);
                }
                Decoded::Bgp(c) => v.bgp = Some(c),
                Decoded::Workload(w) => {
                    workloads.insert(k.clone(), w);
                }
                Decoded::Namespace(ns, labels) => {
                    v.namespaces.insert(ns, labels);
                }
                Decoded::Policy(Some(doc)) => {
                    v.policies.insert(k.clone(), doc);
                }
                Decoded::Affinity(host, c) => v.affinities.entry(host).or_default().push(c),
                Decoded::Policy(None) | Decoded::Nothing => {}
                Decoded::Unreadable => v.unreadable.push(k.clone()),
            }
        }
        v.workloads = Arc::new(workloads);
        v
    }
}

/// The view a list of `resources` and `affinities` under `prefix` makes, as the
/// syncer's list builds it (records that do not parse are named in `unreadable`). For
/// the fuzz target and tests; the syncer itself goes through the same `Records`.
#[doc(hidden)]
pub fn view_of(prefix: &str, resources: Vec<Entry>, affinities: Vec<Entry>) -> ClusterView {
    Records::listed(&Prefixes::new(prefix), prefix, resources, affinities).view(1, 1)
}

/// Where Calico keeps policies (`networkpolicies/<namespace>/<name>`,
/// `globalnetworkpolicies/<name>`), read into the view as `policy::Policy`.
const POLICY_PLURALS: [&str; 2] = ["networkpolicies", "globalnetworkpolicies"];

/// Whether a key is one the view is made of. Workload endpoints change with every pod
/// anywhere, and cost each node a new view: policy's peer selectors need them (as
/// Felix's ipsets do).
fn viewed(prefix: &str, key: &str) -> bool {
    let resources = keys::all_resources(prefix);
    match key.strip_prefix(&resources) {
        None => true, // an affinity
        Some(rest) => [
            NodeSpec::PLURAL,
            IpPoolSpec::PLURAL,
            BgpPeerSpec::PLURAL,
            BgpConfigurationSpec::PLURAL,
            POLICY_PLURALS[0],
            POLICY_PLURALS[1],
            WorkloadEndpointSpec::PLURAL,
            ProfileSpec::PLURAL,
        ]
        .iter()
        .any(|p| rest.strip_prefix(p).is_some_and(|r| r.starts_with('/'))),
    }
}

/// Keep `tx` fed with views until it is closed. `ping` is how often etcd is asked
/// whether it is there while the watch is quiet.
pub async fn run(store: Store, tx: mpsc::Sender<SyncEvent>, ping: Duration) {
    run_watching_from(store, tx, ping, None).await
}

/// `run`, whose first watch starts at `first_watch` instead of the listed revision
/// (how a test makes the watch meet a compacted revision, as a node that was away
/// long would).
pub async fn run_watching_from(
    store: Store,
    tx: mpsc::Sender<SyncEvent>,
    ping: Duration,
    mut first_watch: Option<i64>,
) {
    let prefix = store.prefix.clone();
    let res_prefix = keys::all_resources(&prefix);
    let aff_prefix = keys::all_affinities(&prefix);
    let mut down_since: Option<SystemTime> = None;
    let mut lists = 0u64;
    let mut backoff = Duration::from_millis(200);
    loop {
        let r = sync_once(
            &store,
            &tx,
            (&prefix, &res_prefix, &aff_prefix),
            ping,
            first_watch.take(),
            &mut lists,
        )
        .await;
        if tx.is_closed() {
            return;
        }
        match r {
            Ok(()) => {
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                let since = *down_since.get_or_insert_with(SystemTime::now);
                warn!(error = %e, "datastore: resync after this");
                if tx
                    .send(SyncEvent::Unreachable {
                        since,
                        error: e.to_string(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        down_since = None;
    }
}

/// One list + watch, until the watch can no longer be trusted. `Ok` means "list again
/// now" (compaction, a cancelled watch), `Err` that etcd is not answering.
async fn sync_once(
    store: &Store,
    tx: &mpsc::Sender<SyncEvent>,
    (prefix, res_prefix, aff_prefix): (&str, &str, &str),
    ping: Duration,
    first_watch: Option<i64>,
    lists: &mut u64,
) -> Result<(), StoreError> {
    let p = Prefixes::new(prefix);
    let (res, rev) = store.list(res_prefix).await?;
    let (aff, rev2) = store.list(aff_prefix).await?;
    let mut rec = Records::listed(&p, prefix, res, aff);
    // The second list may be newer: watch both from the first one's next revision; an
    // event already seen just rewrites the same value.
    let mut revision = rev.min(rev2);
    *lists += 1;
    let lists = *lists;
    info!(revision, "datastore: listed");
    if !send_view(tx, &rec, revision, lists).await {
        return Ok(());
    }
    let from = first_watch.unwrap_or(revision + 1);
    let mut w1 = store.watch(res_prefix, from).await?;
    let mut w2 = store.watch(aff_prefix, from).await?;
    let mut tick = tokio::time::interval(ping);
    tick.tick().await;
    // Watch messages absorbed since the last view sent. A change after a quiet spell
    // makes a view at once; while changes stream in (pods starting anywhere), they are
    // folded into one view per VIEW_EVERY, and at most COALESCED_MAX messages wait.
    let mut unsent = 0usize;
    let mut last_view = tokio::time::Instant::now() - VIEW_EVERY;
    loop {
        let msg = if unsent > 0 {
            let more = unsent < COALESCED_MAX;
            tokio::select! {
                biased;
                m = w1.message(), if more => m,
                m = w2.message(), if more => m,
                () = tokio::time::sleep_until(last_view + VIEW_EVERY) => {
                    unsent = 0;
                    last_view = tokio::time::Instant::now();
                    if !send_view(tx, &rec, revision, lists).await {
                        return Ok(());
                    }
                    continue;
                }
            }
        } else {
            tokio::select! {
                m = w1.message() => m,
                m = w2.message() => m,
                _ = tick.tick() => {
                    store.ping().await?;
                    continue;
                }
                _ = tx.closed() => return Ok(()),
            }
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => return Err(StoreError::Unavailable("watch stream ended".into())),
            Err(e) => return Err(StoreError::Unavailable(format!("watch: {e}"))),
        };
        if resp.compact_revision() > 0 {
            warn!(
                compacted = resp.compact_revision(),
                "datastore: watch revision compacted, listing again"
            );
            return Ok(());
        }
        if resp.canceled() {
            warn!(
                reason = resp.cancel_reason(),
                "datastore: watch cancelled, listing again"
            );
            return Ok(());
        }
        let mut changed = false;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if !viewed(prefix, &key) {
                continue;
            }
            changed = true;
            let affinity = key.starts_with(aff_prefix);
            revision = revision.max(kv.mod_revision());
            match ev.event_type() {
                EventType::Put => {
                    let e = Entry {
                        key,
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    };
                    rec.put(&p, affinity, e);
                }
                EventType::Delete if affinity => {
                    rec.affinities.remove(&key);
                }
                EventType::Delete => {
                    rec.resources.remove(&key);
                }
            }
        }
        if changed {
            unsent += 1;
        }
    }
}

/// Make the view of `rec` and send it; false once nobody listens.
async fn send_view(tx: &mpsc::Sender<SyncEvent>, rec: &Records, revision: i64, lists: u64) -> bool {
    let view = Arc::new(rec.view(revision, lists));
    tx.send(SyncEvent::View(view)).await.is_ok()
}

/// Watch messages folded into one view at most.
const COALESCED_MAX: usize = 256;
/// While changes stream in, one view per this long at most (each costs the syncer and
/// the node a pass over every record: with 500 pods starting at 100 a second, a view
/// per change took a third of a node's CPU).
const VIEW_EVERY: Duration = Duration::from_millis(50);
