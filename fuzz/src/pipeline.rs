//! `pipeline`: one burst of up to 64 frames through `vrouter::pipeline::Pipeline`, as
//! received on an uplink, a veth pod's port, a tap pod's port or a port that does not
//! exist, with the overlay (VXLAN and IPIP tunnels, decapsulation), ECMP, ICMP errors
//! and, per the first byte, NAT outgoing and network policy on.
//!
//! Input: `flags` then frames, each `len_hi len_lo bytes...` (a length past the end takes
//! what is left). Flags: bits 0-1 the port kind, bit 2 NAT, bit 3 policy, bit 4 ICMP
//! errors, bit 5 the replies (what was sent, reflected) back on the ports it left by,
//! bits 6-7 which next hops are unresolved.

use crate::frames;
use fib::{Fib4, Fib6, NextHopId};
use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use vrouter::burst::{Action, BURST};
use vrouter::counters::Counters;
use vrouter::ecmp::GroupTable;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port};
use vrouter::policy::set::PolicySet;
use vrouter::test_support::pipeline::{pod_port, policy_set, uplink_port, LocalPod};
use vrouter::tunnel::{Encap, Overlay, Tunnel, TunnelTable};

pub const UPLINK: PortId = PortId(0);
pub const POD: PortId = PortId(1);
pub const TAP: PortId = PortId(2);
/// No such port (an endpoint removed while frames were in flight).
pub const GONE: PortId = PortId(7);

pub const POLICY: &str = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: pod-in, namespace: shop}
spec:
  order: 10
  selector: app == 'web'
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'db'}
    destination: {ports: [80, "8000:8100"]}
  - action: Deny
    protocol: UDP
    source: {nets: [8.8.0.0/16]}
  - action: Allow
    protocol: ICMP
    icmp: {type: 8}
  - action: Allow
    protocol: ICMPv6
  egress:
  - action: Allow
    destination: {notNets: [10.244.9.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: tap-in}
spec:
  selector: app == 'db'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: UDP
    destination: {ports: [53]}
  - action: Pass
  - action: Allow
    source: {nets: ["fd00:10::/64"]}
"#;

/// What every input's pipelines are built from (made once).
struct Setup {
    fib4: Fib4,
    fib6: Fib6,
    nexthops: [Arc<NextHopTable>; 4],
    ports: Arc<[Port]>,
    tunnels: Arc<TunnelTable>,
    groups: Arc<GroupTable>,
    policy: Arc<PolicySet>,
}

fn v4(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

fn setup() -> Setup {
    let mut fib4 = Fib4::new();
    let mut fib6 = Fib6::new();
    let routes4 = [
        ("10.244.1.4/32", 0),   // the veth pod
        ("10.244.1.5/32", 1),   // the tap pod
        ("10.244.2.0/26", 2),   // a remote node's block over VXLAN
        ("10.244.3.0/26", 3),   // over IPIP
        ("10.244.1.0/26", 4),   // our block: blackhole
        ("10.244.1.9/32", 5),   // a neighbour not resolved yet (per flags)
        ("10.0.0.0/24", 6),     // the node's subnet
        ("0.0.0.0/0", 7),       // ECMP default
        ("198.51.100.0/24", 5), // unresolved too
        ("10.244.9.0/24", 6),   // policy's notNets
    ];
    for (p, nh) in routes4 {
        fib4.insert(p.parse().unwrap(), NextHopId(nh));
    }
    let routes6 = [
        ("fd00:10::4/128", 0),
        ("fd00:10::5/128", 1),
        ("fd00:20::/64", 2),
        ("fd00:30::/64", 3),
        ("fd00:10::/64", 4),
        ("::/0", 7),
    ];
    for (p, nh) in routes6 {
        fib6.insert(p.parse().unwrap(), NextHopId(nh));
    }
    let router = [0x52, 0x54, 0, 0, 0, 0xfe];
    let base = |unresolved: bool| {
        let t = NextHopTable::new(16);
        t.set(
            0,
            Adjacency::Forward {
                port: POD,
                mac: frames::POD_MAC,
            },
        );
        t.set(
            1,
            Adjacency::Forward {
                port: TAP,
                mac: frames::TAP_MAC,
            },
        );
        t.set(2, Adjacency::Tunnel { id: 0 });
        t.set(3, Adjacency::Tunnel { id: 1 });
        t.set(4, Adjacency::Blackhole);
        // 5 stays Incomplete.
        t.set(
            6,
            if unresolved {
                Adjacency::Incomplete
            } else {
                Adjacency::Forward {
                    port: UPLINK,
                    mac: router,
                }
            },
        );
        t.set(7, Adjacency::Group { id: 0 });
        t.set(
            8,
            Adjacency::Forward {
                port: UPLINK,
                mac: [0x52, 0x54, 0, 0, 0, 0xfd],
            },
        );
        t
    };
    let nexthops = [false, true, false, true].map(|u| Arc::new(base(u)));
    let ports: Arc<[Port]> = vec![
        uplink_port(frames::NODE_MAC),
        pod_port(&[frames::POD4], &[frames::POD6]),
        // The tap pod's port: jumbo frames (MTU 9000).
        Port {
            mtu: 9000,
            ..pod_port(&[frames::TAP4], &[])
        },
    ]
    .into();
    let tunnels = Arc::new(TunnelTable::new(4));
    let underlay = encap::tunnel::Underlay::V4 {
        src: frames::NODE4.into(),
        dst: [10, 0, 0, 2].into(),
    };
    let eth = encap::tunnel::OuterEth {
        dst: router,
        src: frames::NODE_MAC,
    };
    tunnels.set(
        0,
        Tunnel::new(
            Encap::Vxlan(encap::vxlan::Vxlan {
                vni: 4096,
                local_vtep_mac: encap::vxlan::vtep_mac("node-a"),
                remote_vtep_mac: encap::vxlan::vtep_mac("node-b"),
                underlay,
                eth,
                source_port: encap::vxlan::SourcePort::FlowHash,
            }),
            6,
        ),
    );
    tunnels.set(
        1,
        Tunnel::new(
            Encap::Ipip(encap::ipip::Ipip {
                underlay: encap::tunnel::Underlay::V4 {
                    src: frames::NODE4.into(),
                    dst: [10, 0, 0, 3].into(),
                },
                eth,
            }),
            6,
        ),
    );
    let groups = Arc::new(GroupTable::new(2));
    groups.set(0, &[6, 8]);
    let policies = datastore::policy::parse_policies("fuzz", POLICY).expect("the policy parses");
    let policy = Arc::new(policy_set(
        "shop",
        &policies,
        &[
            LocalPod::new("web", "web", POD, 0, 0),
            LocalPod::new("db", "db", TAP, 1, 1),
        ],
        &[
            (IpAddr::from(frames::POD4), "web"),
            (IpAddr::from(frames::TAP4), "db"),
            (IpAddr::from([10, 244, 2, 7]), "db"),
        ],
    ));
    Setup {
        fib4,
        fib6,
        nexthops,
        ports,
        tunnels,
        groups,
        policy,
    }
}

thread_local! {
    static SETUP: RefCell<Option<Setup>> = const { RefCell::new(None) };
}

fn overlay(nat: bool) -> Overlay {
    let pool4 = (v4([10, 244, 0, 0]), 16);
    let pool6 = (
        u128::from_be_bytes([0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        48,
    );
    Overlay {
        local_v4: vec![v4(frames::NODE4)],
        local_v6: vec![u128::from_be_bytes(frames::NODE6)],
        pools_v4: vec![pool4],
        pools_v6: vec![pool6],
        vni: 4096,
        nat_v4: if nat { vec![pool4] } else { vec![] },
        nat_v6: if nat { vec![pool6] } else { vec![] },
        nodes_v4: vec![v4([10, 0, 0, 2]), v4([10, 0, 0, 3])],
        nodes_v6: vec![],
    }
}

/// Worker `w` of two.
fn pipeline(s: &Setup, w: usize, flags: u8, counters: &Arc<Counters>) -> Pipeline {
    let nat = flags & 4 != 0;
    let mut p = Pipeline::new(
        s.fib4.reader(),
        s.fib6.reader(),
        s.nexthops[(flags >> 6) as usize].clone(),
        s.ports.clone(),
        counters.clone(),
        w,
    )
    .with_groups(s.groups.clone())
    .with_overlay(s.tunnels.clone(), overlay(nat))
    .with_conntrack(64, 61000..=65535, 2)
    .with_pod_nexthops(vec![None, Some(0), Some(1)]);
    if flags & 16 != 0 {
        p = p.with_icmp(
            frames::NODE4.into(),
            std::net::Ipv6Addr::from(frames::NODE6),
            1000,
        );
    }
    if flags & 8 != 0 {
        p.set_policy(s.policy.clone());
    }
    p
}

/// Split `data` into frames: two length bytes, then that many bytes (or what is left).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && out.len() < BURST {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let take = len.min(rest.len() - 2);
        out.push(&rest[2..2 + take]);
        rest = &rest[2 + take..];
    }
    out
}

/// One burst on `rx`; what was handed to the other worker goes through it.
fn burst(
    workers: &mut [Pipeline; 2],
    ports: usize,
    rx: PortId,
    frames: &[&[u8]],
) -> Vec<(PortId, Vec<u8>)> {
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut b = f.to_vec();
            b.resize(2048.max(f.len()), 0);
            b
        })
        .collect();
    let lens: Vec<usize> = frames.iter().map(|f| f.len()).collect();
    let mut actions = vec![Action::Kernel; frames.len()];
    {
        let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        workers[0].process(rx, &mut refs, &lens, &mut actions);
    }
    if crate::debug() {
        eprintln!("burst on {rx:?}: {actions:?}");
    }
    let mut handed: Vec<Vec<u8>> = Vec::new();
    let mut handed_lens: Vec<usize> = Vec::new();
    let mut replies = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        check(a, ports, bufs[i].len());
        match *a {
            Action::Tx { port, len } => replies.push((port, reflect(&bufs[i][..len]))),
            Action::Hold { nh, len } => {
                let again = workers[0].resume(&mut bufs[i], len, nh);
                check(&again, ports, bufs[i].len());
            }
            Action::Handoff { worker, len } => {
                assert_eq!(worker, 1, "handed to a worker that does not exist");
                let mut b = bufs[i][..len].to_vec();
                b.resize(2048.max(len), 0);
                handed.push(b);
                handed_lens.push(len);
            }
            _ => {}
        }
    }
    workers[0].drain_extra(&mut |port, f| {
        assert!((port.0 as usize) < ports && f.len() <= 2048, "extra frame");
    });
    if !handed.is_empty() {
        let lens = handed_lens;
        let mut actions = vec![Action::Kernel; handed.len()];
        let mut refs: Vec<&mut [u8]> = handed.iter_mut().map(|b| &mut b[..]).collect();
        workers[1].process(rx, &mut refs, &lens, &mut actions);
        if crate::debug() {
            eprintln!("handed to worker 1: {actions:?}");
        }
        for a in &actions {
            check(a, ports, 2048);
            // A frame handed to its owner is never handed on.
            assert!(
                !matches!(a, Action::Handoff { .. }),
                "handed on again: {a:?}"
            );
        }
        workers[1].drain_extra(&mut |_, _| {});
    }
    replies
}

/// The reply to a frame sent: addresses, ports and MACs swapped (the checksums stay
/// right: their sums do not depend on the order).
fn reflect(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f.len() < 14 {
        return f;
    }
    let (dst, src) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&src);
    f[6..12].copy_from_slice(&dst);
    let (addrs, len, l4) = match (f[12], f[13]) {
        (0x08, 0x00) if f.len() >= 34 => (14 + 12, 4, 14 + 4 * (f[14] & 0xf) as usize),
        (0x86, 0xdd) if f.len() >= 54 => (14 + 8, 16, 54),
        _ => return f,
    };
    let (a, b) = f[addrs..addrs + 2 * len].split_at_mut(len);
    a.swap_with_slice(b);
    if f.len() >= l4 + 4 {
        let (a, b) = f[l4..l4 + 4].split_at_mut(2);
        a.swap_with_slice(b);
    }
    f
}

fn check(a: &Action, ports: usize, buf: usize) {
    match *a {
        Action::Tx { port, len } | Action::Fragment { port, len, .. } => {
            assert!((port.0 as usize) < ports, "{a:?}: no such port");
            assert!(len <= buf, "{a:?}: longer than the buffer ({buf})");
        }
        Action::Hold { len, .. } | Action::Handoff { len, .. } => {
            assert!(len <= buf, "{a:?}: longer than the buffer ({buf})");
        }
        _ => {}
    }
}

pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let frames = split(rest);
    SETUP.with(|cell| {
        let mut cell = cell.borrow_mut();
        let s = cell.get_or_insert_with(setup);
        let counters = Arc::new(Counters::new(2));
        let mut workers = [
            pipeline(s, 0, flags, &counters),
            pipeline(s, 1, flags, &counters),
        ];
        let rx = [UPLINK, POD, TAP, GONE][(flags & 3) as usize];
        let ports = s.ports.len();
        let replies = burst(&mut workers, ports, rx, &frames);
        if flags & 32 != 0 {
            // What was sent answers, each on the port it left by.
            for port in [UPLINK, POD, TAP] {
                let back: Vec<&[u8]> = replies
                    .iter()
                    .filter(|(p, _)| *p == port)
                    .map(|(_, f)| &f[..])
                    .collect();
                if !back.is_empty() {
                    burst(&mut workers, ports, port, &back);
                }
            }
        }
    });
}
