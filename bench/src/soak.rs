//! chaosbench --soak: what a long run under churn samples of each vrouterd — RSS and
//! open file descriptors from /proc, flows and packet counters from its API — and the
//! figures made of them: least-squares slopes (growth per minute) and the counters'
//! balance (every frame received was sent, handed to the kernel or dropped for a reason).

use crate::chaos::Testbed;
use control::api::pb;
use std::collections::BTreeMap;
use std::io;

/// One node at one time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// Minutes since the soak started.
    pub t_min: f64,
    pub node: usize,
    pub rss_kb: u64,
    pub fds: u64,
    /// Connection-tracking flows (the gauge of every worker summed).
    pub flows: u64,
    pub balance: Balance,
}

/// The pipeline's counters and how they add up: `rx = tx + to_kernel + fragmented +
/// drops - icmp_errors` (an ICMP error counts as the drop and as a frame sent; a held
/// frame counts once more when it is sent or dropped, so none may be held mid-flight
/// for the balance to be exact).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Balance {
    pub rx: u64,
    pub tx: u64,
    pub to_kernel: u64,
    pub fragmented: u64,
    pub icmp_errors: u64,
    pub held: u64,
    pub handed_off: u64,
    pub drops: BTreeMap<String, u64>,
    pub drops_total: u64,
    /// rx - (tx + to_kernel + fragmented + drops_total - icmp_errors).
    pub residual: i64,
}

impl Balance {
    pub fn of(stats: &pb::Stats) -> Balance {
        let get = |k: &str| {
            stats
                .total
                .iter()
                .find(|c| c.name == k)
                .map_or(0, |c| c.value)
        };
        let drops: BTreeMap<String, u64> = stats
            .drops
            .iter()
            .map(|c| (c.name.clone(), c.value))
            .collect();
        let mut b = Balance {
            rx: get("rx"),
            tx: get("tx"),
            to_kernel: get("to_kernel"),
            fragmented: get("fragmented"),
            icmp_errors: get("icmp_errors"),
            held: get("held"),
            handed_off: get("handed_off"),
            drops_total: drops.values().sum(),
            drops,
            residual: 0,
        };
        let out = b.tx + b.to_kernel + b.fragmented + b.drops_total;
        b.residual = b.rx as i64 - (out as i64 - b.icmp_errors as i64);
        b
    }
}

/// Open file descriptors of process `pid`.
pub fn fds(pid: u32) -> io::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// Sample node `node` (its process must run).
pub fn sample(tb: &mut Testbed, node: usize, t_min: f64) -> io::Result<Sample> {
    let pid = tb.pid(node)?;
    let rss = crate::rss_bytes_of(&format!("/proc/{pid}/status")) as u64 / 1024;
    if rss == 0 {
        return Err(io::Error::other(format!("no VmRSS for pid {pid}")));
    }
    let fds = fds(pid)?;
    let mut api = tb.api(node)?;
    let stats = tb
        .rt
        .block_on(api.get_stats(pb::StatsRequest {}))
        .map_err(|s| io::Error::other(format!("stats of node {node}: {}", s.message())))?
        .into_inner();
    let ct = tb
        .rt
        .block_on(api.conntrack_stats(pb::ConntrackStatsRequest {}))
        .map_err(|s| io::Error::other(format!("conntrack of node {node}: {}", s.message())))?
        .into_inner();
    let flows = ct
        .total
        .iter()
        .find(|c| c.name == "flows")
        .map_or(0, |c| c.value);
    Ok(Sample {
        t_min,
        node,
        rss_kb: rss,
        fds,
        flows,
        balance: Balance::of(&stats),
    })
}

/// The least-squares slope of y over x (0 with fewer than two distinct x).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// One node's trend over the soak.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trend {
    pub node: usize,
    pub samples: usize,
    pub rss_kb_first: u64,
    pub rss_kb_last: u64,
    pub rss_kb_max: u64,
    /// Over the samples after the first fifth (start-up's allocations left out).
    pub rss_kb_per_min: f64,
    pub fds_first: u64,
    pub fds_last: u64,
    pub fds_per_min: f64,
    pub flows_last: u64,
    pub flows_per_min: f64,
}

/// The trend of node `node` over `samples` (all nodes' samples, in time order).
pub fn trend(node: usize, samples: &[Sample]) -> Option<Trend> {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.node == node).collect();
    let (first, last) = (s.first()?, s.last()?);
    let steady = &s[s.len() / 5..];
    let line = |f: &dyn Fn(&Sample) -> u64| {
        slope(
            &steady
                .iter()
                .map(|x| (x.t_min, f(x) as f64))
                .collect::<Vec<_>>(),
        )
    };
    Some(Trend {
        node,
        samples: s.len(),
        rss_kb_first: first.rss_kb,
        rss_kb_last: last.rss_kb,
        rss_kb_max: s.iter().map(|x| x.rss_kb).max().unwrap_or(0),
        rss_kb_per_min: line(&|x| x.rss_kb),
        fds_first: first.fds,
        fds_last: last.fds,
        fds_per_min: line(&|x| x.fds),
        flows_last: last.flows,
        flows_per_min: line(&|x| x.flows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, (i % 2) as f64)).collect();
        assert!(slope(&flat).abs() < 0.1);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
    }

    #[test]
    fn balance_counts_icmp_errors_once() {
        let c = |n: &str, v| pb::Counter {
            name: n.into(),
            value: v,
        };
        let stats = pb::Stats {
            total: vec![
                c("rx", 100),
                c("tx", 95),
                c("to_kernel", 3),
                c("icmp_errors", 2),
            ],
            drops: vec![c("no_route", 2), c("spoofed", 2)],
            ..Default::default()
        };
        let b = Balance::of(&stats);
        assert_eq!((b.drops_total, b.residual), (4, 0));
    }
}
