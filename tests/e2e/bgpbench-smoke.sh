#!/usr/bin/env bash
# Smoke run of bgpbench on a small table: every figure is produced and positive (not a
# speed check: the full benchmark is `cargo run --release -p bench --bin bgpbench`).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "bgpbench-smoke: FAIL: must run as root" >&2; exit 1; }
out=$(target/debug/bgpbench --routes 20000 --json --vrouterd target/debug/vrouterd)
python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
keys = ["routes", "drawn", "sender_alone_s", "vrouter_converge_s", "bird_kernel_converge_s",
        "ratio", "vrouter_rss_bytes", "vrouter_bytes_per_route", "bird_rss_bytes", "churn_updates_per_s"]
bad = [k for k in keys if not (isinstance(r.get(k), (int, float)) and r[k] > 0)]
if bad or r["routes"] != 20000 or r["bird_kernel_routes"] < r["routes"]:
    sys.exit(f"bgpbench-smoke: FAIL: missing or non-positive {bad}: {r}")
print(f"bgpbench-smoke: ok ({r['routes']} routes: vrouterd {r['vrouter_converge_s']:.3f} s, "
      f"BIRD {r['bird_kernel_converge_s']:.3f} s)")
PY
