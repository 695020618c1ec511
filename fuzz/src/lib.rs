//! vrouter's fuzz targets (issue 19): each is `fn(&[u8])` over the project's real code
//! and must never panic. `afl` runs one under AFL++ (`cargo afl build --features afl`);
//! `replay` runs files through them with the plain toolchain (corpus, regressions);
//! `seeds` writes the seed corpus. See fuzz/README.md and scripts/fuzz.sh.

pub mod api;
pub mod bgp;
pub mod cni;
pub mod config;
pub mod datastore;
pub mod frames;
pub mod pipeline;
pub mod seeds;

/// A fuzz target: any bytes, never a panic.
pub type Target = fn(&[u8]);

/// Every target: its name (a directory under `corpus/` and `regressions/`) and entry.
pub const TARGETS: &[(&str, Target)] = &[
    ("pipeline", pipeline::run),
    ("bgp_message", bgp::message),
    ("bgp_session", bgp::session),
    ("config", config::run),
    ("api", api::run),
    ("cni_stdin", cni::run),
    ("datastore_json", datastore::run),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

/// The files of `dir`, sorted (none if it is not there; `.gitkeep` left out).
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `corpus/<name>/` and `regressions/<name>/` of this crate: the seeds (at least one)
/// and every crash found.
pub fn replay_files(name: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = files(&root.join("corpus").join(name));
    out.extend(files(&root.join("regressions").join(name)));
    out
}

/// Run `files` through target `name`; the files that panicked.
pub fn replay(name: &str, files: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let run = target(name).expect("a known target");
    files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .cloned()
        .collect()
}

/// Whether to print what the targets see (`FUZZ_DEBUG=1 replay TARGET FILE`).
pub fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some())
}
