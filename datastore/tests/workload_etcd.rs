//! A node's WorkloadEndpoints kept in a real etcd: written when wanted, rewritten when
//! they change (keeping uid and creation time), deleted when gone, what an earlier run
//! left found and removed, other nodes' never touched, an outage outlasted, and the
//! cluster view not rebuilt for them.

use datastore::etcd_process::EtcdCluster;
use datastore::model::{Resource, WorkloadEndpointSpec};
use datastore::store::{EtcdSettings, Store};
use datastore::sync::{self, SyncEvent};
use datastore::workload::{self, Wanted, Workload};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

type Stored = BTreeMap<String, (i64, Resource<WorkloadEndpointSpec>)>;

fn pod(name: &str, ip: &str) -> Workload {
    Workload {
        orchestrator: "k8s".into(),
        namespace: "shop".into(),
        pod: name.into(),
        endpoint: "eth0".into(),
        interface: format!("cali{name}"),
        ip_networks: vec![ip.parse().unwrap()],
        profiles: vec!["kns.shop".into()],
        ..Default::default()
    }
}

fn wanted(node: &str, pods: &[Workload]) -> Wanted {
    pods.iter()
        .map(|w| workload::resource("/calico", node, w).unwrap())
        .collect()
}

/// Wait until `node`'s stored WorkloadEndpoints satisfy `ok`.
async fn until(s: &Store, node: &str, what: &str, ok: impl Fn(&Stored) -> bool) -> Stored {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(now) = workload::list(s, node).await {
            if ok(&now) {
                return now;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ips(s: &Stored) -> Vec<String> {
    s.values()
        .flat_map(|(_, r)| r.spec.ip_networks.clone())
        .collect()
}

#[test]
fn a_nodes_workload_endpoints_follow_its_endpoints() {
    let mut cluster = EtcdCluster::start(1).expect("an etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = EtcdSettings::new(cluster.endpoints());
        set.timeout = Duration::from_secs(1);
        let s = Store::connect(&set).await.unwrap();
        // Another node's endpoint, and one an earlier run of ours left behind.
        let (other_key, mut other) =
            workload::resource("/calico", "n2", &pod("db", "10.9.1.2/32")).unwrap();
        other.metadata.uid = "u-other".into();
        assert!(s
            .create(&other_key, serde_json::to_vec(&other).unwrap())
            .await
            .unwrap());
        let (stale_key, stale) =
            workload::resource("/calico", "n1", &pod("old", "10.9.0.9/32")).unwrap();
        assert!(s
            .create(&stale_key, serde_json::to_vec(&stale).unwrap())
            .await
            .unwrap());

        // The cluster view is not rebuilt for workload endpoints.
        let (sync_tx, mut sync_rx) = mpsc::channel(64);
        tokio::spawn(sync::run(s.clone(), sync_tx, Duration::from_millis(500)));
        let first = match sync_rx.recv().await {
            Some(SyncEvent::View(v)) => v,
            other => panic!("no first view: {other:?}"),
        };

        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(workload::keep(s.clone(), "n1".into(), rx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = workload::list(&s, "n1").await.unwrap();
        assert!(
            before.contains_key(&stale_key),
            "nothing is deleted before the first set"
        );

        let a = pod("web-0", "10.9.0.2/32");
        let b = pod("web-1", "10.9.0.3/32");
        tx.send_replace(Some(Arc::new(wanted("n1", &[a.clone(), b.clone()]))));
        let got = until(&s, "n1", "web-0 and web-1, the stale one gone", |m| {
            m.len() == 2 && !m.contains_key(&stale_key)
        })
        .await;
        assert_eq!(ips(&got), ["10.9.0.2/32", "10.9.0.3/32"]);
        let (key_b, (rev_b, stored_b)) = got
            .iter()
            .find(|(_, (_, r))| r.spec.pod == "web-1")
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap();
        assert!(
            key_b.ends_with("/workloadendpoints/shop/n1-k8s-web--1-eth0"),
            "{key_b}"
        );
        assert_eq!(stored_b.metadata.uid.len(), 36, "a uid is made");
        assert!(stored_b.metadata.creation_timestamp.ends_with('Z'));

        // web-1 moves address; web-0 goes.
        let b2 = pod("web-1", "10.9.0.4/32");
        tx.send_replace(Some(Arc::new(wanted("n1", std::slice::from_ref(&b2)))));
        let got = until(&s, "n1", "web-1 alone at its new address", |m| {
            ips(m) == ["10.9.0.4/32"]
        })
        .await;
        let (rev_b2, b_now) = &got[&key_b];
        assert!(*rev_b2 > rev_b);
        assert_eq!(b_now.metadata.uid, stored_b.metadata.uid, "uid kept");
        assert_eq!(
            b_now.metadata.creation_timestamp,
            stored_b.metadata.creation_timestamp
        );

        // The same set again writes nothing.
        tx.send_replace(Some(Arc::new(wanted("n1", std::slice::from_ref(&b2)))));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(workload::list(&s, "n1").await.unwrap()[&key_b].0, *rev_b2);

        // The views follow the workload endpoints (policy's selectors need them): the
        // last one has web-1 at its new address and nothing else changed.
        let mut last = None;
        while let Ok(ev) = sync_rx.try_recv() {
            if let SyncEvent::View(v) = ev {
                assert_eq!(v.nodes, first.nodes);
                last = Some(v);
            }
        }
        let last = last.expect("views for the workload endpoints' writes");
        let w = last.workloads.get(&key_b).expect("web-1 in the view");
        assert_eq!(w.ips, vec!["10.9.0.4/32".parse::<ipnet::IpNet>().unwrap()]);
        assert_eq!((w.node.as_str(), w.namespace.as_str()), ("n1", "shop"));
        assert_eq!(
            last.workloads.len(),
            2,
            "web-1 and n2's db: {:?}",
            last.workloads
        );

        // An outage: the change waits, then lands.
        cluster.stop_all();
        let c = pod("web-2", "10.9.0.5/32");
        tx.send_replace(Some(Arc::new(wanted("n1", &[b2.clone(), c.clone()]))));
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.start_all().unwrap();
        cluster.wait_healthy(Duration::from_secs(20)).unwrap();
        until(&s, "n1", "web-2 written once etcd is back", |m| {
            m.len() == 2
        })
        .await;

        // Another node's endpoint was never touched.
        let other_now = s
            .get(&other_key)
            .await
            .unwrap()
            .expect("n2's endpoint stays");
        let other_now: Resource<WorkloadEndpointSpec> = other_now.decode().unwrap();
        assert_eq!(other_now.metadata.uid, "u-other");

        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("keep returns when its sender goes")
            .unwrap();
    });
}
