//! Scrape latency and throughput of metrics servers, measured side by side.
//!
//! `metrics_bench serve ADDR` runs this tree's server (`control::metrics::spawn_server`)
//! with a fixed 50-family body ([`body`]). `metrics_bench scrape NAME=ADDR...` scrapes
//! each server in turn, `--rounds` times: `--secs` of one client scraping back to back
//! (the latency of each scrape: connect, request, response read to the server's close),
//! then `--secs` of `--clients` such clients at once (scrapes per second). Every
//! response must be a 200 whose body is as long as `--body-len`, or the run fails.
//! scripts/metrics-bench.sh builds and runs the servers compared in docs/decisions.md.

use control::metrics::{spawn_server, Exposition, HealthSource, Kind};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark's metrics body: 50 counter families of 16 samples (about 48 KB).
/// scripts/metrics-bench.sh builds the same body for the server it compares.
fn body() -> String {
    let mut e = Exposition::new();
    for f in 0..50u64 {
        e.family(
            &format!("bench_family_{f}_total"),
            "A benchmark family.",
            Kind::Counter,
        );
        for w in 0..16u64 {
            e.sample(
                &[("worker", &w.to_string()), ("port", "eth0")],
                f * 1000 + w,
            );
        }
    }
    e.finish()
}

struct Fixed(String);
impl HealthSource for Fixed {
    fn metrics(&self) -> String {
        self.0.clone()
    }
    fn live(&self) -> bool {
        true
    }
    fn ready(&self) -> bool {
        true
    }
}

/// One scrape; the body's length, or what went wrong.
fn scrape(addr: SocketAddr) -> Result<usize, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut out = Vec::with_capacity(64 * 1024);
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    if !text.starts_with("HTTP/1.1 200 ") {
        return Err(format!("not a 200: {:?}", &text[..text.len().min(80)]));
    }
    let (_, body) = text.split_once("\r\n\r\n").ok_or("no end of head")?;
    Ok(body.len())
}

fn check(addr: SocketAddr, want_len: usize) -> usize {
    match scrape(addr) {
        Ok(n) if n == want_len => n,
        Ok(n) => panic!("{addr}: body of {n} bytes, want {want_len}"),
        Err(e) => panic!("{addr}: {e}"),
    }
}

/// Scrapes back to back for `secs`: each scrape's latency in microseconds.
fn sequential(addr: SocketAddr, secs: f64, want_len: usize) -> Vec<u64> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut lat = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        check(addr, want_len);
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat
}

/// `clients` threads scraping back to back for `secs`: scrapes per second.
fn concurrent(addr: SocketAddr, secs: f64, clients: usize, want_len: usize) -> f64 {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < end {
                    check(addr, want_len);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} needs a number")),
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let addr: SocketAddr = args.get(1).expect("serve ADDR").parse().unwrap();
            let (bound, thread) = spawn_server(addr, Arc::new(Fixed(body()))).unwrap();
            println!("serving on {bound}, body {} bytes", body().len());
            thread.join().unwrap();
        }
        Some("scrape") => {
            let secs: f64 = flag(&args, "--secs", 3.0);
            let rounds: usize = flag(&args, "--rounds", 3);
            let clients: usize = flag(&args, "--clients", 8);
            let want_len: usize = flag(&args, "--body-len", body().len());
            let targets: Vec<(String, SocketAddr)> = args[1..]
                .iter()
                .take_while(|a| !a.starts_with("--"))
                .map(|t| {
                    let (name, addr) = t.split_once('=').expect("NAME=ADDR");
                    (name.to_owned(), addr.parse().expect("an address"))
                })
                .collect();
            assert!(!targets.is_empty(), "scrape NAME=ADDR...");
            let mut lat: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
            for round in 0..rounds {
                // Alternate the order so neither server always goes first.
                let mut order: Vec<usize> = (0..targets.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for &i in &order {
                    let addr = targets[i].1;
                    lat[i].extend(sequential(addr, secs, want_len));
                    rates[i].push(concurrent(addr, secs, clients, want_len));
                }
            }
            println!(
                "{rounds} rounds of {secs} s, body {want_len} bytes, {clients} clients for rate"
            );
            println!(
                "{:<12} {:>9} {:>9} {:>9} {:>16}",
                "server", "scrapes", "p50 µs", "p99 µs", "scrapes/s (med)"
            );
            for (i, (name, _)) in targets.iter().enumerate() {
                let l = &mut lat[i];
                l.sort_unstable();
                let r = &mut rates[i];
                r.sort_by(f64::total_cmp);
                println!(
                    "{:<12} {:>9} {:>9} {:>9} {:>16.0}",
                    name,
                    l.len(),
                    percentile(l, 0.5),
                    percentile(l, 0.99),
                    r[r.len() / 2]
                );
            }
        }
        _ => {
            eprintln!("usage: metrics_bench serve ADDR | scrape NAME=ADDR... [--secs S] [--rounds R] [--clients C] [--body-len N]");
            std::process::exit(2);
        }
    }
}
