//! Concurrent stress: one writer applies random updates while readers look up; every
//! answer must be the reference answer of a state between the last update completed
//! before the lookup and the one being applied after it: never anything else.
//! Freed blocks are poisoned in test builds, so a use-after-free shows up as a wrong answer.

mod common;

use common::Model;
use fib::synth::Rng;
use fib::{Family, Fib, NextHopId, V4, V6};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

enum Update<K> {
    Insert(K, u8, u32),
    Remove(K, u8),
}

struct Plan<F: Family> {
    initial: Vec<(F::Key, u8, u32)>,
    updates: Vec<Update<F::Key>>,
    probes: Vec<F::Key>,
    /// answers[i * probes.len() + p]: the model's answer for probe p after i updates.
    answers: Vec<Option<NextHopId>>,
}

/// `background` routes are in the table from the start but never updated (they make the
/// table big); updates and probes stay among the `random_prefix` ones, where they collide.
fn plan<F: Family>(
    seed: u64,
    background: &[(F::Key, u8)],
    n_initial: usize,
    n_updates: usize,
    random_prefix: impl Fn(&mut Rng) -> (F::Key, u8),
    random_in: impl Fn(&mut Rng, F::Key, u8) -> F::Key,
) -> Plan<F> {
    let mut rng = Rng::new(seed);
    let mut model = Model::<F>::default();
    let mut initial = Vec::new();
    for &(k, l) in background {
        let nh = rng.below(1000) as u32;
        model.insert(k, l, nh);
        initial.push((k, l, nh));
    }
    let mut live: Vec<(F::Key, u8)> = Vec::new();
    for _ in 0..n_initial {
        let (k, l) = random_prefix(&mut rng);
        let nh = rng.below(1000) as u32;
        model.insert(k, l, nh);
        initial.push((k, l, nh));
        if !live.contains(&(k, l)) {
            live.push((k, l));
        }
    }
    live.sort();
    let mut updates = Vec::new();
    for _ in 0..n_updates {
        if rng.below(2) == 0 && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            let (k, l) = live.swap_remove(i);
            updates.push(Update::Remove(k, l));
        } else {
            let (k, l) = random_prefix(&mut rng);
            if !live.contains(&(k, l)) {
                live.push((k, l));
            }
            updates.push(Update::Insert(k, l, rng.below(1000) as u32));
        }
    }
    // Probes sit inside prefixes the updates touch, so answers really change.
    let mut probes = Vec::new();
    for u in updates.iter().take(200) {
        let (Update::Insert(k, l, _) | Update::Remove(k, l)) = *u;
        probes.push(random_in(&mut rng, k, l));
    }
    let mut answers = Vec::with_capacity((n_updates + 1) * probes.len());
    answers.extend(probes.iter().map(|&p| model.lookup(p)));
    for u in &updates {
        match *u {
            Update::Insert(k, l, nh) => {
                model.insert(k, l, nh);
            }
            Update::Remove(k, l) => {
                model.remove(k, l);
            }
        }
        answers.extend(probes.iter().map(|&p| model.lookup(p)));
    }
    Plan {
        initial,
        updates,
        probes,
        answers,
    }
}

fn stress<F: Family>(plan: Plan<F>, readers: usize, batch_method: &str) {
    let plan = Arc::new(plan);
    let mut fib = Fib::<F>::from_routes(
        plan.initial
            .iter()
            .map(|&(k, l, nh)| (F::make_net(k, l), NextHopId(nh))),
    );
    assert_eq!(fib.batch_method(), batch_method);
    let applied = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let n = plan.probes.len();
    let mut threads = Vec::new();
    for r in 0..readers {
        let mut reader = fib.reader();
        let (plan, applied, stop) = (plan.clone(), applied.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let addrs: Vec<F::Addr> = plan.probes.iter().map(|&p| F::key_addr(p)).collect();
            let mut out = vec![None; n];
            let mut checked = 0u64;
            let ok = |i: usize, before: usize, after: usize, got: Option<NextHopId>| {
                let last = (after + 1).min(plan.updates.len());
                (before..=last).any(|s| plan.answers[s * n + i] == got)
            };
            while !stop.load(Ordering::Relaxed) {
                let before = applied.load(Ordering::Acquire);
                let view = reader.burst();
                if r % 2 == 0 {
                    view.lookup_batch(&addrs, &mut out);
                } else {
                    for (o, a) in out.iter_mut().zip(&addrs) {
                        *o = view.lookup(*a);
                    }
                }
                let after = applied.load(Ordering::Acquire);
                for (i, &got) in out.iter().enumerate() {
                    assert!(
                        ok(i, before, after, got),
                        "reader {r}: probe {:?} answered {got:?}, not a state in {before}..={}",
                        addrs[i],
                        after + 1
                    );
                    checked += 1;
                }
            }
            checked
        }));
    }
    for (i, u) in plan.updates.iter().enumerate() {
        match *u {
            Update::Insert(k, l, nh) => {
                fib.insert(F::make_net(k, l), NextHopId(nh));
            }
            Update::Remove(k, l) => {
                fib.remove(F::make_net(k, l));
            }
        }
        applied.store(i + 1, Ordering::Release);
        if i % 64 == 0 {
            std::thread::yield_now();
        }
    }
    // Let the readers see the final state, then check reclamation kept up.
    std::thread::sleep(std::time::Duration::from_millis(50));
    fib.synchronize();
    assert_eq!(fib.retired_blocks(), 0);
    stop.store(true, Ordering::Relaxed);
    let checked: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for c in &checked {
        assert!(*c > 0, "every reader checked answers: {checked:?}");
    }
    let last = plan.updates.len();
    for (i, &p) in plan.probes.iter().enumerate() {
        assert_eq!(fib.lookup(F::key_addr(p)), plan.answers[last * n + i]);
    }
}

fn prefix4(rng: &mut Rng) -> (u32, u8) {
    // Clustered in 10.0.0.0/12 so updates nest; lengths span short (painted) and long.
    let len = [
        8u8, 12, 14, 16, 17, 18, 19, 20, 22, 24, 24, 24, 25, 28, 30, 32,
    ][rng.below(16) as usize];
    let key = 0x0A00_0000 | (rng.next_u32() >> 12);
    (V4::mask(key, len), len)
}
fn in4(rng: &mut Rng, k: u32, l: u8) -> u32 {
    k | (rng.next_u32()
        & if l == 0 {
            u32::MAX
        } else {
            !(u32::MAX << (32 - l as u32))
        })
}
fn prefix6(rng: &mut Rng) -> (u128, u8) {
    let len = [12u8, 16, 20, 32, 40, 44, 48, 48, 48, 56, 64, 128][rng.below(12) as usize];
    let key = (0x2001_0db8u128 << 96) | (rng.next_u128() >> 28);
    (V6::mask(key, len), len)
}
fn in6(rng: &mut Rng, k: u128, l: u8) -> u128 {
    k | (rng.next_u128()
        & if l == 0 {
            u128::MAX
        } else {
            !(u128::MAX << (128 - l as u32))
        })
}

#[test]
fn v4_readers_see_only_whole_updates() {
    stress::<V4>(
        plan::<V4>(1, &[], 5_000, 4_000, prefix4, in4),
        2,
        "pipeline",
    );
}

/// Everything under 2001:db8::/32, one chunk: deep walks, so batches take the lanes
/// (as on real tables) although the table is small.
#[test]
fn v6_readers_see_only_whole_updates() {
    stress::<V6>(plan::<V6>(2, &[], 5_000, 4_000, prefix6, in6), 2, "levels");
}

/// The same lengths spread over 2000::/4: shallow walks, the software pipeline.
fn prefix6_sparse(rng: &mut Rng) -> (u128, u8) {
    let len = [12u8, 16, 20, 32, 40, 44, 48, 48, 48, 56, 64, 128][rng.below(12) as usize];
    let key = (0x2u128 << 124) | (rng.next_u128() >> 4);
    (V6::mask(key, len), len)
}

#[test]
fn v6_sparse_readers_see_only_whole_updates() {
    stress::<V6>(
        plan::<V6>(3, &[], 5_000, 4_000, prefix6_sparse, in6),
        2,
        "pipeline",
    );
}

/// Random global prefixes with a realistic length mix: a table this big (200K) is past the
/// cache-size hint, so IPv6 batches walk level by level; this checks that path under
/// concurrent updates too.
fn global6(rng: &mut Rng) -> (u128, u8) {
    let len = [29u8, 32, 36, 40, 44, 48, 48, 48, 48, 56, 64, 128][rng.below(12) as usize];
    let key = (rng.next_u128() >> 3) | (1 << 125);
    (V6::mask(key, len), len)
}

#[test]
fn v6_big_table_readers_see_only_whole_updates() {
    let mut rng = Rng::new(30);
    let background: Vec<(u128, u8)> = (0..200_000).map(|_| global6(&mut rng)).collect();
    stress::<V6>(
        plan::<V6>(3, &background, 5_000, 4_000, prefix6, in6),
        2,
        "levels",
    );
}
