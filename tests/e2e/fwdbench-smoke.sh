#!/usr/bin/env bash
# Smoke run of fwdbench --quick on one scenario: every forwarder (vrouterd, the bare
# AF_XDP forwarder, DPDK testpmd, the kernel) produced positive figures over its windows,
# CPU use was read, and memio ran. Not a speed check (debug build, half-second windows):
# the benchmark itself is `cargo build --release -p vrouter -p bench &&
# target/release/fwdbench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "fwdbench-smoke: FAIL: must run as root" >&2; exit 1; }
[[ -x /usr/bin/dpdk-testpmd ]] || { echo "fwdbench-smoke: FAIL: dpdk-testpmd missing (run scripts/setup.sh)" >&2; exit 1; }
md=$(mktemp)
trap 'rm -f "$md"' EXIT
out=$(target/debug/fwdbench --quick --scenario l3 --routes 100000 --json --markdown "$md")
python3 - "$out" "$md" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
names = [c["name"] for c in r["candidates"]]
want = ["vrouterd", "bare AF_XDP", "DPDK testpmd", "kernel ip_forward"]
missing = [w for w in want if not any(n.startswith(w) for n in names)]
bad = [(c["name"], k) for c in r["candidates"] for k in
       ("mpps_min", "mpps_median", "mpps_max", "offered_mpps", "dut_cpu_busy", "gen_cpu_busy")
       if not (isinstance(c[k], (int, float)) and c[k] > 0)]
bad += [(c["name"], "windows") for c in r["candidates"] if len(c["windows_mpps"]) < 3]
top = ["vrouter_mpps", "bare_afxdp_mpps", "testpmd_mpps", "kernel_mpps", "ratio_vs_bare", "memio_scaling_2_workers",
       "ratio_vs_testpmd", "ratio_vs_kernel", "memio_cycles_per_pkt"]
bad += [k for k in top if not (isinstance(r.get(k), (int, float)) and r[k] > 0)]
table = open(sys.argv[2]).read()
if missing or bad or table.count("\n| ") < 4:
    sys.exit(f"fwdbench-smoke: FAIL: missing {missing}, non-positive {bad}\n{table}")
print("fwdbench-smoke: ok (" + ", ".join(f"{c['name']} {c['mpps_median']:.3f}" for c in r["candidates"])
      + f" Mpps; memio {r['memio_cycles_per_pkt']:.0f} cycles)")
PY
