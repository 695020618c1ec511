//! Per-worker packet counters: each worker owns one cache-padded block and publishes it
//! once per burst with plain stores (one writer, so no atomic read-modify-write);
//! readers sum every worker's block on demand.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Truncated or garbage frame, bad IP header.
    Malformed,
    /// No route for the destination (from a pod).
    NoRoute,
    /// TTL / hop limit reached zero.
    TtlExpired,
    /// A pod sent from an address that is not its own.
    Spoofed,
    /// To an unused address of one of our own blocks.
    Blackhole,
    /// The next hop's MAC is not resolved yet.
    Unresolved,
    /// A protocol we do not handle from a pod (neither IPv4, IPv6 nor ARP).
    Unsupported,
    /// ARP / ND not for the gateway.
    NotForUs,
    /// Larger than the egress port's MTU (frag-needed / packet-too-big sent if allowed).
    TooBig,
    /// A tunnel packet to the node whose inner packet is not for our pools (no relay).
    NotOurPool,
    /// A tunnel packet to the node that is malformed or carries another VNI.
    BadTunnel,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::NoRoute,
        DropReason::TtlExpired,
        DropReason::Spoofed,
        DropReason::Blackhole,
        DropReason::Unresolved,
        DropReason::Unsupported,
        DropReason::NotForUs,
        DropReason::TooBig,
        DropReason::NotOurPool,
        DropReason::BadTunnel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Spoofed => "spoofed",
            DropReason::Blackhole => "blackhole",
            DropReason::Unresolved => "unresolved",
            DropReason::Unsupported => "unsupported",
            DropReason::NotForUs => "not_for_us",
            DropReason::TooBig => "too_big",
            DropReason::NotOurPool => "not_our_pool",
            DropReason::BadTunnel => "bad_tunnel",
        }
    }
}

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
    pub drops: [u64; N_DROPS],
}

impl Tally {
    #[inline]
    pub fn drop(&mut self, why: DropReason) {
        self.drops[why as usize] += 1;
    }

    pub fn dropped(&self, why: DropReason) -> u64 {
        self.drops[why as usize]
    }
}

/// One worker's published counters.
#[derive(Default)]
pub struct WorkerCounters {
    rx: AtomicU64,
    tx: AtomicU64,
    to_kernel: AtomicU64,
    replies: AtomicU64,
    icmp_errors: AtomicU64,
    held: AtomicU64,
    fragmented: AtomicU64,
    decapsulated: AtomicU64,
    drops: [AtomicU64; N_DROPS],
}

/// The counters of every worker.
pub struct Counters {
    workers: Box<[CachePadded<WorkerCounters>]>,
    /// Each worker's backend counts (`io::BackendStats::values`), stored whole.
    backend: Box<[CachePadded<[AtomicU64; crate::io::BACKEND_COUNTS]>]>,
    /// Each worker's heartbeat: bumped with every backend publication (a few times a
    /// second while its loop runs, busy or idle), read by the systemd watchdog.
    heartbeats: Box<[CachePadded<AtomicU64>]>,
}

impl Counters {
    pub fn new(workers: usize) -> Counters {
        Counters {
            workers: (0..workers)
                .map(|_| CachePadded::new(WorkerCounters::default()))
                .collect(),
            backend: (0..workers).map(|_| CachePadded::default()).collect(),
            heartbeats: (0..workers).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Store worker `w`'s backend counts (totals so far). Only worker `w` calls this.
    pub fn publish_backend(&self, w: usize, values: [u64; crate::io::BACKEND_COUNTS]) {
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
    pub fn backend_total(&self) -> [u64; crate::io::BACKEND_COUNTS] {
        let mut t = [0u64; crate::io::BACKEND_COUNTS];
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
        add(&c.rx, t.rx);
        add(&c.tx, t.tx);
        add(&c.to_kernel, t.to_kernel);
        add(&c.replies, t.replies);
        add(&c.icmp_errors, t.icmp_errors);
        add(&c.held, t.held);
        add(&c.fragmented, t.fragmented);
        add(&c.decapsulated, t.decapsulated);
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
            t.rx += c.rx.load(Ordering::Relaxed);
            t.tx += c.tx.load(Ordering::Relaxed);
            t.to_kernel += c.to_kernel.load(Ordering::Relaxed);
            t.replies += c.replies.load(Ordering::Relaxed);
            t.icmp_errors += c.icmp_errors.load(Ordering::Relaxed);
            t.held += c.held.load(Ordering::Relaxed);
            t.fragmented += c.fragmented.load(Ordering::Relaxed);
            t.decapsulated += c.decapsulated.load(Ordering::Relaxed);
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
