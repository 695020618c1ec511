//! `vrouter-cni`: run by a container runtime (libcni) for each pod; see the crate's docs.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = cni::spec::CniError::new(cni::spec::code::IO_FAILURE, "reading stdin")
            .details(e.to_string());
        println!("{}", err.to_json(cni::spec::LATEST));
        return ExitCode::FAILURE;
    }
    let program = std::env::args().next().unwrap_or_default();
    let (out, err, version) = cni::run(&program, |k| std::env::var(k).ok(), &stdin);
    if let Some(e) = err {
        eprintln!("vrouter-cni: {e}");
        println!("{}", e.to_json(&version));
        return ExitCode::FAILURE;
    }
    if let Some(v) = out {
        println!("{v}");
    }
    ExitCode::SUCCESS
}
