#!/usr/bin/env bash
# Smoke run of clusterbench on a small cluster (3 nodes, 30 endpoint adds, debug build):
# every figure of its JSON interface is present and numeric, the allocations made no
# error and no duplicate (clusterbench itself exits non-zero on a duplicate or an IPAM
# problem). Not a speed check: the full benchmark is `target/release/clusterbench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "clusterbench-smoke: FAIL: must run as root" >&2; exit 1; }
T=${CARGO_TARGET_DIR:-target}
out=$("$T/debug/clusterbench" --nodes 3 --endpoints 30 --json --vrouterd "$T/debug/vrouterd") || {
    echo "clusterbench-smoke: FAIL: clusterbench exited non-zero" >&2; exit 1; }
python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
keys = ["nodes", "endpoints", "join_to_mesh_s", "alloc_per_s", "alloc_p99_ms",
        "etcd_member_loss_alloc_errors", "rss_bytes_per_node", "alloc_duplicates",
        "alloc_errors", "mesh_sessions", "etcd_members", "ipam_alloc_per_s", "ipam_alloc_p99_ms"]
num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
bad = [k for k in keys if not num(r.get(k))]
if bad:
    sys.exit(f"clusterbench-smoke: FAIL: missing or not numeric {bad}: {r}")
positive = ["join_to_mesh_s", "alloc_per_s", "alloc_p99_ms", "rss_bytes_per_node", "ipam_alloc_per_s"]
if [k for k in positive if r[k] <= 0] or r["nodes"] != 3 or r["endpoints"] != 30:
    sys.exit(f"clusterbench-smoke: FAIL: figures not plausible: {r}")
if r["alloc_errors"] or r["alloc_duplicates"] or r["mesh_sessions"] != r["mesh_sessions_expected"]:
    sys.exit(f"clusterbench-smoke: FAIL: errors, duplicates or sessions missing: {r}")
print(f"clusterbench-smoke: ok (3 nodes: join {r['join_to_mesh_s']:.2f} s, "
      f"{r['alloc_per_s']:.0f} allocations/s, p99 {r['alloc_p99_ms']:.1f} ms, "
      f"{r['etcd_member_loss_alloc_errors']} errors with a member down, "
      f"RSS {r['rss_bytes_per_node'] / 1e6:.0f} MB per node)")
PY
