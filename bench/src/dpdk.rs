//! Run DPDK's `dpdk-test` perf autotests and read their figures, so fibbench can print
//! rte_lpm / rte_fib beside our own numbers from the same invocation on the same machine.

use serde::Serialize;
use std::io::Write;
use std::process::{Command, Stdio};

/// What one DPDK perf autotest printed (cycles per operation).
#[derive(Debug, Default, Clone, Serialize)]
pub struct DpdkFigures {
    pub test: String,
    pub routes: Option<u64>,
    pub unique_routes: Option<u64>,
    pub lookup_cycles: Option<f64>,
    pub batch_lookup_cycles: Option<f64>,
    pub add_cycles: Option<f64>,
    pub delete_cycles: Option<f64>,
    pub seconds: f64,
    /// DPDK's figure divided by ours (above 1: ours is faster), filled in by fibbench.
    pub ratio_lookup: Option<f64>,
    pub ratio_batch_lookup: Option<f64>,
    pub ratio_add: Option<f64>,
    pub ratio_delete: Option<f64>,
}

impl DpdkFigures {
    /// Fill the ratios against our figures (single, batch, insert, delete cycles).
    pub fn set_ratios(&mut self, ours: [f64; 4]) {
        let r = |theirs: Option<f64>, ours: f64| theirs.filter(|_| ours > 0.0).map(|t| t / ours);
        self.ratio_lookup = r(self.lookup_cycles, ours[0]);
        self.ratio_batch_lookup = r(self.batch_lookup_cycles, ours[1]);
        self.ratio_add = r(self.add_cycles, ours[2]);
        self.ratio_delete = r(self.delete_cycles, ours[3]);
    }
}

/// Where `dpdk-test` lives, if installed.
pub fn find_dpdk_test() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("dpdk-test"))
        .find(|p| p.is_file())
}

/// Run one autotest (e.g. `lpm_perf_autotest`) on core 0 without hugepages or PCI.
pub fn run_autotest(bin: &std::path::Path, test: &str) -> Result<DpdkFigures, String> {
    let start = std::time::Instant::now();
    let mut child = Command::new(bin)
        .args([
            "--no-huge",
            "-m",
            "2048",
            "--no-pci",
            "-l",
            "0",
            "--log-level",
            "lib.eal:error",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    writeln!(child.stdin.take().unwrap(), "{test}\nquit").map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = parse(test, &text);
    figures.seconds = start.elapsed().as_secs_f64();
    if figures.lookup_cycles.is_none() && figures.batch_lookup_cycles.is_none() {
        return Err(format!(
            "{test}: no figures in dpdk-test output (exit {:?}):\n{}\n{}",
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(figures)
}

/// Parse lines like `Average LPM Add: 245870 cycles`, `BULK FIB Lookup: 30.9 cycles (...)`.
pub fn parse(test: &str, text: &str) -> DpdkFigures {
    let mut f = DpdkFigures {
        test: test.to_string(),
        ..Default::default()
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("No. routes = ") {
            f.routes = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Unique added entries = ") {
            f.unique_routes = v.trim().parse().ok();
        }
        let Some((head, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(cycles) = rest
            .trim()
            .strip_suffix("cycles")
            .or_else(|| rest.trim().split_once(" cycles").map(|(n, _)| n))
        else {
            continue;
        };
        let Ok(value) = cycles.trim().parse::<f64>() else {
            continue;
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        match (words.first().copied(), words.last().copied()) {
            (Some("Average"), Some("Add")) => f.add_cycles = Some(value),
            (Some("Average"), Some("Delete")) => f.delete_cycles = Some(value),
            (Some("Average"), Some("Lookup")) => f.lookup_cycles = Some(value),
            (Some("BULK"), Some("Lookup")) => f.batch_lookup_cycles = Some(value),
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_dpdk_output() {
        let text = "No. routes = 1076806\nUnique added entries = 1037025\n\
            Average LPM Add: 245870 cycles\nAverage LPM Lookup: 36.9 cycles (fails = 12.5%)\n\
            BULK LPM Lookup: 22.5 cycles (fails = 12.5%)\nLPM LookupX4: 21.0 cycles (fails = 12.5%)\n\
            Average LPM Delete: 80802 cycles\n";
        let f = super::parse("lpm_perf_autotest", text);
        assert_eq!(f.routes, Some(1076806));
        assert_eq!(f.unique_routes, Some(1037025));
        assert_eq!(f.add_cycles, Some(245870.0));
        assert_eq!(f.lookup_cycles, Some(36.9));
        assert_eq!(f.batch_lookup_cycles, Some(22.5));
        assert_eq!(f.delete_cycles, Some(80802.0));
    }
}
