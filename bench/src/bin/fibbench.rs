//! fibbench: lookup, build, update and memory figures for the `fib` crate, optionally
//! beside DPDK's rte_lpm / rte_fib perf autotests run in the same invocation.
//!
//! Lookups use keys generated outside the timed region in rounds of 4096 (as DPDK's
//! tests do): IPv4 keys are uniformly random addresses; IPv6 keys are a random table
//! prefix with random host bits (uniform IPv6 keys would almost all miss at the first
//! level and measure nothing). Updates delete, then re-insert, a random sample of the
//! table's own prefixes one at a time while a reader thread keeps looking up.

use bench::dpdk::{self, DpdkFigures};
use bench::{mb, percentile, rss_bytes, Tsc};
use clap::{Parser, ValueEnum};
use fib::synth::{self, Rng};
use fib::{Family, Fib, NextHopId, V4, V6};
use ipnet::IpNet;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum FamilyArg {
    V4,
    V6,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark the vrouter FIB (optionally beside DPDK's rte_lpm/rte_fib)")]
struct Opts {
    /// Address family.
    #[arg(long, value_enum, default_value = "v4")]
    family: FamilyArg,
    /// Load prefixes from a file: one per line (`10.0.0.0/8`, `2001:db8::/32`), any
    /// further columns ignored, `#` comments and blank lines skipped.
    #[arg(long)]
    routes_file: Option<std::path::PathBuf>,
    /// Size of the synthetic table (default: 1,076,806 for v4, 200,000 for v6).
    #[arg(long)]
    routes: Option<usize>,
    /// Seed of the synthetic table and of the keys.
    #[arg(long, default_value_t = synth::DEFAULT_SEED)]
    seed: u64,
    /// Distinct next hops, assigned to routes at random (fixed seed). DPDK's tests use 1;
    /// a BGP full table has tens, a large Calico cluster about one per node. Fewer next
    /// hops let equal neighbouring leaves merge; `--next-hops 1000000` is the worst case.
    #[arg(long, default_value_t = 1024)]
    next_hops: u32,
    /// Lookups per measurement (single and batch each), split over `--reps` repetitions.
    #[arg(long, default_value_t = 16 << 20)]
    lookups: usize,
    /// Repetitions of the lookup measurements (at least 15): figures are judged on the
    /// minimum (steal only ever adds cycles), the median beside it.
    #[arg(long, default_value_t = 16)]
    reps: usize,
    /// Prefixes deleted and then re-inserted in the update measurement.
    #[arg(long, default_value_t = 100_000)]
    updates: usize,
    /// Measure updates without the concurrent reader thread (for analysis).
    #[arg(long)]
    no_update_reader: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also run DPDK's perf autotests (needs `dpdk-test`, Debian package dpdk-dev).
    #[arg(long)]
    compare_dpdk: bool,
}

#[derive(Serialize, Default)]
struct Report {
    family: String,
    source: String,
    routes: usize,
    unique_prefixes: usize,
    next_hops: u32,
    /// Lookup figures are the median of the repetitions (`*_reps` holds min / median /
    /// max); `*_cycles_min` is the minimum, on which targets are judged.
    lookup_ns: f64,
    lookup_cycles: f64,
    lookup_cycles_min: f64,
    lookup_cycles_reps: bench::Reps,
    batch_lookup_ns: f64,
    batch_lookup_cycles: f64,
    batch_lookup_cycles_min: f64,
    batch_lookup_cycles_reps: bench::Reps,
    lookup_hit_ratio: f64,
    batch_method: String,
    build_s: f64,
    insert_ns_p50: f64,
    insert_ns_p99: f64,
    insert_cycles_p50: u64,
    insert_cycles_p99: u64,
    insert_cycles_mean: f64,
    delete_ns_p50: f64,
    delete_ns_p99: f64,
    delete_cycles_p50: u64,
    delete_cycles_p99: u64,
    delete_cycles_mean: f64,
    /// The same deletes and re-inserts through `Fib::apply` in batches of 64 (as the
    /// control plane delivers them): mean cycles per update.
    insert_batched_cycles_mean: f64,
    delete_batched_cycles_mean: f64,
    updates: usize,
    reader_lookups_during_updates: u64,
    /// Whole table inserted one prefix at a time into an empty FIB (DPDK's "Average Add").
    add_one_by_one_s: f64,
    add_one_by_one_cycles_mean: f64,
    memory_bytes: usize,
    rib_bytes: usize,
    rss_growth_bytes: usize,
    tsc_ghz: f64,
    /// Median cost of reading the TSC twice with nothing between (included in per-op figures).
    timer_overhead_cycles: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpdk: Vec<DpdkFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpdk_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_dpdk_table_size: Option<SameSize>,
}

fn main() {
    let opts = Opts::parse();
    if opts.reps < bench::MIN_REPS {
        die(&format!(
            "--reps {} (at least {})",
            opts.reps,
            bench::MIN_REPS
        ));
    }
    let tsc = Tsc::calibrate();
    let mut report = measure(&opts, &tsc, None);
    report.tsc_ghz = tsc.ghz;
    let mut empty: Vec<u64> = (0..10_000)
        .map(|_| {
            let c0 = tsc.now();
            tsc.now() - c0
        })
        .collect();
    empty.sort_unstable();
    report.timer_overhead_cycles = percentile(&empty, 50.0);
    if opts.compare_dpdk {
        compare_dpdk(&opts, &mut report);
        // DPDK's IPv6 tests use 1,000 routes: also measure ours on a table that size.
        let theirs = report.dpdk.iter().filter_map(|d| d.routes).max();
        if let Some(n) = theirs.filter(|&n| {
            (n as f64) < report.routes as f64 / 2.0 || (n as f64) > report.routes as f64 * 2.0
        }) {
            let small = measure(&opts, &tsc, Some(n as usize));
            report.at_dpdk_table_size = Some(SameSize {
                routes: small.routes,
                unique_prefixes: small.unique_prefixes,
                lookup_cycles: small.lookup_cycles,
                lookup_cycles_min: small.lookup_cycles_min,
                batch_lookup_cycles: small.batch_lookup_cycles,
                batch_lookup_cycles_min: small.batch_lookup_cycles_min,
                insert_cycles_p50: small.insert_cycles_p50,
                delete_cycles_p50: small.delete_cycles_p50,
                memory_bytes: small.memory_bytes,
            });
        }
    }
    let ours = match &report.at_dpdk_table_size {
        Some(s) => [
            s.lookup_cycles,
            s.batch_lookup_cycles,
            s.insert_cycles_p50 as f64,
            s.delete_cycles_p50 as f64,
        ],
        None => [
            report.lookup_cycles,
            report.batch_lookup_cycles,
            report.insert_cycles_p50 as f64,
            report.delete_cycles_p50 as f64,
        ],
    };
    for d in &mut report.dpdk {
        d.set_ratios(ours);
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        print_table(&report);
    }
}

/// Our figures for the chosen family: the user's table, or a synthetic one of `size`.
fn measure(opts: &Opts, tsc: &Tsc, size: Option<usize>) -> Report {
    match opts.family {
        FamilyArg::V4 => {
            let pick = |n| if let IpNet::V4(n) = n { Some(n) } else { None };
            let (nets, source) =
                table::<V4>(opts, size, synth::dpdk_v4, synth::DPDK_V4_TOTAL, pick);
            run::<V4>(opts, tsc, nets, source, |rng, _| rng.next_u32())
        }
        FamilyArg::V6 => {
            let pick = |n| if let IpNet::V6(n) = n { Some(n) } else { None };
            let (nets, source) = table::<V6>(
                opts,
                size,
                synth::realistic_v6,
                synth::DEFAULT_V6_TOTAL,
                pick,
            );
            run::<V6>(opts, tsc, nets, source, |rng, table: &[(u128, u8)]| {
                let (k, l) = table[rng.below(table.len() as u64) as usize];
                k | (rng.next_u128()
                    & if l == 0 {
                        u128::MAX
                    } else {
                        !(u128::MAX << (128 - l as u32))
                    })
            })
        }
    }
}

/// The table to measure and where it came from: a synthetic one of `size` routes, else
/// `--routes-file`, else the default synthetic table (`--routes` or `default_n` routes).
fn table<F: Family>(
    opts: &Opts,
    size: Option<usize>,
    synthetic: fn(usize, u64) -> Vec<F::Net>,
    default_n: usize,
    pick: impl Fn(IpNet) -> Option<F::Net>,
) -> (Vec<F::Net>, String) {
    if let Some(n) = size {
        return (
            synthetic(n, opts.seed),
            format!("synthetic, {n} routes (DPDK's table size)"),
        );
    }
    let (nets, source) = load::<F>(opts, pick);
    (
        nets.unwrap_or_else(|| synthetic(opts.routes.unwrap_or(default_n), opts.seed)),
        source,
    )
}

/// Our figures on a table of DPDK's size, when DPDK's test table differs from ours.
#[derive(Serialize)]
struct SameSize {
    routes: usize,
    unique_prefixes: usize,
    lookup_cycles: f64,
    lookup_cycles_min: f64,
    batch_lookup_cycles: f64,
    batch_lookup_cycles_min: f64,
    insert_cycles_p50: u64,
    delete_cycles_p50: u64,
    memory_bytes: usize,
}

/// Read `--routes-file`, keeping the requested family. `None` means "use the synthetic table".
fn load<F: Family>(
    opts: &Opts,
    pick: impl Fn(IpNet) -> Option<F::Net>,
) -> (Option<Vec<F::Net>>, String) {
    let Some(path) = &opts.routes_file else {
        let what = if F::BITS == 32 {
            "DPDK lpm_perf distribution"
        } else {
            "realistic v6 length mix"
        };
        return (None, format!("synthetic ({what}, seed {:#x})", opts.seed));
    };
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    let mut nets = Vec::new();
    let mut other = 0;
    for (i, line) in text.lines().enumerate() {
        let Some(first) = line
            .split('#')
            .next()
            .and_then(|l| l.split_whitespace().next())
        else {
            continue;
        };
        let net: IpNet = first
            .parse()
            .unwrap_or_else(|e| die(&format!("{}:{}: {first:?}: {e}", path.display(), i + 1)));
        match pick(net.trunc()) {
            Some(n) => nets.push(n),
            None => other += 1,
        }
    }
    if nets.is_empty() {
        die(&format!(
            "{}: no {} prefixes ({other} of the other family)",
            path.display(),
            F::NAME
        ));
    }
    (
        Some(nets),
        format!(
            "{} ({other} prefixes of the other family skipped)",
            path.display()
        ),
    )
}

fn die(msg: &str) -> ! {
    eprintln!("fibbench: {msg}");
    std::process::exit(2)
}

const ROUND: usize = 4096;
const BURST: usize = 64;

fn run<F: Family>(
    opts: &Opts,
    tsc: &Tsc,
    nets: Vec<F::Net>,
    source: String,
    key: impl Fn(&mut Rng, &[(F::Key, u8)]) -> F::Key + Send + Sync + Copy + 'static,
) -> Report {
    let mut r = Report {
        family: F::NAME.into(),
        source,
        routes: nets.len(),
        next_hops: opts.next_hops,
        ..Default::default()
    };
    let rss0 = rss_bytes();
    let t = Instant::now();
    let mut nh_rng = Rng::new(opts.seed ^ 0x6e68);
    let nhs: Vec<NextHopId> = (0..nets.len())
        .map(|_| NextHopId(nh_rng.below(opts.next_hops.max(1) as u64) as u32))
        .collect();
    let mut fib = Fib::<F>::from_routes(nets.iter().zip(&nhs).map(|(n, nh)| (*n, *nh)));
    r.build_s = t.elapsed().as_secs_f64();
    r.rss_growth_bytes = rss_bytes().saturating_sub(rss0);
    r.unique_prefixes = fib.len();
    r.memory_bytes = fib.memory_bytes();
    r.batch_method = fib.batch_method().into();
    r.rib_bytes = fib.rib_bytes();
    let c0 = tsc.now();
    {
        let mut one_by_one = Fib::<F>::new();
        for (n, nh) in nets.iter().zip(&nhs) {
            one_by_one.insert(*n, *nh);
        }
        assert_eq!(one_by_one.len(), r.unique_prefixes);
    }
    let cycles = tsc.now() - c0;
    r.add_one_by_one_s = tsc.to_ns(cycles as f64) / 1e9;
    r.add_one_by_one_cycles_mean = cycles as f64 / nets.len() as f64;
    let table: Arc<Vec<(F::Key, u8)>> =
        Arc::new(fib.routes().map(|(n, _)| F::net_parts(&n)).collect());

    // Lookups: keys for a round are made outside the timed region.
    let mut reader = fib.reader();
    let mut rng = Rng::new(opts.seed ^ 0x6b65_7973);
    let mut addrs = [F::key_addr(F::Key::default()); ROUND];
    let mut out = vec![None; ROUND];
    // Repetitions of `per_rep` rounds each, after a warm-up of an eighth of them all.
    let per_rep = opts.lookups.div_ceil(ROUND * opts.reps).max(1);
    let warmup = (per_rep * opts.reps) / 8;
    let (mut single, mut batch) = (Vec::new(), Vec::new());
    let (mut hits, mut sink, mut looked_up) = (0u64, 0u64, 0u64);
    for rep in 0..=opts.reps {
        let rounds = if rep == 0 { warmup } else { per_rep };
        let (mut single_cycles, mut batch_cycles) = (0u64, 0u64);
        for _ in 0..rounds {
            for a in addrs.iter_mut() {
                *a = F::key_addr(key(&mut rng, &table));
            }
            let c0 = tsc.now();
            for burst in addrs.chunks(BURST) {
                let view = reader.burst();
                for a in burst {
                    sink = sink.wrapping_add(view.lookup(*a).map_or(1, |n| n.0 as u64));
                }
            }
            let c1 = tsc.now();
            for (burst, out) in addrs.chunks(BURST).zip(out.chunks_mut(BURST)) {
                reader.burst().lookup_batch(burst, out);
            }
            let c2 = tsc.now();
            single_cycles += c1 - c0;
            batch_cycles += c2 - c1;
            if rep > 0 {
                hits += out.iter().filter(|o| o.is_some()).count() as u64;
                looked_up += ROUND as u64;
            }
        }
        if rep > 0 {
            let n = (rounds * ROUND) as f64;
            single.push(single_cycles as f64 / n);
            batch.push(batch_cycles as f64 / n);
        }
    }
    std::hint::black_box(sink);
    let (single, batch) = (bench::Reps::of(&single), bench::Reps::of(&batch));
    r.lookup_cycles = single.median;
    r.lookup_cycles_min = single.min;
    r.lookup_cycles_reps = single;
    r.lookup_ns = tsc.to_ns(r.lookup_cycles);
    r.batch_lookup_cycles = batch.median;
    r.batch_lookup_cycles_min = batch.min;
    r.batch_lookup_cycles_reps = batch;
    r.batch_lookup_ns = tsc.to_ns(r.batch_lookup_cycles);
    r.lookup_hit_ratio = hits as f64 / looked_up as f64;

    // An online reader that stops bursting pins every block retired after its last burst
    // (that is QSBR): the lookup phase's reader goes offline before the update phase.
    reader.offline();

    // Updates on the full table while a reader thread keeps looking up.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let bg = {
        let (stop, done, table) = (stop.clone(), done.clone(), table.clone());
        let mut reader = fib.reader();
        let no_reader = opts.no_update_reader;
        std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let addrs: Vec<F::Addr> = (0..ROUND)
                .map(|_| F::key_addr(key(&mut rng, &table)))
                .collect();
            let mut out = vec![None; ROUND];
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) && !no_reader {
                for (b, o) in addrs.chunks(BURST).zip(out.chunks_mut(BURST)) {
                    reader.burst().lookup_batch(b, o);
                }
                count += ROUND as u64;
            }
            done.store(count, Ordering::Relaxed);
        })
    };
    let mut sample: Vec<(F::Key, u8)> = table.to_vec();
    let mut rng = Rng::new(opts.seed ^ 0x7570_6461);
    let n_updates = opts.updates.min(sample.len());
    for i in 0..n_updates {
        let j = i + rng.below((sample.len() - i) as u64) as usize;
        sample.swap(i, j);
    }
    sample.truncate(n_updates);
    let mut del = Vec::with_capacity(n_updates);
    let mut ins = Vec::with_capacity(n_updates);
    let mut removed = Vec::with_capacity(n_updates);
    for &(k, l) in &sample {
        let net = F::make_net(k, l);
        let c0 = tsc.now();
        let old = fib.remove(net);
        del.push(tsc.now() - c0);
        removed.push((net, old.expect("a table prefix")));
    }
    // Put each prefix back with its own next hop.
    for &(net, nh) in &removed {
        let c0 = tsc.now();
        fib.insert(net, nh);
        ins.push(tsc.now() - c0);
    }
    // Again through the batch API, 64 updates per call.
    let dels: Vec<fib::Update<F::Net>> = removed
        .iter()
        .map(|&(n, _)| fib::Update::Remove(n))
        .collect();
    let inss: Vec<fib::Update<F::Net>> = removed
        .iter()
        .map(|&(n, nh)| fib::Update::Insert(n, nh))
        .collect();
    let timed = |fib: &mut Fib<F>, ups: &[fib::Update<F::Net>]| {
        let c0 = tsc.now();
        for chunk in ups.chunks(64) {
            fib.apply(chunk);
        }
        (tsc.now() - c0) as f64 / ups.len().max(1) as f64
    };
    r.delete_batched_cycles_mean = timed(&mut fib, &dels);
    r.insert_batched_cycles_mean = timed(&mut fib, &inss);
    stop.store(true, Ordering::Relaxed);
    bg.join().unwrap();
    r.reader_lookups_during_updates = done.load(Ordering::Relaxed);
    assert_eq!(fib.len(), r.unique_prefixes);
    r.updates = n_updates;
    let stats = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
        (percentile(v, 50.0), percentile(v, 99.0), mean)
    };
    (
        r.insert_cycles_p50,
        r.insert_cycles_p99,
        r.insert_cycles_mean,
    ) = stats(&mut ins);
    (
        r.delete_cycles_p50,
        r.delete_cycles_p99,
        r.delete_cycles_mean,
    ) = stats(&mut del);
    r.insert_ns_p50 = tsc.to_ns(r.insert_cycles_p50 as f64);
    r.insert_ns_p99 = tsc.to_ns(r.insert_cycles_p99 as f64);
    r.delete_ns_p50 = tsc.to_ns(r.delete_cycles_p50 as f64);
    r.delete_ns_p99 = tsc.to_ns(r.delete_cycles_p99 as f64);
    r
}

fn compare_dpdk(opts: &Opts, r: &mut Report) {
    let Some(bin) = dpdk::find_dpdk_test() else {
        r.dpdk_error = Some("dpdk-test not found (install the Debian package dpdk-dev)".into());
        eprintln!(
            "fibbench: --compare-dpdk: dpdk-test not found (install the Debian package dpdk-dev)"
        );
        return;
    };
    let tests: &[&str] = match opts.family {
        FamilyArg::V4 => &["lpm_perf_autotest", "fib_perf_autotest"],
        FamilyArg::V6 => &["lpm6_perf_autotest", "fib6_perf_autotest"],
    };
    for test in tests {
        if !opts.json {
            eprintln!("fibbench: running {test} (DPDK's own table and keys; takes a minute)...");
        }
        match dpdk::run_autotest(&bin, test) {
            Ok(f) => r.dpdk.push(f),
            Err(e) => {
                eprintln!("fibbench: {e}");
                r.dpdk_error = Some(e);
            }
        }
    }
}

fn print_table(r: &Report) {
    println!("fibbench {} — {}", r.family, r.source);
    println!(
        "routes {} ({} unique, {} next hops), TSC {:.3} GHz, lookup hit ratio {:.1}%",
        r.routes,
        r.unique_prefixes,
        r.next_hops,
        r.tsc_ghz,
        r.lookup_hit_ratio * 100.0
    );
    let f = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    let ratio = |r: Option<f64>| r.map_or("—".to_string(), |r| format!("{r:.2}x"));
    let cols: Vec<&DpdkFigures> = r.dpdk.iter().collect();
    let small = r.at_dpdk_table_size.as_ref();
    print!("{:<26} {:>14}", "metric (cycles/op)", "vrouter fib");
    if let Some(s) = small {
        print!(" {:>16}", format!("vrouter @{}", s.routes));
    }
    for d in &cols {
        print!(
            " {:>20} {:>8}",
            d.test.trim_end_matches("_perf_autotest"),
            "ratio"
        );
    }
    println!();
    // (value, ratio) of one DPDK column; ratios were set against the same-size figures.
    type Pick = fn(&DpdkFigures) -> (Option<f64>, Option<f64>);
    type Ours = fn(&SameSize) -> f64;
    let rows: [(&str, f64, Ours, Pick); 6] = [
        (
            "lookup, single (min)",
            r.lookup_cycles_min,
            |s| s.lookup_cycles_min,
            |d| (d.lookup_cycles, None),
        ),
        (
            "lookup, batch (min)",
            r.batch_lookup_cycles_min,
            |s| s.batch_lookup_cycles_min,
            |d| (d.batch_lookup_cycles, None),
        ),
        (
            "lookup, single (median)",
            r.lookup_cycles,
            |s| s.lookup_cycles,
            |d| (d.lookup_cycles, d.ratio_lookup),
        ),
        (
            "lookup, batch (median)",
            r.batch_lookup_cycles,
            |s| s.batch_lookup_cycles,
            |d| (d.batch_lookup_cycles, d.ratio_batch_lookup),
        ),
        (
            "insert/add (p50 | avg)",
            r.insert_cycles_p50 as f64,
            |s| s.insert_cycles_p50 as f64,
            |d| (d.add_cycles, d.ratio_add),
        ),
        (
            "delete (p50 | avg)",
            r.delete_cycles_p50 as f64,
            |s| s.delete_cycles_p50 as f64,
            |d| (d.delete_cycles, d.ratio_delete),
        ),
    ];
    for (name, ours, ours_small, pick) in rows {
        print!("{name:<26} {ours:>14.1}");
        if let Some(s) = small {
            print!(" {:>16.1}", ours_small(s));
        }
        for d in &cols {
            let (value, r) = pick(d);
            print!(" {:>20} {:>8}", f(value), ratio(r));
        }
        println!();
    }
    if !cols.is_empty() {
        print!("{:<26} {:>14}", "routes in table", r.routes);
        if let Some(s) = small {
            print!(" {:>16}", s.routes);
        }
        for d in &cols {
            print!(
                " {:>20} {:>8}",
                d.routes.map_or("—".into(), |v| v.to_string()),
                ""
            );
        }
        println!(
            "\n(ratio = DPDK / our median{}: above 1 means ours is faster; DPDK figures are averages)",
            if small.is_some() {
                " at DPDK's table size"
            } else {
                ""
            }
        );
    }
    println!();
    let reps = |x: &bench::Reps| {
        format!(
            "min {:.1} / median {:.1} / max {:.1} over {} reps",
            x.min, x.median, x.max, x.reps
        )
    };
    println!(
        "lookup single      {:>8.2} ns  {:>8.1} cycles  ({})",
        r.lookup_ns,
        r.lookup_cycles,
        reps(&r.lookup_cycles_reps)
    );
    println!(
        "lookup batch       {:>8.2} ns  {:>8.1} cycles  ({}; {})",
        r.batch_lookup_ns,
        r.batch_lookup_cycles,
        reps(&r.batch_lookup_cycles_reps),
        r.batch_method
    );
    println!("build              {:>8.3} s  (bulk; one prefix at a time into an empty table: {:.3} s, {:.0} cycles/add)", r.build_s, r.add_one_by_one_s, r.add_one_by_one_cycles_mean);
    println!(
        "insert  p50 {:>8.0} ns {:>8} cyc   p99 {:>9.0} ns {:>9} cyc   mean {:>9.0} cyc",
        r.insert_ns_p50,
        r.insert_cycles_p50,
        r.insert_ns_p99,
        r.insert_cycles_p99,
        r.insert_cycles_mean
    );
    println!(
        "delete  p50 {:>8.0} ns {:>8} cyc   p99 {:>9.0} ns {:>9} cyc   mean {:>9.0} cyc",
        r.delete_ns_p50,
        r.delete_cycles_p50,
        r.delete_ns_p99,
        r.delete_cycles_p99,
        r.delete_cycles_mean
    );
    println!(
        "  ({} deletes then {} re-inserts of table prefixes; a reader thread did {} lookups meanwhile;",
        r.updates, r.updates, r.reader_lookups_during_updates
    );
    println!(
        "   per-op figures include {} cycles of timer overhead)",
        r.timer_overhead_cycles
    );
    println!(
        "batched (Fib::apply, 64 per call): insert mean {:.0} cyc, delete mean {:.0} cyc",
        r.insert_batched_cycles_mean, r.delete_batched_cycles_mean
    );
    println!(
        "memory: lookup tables {} (memory_bytes), writer route store {}, process RSS growth at build {}",
        mb(r.memory_bytes),
        mb(r.rib_bytes),
        mb(r.rss_growth_bytes)
    );
    if let Some(e) = &r.dpdk_error {
        println!("DPDK comparison: {e}");
    }
}
