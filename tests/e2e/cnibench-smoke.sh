#!/usr/bin/env bash
# Smoke run of cnibench (10 pods, debug build): every figure of its JSON interface is
# present and numeric, for our plugin and the reference bridge + host-local (cnibench
# itself exits non-zero when an ADD gives no address or a DEL fails). Not a speed check:
# the full benchmark is `target/release/cnibench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "cnibench-smoke: FAIL: must run as root" >&2; exit 1; }
T=${CARGO_TARGET_DIR:-target}
out=$("$T/debug/cnibench" --pods 10 --json --bin-dir "$T/debug") || {
    echo "cnibench-smoke: FAIL: cnibench exited non-zero" >&2; exit 1; }
python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
keys = ["pods", "add_p50_ms", "add_p99_ms", "del_p50_ms", "pods_per_s",
        "ref_add_p50_ms", "ref_pods_per_s", "ratio_vs_ref"]
num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
bad = [k for k in keys if not num(r.get(k))]
if bad:
    sys.exit(f"cnibench-smoke: FAIL: missing or not numeric {bad}: {r}")
if [k for k in keys if r[k] <= 0] or r["pods"] != 10:
    sys.exit(f"cnibench-smoke: FAIL: figures not plausible: {r}")
print(f"cnibench-smoke: ok (10 pods: ADD p50 {r['add_p50_ms']:.1f} ms vs {r['ref_add_p50_ms']:.1f} ms, "
      f"{r['pods_per_s']:.0f} vs {r['ref_pods_per_s']:.0f} pods/s)")
PY
