//! The flow table against a plain model (a map of tuples), TCP states from recorded
//! sequences, ageing, eviction when full, and the memory per flow.

use super::tcp::{next, TcpState, ACK, FIN, RST, SYN};
use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn t4(a: u8, b: u8, sport: u16, dport: u16, proto: u8) -> Tuple {
    Tuple::v4(
        Ipv4Addr::new(10, 0, 0, a),
        Ipv4Addr::new(10, 0, 1, b),
        sport,
        dport,
        proto,
    )
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u8, u16, bool),
    Remove(usize),
    Lookup(u8, u8, u16, bool),
}

fn op() -> impl Strategy<Value = Op> {
    // A small universe, so the same tuples come back and the index runs collide.
    let t = (0u8..6, 0u8..6, 0u16..4, any::<bool>());
    prop_oneof![
        t.clone().prop_map(|(a, b, p, v6)| Op::Insert(a, b, p, v6)),
        (0usize..64).prop_map(Op::Remove),
        t.prop_map(|(a, b, p, v6)| Op::Lookup(a, b, p, v6)),
    ]
}

fn tuple(a: u8, b: u8, p: u16, v6: bool) -> Tuple {
    if v6 {
        Tuple::v6(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(a)),
            Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, u16::from(b)),
            1000 + p,
            53,
            UDP,
        )
    } else {
        t4(a, b, 1000 + p, 53, UDP)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn the_table_agrees_with_a_map(ops in proptest::collection::vec(op(), 1..300)) {
        let mut table = FlowTable::new(24, 7);
        // Model: tuple → (flow id, direction); flows by id.
        let mut model: HashMap<Tuple, (u32, Dir)> = HashMap::new();
        let mut flows: Vec<u32> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(a, b, p, v6) => {
                    let t = tuple(a, b, p, v6);
                    let r = t.reversed();
                    let got = table.insert(t, r, FlowState::Other { replied: true }, 0);
                    if model.contains_key(&t) || model.contains_key(&r) {
                        prop_assert_eq!(got, Err(Refused::Exists));
                    } else if flows.len() == 24 {
                        // Replied UDP flows are never evicted: a full table refuses.
                        prop_assert_eq!(got, Err(Refused::Full));
                    } else {
                        let id = got.expect("room and no clash");
                        model.insert(t, (id, Dir::Orig));
                        model.insert(r, (id, Dir::Reply));
                        flows.push(id);
                    }
                }
                Op::Remove(k) if !flows.is_empty() => {
                    let id = flows.remove(k % flows.len());
                    let f = table.remove(id).expect("a live flow");
                    prop_assert!(model.remove(&f.orig).is_some());
                    prop_assert!(model.remove(&f.reply).is_some());
                    prop_assert!(table.remove(id).is_none(), "removed once");
                }
                Op::Remove(_) => {}
                Op::Lookup(a, b, p, v6) => {
                    let t = tuple(a, b, p, v6);
                    prop_assert_eq!(table.lookup(&t), model.get(&t).copied());
                }
            }
            prop_assert_eq!(table.len(), flows.len());
        }
        // Every tuple the model knows is found, and nothing else.
        for (t, want) in &model {
            prop_assert_eq!(table.lookup(t), Some(*want));
        }
        prop_assert_eq!(table.iter().count(), flows.len());
    }

    #[test]
    fn expiry_removes_exactly_the_idle_flows(
        flows in proptest::collection::vec((0u8..50, 0u32..200, any::<bool>()), 1..40),
        now in 0u32..400,
    ) {
        let mut table = FlowTable::new(64, 3);
        let mut want = Vec::new();
        for (i, (a, seen, replied)) in flows.into_iter().enumerate() {
            let t = t4(a, 1, i as u16, 53, UDP);
            let id = table.insert(t, t.reversed(), FlowState::Other { replied }, seen).unwrap();
            let timeout = if replied { 120 } else { 30 };
            if now.wrapping_sub(seen) <= timeout {
                want.push(id);
            }
        }
        table.expire(now, 64);
        let mut left: Vec<u32> = table.iter().map(|(i, _)| i).collect();
        left.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(left, want);
    }
}

#[test]
fn tcp_states_follow_a_connection() {
    use TcpState::*;
    // (flags, from the reply side, state after)
    let open_close = [
        (SYN, false, SynSent),
        (SYN, false, SynSent), // retransmitted
        (SYN | ACK, true, SynRecv),
        (ACK, false, Established),
        (ACK, true, Established),
        (FIN | ACK, false, FinWait(false)),
        (FIN | ACK, false, FinWait(false)), // retransmitted FIN: same side
        (ACK, true, FinWait(false)),
        (FIN | ACK, true, LastAck),
        (ACK, false, TimeWait),
        (SYN, false, SynSent), // the port reused
    ];
    let mut s = None;
    for (i, (flags, reply, want)) in open_close.into_iter().enumerate() {
        s = next(s, flags, reply);
        assert_eq!(s, Some(want), "step {i}");
    }
    assert_eq!(next(Some(Established), RST | ACK, true), Some(Close));
    assert_eq!(next(None, RST, false), None, "a lone RST makes no flow");
    assert_eq!(next(None, ACK, false), Some(Established), "loose pick-up");
    assert!(Established.timeout_s() >= 3600 && TimeWait.timeout_s() < 600);
}

#[test]
fn track_ages_tcp_as_the_kernel_does() {
    let mut table = FlowTable::new(16, 1);
    let c = t4(1, 2, 40000, 80, TCP);
    let s = c.reversed();
    let Tracked::New(id) = table.track(&c, SYN, 100) else {
        panic!("a SYN makes a flow")
    };
    assert_eq!(
        table.track(&s, SYN | ACK, 100),
        Tracked::Known(id, Dir::Reply)
    );
    assert_eq!(table.track(&c, ACK, 101), Tracked::Known(id, Dir::Orig));
    assert_eq!(
        table.get(id).unwrap().state,
        FlowState::Tcp(TcpState::Established)
    );
    // Idle for a day: still there (established lives 5 days).
    assert_eq!(table.expire(101 + 86_400, 16), 0);
    table.track(&c, FIN | ACK, 200);
    table.track(&s, FIN | ACK, 200);
    table.track(&c, ACK, 200);
    assert_eq!(
        table.get(id).unwrap().state,
        FlowState::Tcp(TcpState::TimeWait)
    );
    assert_eq!(table.expire(200 + 121, 16), 1, "time-wait goes after 120 s");
    assert!(table.is_empty());
    assert_eq!(table.track(&c, RST, 400), Tracked::Untracked);
    assert_eq!(table.stats.expired, 1);
}

#[test]
fn a_full_table_evicts_unreplied_flows_never_established_ones() {
    let mut table = FlowTable::new(8, 5);
    // Six established TCP flows and two unreplied UDP ones.
    for i in 0..6 {
        let t = t4(i, 9, 1000, 80, TCP);
        assert!(matches!(table.track(&t, ACK, 0), Tracked::New(_)));
    }
    for i in 0..2 {
        assert!(matches!(
            table.track(&t4(i, 9, 2000, 53, UDP), 0, 0),
            Tracked::New(_)
        ));
    }
    // Two more fit, each by evicting an unreplied UDP flow.
    for i in 0..2 {
        assert!(matches!(
            table.track(&t4(i, 8, 3000, 80, TCP), ACK, 1),
            Tracked::New(_)
        ));
    }
    assert_eq!(table.stats.evicted, 2);
    // Now all are established: a SYN flood is refused and counted, and the established
    // flows are untouched.
    for p in 0..100 {
        assert_eq!(
            table.track(&t4(200, 200, p, 443, TCP), SYN, 2),
            Tracked::Refused(Refused::Full)
        );
    }
    assert_eq!(table.stats.refused_full, 100);
    for i in 0..6 {
        assert!(table.lookup(&t4(i, 9, 1000, 80, TCP)).is_some());
    }
}

#[test]
fn a_flow_costs_at_most_128_bytes() {
    let table = FlowTable::new(1 << 16, 1);
    assert!(
        table.bytes_per_flow() <= 128,
        "{} bytes",
        table.bytes_per_flow()
    );
}

#[test]
fn icmp_echo_replies_match_by_identifier() {
    let mut table = FlowTable::new(4, 1);
    let ping = t4(1, 2, 0x1234, 0x1234, ICMP);
    let Tracked::New(id) = table.track(&ping, 0, 0) else {
        panic!()
    };
    assert_eq!(
        table.track(&ping.reversed(), 0, 1),
        Tracked::Known(id, Dir::Reply)
    );
    assert_eq!(
        table.get(id).unwrap().state,
        FlowState::Other { replied: true }
    );
}
