//! Per-worker packet counters: each worker owns one cache-padded block and publishes it
//! once per burst with plain stores (one writer, so no atomic read-modify-write);
//! readers sum every worker's block on demand.

use crate::burst::{BackendStats, DropReason};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

const N_DROPS: usize = DropReason::ALL.len();

/// Counts as a worker accumulates them during a burst (plain integers, on its stack).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub rx: u64,
    pub tx: u64,
    pub to_kernel: u64,
    pub replies: u64,
    /// ICMP errors sent in place of a dropped packet (also counted as tx and as the drop).
    pub icmp_errors: u64,
    /// Frames held for a next hop being resolved (they later count as tx or a drop).
    pub held: u64,
    /// IPv4 packets (DF clear) sent as fragments because the egress MTU was smaller.
    pub fragmented: u64,
    /// Tunnel packets to the node unwrapped (their inner packets then count as usual).
    pub decapsulated: u64,
    /// Packets whose addresses NAT outgoing rewrote (out to the world and back).
    pub nat_translated: u64,
    /// Frames passed to the worker that owns their flow (NAT replies; with policy, the
    /// worker of the flow's endpoint).
    pub handed_off: u64,
    pub drops: [u64; N_DROPS],
}

impl Tally {
    /// How many counts besides the drops (`TALLY` describes them).
    pub const COUNT: usize = 10;

    /// The counts besides the drops, in `TALLY` order.
    #[inline]
    pub fn values(&self) -> [u64; Self::COUNT] {
        [
            self.rx,
            self.tx,
            self.to_kernel,
            self.replies,
            self.icmp_errors,
            self.held,
            self.fragmented,
            self.decapsulated,
            self.nat_translated,
            self.handed_off,
        ]
    }

    fn add_values(&mut self, v: [u64; Self::COUNT]) {
        let [rx, tx, to_kernel, replies, icmp_errors, held, fragmented, decapsulated, nat_translated, handed_off] =
            v;
        self.rx += rx;
        self.tx += tx;
        self.to_kernel += to_kernel;
        self.replies += replies;
        self.icmp_errors += icmp_errors;
        self.held += held;
        self.fragmented += fragmented;
        self.decapsulated += decapsulated;
        self.nat_translated += nat_translated;
        self.handed_off += handed_off;
    }

    #[inline]
    pub fn drop(&mut self, why: DropReason) {
        self.drops[why as usize] += 1;
    }

    pub fn dropped(&self, why: DropReason) -> u64 {
        self.drops[why as usize]
    }
}

/// One worker's published counters: `Tally::values` in order, then the drops.
pub struct WorkerCounters {
    counts: [AtomicU64; Tally::COUNT],
    drops: [AtomicU64; N_DROPS],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A counter as it is shown: its key in the stats file and the API, its Prometheus
/// family and help text. `TALLY` lists the pipeline's, in `Tally::values` order; the
/// stats file, the API's stats and /metrics are all made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    pub key: &'static str,
    pub metric: &'static str,
    pub help: &'static str,
}

const fn spec(key: &'static str, metric: &'static str, help: &'static str) -> CounterSpec {
    CounterSpec { key, metric, help }
}

pub const TALLY: [CounterSpec; Tally::COUNT] = [
    spec(
        "rx",
        "vrouter_rx_packets_total",
        "Frames received by the workers.",
    ),
    spec(
        "tx",
        "vrouter_tx_packets_total",
        "Frames sent by the workers.",
    ),
    spec(
        "to_kernel",
        "vrouter_to_kernel_packets_total",
        "Frames handed to the kernel.",
    ),
    spec(
        "replies",
        "vrouter_replies_total",
        "ARP / ND / ICMP replies the node answered.",
    ),
    spec(
        "icmp_errors",
        "vrouter_icmp_errors_total",
        "ICMP errors sent.",
    ),
    spec(
        "held",
        "vrouter_held_packets_total",
        "Frames held for a next hop being resolved.",
    ),
    spec(
        "fragmented",
        "vrouter_fragmented_packets_total",
        "IPv4 packets fragmented on egress.",
    ),
    spec(
        "decapsulated",
        "vrouter_decapsulated_packets_total",
        "Tunnel packets unwrapped.",
    ),
    spec(
        "nat_translated",
        "vrouter_nat_translated_packets_total",
        "Packets NAT outgoing rewrote (pods' to the outside and the replies).",
    ),
    spec(
        "handed_off",
        "vrouter_nat_handed_off_packets_total",
        "Frames passed to the worker owning their flow (NAT replies; policy: the flow's endpoint's worker).",
    ),
];

/// A worker's connection tracking as published (a few times a second): what its flow
/// table holds (gauges) and what became of flows (totals).
pub const CONNTRACK: [CounterSpec; 6] = [
    spec("flows", "vrouter_conntrack_flows", "Flows tracked now."),
    spec(
        "capacity",
        "vrouter_conntrack_capacity",
        "Flows the table holds at most.",
    ),
    spec("created", "vrouter_conntrack_created_total", "Flows made."),
    spec(
        "expired",
        "vrouter_conntrack_expired_total",
        "Flows aged out.",
    ),
    spec(
        "evicted",
        "vrouter_conntrack_evicted_total",
        "Unreplied or closing flows evicted to make room for new ones.",
    ),
    spec(
        "refused_full",
        "vrouter_conntrack_refused_total",
        "New flows refused: the table was full of flows that may not be evicted.",
    ),
];

/// The counters of every worker.
pub struct Counters {
    workers: Box<[CachePadded<WorkerCounters>]>,
    /// Each worker's backend counts (`io::BackendStats::values`), stored whole.
    backend: Box<[CachePadded<[AtomicU64; BackendStats::COUNT]>]>,
    /// Each worker's heartbeat: bumped with every backend publication (a few times a
    /// second while its loop runs, busy or idle), read by the systemd watchdog.
    heartbeats: Box<[CachePadded<AtomicU64>]>,
    /// Each worker's `CONNTRACK` values, stored whole.
    conntrack: Box<[CachePadded<[AtomicU64; CONNTRACK.len()]>]>,
}

impl Counters {
    pub fn new(workers: usize) -> Counters {
        Counters {
            workers: (0..workers)
                .map(|_| CachePadded::new(WorkerCounters::default()))
                .collect(),
            backend: (0..workers).map(|_| CachePadded::default()).collect(),
            heartbeats: (0..workers).map(|_| CachePadded::default()).collect(),
            conntrack: (0..workers).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Store worker `w`'s connection tracking figures (`CONNTRACK` order).
    pub fn publish_conntrack(&self, w: usize, values: [u64; CONNTRACK.len()]) {
        for (a, v) in self.conntrack[w].iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// Worker `w`'s connection tracking figures.
    pub fn conntrack(&self, w: usize) -> [u64; CONNTRACK.len()] {
        std::array::from_fn(|k| self.conntrack[w][k].load(Ordering::Relaxed))
    }

    /// Summed over workers.
    pub fn conntrack_total(&self) -> [u64; CONNTRACK.len()] {
        let mut t = [0u64; CONNTRACK.len()];
        for w in 0..self.conntrack.len() {
            for (s, v) in t.iter_mut().zip(self.conntrack(w)) {
                *s += v;
            }
        }
        t
    }

    /// Store worker `w`'s backend counts (totals so far). Only worker `w` calls this.
    pub fn publish_backend(&self, w: usize, values: [u64; BackendStats::COUNT]) {
        for (a, v) in self.backend[w].iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
        let h = &self.heartbeats[w];
        h.store(h.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Every worker's heartbeat (see `publish_backend`).
    pub fn heartbeats(&self) -> Vec<u64> {
        self.heartbeats
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect()
    }

    /// Backend counts summed over workers.
    pub fn backend_total(&self) -> [u64; BackendStats::COUNT] {
        let mut t = [0u64; BackendStats::COUNT];
        for b in self.backend.iter() {
            for (s, a) in t.iter_mut().zip(b.iter()) {
                *s += a.load(Ordering::Relaxed);
            }
        }
        t
    }

    /// Add a burst's tally to worker `w`'s counters. Only worker `w` calls this.
    #[inline]
    pub fn publish(&self, w: usize, t: &Tally) {
        let c = &self.workers[w];
        let add = |a: &AtomicU64, v: u64| {
            if v != 0 {
                a.store(a.load(Ordering::Relaxed) + v, Ordering::Relaxed);
            }
        };
        for (a, v) in c.counts.iter().zip(t.values()) {
            add(a, v);
        }
        for (a, v) in c.drops.iter().zip(t.drops) {
            add(a, v);
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// One worker's counters.
    pub fn worker(&self, w: usize) -> Tally {
        self.sum(std::slice::from_ref(&self.workers[w]))
    }

    /// The sum over all workers.
    pub fn total(&self) -> Tally {
        self.sum(&self.workers)
    }

    fn sum(&self, workers: &[CachePadded<WorkerCounters>]) -> Tally {
        let mut t = Tally::default();
        for c in workers.iter() {
            t.add_values(c.counts.each_ref().map(|a| a.load(Ordering::Relaxed)));
            for (s, a) in t.drops.iter_mut().zip(c.drops.iter()) {
                *s += a.load(Ordering::Relaxed);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_table_names_each_field_once_in_order() {
        let t = Tally {
            rx: 1,
            tx: 2,
            to_kernel: 3,
            replies: 4,
            icmp_errors: 5,
            held: 6,
            fragmented: 7,
            decapsulated: 8,
            nat_translated: 9,
            handed_off: 10,
            ..Default::default()
        };
        let keys: Vec<&str> = TALLY.iter().map(|c| c.key).collect();
        assert_eq!(
            keys,
            [
                "rx",
                "tx",
                "to_kernel",
                "replies",
                "icmp_errors",
                "held",
                "fragmented",
                "decapsulated",
                "nat_translated",
                "handed_off"
            ]
        );
        assert_eq!(t.values(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        for c in &TALLY {
            assert!(c.metric.starts_with("vrouter_") && c.metric.ends_with("_total"));
            assert!(!c.help.is_empty());
        }
        // Published and summed back through the same order.
        let counters = Counters::new(1);
        counters.publish(0, &t);
        assert_eq!(counters.total(), t);
    }

    #[test]
    fn workers_publish_and_totals_sum() {
        let c = std::sync::Arc::new(Counters::new(2));
        let threads: Vec<_> = (0..2)
            .map(|w| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let mut t = Tally {
                            rx: 3,
                            tx: 2,
                            ..Default::default()
                        };
                        t.drop(DropReason::NoRoute);
                        c.publish(w, &t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = c.total();
        assert_eq!(
            (t.rx, t.tx, t.dropped(DropReason::NoRoute)),
            (6000, 4000, 2000)
        );
        assert_eq!(t.dropped(DropReason::Spoofed), 0);
    }
}
