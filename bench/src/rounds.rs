//! fwdbench's rounds: each candidate's windows are spread over the whole run so that a
//! disturbed stretch of a shared host lands on every candidate, not on one.
//!
//! `fwdns::run` measures the candidates in rounds: in each round every candidate, in the
//! same order, is started, warmed up, measures its share of the windows and is stopped.
//! `split` shares the windows out, `Series::absorb` adds one round's figures to a
//! candidate's, and `RoundsReport` is what the JSON report says about the rounds: the
//! per-round medians, the spread of each candidate's windows and vrouterd's ratios per
//! round (does the ratio stand in every round?).

use crate::fwdns::Series;
use crate::{median, round4};
use serde::Serialize;
use std::collections::BTreeMap;

/// `windows` shared out over `rounds` (both at least 1, `rounds` ≤ `windows`): as evenly
/// as can be, the first rounds taking the odd ones.
pub fn split(windows: usize, rounds: usize) -> Vec<usize> {
    let rounds = rounds.clamp(1, windows.max(1));
    (0..rounds)
        .map(|i| windows / rounds + usize::from(i < windows % rounds))
        .collect()
}

impl Series {
    /// Add one round's figures: its windows, its share of the busy and frame-length
    /// means (weighted by windows), its run-queue wait; the latency probe's figures when
    /// that round probed.
    pub fn absorb(&mut self, round: Series) {
        let (had, more) = (self.mpps.len() as f64, round.mpps.len() as f64);
        let mean = |a: f64, b: f64| {
            if had == 0.0 {
                b
            } else {
                (a * had + b * more) / (had + more)
            }
        };
        self.sink_frame_bytes = mean(self.sink_frame_bytes, round.sink_frame_bytes);
        self.dut_cpu_busy = mean(self.dut_cpu_busy, round.dut_cpu_busy);
        self.gen_cpu_busy = mean(self.gen_cpu_busy, round.gen_cpu_busy);
        self.runq_wait_ms = if had == 0.0 {
            round.runq_wait_ms
        } else {
            self.runq_wait_ms + round.runq_wait_ms
        };
        self.mpps.extend(&round.mpps);
        self.offered_mpps.extend(&round.offered_mpps);
        self.round_windows.push(round.mpps.len());
        if round.latency_pps > 0 {
            self.latency_p50_us = round.latency_p50_us;
            self.latency_p99_us = round.latency_p99_us;
            self.latency_pps = round.latency_pps;
            self.latency_rx_pps = round.latency_rx_pps;
            self.ecmp_shares = round.ecmp_shares;
        }
    }

    /// The median of each round's windows, in the order run.
    pub fn round_medians(&self) -> Vec<f64> {
        let mut at = 0;
        self.round_windows
            .iter()
            .map(|&n| {
                let m = median(&self.mpps[at..at + n]);
                at += n;
                m
            })
            .collect()
    }

    /// (max - min) / median over all the windows: 0 when every window agrees.
    pub fn spread(&self) -> f64 {
        (self.max() - self.min()) / self.median()
    }
}

/// Round by round, `a`'s median over `b`'s (vrouterd's ratio to a reference).
pub fn ratio_per_round(a: &Series, b: &Series) -> Vec<f64> {
    a.round_medians()
        .iter()
        .zip(b.round_medians())
        .map(|(x, y)| round4(x / y))
        .collect()
}

/// A candidate's rounds in the report: its per-round medians and spread.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateRounds {
    pub round_medians_mpps: Vec<f64>,
    pub spread: f64,
}

impl CandidateRounds {
    pub fn of(s: &Series) -> CandidateRounds {
        CandidateRounds {
            round_medians_mpps: s.round_medians().into_iter().map(round4).collect(),
            spread: round4(s.spread()),
        }
    }
}

/// The rounds in fwdbench's JSON report (flattened into it): per candidate the medians
/// of each round and the spread of all its windows, and vrouterd's ratios round by
/// round. The medians and ratios beside them stay over all the windows.
#[derive(Debug, Clone, Serialize)]
pub struct RoundsReport {
    pub rounds: usize,
    /// Windows measured per candidate in each round.
    pub windows_per_round: Vec<usize>,
    /// `<candidate>_round_medians_mpps` and `<candidate>_spread` for the candidates
    /// measured (`CANDIDATES`).
    #[serde(flatten)]
    pub round_medians: BTreeMap<String, Vec<f64>>,
    #[serde(flatten)]
    pub spreads: BTreeMap<String, f64>,
    /// `ratio_vs_<reference>_per_round` (`REFERENCES`): vrouterd's median over the
    /// reference's, round by round.
    #[serde(flatten)]
    pub ratios: BTreeMap<String, Vec<f64>>,
}

/// The candidates as the report's keys name them.
pub const CANDIDATES: [&str; 6] = [
    "vrouter",
    "vrouter_2_workers",
    "bare_afxdp",
    "testpmd",
    "kernel",
    "kernel_vxlan",
];

/// vrouterd's references, as `ratio_vs_<reference>` names them, and as text.
pub const REFERENCES: [(&str, &str); 4] = [
    ("bare", "bare AF_XDP"),
    ("testpmd", "testpmd"),
    ("kernel", "kernel"),
    ("kernel_vxlan", "kernel VXLAN"),
];

impl RoundsReport {
    pub fn new(res: &crate::fwdns::L3Results) -> RoundsReport {
        let v = &res.vrouter;
        let series = [
            Some(v),
            res.vrouter_2w.as_ref(),
            Some(&res.bare),
            res.testpmd.as_ref(),
            res.kernel.as_ref(),
            res.kernel_vxlan.as_ref(),
        ];
        let mut r = RoundsReport {
            rounds: v.round_windows.len(),
            windows_per_round: v.round_windows.clone(),
            round_medians: BTreeMap::new(),
            spreads: BTreeMap::new(),
            ratios: BTreeMap::new(),
        };
        for (name, s) in CANDIDATES.iter().zip(series) {
            let Some(s) = s else { continue };
            let c = CandidateRounds::of(s);
            r.round_medians
                .insert(format!("{name}_round_medians_mpps"), c.round_medians_mpps);
            r.spreads.insert(format!("{name}_spread"), c.spread);
            let reference = match *name {
                "bare_afxdp" => "bare",
                "vrouter" | "vrouter_2_workers" => continue,
                other => other,
            };
            r.ratios.insert(
                format!("ratio_vs_{reference}_per_round"),
                ratio_per_round(v, s),
            );
        }
        r
    }

    /// vrouterd's ratio to `reference` (`REFERENCES`) round by round, if measured.
    pub fn ratio(&self, reference: &str) -> Option<&Vec<f64>> {
        self.ratios.get(&format!("ratio_vs_{reference}_per_round"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_shared_out_evenly_at_least_one_per_round() {
        assert_eq!(split(5, 3), vec![2, 2, 1]);
        assert_eq!(split(6, 3), vec![2, 2, 2]);
        assert_eq!(split(3, 1), vec![3]);
        assert_eq!(split(3, 3), vec![1, 1, 1]);
        // More rounds than windows: one window a round, no empty round.
        assert_eq!(split(2, 5), vec![1, 1]);
    }

    fn round(mpps: &[f64], busy: f64, probed: bool) -> Series {
        Series {
            mpps: mpps.to_vec(),
            offered_mpps: mpps.iter().map(|x| x * 2.0).collect(),
            sink_frame_bytes: 50.0,
            runq_wait_ms: 1.5,
            dut_cpu_busy: busy,
            gen_cpu_busy: busy,
            latency_p50_us: probed.then_some(10.0),
            latency_p99_us: probed.then_some(20.0),
            latency_pps: if probed { 100_000 } else { 0 },
            latency_rx_pps: if probed { 99_000.0 } else { 0.0 },
            ecmp_shares: if probed { vec![0.5, 0.5] } else { vec![] },
            ..Default::default()
        }
    }

    #[test]
    fn rounds_add_up_to_one_series_with_medians_per_round() {
        let mut s = Series::default();
        s.absorb(round(&[1.0, 3.0], 0.5, false));
        s.absorb(round(&[2.0], 1.0, true));
        assert_eq!(s.mpps, vec![1.0, 3.0, 2.0]);
        assert_eq!(s.offered_mpps.len(), 3);
        assert_eq!(s.round_windows, vec![2, 1]);
        assert_eq!(s.round_medians(), vec![2.0, 2.0]);
        assert_eq!(s.median(), 2.0);
        assert_eq!(s.spread(), 1.0);
        assert_eq!(s.sink_frame_bytes, 50.0);
        assert!((s.dut_cpu_busy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.runq_wait_ms, 3.0);
        assert_eq!(s.latency_p50_us, Some(10.0));
        assert_eq!(s.latency_pps, 100_000);
        assert_eq!(s.ecmp_shares, vec![0.5, 0.5]);
    }

    #[test]
    fn ratios_are_per_round_medians() {
        let (mut a, mut b) = (Series::default(), Series::default());
        a.absorb(round(&[2.0, 2.0], 0.0, false));
        a.absorb(round(&[3.0], 0.0, false));
        b.absorb(round(&[1.0, 1.0], 0.0, false));
        b.absorb(round(&[2.0], 0.0, false));
        assert_eq!(ratio_per_round(&a, &b), vec![2.0, 1.5]);
        let c = CandidateRounds::of(&a);
        assert_eq!(c.round_medians_mpps, vec![2.0, 3.0]);
        assert_eq!(c.spread, 0.5);
    }

    #[test]
    fn the_report_names_each_measured_candidate_and_reference() {
        let two_rounds = |x: f64| {
            let mut s = Series::default();
            s.absorb(round(&[x, x], 0.0, false));
            s.absorb(round(&[x / 2.0], 0.0, false));
            s
        };
        let res = crate::fwdns::L3Results {
            afxdp_variants: Vec::new(),
            vrouter: two_rounds(2.0),
            bare: two_rounds(4.0),
            kernel: None,
            kernel_vxlan: Some(two_rounds(1.0)),
            bare_xdp_mode: "native",
            testpmd: None,
            sink_native: true,
            vrouterd_stats: None,
            vrouter_2w: None,
            fib_routes: None,
            vrouter_fib_install_s: None,
            vrouter_fib_install_s_per_round: vec![],
            kernel_fib_install_s: None,
        };
        let r = RoundsReport::new(&res);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["rounds"], 2);
        assert_eq!(v["windows_per_round"], serde_json::json!([2, 1]));
        assert_eq!(
            v["vrouter_round_medians_mpps"],
            serde_json::json!([2.0, 1.0])
        );
        assert_eq!(v["kernel_vxlan_spread"], 0.5);
        assert_eq!(v["ratio_vs_bare_per_round"], serde_json::json!([0.5, 0.5]));
        assert_eq!(
            v["ratio_vs_kernel_vxlan_per_round"],
            serde_json::json!([2.0, 2.0])
        );
        for absent in [
            "ratio_vs_kernel_per_round",
            "kernel_spread",
            "testpmd_spread",
        ] {
            assert!(v.get(absent).is_none(), "{absent}: {v}");
        }
        assert_eq!(r.ratio("kernel_vxlan"), Some(&vec![2.0, 2.0]));
    }
}
