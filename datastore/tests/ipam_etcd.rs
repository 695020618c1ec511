//! The block allocator against a plain model, over a real 3-member etcd: simulated
//! nodes claim and release at once; never one address twice, never overlapping blocks,
//! every address in a block its node owns or marked as borrowed, and `check` clean.

use datastore::etcd_process::EtcdCluster;
use datastore::ipam::{Ipam, IpamError, IpamPool, IpamSnapshot};
use datastore::store::{EtcdSettings, Store};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

async fn store(c: &EtcdCluster, prefix: &str) -> Store {
    let mut s = EtcdSettings::new(c.endpoints());
    s.prefix = prefix.into();
    Store::connect(&s).await.expect("connect")
}

/// A tiny xorshift so each simulated node has its own reproducible sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_nodes_never_share_an_address() {
    let cluster = EtcdCluster::start(3).expect("a 3-member etcd cluster");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pools = [IpamPool {
            cidr: "10.77.0.0/26".parse().unwrap(),
            block_size: 28,
        }];
        // The model: address → handle, for what is live.
        let live: Arc<Mutex<HashMap<IpAddr, String>>> = Default::default();
        let mut tasks = Vec::new();
        let nodes = 5;
        for n in 0..nodes {
            let s = store(&cluster, "/calico").await;
            let live = live.clone();
            tasks.push(tokio::spawn(async move {
                let ipam = Ipam::new(s, &format!("node-{n}"));
                let mut rng = Rng(0x9e3779b97f4a7c15 ^ (n as u64 + 1));
                let mut mine: Vec<(String, IpAddr)> = Vec::new();
                let (mut exhausted, mut done) = (0, 0);
                for op in 0..60 {
                    if mine.is_empty() || !rng.next().is_multiple_of(3) {
                        let handle = format!("h-{n}-{op}");
                        match ipam
                            .auto_assign(&handle, &BTreeMap::new(), &pools, false)
                            .await
                        {
                            Ok(a) => {
                                let prev = live.lock().unwrap().insert(a, handle.clone());
                                assert_eq!(
                                    prev, None,
                                    "{a} given to {handle} while {prev:?} holds it"
                                );
                                mine.push((handle, a));
                                done += 1;
                            }
                            Err(IpamError::Exhausted(_)) => exhausted += 1,
                            Err(e) => panic!("node-{n}: {e}"),
                        }
                    } else {
                        let i = (rng.next() as usize) % mine.len();
                        let (handle, a) = mine.swap_remove(i);
                        // Out of the model first: once freed, another node may take it.
                        live.lock().unwrap().remove(&a);
                        let freed = ipam.release_handle(&handle).await.expect("release");
                        assert_eq!(freed, vec![a], "{handle}");
                    }
                }
                (done, exhausted)
            }));
        }
        let mut total = 0;
        for t in tasks {
            let (d, _) = t.await.expect("node task");
            total += d;
        }
        assert!(total > 100, "only {total} allocations succeeded");
        let s = store(&cluster, "/calico").await;
        let snap = IpamSnapshot::read(&s).await.unwrap();
        let model = live.lock().unwrap().clone();
        let stored: BTreeMap<IpAddr, String> = snap
            .allocations()
            .into_iter()
            .map(|(a, _, h, _)| (a, h.expect("a handle")))
            .collect();
        let want: BTreeMap<IpAddr, String> = model.into_iter().collect();
        assert_eq!(stored, want, "etcd holds what the model says");
        // Every address is in a block its node owns, or marked as borrowed by its node.
        for (a, cidr, _, node) in snap.allocations() {
            let (_, b) = snap.blocks.iter().find(|(c, _)| *c == cidr).unwrap();
            let node = node.expect("node attribute");
            assert!(node.starts_with("node-"), "{a}");
            if b.host() != Some(node.as_str()) {
                // Borrowed: only once the pool had no free block.
                assert_eq!(
                    snap.blocks.len(),
                    4,
                    "{a} borrowed before the pool was full"
                );
            }
        }
        let names: BTreeSet<String> = (0..nodes).map(|n| format!("node-{n}")).collect();
        assert_eq!(snap.problems(&names), Vec::<String>::new());
        assert!(snap.blocks.len() <= 4);
    });
}

#[test]
fn explicit_addresses_and_families() {
    let cluster = EtcdCluster::start(1).expect("etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = store(&cluster, "/calico").await;
        let pools = [
            IpamPool {
                cidr: "10.88.0.0/24".parse().unwrap(),
                block_size: 26,
            },
            IpamPool {
                cidr: "fd00:88::/120".parse().unwrap(),
                block_size: 122,
            },
        ];
        let a = Ipam::new(s.clone(), "a");
        let b = Ipam::new(s.clone(), "b");
        let ip: IpAddr = "10.88.0.70".parse().unwrap();
        a.assign_ip(ip, "ep1", &BTreeMap::new(), &pools)
            .await
            .unwrap();
        a.assign_ip(ip, "ep1", &BTreeMap::new(), &pools)
            .await
            .unwrap();
        assert_eq!(
            b.assign_ip(ip, "ep2", &BTreeMap::new(), &pools).await,
            Err(IpamError::Taken(ip, Some("ep1".into())))
        );
        let block: IpNet = "10.88.0.64/26".parse().unwrap();
        assert_eq!(a.affine_blocks(Some(false)).await.unwrap(), vec![block]);
        let v6 = b
            .auto_assign("ep3", &BTreeMap::new(), &pools, true)
            .await
            .unwrap();
        assert!(v6.is_ipv6());
        assert_eq!(
            a.assign_ip("10.99.0.1".parse().unwrap(), "x", &BTreeMap::new(), &pools)
                .await,
            Err(IpamError::NotInPool("10.99.0.1".parse().unwrap()))
        );
        assert_eq!(a.release_ip(ip).await.unwrap(), Some("ep1".into()));
        let snap = IpamSnapshot::read(&s).await.unwrap();
        let names = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(snap.problems(&names), Vec::<String>::new());
        assert!(a.release_block(block).await.unwrap());
        assert!(a.affine_blocks(None).await.unwrap().is_empty());
    });
}

#[test]
fn an_absent_datastore_is_named() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut set = EtcdSettings::new(vec![format!("http://127.0.0.1:{port}")]);
        set.timeout = std::time::Duration::from_millis(500);
        let e = match Store::connect(&set).await {
            Ok(s) => Ipam::new(s, "a")
                .auto_assign(
                    "h",
                    &BTreeMap::new(),
                    &[IpamPool {
                        cidr: "10.0.0.0/24".parse().unwrap(),
                        block_size: 26,
                    }],
                    false,
                )
                .await
                .unwrap_err()
                .to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("datastore unreachable"), "{e}");
        assert!(e.contains(&port.to_string()), "{e}");
    });
}

/// A node allocates from what it last wrote; another writer of the same records (a
/// second allocator for the node, `ipam release`, a borrower) makes that stale, and the
/// compare catches it: never one address twice, handles counted right, `check` clean.
#[test]
fn a_stale_cache_never_hands_out_an_address_twice() {
    let cluster = EtcdCluster::start(1).expect("etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = store(&cluster, "/calico").await;
        let pools = [IpamPool {
            cidr: "10.66.0.0/28".parse().unwrap(),
            block_size: 29,
        }];
        let cached = Ipam::new(s.clone(), "a");
        let other = Ipam::new(s.clone(), "a");
        let borrower = Ipam::new(s.clone(), "b");
        let none = BTreeMap::new();
        let mut held: BTreeMap<IpAddr, String> = BTreeMap::new();
        fn take(held: &mut BTreeMap<IpAddr, String>, ip: IpAddr, h: &str) {
            assert!(held.insert(ip, h.to_string()).is_none(), "{ip} given twice");
        }
        // Warm: the cache holds a's block and the handle.
        take(
            &mut held,
            cached
                .auto_assign("e1", &none, &pools, false)
                .await
                .unwrap(),
            "e1",
        );
        take(
            &mut held,
            cached
                .auto_assign("e2", &none, &pools, false)
                .await
                .unwrap(),
            "e2",
        );
        // Behind its back: the same block written by another allocator of node a.
        take(
            &mut held,
            other.auto_assign("e3", &none, &pools, false).await.unwrap(),
            "e3",
        );
        take(
            &mut held,
            cached
                .auto_assign("e4", &none, &pools, false)
                .await
                .unwrap(),
            "e4",
        );
        // e1's address freed by someone else, then e1's handle grown from the cache.
        let e1 = *held.iter().find(|(_, h)| *h == "e1").unwrap().0;
        assert_eq!(other.release_ip(e1).await.unwrap(), Some("e1".into()));
        held.remove(&e1);
        take(
            &mut held,
            cached
                .auto_assign("e1", &none, &pools, false)
                .await
                .unwrap(),
            "e1",
        );
        // b claims the other block, fills it and borrows from a's.
        loop {
            match borrower.auto_assign("b-many", &none, &pools, false).await {
                Ok(ip) => take(&mut held, ip, "b-many"),
                Err(IpamError::Exhausted(_)) => break,
                Err(e) => panic!("borrower: {e}"),
            }
        }
        // Everything is taken now, whatever a's cache believes.
        assert!(matches!(
            cached.auto_assign("e5", &none, &pools, false).await,
            Err(IpamError::Exhausted(_))
        ));
        let snap = IpamSnapshot::read(&s).await.unwrap();
        let stored: BTreeMap<IpAddr, String> = snap
            .allocations()
            .into_iter()
            .map(|(ip, _, h, _)| (ip, h.unwrap_or_default()))
            .collect();
        assert_eq!(stored, held);
        assert_eq!(snap.handles["e1"].block.values().sum::<u32>(), 1);
        let names = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(snap.problems(&names), Vec::<String>::new());
    });
}
