//! Resilient ECMP groups: a route with several next hops points at a group, a table of
//! `BUCKETS` next-hop ids; a flow's hash (`encap::flow::hash`) picks a bucket. When a
//! next hop leaves, only its buckets move (to the least loaded survivors), so flows on
//! the other next hops keep their path; when one joins, it takes buckets from the most
//! loaded. Loads stay within one bucket of each other. One writer re-plans a group and
//! stores each changed bucket (one atomic store each); workers read without locks.

use std::sync::atomic::{AtomicU32, Ordering};

/// Buckets per group: 64 keeps 2–8 next hops within ±1/64 of an even split.
pub const BUCKETS: usize = 64;

/// Plan a group's buckets for `members` (distinct next-hop ids, at least one), starting
/// from `prev` (the current buckets, or `None` for a new group).
pub fn plan(prev: Option<&[u32; BUCKETS]>, members: &[u32]) -> [u32; BUCKETS] {
    assert!(!members.is_empty(), "an ECMP group needs a next hop");
    let n = members.len();
    // Each member's fair share: BUCKETS / n, the first BUCKETS % n get one more.
    let share = |i: usize| BUCKETS / n + usize::from(i < BUCKETS % n);
    let mut out = [u32::MAX; BUCKETS];
    let mut load = vec![0usize; n];
    if let Some(prev) = prev {
        // Keep every bucket whose member stays, up to that member's share.
        for (b, &m) in prev.iter().enumerate() {
            if let Some(i) = members.iter().position(|&x| x == m) {
                if load[i] < share(i) {
                    out[b] = m;
                    load[i] += 1;
                }
            }
        }
    }
    // Give the free buckets to members below their share, in order.
    let mut i = 0;
    for slot in out.iter_mut().filter(|s| **s == u32::MAX) {
        while load[i] >= share(i) {
            i += 1;
        }
        *slot = members[i];
        load[i] += 1;
    }
    out
}

/// Groups shared by the control thread (writer) and workers (readers).
pub struct GroupTable {
    groups: Box<[[AtomicU32; BUCKETS]]>,
}

impl GroupTable {
    pub fn new(capacity: usize) -> GroupTable {
        GroupTable {
            groups: (0..capacity)
                .map(|_| std::array::from_fn(|_| AtomicU32::new(u32::MAX)))
                .collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.groups.len()
    }

    /// The group's current buckets.
    pub fn buckets(&self, group: u32) -> [u32; BUCKETS] {
        let g = &self.groups[group as usize];
        std::array::from_fn(|b| g[b].load(Ordering::Relaxed))
    }

    /// Re-plan `group` for `members`, moving as few buckets as possible.
    pub fn set(&self, group: u32, members: &[u32]) {
        let prev = self.buckets(group);
        let fresh = prev.iter().all(|&m| m == u32::MAX);
        let next = plan((!fresh).then_some(&prev), members);
        for (b, (&old, &new)) in prev.iter().zip(&next).enumerate() {
            if old != new {
                self.groups[group as usize][b].store(new, Ordering::Release);
            }
        }
    }

    /// The next hop for a flow.
    #[inline]
    pub fn pick(&self, group: u32, flow_hash: u32) -> u32 {
        let b = ((flow_hash as u64 * BUCKETS as u64) >> 32) as usize;
        self.groups[group as usize][b].load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loads(b: &[u32; BUCKETS], members: &[u32]) -> Vec<usize> {
        members
            .iter()
            .map(|m| b.iter().filter(|&&x| x == *m).count())
            .collect()
    }

    #[test]
    fn flows_spread_evenly_over_four_next_hops() {
        let t = GroupTable::new(1);
        t.set(0, &[10, 11, 12, 13]);
        let mut count = [0u32; 4];
        for f in 0..40_000u32 {
            let h = encap::flow::hash(&{
                let mut ip = [0u8; 28];
                ip[0] = 0x45;
                ip[9] = 17;
                ip[12..16].copy_from_slice(&[10, 244, 1, 2]);
                ip[16..20].copy_from_slice(&[10, 244, 2, 3]);
                ip[20..22].copy_from_slice(&(f as u16).to_be_bytes());
                ip[22..24].copy_from_slice(&((f >> 16) as u16 + 80).to_be_bytes());
                ip
            });
            count[(t.pick(0, h) - 10) as usize] += 1;
        }
        for c in count {
            assert!((8_000..12_000).contains(&c), "{count:?} is not within ±20%");
        }
    }

    proptest! {
        #[test]
        fn only_a_leaving_next_hops_buckets_move(
            members in prop::collection::btree_set(0u32..50, 1..9),
            leave in any::<prop::sample::Index>(),
            join in 50u32..60,
        ) {
            let members: Vec<u32> = members.into_iter().collect();
            let before = plan(None, &members);
            // Loads within one bucket of each other.
            let l = loads(&before, &members);
            prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "{:?}", l);
            prop_assert_eq!(l.iter().sum::<usize>(), BUCKETS);
            if members.len() > 1 {
                let gone = members[leave.index(members.len())];
                let rest: Vec<u32> = members.iter().copied().filter(|&m| m != gone).collect();
                let after = plan(Some(&before), &rest);
                for b in 0..BUCKETS {
                    if before[b] != gone {
                        prop_assert_eq!(after[b], before[b], "bucket {} moved", b);
                    } else {
                        prop_assert!(rest.contains(&after[b]));
                    }
                }
                let l = loads(&after, &rest);
                prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1);
            }
            // A joining next hop takes only what it needs: nobody else's buckets swap.
            let mut more = members.clone();
            more.push(join);
            let after = plan(Some(&before), &more);
            let moved = (0..BUCKETS).filter(|&b| after[b] != before[b]).count();
            prop_assert!(moved <= BUCKETS / more.len() + 1, "{} moved", moved);
            for b in 0..BUCKETS {
                prop_assert!(after[b] == before[b] || after[b] == join);
            }
        }
    }
}
