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
#[command(
    name = "vrouterd",
    version,
    about = "Userspace AF_XDP virtual router, Calico-compatible"
)]
struct Args {
    /// TOML configuration (see configs/vrouter.toml).
    #[arg(long, required_unless_present_any = ["completion", "generate_man"])]
    config: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Rewrite this JSON file with the counters every second.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// How often the stats file is rewritten, in milliseconds (benchmarks poll it).
    #[arg(long, default_value_t = 1000)]
    stats_interval_ms: u64,
    /// Print the completion script for this shell (scripts/package.sh ships it).
    #[arg(long, hide = true, value_enum, exclusive = true)]
    completion: Option<control::clidocs::Shell>,
    /// Write the man page vrouterd.8 into this directory (scripts/package.sh).
    #[arg(long, hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
}

/// vrouterd's command line as clap sees it, with `--version` naming the CPU's FIB path.
fn command() -> clap::Command {
    // `--version` also says which FIB lookup code this CPU runs (fib/src/cpu.rs).
    static LONG_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let long_version = LONG_VERSION
        .get_or_init(|| format!("{}\n{}", env!("CARGO_PKG_VERSION"), fib::cpu::describe()));
    Args::command().long_version(long_version.as_str())
}

/// The documentation flags: the completion script or the man page, then exit.
fn print_docs(args: &Args) -> Option<std::io::Result<()>> {
    if let Some(shell) = args.completion {
        control::clidocs::completion(command(), shell, &mut std::io::stdout());
        return Some(Ok(()));
    }
    let dir = args.generate_man.as_ref()?;
    // Section 8: a daemon, as Debian files them (vrouterctl is in section 1).
    Some(
        control::clidocs::write_man_pages(command(), "8", dir).map(|pages| {
            println!("{} man page(s) written to {}", pages.len(), dir.display());
        }),
    )
}

/// Run vrouterd with these arguments (the first is the program name); exits the process
/// with 2 on a bad configuration and 1 when the daemon fails.
pub fn main_with_args<I, T>(args: I)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().get_matches_from(args);
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(done) = print_docs(&args) {
        if let Err(e) = done {
            eprintln!("vrouterd: {e}");
            std::process::exit(1);
        }
        return;
    }
    let config_path = args.config.clone().expect("clap requires --config here");
    let config = match Config::load(&config_path) {
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
        eprintln!("vrouterd: {}: {e}", config_path.display());
        std::process::exit(2);
    }
    if args.check {
        if let Err(e) = config.check_interfaces(|n| crate::xdp::ifindex_of(n).is_ok()) {
            eprintln!("vrouterd: {}: {e}", config_path.display());
            std::process::exit(2);
        }
        println!(
            "{}: ok (checked against this machine's CPUs, interfaces and files; \
             XDP and AF_XDP sockets are checked at start)",
            config_path.display()
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
        config_path: Some(config_path.clone()),
        reload,
        stats_file: args.stats_file,
        stats_interval: std::time::Duration::from_millis(args.stats_interval_ms.max(10)),
    };
    if let Err(e) = control_loop::run(&config, &options, stop) {
        eprintln!("vrouterd: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_and_completions_need_no_config() {
        let docs = |flags: &[&str]| {
            let m = command()
                .try_get_matches_from(std::iter::once("vrouterd").chain(flags.iter().copied()))
                .unwrap();
            Args::from_arg_matches(&m).unwrap()
        };
        assert!(docs(&["--completion", "zsh"]).completion.is_some());
        // Without a documentation flag, --config is still required.
        assert!(command()
            .try_get_matches_from(["vrouterd", "--check"])
            .is_err());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        print_docs(&docs(&["--generate-man", d])).unwrap().unwrap();
        let page = std::fs::read_to_string(dir.path().join("vrouterd.8")).unwrap();
        assert!(page.contains(".TH vrouterd 8"), "{page}");
        for flag in ["config", "check", "stats\\-file", "stats\\-interval\\-ms"] {
            assert!(page.contains(&format!("\\-\\-{flag}")), "{flag}: {page}");
        }
        assert!(
            !page.contains("completion"),
            "hidden flags stay out: {page}"
        );
        for shell in [control::clidocs::Shell::Bash, control::clidocs::Shell::Zsh] {
            let mut out = Vec::new();
            control::clidocs::completion(command(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for flag in ["--config", "--check", "--stats-file", "--stats-interval-ms"] {
                assert!(text.contains(flag), "{shell}: {flag}");
            }
        }
    }
}
