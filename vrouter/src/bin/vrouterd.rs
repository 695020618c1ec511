//! vrouterd: the per-node virtual router (run by systemd).

use clap::Parser;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vrouter::config::Config;
use vrouter::daemon::{self, RunOptions};

#[derive(Parser)]
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
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vrouterd: {e}");
            std::process::exit(2);
        }
    };
    if args.check {
        println!("{}: ok", args.config.display());
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).expect("signal handler");
    }
    let options = RunOptions {
        stats_file: args.stats_file,
    };
    if let Err(e) = daemon::run(&config, &options, stop) {
        eprintln!("vrouterd: {e}");
        std::process::exit(1);
    }
}
