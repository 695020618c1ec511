//! Write the seed corpus: `seeds DIR` makes `DIR/<target>/<name>` for every target
//! (what is in fuzz/corpus/ came from `seeds fuzz/corpus`).

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let n = vrouter_fuzz::seeds::write(std::path::Path::new(&dir)).expect("writing the seeds");
    println!("seeds: {n} files under {dir}");
}
