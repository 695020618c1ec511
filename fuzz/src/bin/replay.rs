//! Replay files through the fuzz targets with the plain toolchain: `replay` runs every
//! file of `corpus/<target>/` and `regressions/<target>/` through its target; `replay
//! TARGET` those of one target; `replay TARGET FILE...` the files given. A panic is a
//! failure (exit status 1); the last line counts what ran.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = match args.first() {
        Some(n) => vec![n.as_str()],
        None => vrouter_fuzz::TARGETS.iter().map(|(n, _)| *n).collect(),
    };
    let (mut passed, mut failed) = (0, 0);
    for name in names {
        if vrouter_fuzz::target(name).is_none() {
            eprintln!("replay: no target {name}");
            std::process::exit(2);
        }
        let files: Vec<std::path::PathBuf> = if args.len() > 1 {
            args[1..].iter().map(Into::into).collect()
        } else {
            vrouter_fuzz::replay_files(name)
        };
        let bad = vrouter_fuzz::replay(name, &files);
        for f in &bad {
            eprintln!("replay: FAILED {name} {}", f.display());
        }
        passed += files.len() - bad.len();
        failed += bad.len();
    }
    println!("replay: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
