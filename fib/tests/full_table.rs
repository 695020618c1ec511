//! Full-table fixtures with exact counts: the default benchmark tables (fixed seed),
//! counted independently with a HashSet, then checked lookup by lookup against the model.

mod common;

use common::Model;
use fib::synth::{self, Rng, DEFAULT_SEED};
use fib::{Family, Fib, NextHopId, V4, V6};
use std::collections::{BTreeMap, HashSet};

fn check_table<F: Family>(
    nets: &[F::Net],
    batch_method: &str,
    random_key: impl Fn(&mut Rng) -> F::Key,
) -> (usize, BTreeMap<u8, usize>) {
    // The independent count: distinct (network, length) pairs.
    let unique: HashSet<(F::Key, u8)> = nets.iter().map(F::net_parts).collect();
    let mut per_len = BTreeMap::new();
    for (_, l) in &unique {
        *per_len.entry(*l).or_insert(0usize) += 1;
    }

    let mut model = Model::<F>::default();
    for (i, net) in nets.iter().enumerate() {
        let (k, l) = F::net_parts(net);
        model.insert(k, l, i as u32 % 4096);
    }
    let fib = Fib::<F>::from_routes(
        nets.iter()
            .enumerate()
            .map(|(i, n)| (*n, NextHopId(i as u32 % 4096))),
    );
    assert_eq!(fib.len(), unique.len());
    assert_eq!(fib.routes().count(), unique.len());
    assert_eq!(fib.batch_method(), batch_method);

    let mut rng = Rng::new(99);
    let mut hits = 0;
    let mut reader = fib.reader();
    let mut out = vec![None; 1000];
    for _ in 0..200 {
        let keys: Vec<F::Key> = (0..1000).map(|_| random_key(&mut rng)).collect();
        let addrs: Vec<F::Addr> = keys.iter().map(|&k| F::key_addr(k)).collect();
        // A full table is past the cache-size hint: IPv6 batches take the level-by-level
        // walk here (small tables in the property tests take the pipeline).
        reader.burst().lookup_batch(&addrs, &mut out);
        for ((&k, a), got) in keys.iter().zip(&addrs).zip(&out) {
            let want = model.lookup(k);
            hits += want.is_some() as usize;
            assert_eq!(fib.lookup(*a), want, "{a:?}");
            assert_eq!(*got, want, "batch {a:?}");
        }
    }
    assert!(hits > 0);
    drop(reader);

    // Delete every other prefix one by one, then compare again, and count what is left.
    let mut fib = fib;
    let mut all: Vec<(F::Key, u8)> = unique.iter().copied().collect();
    all.sort();
    for (k, l) in all.iter().step_by(2) {
        assert!(fib.remove(F::make_net(*k, *l)).is_some());
        model.remove(*k, *l);
    }
    assert_eq!(fib.len(), unique.len() - all.len().div_ceil(2));
    for _ in 0..100_000 {
        let k = random_key(&mut rng);
        assert_eq!(fib.lookup(F::key_addr(k)), model.lookup(k));
    }
    (unique.len(), per_len)
}

#[test]
fn dpdk_v4_full_table() {
    let nets = synth::dpdk_v4(synth::DPDK_V4_TOTAL, DEFAULT_SEED);
    assert_eq!(nets.len(), 1_076_806);
    let mut per_len_drawn = BTreeMap::new();
    for n in &nets {
        *per_len_drawn.entry(n.prefix_len()).or_insert(0u32) += 1;
    }
    let want: BTreeMap<u8, u32> = synth::DPDK_V4_LENGTHS.iter().copied().collect();
    assert_eq!(
        per_len_drawn, want,
        "drawn exactly DPDK's counts per length"
    );

    let (unique, per_len) = check_table::<V4>(&nets, "pipeline", |r| r.next_u32());
    // Pinned so a change to the generator (and so to every benchmark figure) is noticed.
    assert_eq!(unique, PINNED_V4_UNIQUE, "per length: {per_len:?}");
    assert_eq!(per_len[&16], PINNED_V4_UNIQUE_16);
    assert_eq!(per_len[&24], PINNED_V4_UNIQUE_24);
}

#[test]
fn realistic_v6_full_table() {
    let nets = synth::realistic_v6(synth::DEFAULT_V6_TOTAL, DEFAULT_SEED);
    assert_eq!(nets.len(), 200_000);
    // Lookups land inside table prefixes half of the time, elsewhere in 2000::/3 otherwise.
    let sample = nets.clone();
    let (unique, per_len) = check_table::<V6>(&nets, "levels", move |r| {
        if r.below(2) == 0 {
            let (k, l) = V6::net_parts(&sample[r.below(sample.len() as u64) as usize]);
            k | (r.next_u128()
                & if l == 0 {
                    u128::MAX
                } else {
                    !(u128::MAX << (128 - l as u32))
                })
        } else {
            (r.next_u128() >> 3) | (1 << 125)
        }
    });
    assert_eq!(unique, PINNED_V6_UNIQUE, "per length: {per_len:?}");
    assert_eq!(per_len[&48], PINNED_V6_UNIQUE_48);
}

const PINNED_V4_UNIQUE: usize = 1_030_287;
const PINNED_V4_UNIQUE_16: usize = 42_735;
const PINNED_V4_UNIQUE_24: usize = 573_788;
const PINNED_V6_UNIQUE: usize = 199_990;
const PINNED_V6_UNIQUE_48: usize = 99_212;
