//! The `vrouterd` command line, as a function: the `vrouterd` binary is this, and
//! `fwdbench` runs it in place of a missing vrouterd binary (`cargo run -p bench` builds
//! only the bench crate's binaries).

use crate::config::Config;
use crate::control_loop::{self, RunOptions};
use clap::{CommandFactory, FromArgMatches};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(clap::Parser)]
#[command(version, about = "Userspace AF_XDP virtual router, Calico-compatible")]
struct Args {
    /// TOML configuration (see configs/vrouter.toml).
    #[arg(long)]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Rewrite this JSON file with the counters every second.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// How often the stats file is rewritten, in milliseconds (benchmarks poll it).
    #[arg(long, default_value_t = 1000)]
    stats_interval_ms: u64,
}

/// Run vrouterd with these arguments (the first is the program name); exits the process
/// with 2 on a bad configuration and 1 when the daemon fails.
pub fn main_with_args<I, T>(args: I)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // `--version` also says which FIB lookup code this CPU runs (fib/src/cpu.rs).
    static LONG_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let long_version = LONG_VERSION
        .get_or_init(|| format!("{}\n{}", env!("CARGO_PKG_VERSION"), fib::cpu::describe()));
    let matches = Args::command()
        .long_version(long_version.as_str())
        .get_matches_from(args);
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vrouterd: {e}");
            std::process::exit(2);
        }
    };
    // Colour only on a terminal: journald and files get plain lines (or JSON).
    crate::logging::init(&config.log);
    // What start needs of this machine, short of touching the kernel (--check too).
    if let Err(e) = config.check_machine() {
        eprintln!("vrouterd: {}: {e}", args.config.display());
        std::process::exit(2);
    }
    if args.check {
        if let Err(e) = config.check_interfaces(|n| crate::xdp::ifindex_of(n).is_ok()) {
            eprintln!("vrouterd: {}: {e}", args.config.display());
            std::process::exit(2);
        }
        println!(
            "{}: ok (checked against this machine's CPUs, interfaces and files; \
             XDP and AF_XDP sockets are checked at start)",
            args.config.display()
        );
        return;
    }
    tracing::info!("{}", fib::cpu::describe());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).expect("signal handler");
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .expect("signal handler");
    let options = RunOptions {
        config_path: Some(args.config.clone()),
        reload,
        stats_file: args.stats_file,
        stats_interval: std::time::Duration::from_millis(args.stats_interval_ms.max(10)),
    };
    if let Err(e) = control_loop::run(&config, &options, stop) {
        eprintln!("vrouterd: {e}");
        std::process::exit(1);
    }
}
