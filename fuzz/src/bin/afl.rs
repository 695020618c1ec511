//! One target under AFL++: `afl TARGET` (persistent mode; built by `cargo afl build
//! --features afl`, run by `cargo afl fuzz ... -- afl TARGET`, see scripts/fuzz.sh).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(run) = vrouter_fuzz::target(&name) else {
        let names: Vec<&str> = vrouter_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: afl TARGET ({})", names.join(" | "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        run(data);
    });
}
