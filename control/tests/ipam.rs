//! IPAM: blocks claimed on demand, allocation and release, explicit addresses, empty
//! blocks given up, persistence across a restart, and random operations against a
//! plain model (never a double allocation, every address in a pool and a held block).

use control::ipam::{Ipam, IpamError, Pool};
use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;

fn pools() -> Vec<Pool> {
    vec![
        Pool::new("10.244.0.0/24".parse().unwrap()),
        Pool::new("fd10::/120".parse().unwrap()),
    ]
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn blocks_are_claimed_on_demand_and_given_up_when_empty() {
    let mut i = Ipam::open(pools(), None).unwrap();
    assert_eq!(i.allocate("a", false), Ok(ip("10.244.0.0")));
    assert_eq!(i.allocate("b", false), Ok(ip("10.244.0.1")));
    assert_eq!(i.allocate("c", true), Ok(ip("fd10::")));
    let blocks: Vec<String> = i.blocks().iter().map(|b| b.to_string()).collect();
    assert_eq!(blocks, ["10.244.0.0/26", "fd10::/122"]);
    // Fill the first /26: the 65th address comes from a second block.
    for n in 2..64 {
        i.allocate(&format!("e{n}"), false).unwrap();
    }
    assert_eq!(i.allocate("x", false), Ok(ip("10.244.0.64")));
    assert_eq!(i.blocks().len(), 3);
    assert_eq!(i.release("x"), vec![ip("10.244.0.64")]);
    assert_eq!(i.blocks().len(), 2, "the emptied block is given up");
    // A freed address is reused.
    i.release("b");
    assert_eq!(i.allocate("d", false), Ok(ip("10.244.0.1")));
}

#[test]
fn explicit_addresses_and_errors() {
    let mut i = Ipam::open(pools(), None).unwrap();
    i.assign("a", ip("10.244.0.130")).unwrap();
    assert_eq!(i.blocks()[0].to_string(), "10.244.0.128/26");
    assert_eq!(i.assign("a", ip("10.244.0.130")), Ok(()), "idempotent");
    assert_eq!(
        i.assign("b", ip("10.244.0.130")),
        Err(IpamError::Taken(ip("10.244.0.130"), "a".into()))
    );
    assert_eq!(
        i.assign("b", ip("10.9.0.1")),
        Err(IpamError::NotInPool(ip("10.9.0.1")))
    );
    // The /24 holds four /26 blocks of 64: 256 addresses, then nothing.
    let mut n = 0;
    while i.allocate(&format!("e{n}"), false).is_ok() {
        n += 1;
    }
    assert_eq!(n, 255);
    assert_eq!(i.allocate("late", false), Err(IpamError::Exhausted));
    // A disabled pool gives no new blocks.
    let mut p = pools();
    p[1].disabled = true;
    let mut j = Ipam::open(p.clone(), None).unwrap();
    assert_eq!(j.allocate("a", true), Err(IpamError::Exhausted));
    // ... and nothing new from a block it already held; what was given out stays.
    p[1].disabled = false;
    j.set_pools(p.clone());
    let given = j.allocate("b", true).unwrap();
    p[1].disabled = true;
    j.set_pools(p);
    assert_eq!(j.allocate("c", true), Err(IpamError::Exhausted));
    assert_eq!(j.addresses_of("b"), vec![given]);
}

#[test]
fn one_address_released_alone() {
    let mut i = Ipam::open(pools(), None).unwrap();
    i.assign("a", ip("10.244.0.2")).unwrap();
    i.assign("a", ip("fd10::2")).unwrap();
    i.assign("b", ip("10.244.0.70")).unwrap();
    let mut all = i.allocations();
    all.sort();
    assert_eq!(
        all,
        [
            (ip("10.244.0.2"), "a".to_string()),
            (ip("10.244.0.70"), "b".to_string()),
            (ip("fd10::2"), "a".to_string()),
        ]
    );
    assert_eq!(i.release_address(ip("10.244.0.2")), Some("a".into()));
    assert_eq!(
        i.addresses_of("a"),
        [ip("fd10::2")],
        "a keeps its other address"
    );
    assert_eq!(i.release_address(ip("10.244.0.2")), None);
    // Its block, now empty, is given up; the others stay.
    let blocks: Vec<String> = i.blocks().iter().map(|b| b.to_string()).collect();
    assert_eq!(blocks, ["10.244.0.64/26", "fd10::/122"]);
}

#[test]
fn a_pool_not_automatic_gives_only_addresses_asked_for() {
    // Manual, not for workloads, or not selecting this node: all the same to IPAM.
    let mut p = pools();
    p[0].automatic = false;
    let mut i = Ipam::open(p.clone(), None).unwrap();
    assert_eq!(i.allocate("a", false), Err(IpamError::Exhausted));
    assert_eq!(
        i.allocate("a", true),
        Ok(ip("fd10::")),
        "the other pool still does"
    );
    i.assign("b", ip("10.244.0.7")).unwrap();
    assert_eq!(i.addresses_of("b"), vec![ip("10.244.0.7")]);
    // Its block, held for b, hands nothing out unasked either.
    assert_eq!(i.allocate("c", false), Err(IpamError::Exhausted));
    p[0].automatic = true;
    i.set_pools(p);
    assert_eq!(i.allocate("c", false), Ok(ip("10.244.0.0")));
}

#[test]
fn state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("ipam-test-{}", std::process::id()));
    let path = dir.join("ipam.json");
    let _ = std::fs::remove_dir_all(&dir);
    let mut i = Ipam::open(pools(), Some(path.clone())).unwrap();
    let a = i.allocate("pod-a", false).unwrap();
    let b = i.allocate("pod-b", true).unwrap();
    i.save().unwrap();
    assert!(
        !path.with_extension("tmp").exists(),
        "written atomically, no leftover"
    );
    let mut again = Ipam::open(pools(), Some(path.clone())).unwrap();
    assert_eq!(again.addresses_of("pod-a"), vec![a]);
    assert_eq!(again.addresses_of("pod-b"), vec![b]);
    assert_eq!(again.blocks(), i.blocks());
    assert_ne!(
        again.allocate("pod-c", false).unwrap(),
        a,
        "no double allocation after reload"
    );
    std::fs::write(&path, "{not json").unwrap();
    assert!(
        Ipam::open(pools(), Some(path)).is_err(),
        "a corrupt file is an error, not an empty state"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8, bool),
    Assign(u8, u8, bool),
    Release(u8),
    Reload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, any::<bool>()).prop_map(|(e, v6)| Op::Allocate(e, v6)),
        2 => (0u8..12, any::<u8>(), any::<bool>()).prop_map(|(e, a, v6)| Op::Assign(e, a, v6)),
        2 => (0u8..12).prop_map(Op::Release),
        1 => Just(Op::Reload),
    ]
}

proptest! {
    #[test]
    fn random_operations_never_double_allocate(ops in prop::collection::vec(op(), 1..120)) {
        let dir = std::env::temp_dir().join(format!("ipam-prop-{}-{:?}", std::process::id(), std::thread::current().id()));
        let path = dir.join("ipam.json");
        let _ = std::fs::remove_dir_all(&dir);
        // Small pools so that they fill up: a /28 of /30 blocks, a /124 of /126 blocks.
        let pools = vec![
            Pool { cidr: "10.0.0.0/28".parse().unwrap(), block_size: 30, disabled: false, automatic: true },
            Pool { cidr: "fd00::/124".parse().unwrap(), block_size: 126, disabled: false, automatic: true },
        ];
        let mut i = Ipam::open(pools.clone(), Some(path.clone())).unwrap();
        let mut model: HashMap<IpAddr, String> = HashMap::new();
        for op in ops {
            match op {
                Op::Allocate(e, v6) => {
                    let name = format!("e{e}");
                    let family = model.keys().filter(|a| a.is_ipv6() == v6).count();
                    match i.allocate(&name, v6) {
                        Ok(a) => {
                            prop_assert!(!model.contains_key(&a), "{} given twice", a);
                            prop_assert!(pools.iter().any(|p| p.cidr.contains(&a)));
                            model.insert(a, name);
                        }
                        Err(IpamError::Exhausted) => prop_assert_eq!(family, 16, "exhausted with room left"),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                Op::Assign(e, a, v6) => {
                    let addr: IpAddr = if v6 { format!("fd00::{:x}", a % 20).parse().unwrap() } else { format!("10.0.0.{}", a % 20).parse().unwrap() };
                    let name = format!("e{e}");
                    let in_pool = pools.iter().any(|p| p.cidr.contains(&addr));
                    match (i.assign(&name, addr), model.get(&addr)) {
                        (Ok(()), None) => { prop_assert!(in_pool); model.insert(addr, name); }
                        (Ok(()), Some(o)) => prop_assert_eq!(o, &name),
                        (Err(IpamError::Taken(_, o)), Some(m)) => { prop_assert_eq!(&o, m); prop_assert_ne!(&o, &name); }
                        (Err(IpamError::NotInPool(_)), None) => prop_assert!(!in_pool),
                        (r, m) => prop_assert!(false, "{:?} with model {:?}", r, m),
                    }
                }
                Op::Release(e) => {
                    let name = format!("e{e}");
                    let mut freed = i.release(&name);
                    freed.sort();
                    let mut want: Vec<IpAddr> = model.iter().filter(|(_, o)| **o == name).map(|(a, _)| *a).collect();
                    want.sort();
                    prop_assert_eq!(freed, want);
                    model.retain(|_, o| *o != name);
                }
                Op::Reload => {
                    i.save().unwrap();
                    i = Ipam::open(pools.clone(), Some(path.clone())).unwrap();
                }
            }
            // Every allocation sits in a held block, and every held block has one.
            for (a, o) in &model {
                prop_assert_eq!(i.owner(*a), Some(o.as_str()));
                prop_assert!(i.blocks().iter().any(|b: &IpNet| b.contains(a)));
            }
            for b in i.blocks() {
                prop_assert!(model.keys().any(|a| b.contains(a)), "empty block {} kept", b);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
