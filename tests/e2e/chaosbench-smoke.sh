#!/usr/bin/env bash
# Smoke run of chaosbench (debug build): `--quick --scenario reload,restart`, then a
# 2-minute `--soak 2`. Every figure of the JSON interface is present and numeric, the
# restart figures measured (kill -9 and planned), the soak sampled each node and its
# counters balance exactly once traffic stopped. Not a speed check, and not the chaos
# assertions (tests/e2e/chaos.sh makes those).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "chaosbench-smoke: FAIL: must run as root" >&2; exit 1; }
T=${CARGO_TARGET_DIR:-target}
SOAK_MIN=${SOAK_MIN:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$T/debug/chaosbench" --quick --scenario reload,restart --vrouterd "$T/debug/vrouterd" \
    --out "$WORK/quick.json" >"$WORK/quick.txt" 2>"$WORK/quick.log" || {
    tail -n 20 "$WORK/quick.log"; echo "chaosbench-smoke: FAIL: chaosbench --quick exited non-zero" >&2; exit 1; }
cat "$WORK/quick.txt"
"$T/debug/chaosbench" --soak "$SOAK_MIN" --vrouterd "$T/debug/vrouterd" \
    --out "$WORK/soak.json" >"$WORK/soak.txt" 2>"$WORK/soak.log" || {
    tail -n 20 "$WORK/soak.log"; echo "chaosbench-smoke: FAIL: chaosbench --soak exited non-zero" >&2; exit 1; }
cat "$WORK/soak.txt"
python3 - "$WORK/quick.json" "$WORK/soak.json" "$SOAK_MIN" <<'PY'
import json, sys
q, s, minutes = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
fail = lambda m: sys.exit(f"chaosbench-smoke: FAIL: {m}")
names = [e["event"] for e in q["events"]]
if names != ["reload_node1", "restart_kill9_node1", "restart_planned_node1"]:
    fail(f"events {names}")
for e in q["events"]:
    for k in ("lost_packets", "loss_ms", "outage_ms", "reordered", "window_ms"):
        if not num(e.get(k)):
            fail(f"{e['event']}: {k} = {e.get(k)!r}")
    if len(e["flows"]) != 3 or any(f["sent"] <= 0 for f in e["flows"]):
        fail(f"{e['event']}: flows {e['flows']}")
for k in ("restart_kill9_outage_ms", "restart_planned_outage_ms", "restart_kill9_lost", "restart_planned_lost"):
    if not num(q.get(k)):
        fail(f"{k} = {q.get(k)!r}")
if q["restart_kill9_outage_ms"] <= 0:
    fail("kill -9 cost the same-node stream nothing: was vrouterd killed?")
soak = s["soak"]
if not soak or len(soak["trends"]) != 3:
    fail(f"soak trends: {soak and soak['trends']}")
for t in soak["trends"]:
    want = minutes * 60 / 5 * 0.6
    if t["samples"] < want or not all(num(t[k]) for k in ("rss_kb_per_min", "fds_per_min", "flows_per_min")):
        fail(f"node {t['node']}: {t['samples']} samples (want >= {want:.0f}) or figures missing: {t}")
    if t["rss_kb_first"] <= 0 or t["fds_first"] <= 0:
        fail(f"node {t['node']}: RSS or fds not read: {t}")
if soak["rounds"] < 5 or soak["round_errors"]:
    fail(f"soak rounds {soak['rounds']}, errors {soak['round_errors'][:5]}")
if not soak["counters_consistent"]:
    fail(f"counters do not balance: {soak['final_balance']}")
lost = sum(f["lost_packets"] for f in soak["flows"])
print(f"chaosbench-smoke: ok (restart outage: kill -9 {q['restart_kill9_outage_ms']:.1f} ms, "
      f"planned {q['restart_planned_outage_ms']:.1f} ms; soak {minutes} min: "
      + ", ".join(f"node {t['node']} RSS {t['rss_kb_per_min']:+.0f} KB/min fds {t['fds_per_min']:+.2f}/min" for t in soak["trends"])
      + f"; {lost} probe packets lost)")
PY
