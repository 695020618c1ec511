//! List + watch over a real etcd: changes arrive as views, a malformed record is
//! skipped (the watch goes on), etcd going away is reported, and its return resyncs.

use datastore::etcd_process::EtcdCluster;
use datastore::store::{EtcdSettings, Store};
use datastore::sync::{self, ClusterView, SyncEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const POOL: &str = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p1"},"spec":{"cidr":"10.9.0.0/16","vxlanMode":"Always","blockSize":26,"nodeSelector":"all()"}}"#;

fn node(name: &str, ip: &str) -> String {
    format!(
        r#"{{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}"}},"spec":{{"bgp":{{"ipv4Address":"{ip}/24"}}}},"status":{{}}}}"#
    )
}

async fn next_view(
    rx: &mut mpsc::Receiver<SyncEvent>,
    what: &str,
    want: impl Fn(&ClusterView) -> bool,
) -> Arc<ClusterView> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(SyncEvent::View(v))) if want(&v) => return v,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("syncer stopped while waiting for {what}"),
            Err(_) => panic!("no view with {what} within 20 s"),
        }
    }
}

#[test]
fn list_watch_skip_and_resync() {
    let mut cluster = EtcdCluster::start(3).expect("a 3-member etcd cluster");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = EtcdSettings::new(cluster.endpoints());
        set.timeout = Duration::from_secs(1);
        let s = Store::connect(&set).await.unwrap();
        let r = |n: &str, p: &str| format!("/calico/resources/v3/projectcalico.org/{p}/{n}");
        assert!(s.create(&r("p1", "ippools"), POOL.into()).await.unwrap());
        assert!(s
            .create(&r("a", "nodes"), node("a", "10.95.0.1").into())
            .await
            .unwrap());
        assert!(s
            .create(&r("bad", "nodes"), b"{\"kind\":\"Node\",".to_vec())
            .await
            .unwrap());
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(sync::run(s.clone(), tx, Duration::from_millis(500)));
        let v = next_view(&mut rx, "the listed records", |v| v.nodes.len() == 1).await;
        assert_eq!(v.pools["p1"].spec.cidr, "10.9.0.0/16");
        assert_eq!(
            v.unreadable,
            vec![r("bad", "nodes")],
            "the malformed node is named"
        );
        // A change arrives through the watch; another malformed write does not stop it.
        s.create(&r("junk", "bgppeers"), b"[1,2".to_vec())
            .await
            .unwrap();
        s.create(&r("b", "nodes"), node("b", "10.95.0.2").into())
            .await
            .unwrap();
        let v = next_view(&mut rx, "node b", |v| v.nodes.contains_key("b")).await;
        assert_eq!(v.unreadable.len(), 2);
        // All members stopped: reported, with the time it started.
        cluster.stop_all();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(SyncEvent::Unreachable { error, .. })) => {
                    assert!(error.contains("datastore unreachable"), "{error}");
                    break;
                }
                Ok(Some(_)) => continue,
                _ => panic!("etcd's absence was not reported within 30 s"),
            }
        }
        // Back: a fresh list, and watching goes on.
        cluster.start_all().unwrap();
        next_view(&mut rx, "the resync", |v| v.nodes.len() == 2).await;
        let s2 = Store::connect(&set).await.unwrap();
        let e = s2.get(&r("a", "nodes")).await.unwrap().unwrap();
        assert!(s2.delete(&r("a", "nodes"), e.mod_revision).await.unwrap());
        let v = next_view(&mut rx, "node a gone", |v| !v.nodes.contains_key("a")).await;
        assert!(v.nodes.contains_key("b"));
        drop(rx);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
}

#[test]
fn a_compacted_revision_means_a_full_resync() {
    let cluster = EtcdCluster::start(1).expect("etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = Store::connect(&EtcdSettings::new(cluster.endpoints()))
            .await
            .unwrap();
        let r = |n: &str| format!("/calico/resources/v3/projectcalico.org/nodes/{n}");
        for i in 0..20 {
            s.create(&r(&format!("x{i}")), node("x", "10.95.0.9").into())
                .await
                .unwrap();
        }
        // Compact everything before now: a watch from revision 2 meets a compacted one.
        let (_, rev) = s.list("/calico/").await.unwrap();
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &cluster.endpoint(0),
                "compact",
                &rev.to_string(),
            ])
            .output()
            .expect("etcdctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(sync::run_watching_from(
            s.clone(),
            tx,
            Duration::from_millis(500),
            Some(2),
        ));
        // The first list, then (the watch from 2 refused as compacted) a second full list.
        let first = next_view(&mut rx, "the first list", |v| v.nodes.len() == 20).await;
        let second = next_view(&mut rx, "the resync after compaction", |v| {
            v.nodes.len() == 20
        })
        .await;
        assert!(second.revision >= first.revision);
        // And the new watch (from the listed revision) sees what comes next.
        s.create(&r("late"), node("late", "10.95.0.10").into())
            .await
            .unwrap();
        next_view(&mut rx, "a change after the resync", |v| {
            v.nodes.contains_key("late")
        })
        .await;
        drop(rx);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
}
