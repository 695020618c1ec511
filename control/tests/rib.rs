//! The decision process step by step (RFC 4271 §9.1.2.2, RFC 4456), multipath, loop
//! checks, graceful-restart stale paths, and random operations against a plain model.

use control::bgp::wire::PathAttrs;
use control::rib::{Local, PeerInfo, Rib};
use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

const LOCAL_AS: u32 = 64512;

fn rib() -> Rib {
    let mut r = Rib::new(Local {
        asn: LOCAL_AS,
        router_id: Ipv4Addr::new(10, 0, 0, 100),
        cluster_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
    });
    // Peers 1..=3 iBGP (router ids 10.0.0.1..3), 4 eBGP from AS 65001.
    for i in 1..=4u16 {
        r.add_peer(
            i,
            PeerInfo {
                address: IpAddr::V4(Ipv4Addr::new(10, 98, 0, i as u8)),
                router_id: Ipv4Addr::new(10, 0, 0, i as u8),
                asn: if i == 4 { 65001 } else { LOCAL_AS },
                ibgp: i != 4,
            },
        );
    }
    r
}

fn attrs(nh: u8) -> PathAttrs {
    PathAttrs {
        next_hop: Some(Ipv4Addr::new(10, 98, 0, nh)),
        ..PathAttrs::default()
    }
}

fn pfx() -> IpNet {
    "10.244.1.0/26".parse().unwrap()
}

fn winner(r: &Rib) -> u16 {
    r.best(pfx())[0].peer
}

/// Which of two paths to the prefix wins: (peer, attributes) each.
fn duel(a: (u16, PathAttrs), b: (u16, PathAttrs)) -> u16 {
    let mut r = rib();
    r.update(a.0, &[pfx()], a.1);
    r.update(b.0, &[pfx()], b.1);
    winner(&r)
}

/// Attributes with an AS path (its length) and a MED.
fn via(first_as: u32, len: u32, med: Option<u32>, nh: u8) -> PathAttrs {
    PathAttrs {
        as_path: vec![first_as; len as usize],
        as_path_len: len,
        med,
        ..attrs(nh)
    }
}

#[test]
fn each_decision_step_decides() {
    let lp = |v, nh| PathAttrs {
        local_pref: Some(v),
        ..attrs(nh)
    };
    assert_eq!(
        duel((1, lp(100, 1)), (2, lp(200, 2))),
        2,
        "higher LOCAL_PREF"
    );
    assert_eq!(
        duel((1, via(7, 2, None, 1)), (2, via(7, 1, None, 2))),
        2,
        "shorter AS path"
    );
    let origin = |o, nh| PathAttrs {
        origin: o,
        ..attrs(nh)
    };
    assert_eq!(
        duel((1, origin(2, 1)), (2, origin(0, 2))),
        2,
        "IGP before incomplete"
    );
    assert_eq!(
        duel((1, via(7, 1, Some(50), 1)), (2, via(7, 1, Some(10), 2))),
        2,
        "lower MED, same neighbour AS"
    );
    assert_eq!(
        duel((1, via(7, 1, Some(50), 1)), (2, via(8, 1, Some(10), 2))),
        1,
        "MED not compared across ASes: router id"
    );
    assert_eq!(
        duel((1, via(65001, 1, None, 1)), (4, via(65001, 1, None, 4))),
        4,
        "eBGP before iBGP"
    );
    let orig = |o: Ipv4Addr, clusters: Vec<Ipv4Addr>, nh| PathAttrs {
        originator_id: Some(o),
        cluster_list: clusters,
        ..attrs(nh)
    };
    assert_eq!(
        duel(
            (2, attrs(2)),
            (3, orig(Ipv4Addr::new(10, 0, 0, 0), vec![], 3))
        ),
        3,
        "ORIGINATOR_ID stands for the router id"
    );
    let o = Ipv4Addr::new(9, 9, 9, 9);
    let (c2, c3) = (Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(3, 3, 3, 3));
    assert_eq!(
        duel((2, orig(o, vec![c2, c3], 2)), (3, orig(o, vec![c2], 3))),
        3,
        "shorter CLUSTER_LIST"
    );
}

#[test]
fn equal_paths_make_a_multipath_set() {
    let mut r = rib();
    r.update(1, &[pfx()], attrs(1));
    r.update(2, &[pfx()], attrs(2));
    r.update(
        3,
        &[pfx()],
        PathAttrs {
            local_pref: Some(50),
            ..attrs(3)
        },
    );
    assert_eq!(r.best(pfx()).len(), 2);
    assert_eq!(
        r.best_next_hops(pfx()),
        vec![
            IpAddr::V4(Ipv4Addr::new(10, 98, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 98, 0, 2))
        ]
    );
    // Withdrawing one leaves the other; withdrawing both leaves the worse path.
    assert_eq!(r.withdraw(1, &[pfx()]), vec![pfx()]);
    assert_eq!(
        r.best_next_hops(pfx()),
        vec![IpAddr::V4(Ipv4Addr::new(10, 98, 0, 2))]
    );
    r.withdraw(2, &[pfx()]);
    assert_eq!(winner(&r), 3);
}

#[test]
fn loops_are_refused() {
    let mut r = rib();
    assert!(r
        .update(
            4,
            &[pfx()],
            PathAttrs {
                as_path: vec![65001, LOCAL_AS],
                as_path_len: 2,
                ..attrs(4)
            }
        )
        .is_empty());
    assert!(r
        .update(
            1,
            &[pfx()],
            PathAttrs {
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 100)),
                ..attrs(1)
            }
        )
        .is_empty());
    assert!(r
        .update(
            1,
            &[pfx()],
            PathAttrs {
                cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1)],
                ..attrs(1)
            }
        )
        .is_empty());
    assert!(r.best(pfx()).is_empty());
    // A looped re-announcement withdraws what the peer had.
    r.update(1, &[pfx()], attrs(1));
    assert_eq!(
        r.update(
            1,
            &[pfx()],
            PathAttrs {
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 100)),
                ..attrs(1)
            }
        ),
        vec![pfx()]
    );
    assert!(r.best(pfx()).is_empty());
}

#[test]
fn graceful_restart_keeps_stale_paths_until_end_of_rib() {
    let mut r = rib();
    let a: IpNet = "10.244.1.0/26".parse().unwrap();
    let b: IpNet = "10.244.2.0/26".parse().unwrap();
    r.update(1, &[a, b], attrs(1));
    r.mark_stale(1);
    // Still forwarding on stale paths.
    assert_eq!(r.best(a).len(), 1);
    assert!(r.best(a)[0].stale);
    // The peer comes back and announces only `a`; End-of-RIB sweeps `b`.
    r.update(1, &[a], attrs(1));
    assert!(!r.best(a)[0].stale);
    assert_eq!(r.sweep_stale(1), vec![b]);
    assert_eq!(r.len(), 1);
}

#[test]
fn peer_down_removes_only_its_paths_and_attributes_are_shared() {
    let mut r = rib();
    let many: Vec<IpNet> = (0..1000u32)
        .map(|i| {
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    r.update(1, &many, attrs(1));
    r.update(2, &many[..10], attrs(2));
    assert_eq!(
        r.attribute_sets(),
        2,
        "one attribute set per distinct attributes"
    );
    let changed = r.peer_down(1);
    assert_eq!(changed.len(), 1000, "every prefix lost a best path");
    assert_eq!(r.len(), 10);
    assert_eq!((r.received_from(1), r.received_from(2)), (0, 10));
}

/// The model: every (prefix, peer) path, best computed from scratch by a sort key.
fn model_best(model: &BTreeMap<(u8, u16), PathAttrs>, prefix: u8) -> Vec<u16> {
    // All model paths share the first AS, so MED is always compared.
    let key = |peer: u16, a: &PathAttrs| {
        (
            std::cmp::Reverse(a.local_pref.unwrap_or(100)),
            a.as_path_len,
            a.origin,
            a.med.unwrap_or(0),
            peer != 4,
        )
    };
    let mut paths: Vec<(u16, &PathAttrs)> = model
        .range((prefix, 0)..=(prefix, u16::MAX))
        .map(|((_, peer), a)| (*peer, a))
        .collect();
    paths.sort_by_key(|(peer, a)| (key(*peer, a), *peer)); // router id order = peer order
    let Some(first) = paths.first() else {
        return vec![];
    };
    let k = key(first.0, first.1);
    paths
        .iter()
        .filter(|(p, a)| key(*p, a) == k)
        .map(|(p, _)| *p)
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Update(u16, Vec<u8>, u32, u32, u8, u32),
    Withdraw(u16, Vec<u8>),
    Down(u16),
    Stale(u16),
    Sweep(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 1u16..=4;
    let prefixes = prop::collection::vec(0u8..8, 1..4);
    prop_oneof![
        4 => (peer.clone(), prefixes.clone(), 0u32..3, 1u32..3, 0u8..3, 0u32..3)
            .prop_map(|(p, x, lp, len, o, med)| Op::Update(p, x, lp, len, o, med)),
        2 => (peer.clone(), prefixes).prop_map(|(p, x)| Op::Withdraw(p, x)),
        1 => peer.clone().prop_map(Op::Down),
        1 => peer.clone().prop_map(Op::Stale),
        1 => peer.prop_map(Op::Sweep),
    ]
}

proptest! {
    #[test]
    fn random_operations_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut r = rib();
        let mut model: BTreeMap<(u8, u16), PathAttrs> = BTreeMap::new();
        let mut stale: BTreeMap<(u8, u16), bool> = BTreeMap::new();
        // Prefixes of several lengths sharing addresses (the IPv4 maps are per length),
        // the default route, a host route and an IPv6 one.
        const NETS: [&str; 8] = [
            "10.244.0.0/26", "10.244.0.0/24", "10.244.0.0/16", "10.244.1.0/26",
            "0.0.0.0/0", "10.244.0.0/32", "fd00:1::/64", "10.244.0.64/26",
        ];
        let net = |i: u8| -> IpNet { NETS[i as usize].parse().unwrap() };
        for op in ops {
            let before: Vec<Vec<u16>> = (0..8).map(|i| model_best(&model, i)).collect();
            let before_attrs: Vec<Vec<PathAttrs>> = (0..8).map(|i| before[i as usize].iter().map(|p| model[&(i, *p)].clone()).collect()).collect();
            let changed = match &op {
                Op::Update(p, xs, lp, len, o, med) => {
                    let a = PathAttrs {
                        local_pref: Some(100 * lp),
                        as_path: vec![65001; *len as usize],
                        as_path_len: *len,
                        origin: *o,
                        med: Some(*med),
                        next_hop: Some(Ipv4Addr::new(10, 98, 0, *p as u8)),
                        ..PathAttrs::default()
                    };
                    for x in xs { model.insert((*x, *p), a.clone()); stale.remove(&(*x, *p)); }
                    r.update(*p, &xs.iter().map(|&x| net(x)).collect::<Vec<_>>(), a)
                }
                Op::Withdraw(p, xs) => {
                    for x in xs { model.remove(&(*x, *p)); stale.remove(&(*x, *p)); }
                    r.withdraw(*p, &xs.iter().map(|&x| net(x)).collect::<Vec<_>>())
                }
                Op::Down(p) => {
                    model.retain(|(_, q), _| q != p);
                    stale.retain(|(_, q), _| q != p);
                    r.peer_down(*p)
                }
                Op::Stale(p) => {
                    for k in model.keys().filter(|(_, q)| q == p) { stale.insert(*k, true); }
                    r.mark_stale(*p);
                    vec![]
                }
                Op::Sweep(p) => {
                    let gone: Vec<(u8, u16)> = stale.keys().filter(|(_, q)| q == p).copied().collect();
                    for k in gone { model.remove(&k); stale.remove(&k); }
                    r.sweep_stale(*p)
                }
            };
            for i in 0..8u8 {
                let want = model_best(&model, i);
                let mut got: Vec<u16> = r.best(net(i)).iter().map(|p| p.peer).collect();
                got.sort();
                prop_assert_eq!(&got, &want, "prefix {} after {:?}", i, op);
                let want_attrs: Vec<PathAttrs> = want.iter().map(|p| model[&(i, *p)].clone()).collect();
                let moved = before[i as usize] != want || before_attrs[i as usize] != want_attrs;
                // A change is reported exactly when the best set or its attributes moved
                // (a re-announcement of the same attributes is not one).
                if moved {
                    prop_assert!(changed.contains(&net(i)), "prefix {} changed, not reported, after {:?}", i, op);
                }
            }
            // The prefixes held are exactly those with a path in the model.
            let mut want: Vec<IpNet> = model.keys().map(|(x, _)| net(*x)).collect();
            want.sort();
            want.dedup();
            let mut got = r.prefixes();
            got.sort();
            prop_assert_eq!(&got, &want, "prefixes after {:?}", op);
            prop_assert_eq!(r.len(), want.len());
        }
    }
}
