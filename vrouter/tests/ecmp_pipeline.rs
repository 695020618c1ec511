//! ECMP through the pipeline: a route with several next hops spreads flows evenly, a
//! flow stays on its next hop, and when one next hop leaves only its flows move.

use etherparse::PacketBuilder;
use fib::{Fib4, Fib6, NextHopId};
use std::collections::HashMap;
use std::sync::Arc;
use vrouter::arp::HOST_SIDE_MAC;
use vrouter::burst::Action;
use vrouter::counters::Counters;
use vrouter::ecmp::GroupTable;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port, PortKind};

const UPLINK: PortId = PortId(0);
const POD: PortId = PortId(1);
const POD_IP: [u8; 4] = [10, 244, 1, 2];

fn router(i: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 1, i]
}

fn flow(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], HOST_SIDE_MAC)
        .ipv4(POD_IP, [192, 0, 2, 10], 64)
        .udp(sport, 443)
        .write(&mut v, b"x")
        .unwrap();
    v
}

#[test]
fn flows_spread_stay_and_only_a_leaving_next_hops_flows_move() {
    let nexthops = Arc::new(NextHopTable::new(8));
    for i in 0..3u8 {
        nexthops.set(
            i as u32,
            Adjacency::Forward {
                port: UPLINK,
                mac: router(i),
            },
        );
    }
    nexthops.set(5, Adjacency::Group { id: 0 });
    let groups = Arc::new(GroupTable::new(1));
    groups.set(0, &[0, 1, 2]);
    let mut fib4 = Fib4::new();
    fib4.insert("0.0.0.0/0".parse().unwrap(), NextHopId(5));
    let fib6 = Fib6::new();
    let ports: Arc<[Port]> = vec![
        Port {
            mac: [0x52, 0x54, 0, 0, 0, 1],
            mtu: 1500,
            kind: PortKind::Uplink,
        },
        Port {
            mac: HOST_SIDE_MAC,
            mtu: 1500,
            kind: PortKind::Endpoint {
                v4: vec![u32::from_be_bytes(POD_IP)],
                v6: vec![],
            },
        },
    ]
    .into();
    let mut p = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops,
        ports,
        Arc::new(Counters::new(1)),
        0,
    )
    .with_groups(groups.clone());
    let mut route = |sport: u16| -> [u8; 6] {
        let f = flow(sport);
        let mut buf = f.clone();
        let mut a = [Action::Kernel];
        p.process(POD, &mut [&mut buf[..]], &[f.len()], &mut a);
        assert!(matches!(a[0], Action::Tx { port: UPLINK, .. }), "{a:?}");
        buf[0..6].try_into().unwrap()
    };
    let before: HashMap<u16, [u8; 6]> = (0..6000).map(|s| (s, route(s))).collect();
    for i in 0..3u8 {
        let n = before.values().filter(|m| **m == router(i)).count();
        assert!(
            (1600..2400).contains(&n),
            "next hop {i}: {n} of 6000 flows (±20%)"
        );
    }
    for s in 0..200 {
        assert_eq!(route(s), before[&s], "a flow keeps its next hop");
    }
    groups.set(0, &[0, 2]);
    for (s, was) in &before {
        let now = route(*s);
        if *was != router(1) {
            assert_eq!(now, *was, "flow {s} moved although its next hop stayed");
        } else {
            assert_ne!(now, router(1));
        }
    }
}
