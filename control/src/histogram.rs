//! Latency histograms for `/metrics`: fixed bucket bounds, atomic counts, so the one
//! thread that observes and the scrape that reads share it without a lock.

use crate::metrics::{Exposition, Kind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds: 10 µs to 10 s, about three per decade (what a FIB batch
/// and an UPDATE take, from one prefix to a full table).
const LATENCY: [f64; 19] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug)]
pub struct Histogram {
    /// Observations at most `LATENCY[i]` and above the bound before (not cumulative;
    /// the last slot is +Inf).
    buckets: [AtomicU64; LATENCY.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY.partition_point(|&b| b < s);
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The family `name` (seconds): cumulative buckets, `_sum`, `_count`.
    pub fn write(&self, x: &mut Exposition, name: &str, help: &str) {
        x.family(name, help, Kind::Histogram);
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = LATENCY.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            x.sample_named("_bucket", &[("le", &le)], cumulative);
        }
        x.sample_named("_sum", &[], self.sum_ns.load(Relaxed) as f64 / 1e9);
        x.sample_named("_count", &[], cumulative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_le_is_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10)); // exactly the first bound
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // above every bound
        let mut x = Exposition::new();
        h.write(&mut x, "t_seconds", "A test.");
        let text = x.finish();
        assert!(text.contains("# TYPE t_seconds histogram\n"), "{text}");
        assert!(
            text.contains("t_seconds_bucket{le=\"0.00001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_count 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum 60.00301\n"), "{text}");
        assert_eq!(h.count(), 3);
    }
}
