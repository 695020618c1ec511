//! Property tests: the FIB answers exactly like the reference model, for both families.

mod common;

use common::Model;
use fib::cpu::Path;
use fib::{Family, Fib, NextHopId, V4, V6};
use proptest::prelude::*;
use std::collections::HashSet;

#[derive(Debug, Clone)]
enum Op<K> {
    Insert(K, u8, u32),
    Remove(K, u8),
    /// Replace the next hop of an existing prefix (by index into what is present).
    Replace(usize, u32),
}

/// A reader of `fib` on each lookup path this CPU can run (baseline, and the fast one
/// where the CPU has its features: see fib/src/cpu.rs).
fn readers_on_every_path<F: Family>(fib: &Fib<F>) -> Vec<fib::Reader<F>> {
    Path::available()
        .into_iter()
        .map(|path| {
            let mut reader = fib.reader();
            reader.force_cpu_path(path);
            reader
        })
        .collect()
}

/// Apply `ops`, checking after each one that every probe answers like the model, that a
/// reader on every CPU path agrees with the writer, and at the end that the prefix set
/// and memory match.
fn run_ops<F: Family>(ops: &[Op<F::Key>], probes: &[F::Key]) {
    let mut fib = Fib::<F>::new();
    let mut readers = readers_on_every_path(&fib);
    let mut model = Model::<F>::default();
    for op in ops {
        match *op {
            Op::Insert(k, len, nh) => {
                let want = model.insert(k, len, nh).map(NextHopId);
                assert_eq!(
                    fib.insert(F::make_net(F::mask(k, len), len), NextHopId(nh)),
                    want
                );
            }
            Op::Remove(k, len) => {
                let want = model.remove(k, len).map(NextHopId);
                assert_eq!(fib.remove(F::make_net(F::mask(k, len), len)), want);
            }
            Op::Replace(i, nh) => {
                let Some((&(k, len), _)) = model.routes.iter().nth(i % model.routes.len().max(1))
                else {
                    continue;
                };
                let want = model.insert(k, len, nh).map(NextHopId);
                assert_eq!(fib.replace(F::make_net(k, len), NextHopId(nh)), want);
            }
        }
        assert_eq!(fib.len(), model.routes.len());
        assert_eq!(fib.rib_bytes(), fib.rib_bytes_recounted());
        for reader in &mut readers {
            let path = reader.cpu_path();
            let view = reader.burst();
            for &p in probes {
                let want = model.lookup(p);
                assert_eq!(
                    fib.lookup(F::key_addr(p)),
                    want,
                    "probe {:?}",
                    F::key_addr(p)
                );
                assert_eq!(
                    view.lookup(F::key_addr(p)),
                    want,
                    "reader probe {:?} ({path:?})",
                    F::key_addr(p)
                );
            }
            // The batch form must agree with single lookups.
            let addrs: Vec<F::Addr> = probes.iter().map(|&p| F::key_addr(p)).collect();
            let mut out = vec![None; addrs.len()];
            view.lookup_batch(&addrs, &mut out);
            for (a, o) in addrs.iter().zip(&out) {
                assert_eq!(*o, model.lookup(F::addr_key(*a)), "batch ({path:?})");
            }
        }
    }
    assert_eq!(
        fib.batch_method(),
        "pipeline",
        "small tables use the pipeline"
    );

    // The same operations applied as one batch give the same table.
    let mut batched = Fib::<F>::new();
    let updates: Vec<fib::Update<F::Net>> = ops
        .iter()
        .filter_map(|op| match *op {
            Op::Insert(k, len, nh) => Some(fib::Update::Insert(
                F::make_net(F::mask(k, len), len),
                NextHopId(nh),
            )),
            Op::Remove(k, len) => Some(fib::Update::Remove(F::make_net(F::mask(k, len), len))),
            Op::Replace(..) => None,
        })
        .collect();
    // Two halves, so the second batch rebuilds chunks the first one built.
    let half = updates.len() / 2;
    batched.apply(&updates[..half]);
    batched.apply(&updates[half..]);
    let mut sequential = Fib::<F>::new();
    for u in &updates {
        match *u {
            fib::Update::Insert(n, nh) => {
                sequential.insert(n, nh);
            }
            fib::Update::Remove(n) => {
                sequential.remove(n);
            }
        }
    }
    assert_eq!(batched.len(), sequential.len());
    // A batch builds each chunk it touched once, at its end: the same blocks as one
    // update at a time, and no block of the batch left behind.
    assert_eq!(batched.block_bytes(), sequential.block_bytes());
    assert_eq!(batched.batch_method(), sequential.batch_method());
    for &p in probes {
        assert_eq!(
            batched.lookup(F::key_addr(p)),
            sequential.lookup(F::key_addr(p))
        );
    }
    let held: HashSet<(F::Key, u8, u32)> = fib
        .routes()
        .map(|(n, nh)| {
            let (k, l) = F::net_parts(&n);
            (k, l, nh.0)
        })
        .collect();
    let want: HashSet<(F::Key, u8, u32)> = model
        .routes
        .iter()
        .map(|(&(k, l), &nh)| (k, l, nh))
        .collect();
    assert_eq!(held, want);
    // Exact-prefix gets in a batch: every held route, and prefixes that are not held
    // (each held one a bit longer or shorter, when that is not held too).
    let mut nets: Vec<F::Net> = Vec::new();
    let mut expect = Vec::new();
    for (&(k, l), &nh) in &model.routes {
        nets.push(F::make_net(k, l));
        expect.push(Some(NextHopId(nh)));
        for l2 in [l.saturating_sub(1), (l + 1).min(F::BITS)] {
            let k2 = F::mask(k, l2);
            nets.push(F::make_net(k2, l2));
            expect.push(model.routes.get(&(k2, l2)).map(|&nh| NextHopId(nh)));
        }
    }
    assert_eq!(fib.get_many(&nets), expect);

    // Removing everything leaves only the direct table, and every block is reclaimed.
    for (k, l) in model.routes.keys().copied().collect::<Vec<_>>() {
        assert!(fib.remove(F::make_net(k, l)).is_some());
    }
    assert!(fib.is_empty());
    assert_eq!(fib.block_bytes(), 0);
    // An idle reader goes offline so the writer need not wait for it.
    readers.iter_mut().for_each(|r| r.offline());
    fib.synchronize();
    assert_eq!(fib.retired_blocks(), 0);
    for &p in probes {
        assert_eq!(fib.lookup(F::key_addr(p)), None);
    }
}

/// Bulk build must equal one-by-one insertion (later duplicates win).
fn run_bulk<F: Family>(
    routes: &[(F::Key, u8, u32)],
    more: &[(F::Key, u8, u32)],
    probes: &[F::Key],
) {
    let mut model = Model::<F>::default();
    for &(k, l, nh) in routes {
        model.insert(k, l, nh);
    }
    let mut fib = Fib::<F>::from_routes(
        routes
            .iter()
            .map(|&(k, l, nh)| (F::make_net(F::mask(k, l), l), NextHopId(nh))),
    );
    assert_eq!(fib.len(), model.routes.len());
    for &p in probes {
        assert_eq!(fib.lookup(F::key_addr(p)), model.lookup(p));
    }
    for &(k, l, nh) in more {
        model.insert(k, l, nh);
    }
    fib.extend(
        more.iter()
            .map(|&(k, l, nh)| (F::make_net(F::mask(k, l), l), NextHopId(nh))),
    );
    assert_eq!(fib.len(), model.routes.len());
    assert_eq!(fib.rib_bytes(), fib.rib_bytes_recounted());
    for &p in probes {
        assert_eq!(fib.lookup(F::key_addr(p)), model.lookup(p));
    }
}

// Keys cluster around a few bases so prefixes nest and overlap; lengths favour the
// edges (/0, full length, direct-table boundary, stride boundaries).
fn key4() -> impl Strategy<Value = u32> + Clone {
    const BASES: [u32; 4] = [0x0A00_0000, 0x0A01_0200, 0xC0A8_0000, 0xFFFF_FFFF];
    prop_oneof![
        any::<u32>(),
        (0..4usize, any::<u32>(), 0..=32u32)
            .prop_map(|(b, r, w)| BASES[b] ^ (r & (((1u64 << w) - 1) as u32))),
    ]
}
fn len4() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![
        Just(0u8),
        Just(32),
        Just(18),
        Just(19),
        Just(24),
        Just(25),
        0..=32u8,
        14..=32u8
    ]
}
fn key6() -> impl Strategy<Value = u128> + Clone {
    const BASES: [u128; 3] = [0x2001_0db8 << 96, 0x2a02_0000_1234 << 80, u128::MAX];
    prop_oneof![
        any::<u128>(),
        (0..3usize, any::<u128>(), 0..=128u32).prop_map(|(b, r, w)| BASES[b]
            ^ (r & if w == 128 {
                u128::MAX
            } else {
                (1u128 << w) - 1
            })),
    ]
}
fn len6() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![
        Just(0u8),
        Just(128),
        Just(16),
        Just(17),
        Just(48),
        Just(64),
        0..=128u8,
        12..=70u8,
        100..=128u8
    ]
}

fn ops<K: Clone + core::fmt::Debug>(
    key: impl Strategy<Value = K> + Clone,
    len: impl Strategy<Value = u8> + Clone,
) -> impl Strategy<Value = Vec<Op<K>>> {
    prop::collection::vec(
        prop_oneof![
            4 => (key.clone(), len.clone(), 0..6u32).prop_map(|(k, l, nh)| Op::Insert(k, l, nh)),
            2 => (key, len).prop_map(|(k, l)| Op::Remove(k, l)),
            1 => (any::<usize>(), 0..6u32).prop_map(|(i, nh)| Op::Replace(i, nh)),
        ],
        1..120,
    )
}

/// Probes: random keys plus keys near the inserted prefixes (first/last address, +-1).
fn probes_for<F: Family>(
    ops: &[Op<F::Key>],
    random: Vec<F::Key>,
    near: impl Fn(F::Key, u8) -> Vec<F::Key>,
) -> Vec<F::Key> {
    let mut p = random;
    for op in ops {
        if let Op::Insert(k, l, _) | Op::Remove(k, l) = *op {
            p.extend(near(k, l));
        }
    }
    p.sort();
    p.dedup();
    p
}

fn near4(k: u32, l: u8) -> Vec<u32> {
    let first = V4::mask(k, l);
    let last = first
        | if l == 0 {
            u32::MAX
        } else {
            !(u32::MAX << (32 - l as u32))
        };
    vec![first, last, first.wrapping_sub(1), last.wrapping_add(1), k]
}
fn near6(k: u128, l: u8) -> Vec<u128> {
    let first = V6::mask(k, l);
    let last = first
        | if l == 0 {
            u128::MAX
        } else {
            !(u128::MAX << (128 - l as u32))
        };
    vec![first, last, first.wrapping_sub(1), last.wrapping_add(1), k]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn v4_ops_match_model(ops in ops(key4(), len4()), random in prop::collection::vec(key4(), 0..32)) {
        let probes = probes_for::<V4>(&ops, random, near4);
        run_ops::<V4>(&ops, &probes);
    }

    #[test]
    fn v6_ops_match_model(ops in ops(key6(), len6()), random in prop::collection::vec(key6(), 0..32)) {
        let probes = probes_for::<V6>(&ops, random, near6);
        run_ops::<V6>(&ops, &probes);
    }

    #[test]
    fn v4_bulk_build_matches_model(
        routes in prop::collection::vec((key4(), len4(), 0..8u32), 0..300),
        more in prop::collection::vec((key4(), len4(), 0..8u32), 0..50),
        random in prop::collection::vec(key4(), 0..64),
    ) {
        let mut probes = random;
        for &(k, l, _) in routes.iter().chain(&more) { probes.extend(near4(k, l)); }
        run_bulk::<V4>(&routes, &more, &probes);
    }

    #[test]
    fn v6_bulk_build_matches_model(
        routes in prop::collection::vec((key6(), len6(), 0..8u32), 0..300),
        more in prop::collection::vec((key6(), len6(), 0..8u32), 0..50),
        random in prop::collection::vec(key6(), 0..64),
    ) {
        let mut probes = random;
        for &(k, l, _) in routes.iter().chain(&more) { probes.extend(near6(k, l)); }
        run_bulk::<V6>(&routes, &more, &probes);
    }
}

fn v4(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}
fn a4(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn v4_edges_nested_and_covering() {
    let mut fib = fib::Fib4::new();
    assert_eq!(fib.lookup(a4("0.0.0.0")), None);
    fib.insert(v4("0.0.0.0/0"), NextHopId(0));
    fib.insert(v4("10.0.0.0/8"), NextHopId(8));
    fib.insert(v4("10.1.0.0/16"), NextHopId(16));
    fib.insert(v4("10.1.2.0/24"), NextHopId(24));
    fib.insert(v4("10.1.2.3/32"), NextHopId(32));
    fib.insert(v4("255.255.255.255/32"), NextHopId(99));
    let cases = [
        ("10.1.2.3", 32),
        ("10.1.2.4", 24),
        ("10.1.3.1", 16),
        ("10.2.0.0", 8),
        ("11.0.0.0", 0),
        ("255.255.255.255", 99),
        ("255.255.255.254", 0),
    ];
    for (a, nh) in cases {
        assert_eq!(fib.lookup(a4(a)), Some(NextHopId(nh)), "{a}");
    }
    // Removing a covering prefix exposes the next shorter one, not nothing.
    assert_eq!(fib.remove(v4("10.1.0.0/16")), Some(NextHopId(16)));
    assert_eq!(fib.lookup(a4("10.1.3.1")), Some(NextHopId(8)));
    assert_eq!(fib.lookup(a4("10.1.2.4")), Some(NextHopId(24)));
    assert_eq!(fib.remove(v4("10.0.0.0/8")), Some(NextHopId(8)));
    assert_eq!(fib.lookup(a4("10.1.3.1")), Some(NextHopId(0)));
    assert_eq!(fib.remove(v4("0.0.0.0/0")), Some(NextHopId(0)));
    assert_eq!(fib.lookup(a4("10.1.3.1")), None);
    assert_eq!(fib.lookup(a4("10.1.2.3")), Some(NextHopId(32)));
    // Re-inserting restores, replace changes only what exists, removing twice is a no-op.
    assert_eq!(fib.insert(v4("10.0.0.0/8"), NextHopId(7)), None);
    assert_eq!(fib.lookup(a4("10.1.3.1")), Some(NextHopId(7)));
    assert_eq!(
        fib.replace(v4("10.0.0.0/8"), NextHopId(9)),
        Some(NextHopId(7))
    );
    assert_eq!(fib.replace(v4("10.0.0.0/9"), NextHopId(9)), None);
    assert_eq!(fib.lookup(a4("10.200.0.1")), Some(NextHopId(9)));
    assert_eq!(fib.remove(v4("10.0.0.0/9")), None);
    // Host bits in the prefix are ignored.
    assert_eq!(fib.get(v4("10.1.2.99/24")), Some(NextHopId(24)));
    assert_eq!(fib.len(), 4);
}

#[test]
fn v6_edges() {
    let mut fib = fib::Fib6::new();
    let n = |s: &str| -> ipnet::Ipv6Net { s.parse().unwrap() };
    let a = |s: &str| -> std::net::Ipv6Addr { s.parse().unwrap() };
    fib.insert(n("::/0"), NextHopId(0));
    fib.insert(n("2001:db8::/32"), NextHopId(32));
    fib.insert(n("2001:db8:0:1::/64"), NextHopId(64));
    fib.insert(n("2001:db8:0:1::1/128"), NextHopId(128));
    fib.insert(
        n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
        NextHopId(5),
    );
    assert_eq!(fib.lookup(a("2001:db8:0:1::1")), Some(NextHopId(128)));
    assert_eq!(fib.lookup(a("2001:db8:0:1::2")), Some(NextHopId(64)));
    assert_eq!(fib.lookup(a("2001:db8:1::")), Some(NextHopId(32)));
    assert_eq!(fib.lookup(a("::1")), Some(NextHopId(0)));
    assert_eq!(
        fib.lookup(a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        Some(NextHopId(5))
    );
    assert_eq!(
        fib.lookup(a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")),
        Some(NextHopId(0))
    );
    assert_eq!(fib.remove(n("2001:db8:0:1::/64")), Some(NextHopId(64)));
    assert_eq!(fib.lookup(a("2001:db8:0:1::2")), Some(NextHopId(32)));
    assert_eq!(fib.lookup(a("2001:db8:0:1::1")), Some(NextHopId(128)));
    assert_eq!(fib.remove(n("::/0")), Some(NextHopId(0)));
    assert_eq!(fib.lookup(a("::1")), None);
}

#[test]
#[should_panic(expected = "reserved")]
fn reserved_next_hop_is_refused() {
    fib::Fib4::new().insert(v4("10.0.0.0/8"), NextHopId(u32::MAX));
}

/// Every batch length from empty to past two bursts, in both families: the pipelined
/// batch cuts its steps into runs at PIPE, 2 PIPE, n, n + PIPE, n + 2 PIPE, so each
/// length orders those cuts differently; every answer must match the single lookup.
#[test]
fn every_batch_length_agrees_with_single_lookups() {
    fn check<F: Family>(fib: &Fib<F>, keys: &[F::Key]) {
        for mut reader in readers_on_every_path(fib) {
            let path = reader.cpu_path();
            for n in 0..=keys.len() {
                let addrs: Vec<F::Addr> = keys[..n].iter().map(|&k| F::key_addr(k)).collect();
                let mut out = vec![Some(NextHopId(u32::MAX - 1)); n];
                reader.burst().lookup_batch(&addrs, &mut out);
                for (a, o) in addrs.iter().zip(&out) {
                    assert_eq!(*o, fib.lookup(*a), "batch of {n}, {a:?} ({path:?})");
                }
            }
        }
    }
    let mut rng = fib::synth::Rng::new(5);
    let mut fib4 = fib::Fib4::new();
    for i in 0..2000u32 {
        let len = 8 + (rng.below(25) as u8);
        let net = ipnet::Ipv4Net::new(rng.next_u32().into(), len)
            .unwrap()
            .trunc();
        fib4.insert(net, NextHopId(i % 7));
    }
    let keys4: Vec<u32> = (0..140).map(|_| rng.next_u32()).collect();
    check(&fib4, &keys4);
    let mut fib6 = fib::Fib6::new();
    let nets6 = fib::synth::realistic_v6(2000, 5);
    for (i, n) in nets6.iter().enumerate() {
        fib6.insert(*n, NextHopId(i as u32 % 7));
    }
    let keys6: Vec<u128> = (0..140)
        .map(|i| u128::from(nets6[i * 7].network()) | (rng.next_u128() >> 64))
        .collect();
    check(&fib6, &keys6);
}

/// A small IPv6 table crowded into one chunk, as real tables are (a few RIR /12s hold
/// nearly all prefixes): its walks are deep, so batches take the level-by-level lanes
/// whatever the table's size; a sparse table of the same size keeps the pipeline.
#[test]
fn deep_small_v6_tables_walk_level_by_level() {
    let mut rng = fib::synth::Rng::new(11);
    let base: u128 = 0x2a00_0000 << 96; // 2a00::/18, one chunk
    let dense = fib::Fib6::from_routes((0..5000u32).map(|i| {
        let len = 32 + rng.below(17) as u8; // /32 .. /48 under it
        let key = base | (rng.next_u128() >> 18);
        let net = ipnet::Ipv6Net::new(key.into(), len).unwrap().trunc();
        (net, NextHopId(i % 13))
    }));
    // Below the size at which every IPv6 table walks level by level (11 MiB).
    assert!(
        dense.memory_bytes() < 10 << 20,
        "{} bytes",
        dense.memory_bytes()
    );
    assert_eq!(dense.batch_method(), "levels");
    let sparse = fib::Fib6::from_routes(
        fib::synth::realistic_v6(5000, 11)
            .into_iter()
            .map(|n| (n, NextHopId(1))),
    );
    assert_eq!(sparse.batch_method(), "pipeline");
    // Both answer batches as single lookups do.
    for fib in [&dense, &sparse] {
        let addrs: Vec<std::net::Ipv6Addr> = (0..300)
            .map(|_| (base | (rng.next_u128() >> 18)).into())
            .collect();
        let mut out = vec![None; addrs.len()];
        fib.reader().burst().lookup_batch(&addrs, &mut out);
        for (a, o) in addrs.iter().zip(&out) {
            assert_eq!(*o, fib.lookup(*a), "{a}");
        }
    }
}

/// One IPv6 chunk crowded with routes, as real tables crowd (2001::/18 holds 21,585
/// prefixes), and a dense /32 inside it: lookups and batches by either method answer as
/// the model does while the chunk fills, changes and empties, on every CPU path; a batch
/// builds the same blocks.
#[test]
fn crowded_v6_chunks_match_the_model_with_both_batch_methods() {
    use fib::{Fib6, Update};
    let mut rng = fib::synth::Rng::new(23);
    let base: u128 = 0x2a00_0000 << 96; // 2a00::/18, one chunk
    let in_chunk = |rng: &mut fib::synth::Rng| base | (rng.next_u128() >> 18);
    // Every length from /19 (painted over most of the chunk) to /40, then the common
    // longer ones and hosts.
    let lengths: Vec<u8> = (19..=40).chain([44, 48, 56, 64, 127, 128]).collect();
    let mut routes: Vec<(ipnet::Ipv6Net, u32)> = Vec::new();
    for _ in 0..700 {
        let len = lengths[rng.below(lengths.len() as u64) as usize];
        let net = ipnet::Ipv6Net::new(in_chunk(&mut rng).into(), len)
            .unwrap()
            .trunc();
        routes.push((net, rng.below(9) as u32));
    }
    // And 300 under one /32 of it: deep subtrees below a dense one.
    for _ in 0..300 {
        let len = 33 + rng.below(40) as u8;
        let key = 0x2a00_1234 << 96 | (rng.next_u128() >> 32);
        let net = ipnet::Ipv6Net::new(key.into(), len).unwrap().trunc();
        routes.push((net, rng.below(9) as u32));
    }
    // A short prefix painting the chunk's default, and (once) a sparse table beside.
    let cover: ipnet::Ipv6Net = "2a00::/12".parse().unwrap();
    let sparse = fib::synth::realistic_v6(3000, 23);
    let runs = [false, true]
        .into_iter()
        .flat_map(|pipelined| Path::available().into_iter().map(move |p| (pipelined, p)));
    for (pipelined, path) in runs {
        let mut fib = Fib6::new();
        let method = if pipelined { "pipeline" } else { "levels" };
        fib.force_batch_method(Some(method));
        fib.force_cpu_path(path);
        let mut reader = fib.reader();
        let mut model = Model::<V6>::default();
        fib.insert(cover, NextHopId(77));
        model.insert(u128::from(cover.network()), 12, 77);
        if pipelined {
            for (i, n) in sparse.iter().enumerate() {
                fib.insert(*n, NextHopId(100 + i as u32 % 5));
                model.insert(u128::from(n.network()), n.prefix_len(), 100 + i as u32 % 5);
            }
        }
        let mut probes: Vec<u128> = (0..400).map(|_| in_chunk(&mut rng)).collect();
        for (n, _) in &routes {
            probes.extend(near6(u128::from(n.network()), n.prefix_len()));
        }
        let check = |fib: &Fib6, reader: &mut fib::Reader6, model: &Model<V6>, at: &str| {
            let view = reader.burst();
            let addrs: Vec<std::net::Ipv6Addr> = probes.iter().map(|&p| p.into()).collect();
            let mut out = vec![None; addrs.len()];
            view.lookup_batch(&addrs, &mut out);
            for (a, o) in addrs.iter().zip(&out) {
                let want = model.lookup(u128::from(*a));
                assert_eq!(fib.lookup(*a), want, "{at}: {a}");
                assert_eq!(view.lookup(*a), want, "{at}: reader {a}");
                let how = (fib.batch_method(), path);
                assert_eq!(*o, want, "{at}: batch {how:?} {a}");
            }
        };
        for (i, &(net, nh)) in routes.iter().enumerate() {
            fib.insert(net, NextHopId(nh));
            model.insert(u128::from(net.network()), net.prefix_len(), nh);
            if i % 50 == 49 {
                check(&fib, &mut reader, &model, &format!("{i} inserted"));
            }
        }
        assert_eq!(fib.batch_method(), method);
        // Change next hops in place, and the default under the chunk.
        for (net, nh) in routes.iter_mut().step_by(3) {
            *nh = (*nh + 1) % 9;
            fib.insert(*net, NextHopId(*nh));
            model.insert(u128::from(net.network()), net.prefix_len(), *nh);
        }
        fib.insert(cover, NextHopId(78));
        model.insert(u128::from(cover.network()), 12, 78);
        check(&fib, &mut reader, &model, "changed");
        // The same table built by one batch of updates has the same blocks.
        let mut batched = Fib6::new();
        let mut updates: Vec<Update<ipnet::Ipv6Net>> = model
            .routes
            .iter()
            .map(|(&(k, l), &nh)| Update::Insert(V6::make_net(k, l), NextHopId(nh)))
            .collect();
        updates.sort_by_key(|u| match u {
            Update::Insert(n, _) | Update::Remove(n) => (n.network(), n.prefix_len()),
        });
        batched.apply(&updates);
        assert_eq!(batched.block_bytes(), fib.block_bytes());
        // Empty the chunk again, checking on the way.
        let mut held: Vec<(u128, u8)> = model.routes.keys().copied().collect();
        held.sort();
        // In a scattered order: 7919 is prime, so j * 7919 mod len visits every index.
        for j in 0..held.len() {
            let (k, l) = held[j * 7919 % held.len()];
            if l == 12 {
                continue;
            }
            assert_eq!(
                fib.remove(V6::make_net(k, l)).map(|n| n.0),
                model.remove(k, l)
            );
            if j % 97 == 0 {
                check(&fib, &mut reader, &model, &format!("{j} removed"));
            }
        }
        check(&fib, &mut reader, &model, "all removed but the cover");
        assert_eq!(fib.block_bytes(), 0);
        reader.offline();
        fib.synchronize();
    }
}

/// The process's path is one this CPU can run, and the fast one whenever it can
/// (unless forced to baseline for a measurement).
#[test]
fn the_chosen_cpu_path_is_runnable() {
    let path = fib::cpu::path();
    assert!(path.supported());
    let forced = std::env::var("VROUTER_CPU").is_ok_and(|v| v == "baseline");
    if Path::Fast.supported() && !forced {
        assert_eq!(path, Path::Fast);
    }
    assert!(Path::available().contains(&Path::Baseline));
    assert!(fib::cpu::describe().contains(path.name()));
    assert_eq!(Fib::<V4>::new().reader().cpu_path(), path);
}
