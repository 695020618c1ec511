//! Which code the lookups run: chosen once per process from the CPU.
//!
//! The workspace is built for baseline x86-64, so the binaries start on any x86-64 CPU.
//! Lookups count bits (`count_ones`) on every trie level; without the POPCNT
//! instruction that is a software popcount and a lookup costs far more (docs/decisions.md,
//! "Portable binaries, measured"). So the lookup bodies are compiled twice: once as is
//! (baseline) and once inside `#[target_feature]` wrappers for the x86-64-v3 features
//! below, taken when the CPU has every one of them.
//!
//! `VROUTER_CPU=baseline` forces the baseline path (measurements and tests only).

use std::sync::OnceLock;

/// The lookup code in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Plain x86-64 (or whatever the target's baseline is): runs everywhere.
    Baseline,
    /// Compiled for [`FAST_FEATURES`]; only on a CPU that has all of them.
    Fast,
}

/// The CPU features the fast path is compiled for (x86-64-v3's integer part).
pub const FAST_FEATURES: &str = "popcnt,bmi1,bmi2,lzcnt,movbe,avx2";

/// The first of [`FAST_FEATURES`] this CPU lacks, or `None` if it has them all.
/// Non-x86-64 targets have no fast path: "x86_64" is what they lack.
pub fn missing_fast_feature() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! first_missing {
            ($($f:tt),*) => {{
                $(if !std::arch::is_x86_feature_detected!($f) {
                    return Some($f);
                })*
                None
            }};
        }
        first_missing!("popcnt", "bmi1", "bmi2", "lzcnt", "movbe", "avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Some("x86_64")
    }
}

impl Path {
    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            Path::Baseline => true,
            Path::Fast => missing_fast_feature().is_none(),
        }
    }

    /// Short name, for logs and `--version`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Baseline => "baseline",
            Path::Fast => "x86-64-v3",
        }
    }

    /// Every path this CPU can run (tests check that they answer alike).
    pub fn available() -> Vec<Path> {
        [Path::Baseline, Path::Fast]
            .into_iter()
            .filter(|p| p.supported())
            .collect()
    }
}

/// The path for this process: the fast one if the CPU has its features and
/// `VROUTER_CPU` is not `baseline`. Decided on first use, then fixed.
pub fn path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        let forced = std::env::var("VROUTER_CPU").is_ok_and(|v| v == "baseline");
        if !forced && Path::Fast.supported() {
            Path::Fast
        } else {
            Path::Baseline
        }
    })
}

/// One line saying which path runs and why, e.g. "FIB lookups: x86-64-v3 path
/// (popcnt,bmi1,...)" or "FIB lookups: baseline path (CPU lacks avx2)".
pub fn describe() -> String {
    let p = path();
    let why = match (p, missing_fast_feature()) {
        (Path::Fast, _) => FAST_FEATURES.to_string(),
        (Path::Baseline, Some(f)) => format!("CPU lacks {f}"),
        (Path::Baseline, None) => "forced by VROUTER_CPU=baseline".to_string(),
    };
    format!("FIB lookups: {} path ({why})", p.name())
}
