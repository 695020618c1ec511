#!/usr/bin/env bash
# Scrape latency and rate of the metrics server, this tree's against the hand-written
# HTTP/1 server it replaced (control/src/metrics.rs at $OLD_COMMIT), in one run:
# both servers built at opt-level 2, each in its own process, scraped in alternating
# rounds by control/examples/metrics_bench.rs. Figures: docs/decisions.md,
# "Metrics server on axum, measured".
#   scripts/metrics-bench.sh [--secs S] [--rounds R] [--clients C]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD_COMMIT=${OLD_COMMIT:-1cfea56}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# The old server: its file as it was, in a crate of its own with its two dependencies.
mkdir -p "$WORK/old/src"
git show "$OLD_COMMIT:control/src/metrics.rs" >"$WORK/old/src/metrics.rs"
cat >"$WORK/old/Cargo.toml" <<'TOML'
[package]
name = "old-metrics-server"
version = "0.0.0"
edition = "2021"
[dependencies]
tokio = { version = "1", features = ["rt", "net", "time", "sync", "macros", "io-util"] }
tracing = "0.1"
[profile.release]
opt-level = 2
TOML
# The same body as metrics_bench's `body()`.
cat >"$WORK/old/src/main.rs" <<'RUST'
mod metrics;
use metrics::{spawn_server, Exposition, HealthSource, Kind};
struct Fixed(String);
impl HealthSource for Fixed {
    fn metrics(&self) -> String { self.0.clone() }
    fn live(&self) -> bool { true }
    fn ready(&self) -> bool { true }
}
fn main() {
    let mut e = Exposition::new();
    for f in 0..50u64 {
        e.family(&format!("bench_family_{f}_total"), "A benchmark family.", Kind::Counter);
        for w in 0..16u64 {
            e.sample(&[("worker", &w.to_string()), ("port", "eth0")], f * 1000 + w);
        }
    }
    let addr = std::env::args().nth(1).unwrap().parse().unwrap();
    let (bound, thread) = spawn_server(addr, std::sync::Arc::new(Fixed(e.finish()))).unwrap();
    println!("serving on {bound}");
    thread.join().unwrap();
}
RUST
cp Cargo.lock "$WORK/old/"
(cd "$WORK/old" && RUSTFLAGS="-A warnings" nice -n 19 cargo build -q --release --offline)
OLD_BIN="$WORK/old/target/release/old-metrics-server"
[[ -x $OLD_BIN ]] || { echo "FAIL: old server did not build" >&2; exit 1; }

# This tree's server and the client, opt-level 2 like the old one (the test profile).
nice -n 19 cargo build -q -p control --profile test --example metrics_bench
NEW_BIN=target/debug/examples/metrics_bench
[[ -x $NEW_BIN ]] || { echo "FAIL: metrics_bench did not build" >&2; exit 1; }

nice -n 19 "$OLD_BIN" 127.0.0.1:19471 & PIDS+=($!)
nice -n 19 "$NEW_BIN" serve 127.0.0.1:19472 & PIDS+=($!)
for port in 19471 19472; do
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
        sleep 0.1
    done
done
nice -n 19 "$NEW_BIN" scrape handwritten=127.0.0.1:19471 hyper=127.0.0.1:19472 "$@"
