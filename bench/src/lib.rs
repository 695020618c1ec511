//! Shared helpers for the benchmark binaries: TSC timing, percentiles, RSS, running
//! DPDK's own autotests as a same-invocation baseline, network namespaces (`netns`), raw
//! XDP programs (`bpf`), the packet generator (`pktgen`), fwdbench's namespace scenario
//! (`fwdns`), clusterbench's vrouterd cluster on etcd (`cluster`) and chaosbench's testbed,
//! probe and soak sampling (`chaos`, `probe`, `soak`); `supervise` plays systemd (notify
//! socket, file descriptor store) for the nodes it starts.

pub mod bgpfeed;
pub mod bpf;
pub mod chaos;
pub mod cluster;
pub mod dpdk;
pub mod fwdns;
pub mod natmemio;
pub mod netns;
pub mod pktgen;
pub mod policymemio;
pub mod probe;
pub mod rounds;
pub mod soak;
pub mod supervise;

use std::time::{Duration, Instant};

/// The CPU's time-stamp counter, read through `quanta` (no `unsafe` here), and its rate.
pub struct Tsc {
    clock: quanta::Clock,
    /// TSC ticks per nanosecond, calibrated against the monotonic clock.
    pub ghz: f64,
}

impl Tsc {
    pub fn calibrate() -> Tsc {
        let clock = quanta::Clock::new();
        let (t0, c0) = (Instant::now(), clock.raw());
        while t0.elapsed() < Duration::from_millis(200) {}
        let (t1, c1) = (Instant::now(), clock.raw());
        let ghz = (c1 - c0) as f64 / (t1 - t0).as_nanos() as f64;
        Tsc { clock, ghz }
    }

    #[inline(always)]
    pub fn now(&self) -> u64 {
        self.clock.raw()
    }

    pub fn to_ns(&self, cycles: f64) -> f64 {
        cycles / self.ghz
    }
}

/// Per-repetition figures of one measurement: the minimum (what the code costs: a noisy
/// host's steal only ever adds cycles), the median and the maximum.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Reps {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub reps: usize,
}

impl Reps {
    /// At least one sample; NaN samples are a caller's bug.
    pub fn of(samples: &[f64]) -> Reps {
        assert!(!samples.is_empty(), "no repetitions measured");
        assert!(!samples.iter().any(|x| x.is_nan()), "a NaN repetition");
        let s = sorted(samples);
        Reps {
            min: s[0],
            median: median_of_sorted(&s),
            max: s[s.len() - 1],
            reps: s.len(),
        }
    }
}

/// A copy of `v` in ascending order.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    median_of_sorted(&sorted(v))
}

fn median_of_sorted(s: &[f64]) -> f64 {
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Rounded to 4 decimals, as the reports print figures.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Repetitions for figures judged on their minimum (at least 15, as the targets say).
pub const MIN_REPS: usize = 15;

/// The `p`-th percentile (0..=100) of already-sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> usize {
    rss_bytes_of("/proc/self/status")
}

/// Resident set size from a `/proc/PID/status` file (0 where unavailable).
pub fn rss_bytes_of(status: &str) -> usize {
    status_bytes(status, "VmRSS:")
}

/// A `kB` line (`VmRSS:`, `VmHWM:`, ...) of a `/proc/PID/status` file, in bytes.
pub fn status_bytes(status: &str, key: &str) -> usize {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Format a number of bytes as MB (10^6) with one decimal.
pub fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
