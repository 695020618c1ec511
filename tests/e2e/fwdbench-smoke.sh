#!/usr/bin/env bash
# Smoke runs of fwdbench --quick on l3 (in three rounds of one window), on fullfib (a
# 100,000-route table over BGP and ip -batch) and on nat (NAT outgoing against nftables
# masquerade): every forwarder (vrouterd with 1 and 2 workers, the bare AF_XDP forwarder,
# DPDK testpmd, the kernel) produced positive figures over its windows and its latency
# probe, a median per round and a spread, vrouterd's ratios per round, CPU use was read,
# and memio ran. Not a speed check (debug build, short windows):
# the benchmark itself is `cargo build --release -p vrouter -p bench &&
# target/release/fwdbench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "fwdbench-smoke: FAIL: must run as root" >&2; exit 1; }
[[ -x /usr/bin/dpdk-testpmd ]] || { echo "fwdbench-smoke: FAIL: dpdk-testpmd missing (run scripts/setup.sh)" >&2; exit 1; }
md=$(mktemp)
trap 'rm -f "$md"' EXIT
# The checks of the rounds' keys, shared by the scenarios below: per forwarder a median
# per round and a spread, vrouterd's ratios per round; a missing key fails.
rounds_check='
def rounds_bad(r, candidates, refs):
    n = r.get("rounds")
    if not (isinstance(n, int) and n >= 1):
        return [("rounds", n)]
    bad = []
    per = r.get("windows_per_round")
    if not (isinstance(per, list) and len(per) == n and all(isinstance(w, int) and w >= 1 for w in per)
            and sum(per) == r.get("windows")):
        bad.append(("windows_per_round", per))
    def series(k):
        v = r.get(k)
        if not (isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and x > 0 for x in v)):
            bad.append((k, v))
    for c in candidates:
        series(c + "_round_medians_mpps")
        if not (isinstance(r.get(c + "_spread"), (int, float)) and r[c + "_spread"] >= 0):
            bad.append((c + "_spread", r.get(c + "_spread")))
    for ref in refs:
        series("ratio_vs_" + ref + "_per_round")
    for c in r.get("candidates", []):
        m = c.get("round_medians_mpps")
        if not (isinstance(m, list) and len(m) == n and all(isinstance(x, (int, float)) and x > 0 for x in m)):
            bad.append((c.get("name"), "round_medians_mpps", m))
        if not (isinstance(c.get("spread"), (int, float)) and c["spread"] >= 0):
            bad.append((c.get("name"), "spread", c.get("spread")))
    return bad
'
for scenario in l3 fullfib; do
rounds=1
[[ $scenario == l3 ]] && rounds=3
variant=()
# l3 also runs vrouterd with busy polling and need_wakeup (options the kernel must take,
# or vrouterd does not start).
[[ $scenario == l3 ]] && variant=(--afxdp-variant "busy:busy_poll_us=50,prefer_busy_poll=true,busy_poll_budget=64,need_wakeup=true,uplink_fill=512,rx_batch=32")
out=$(target/debug/fwdbench --quick --scenario $scenario --routes 100000 --rounds $rounds --json --markdown "$md" "${variant[@]}")
/usr/bin/python3 - "$out" "$md" "$rounds_check" "$rounds" <<'PY'
import json, sys
exec(sys.argv[3])
r = json.loads(sys.argv[1])
names = [c["name"] for c in r["candidates"]]
want = ["vrouterd", "vrouterd 2 workers", "bare AF_XDP", "DPDK testpmd", "kernel ip_forward"]
missing = [w for w in want if not any(n.startswith(w) for n in names)]
bad = [(c["name"], k) for c in r["candidates"] for k in
       ("mpps_min", "mpps_median", "mpps_max", "offered_mpps", "dut_cpu_busy", "gen_cpu_busy",
        "latency_p50_us", "latency_p99_us", "latency_offered_pps")
       if not (isinstance(c[k], (int, float)) and c[k] > 0)]
bad += [(c["name"], "windows") for c in r["candidates"] if len(c["windows_mpps"]) < 3]
top = ["vrouter_mpps", "bare_afxdp_mpps", "testpmd_mpps", "kernel_mpps", "ratio_vs_bare", "memio_scaling_2_workers",
       "ratio_vs_testpmd", "ratio_vs_kernel", "memio_cycles_per_pkt", "vrouter_2_workers_mpps", "scaling_2_workers"]
if r["scenario"] == "fullfib":
    top += ["fib_routes", "vrouter_fib_install_s", "kernel_fib_install_s"]
    if r.get("fib_routes") != 100000:
        bad.append(("fib_routes", r.get("fib_routes")))
bad += [k for k in top if not (isinstance(r.get(k), (int, float)) and r[k] > 0)]
if r.get("rounds") != int(sys.argv[4]):
    bad.append(("rounds", r.get("rounds")))
bad += rounds_bad(r, ["vrouter", "vrouter_2_workers", "bare_afxdp", "testpmd", "kernel"], ["bare", "testpmd", "kernel"])
if r["scenario"] == "l3":
    want.append("vrouterd afxdp busy")
    v = r.get("afxdp_variants") or [{}]
    if len(v) != 1 or v[0].get("name") != "busy" or "busy_poll_us=50" not in v[0].get("settings", ""):
        bad.append(("afxdp_variants", v))
    for k in ("mpps_median", "ratio_vs_vrouter", "ratio_vs_kernel"):
        if not (isinstance(v[0].get(k), (int, float)) and v[0][k] > 0):
            bad.append(("afxdp_variants", k, v[0].get(k)))
    if len(v[0].get("ratio_vs_kernel_per_round", [])) != int(sys.argv[4]):
        bad.append(("afxdp_variants", "ratio_vs_kernel_per_round", v[0].get("ratio_vs_kernel_per_round")))
    missing += [w for w in want[-1:] if not any(n.startswith(w) for n in names)]
table = open(sys.argv[2]).read()
if "| spread |" not in table:
    bad.append("markdown: no spread column")
if missing or bad or table.count("\n| ") < 5:
    sys.exit(f"fwdbench-smoke: FAIL: {r['scenario']}: missing {missing}, non-positive {bad}\n{table}")
print(f"fwdbench-smoke: {r['scenario']} ok (" + ", ".join(f"{c['name']} {c['mpps_median']:.3f}" for c in r["candidates"])
      + f" Mpps; {r['rounds']} round(s), ratio vs bare per round {r['ratio_vs_bare_per_round']}; memio {r['memio_cycles_per_pkt']:.0f} cycles)")
PY
done
# NAT outgoing: vrouterd against the kernel's masquerade (whose conntrack table must show
# the translated flows, or fwdbench fails), and the conntrack / NAT memio figures.
out=$(target/debug/fwdbench --quick --scenario nat --routes 100000 --no-testpmd --json)
/usr/bin/python3 - "$out" "$rounds_check" <<'PY'
import json, sys
exec(sys.argv[2])
r = json.loads(sys.argv[1])
names = [c["name"] for c in r["candidates"]]
want = ["vrouterd NAT outgoing", "vrouterd 2 workers", "bare AF_XDP", "kernel NAT"]
missing = [w for w in want if not any(n.startswith(w) for n in names)]
top = ["vrouter_mpps", "kernel_nat_mpps", "ratio_vs_kernel_nat", "memio_pod_plain_cycles_per_pkt",
       "memio_conntrack_cycles_per_pkt", "memio_nat_cycles_per_pkt", "new_flows_per_s",
       "conntrack_bytes_per_flow", "conntrack_ratio_vs_plain", "nat_ratio_vs_plain"]
bad = [k for k in top if not (isinstance(r.get(k), (int, float)) and r[k] > 0)]
bad += [c["name"] for c in r["candidates"] if not c["mpps_median"] > 0]
counters = r.get("vrouterd_counters") or {}
if not counters.get("nat_translated", 0) > 0:
    bad.append("vrouterd_counters.nat_translated")
if r.get("memio_nat_translated_ratio") != 1.0:
    bad.append(("memio_nat_translated_ratio", r.get("memio_nat_translated_ratio")))
bad += rounds_bad(r, ["vrouter", "vrouter_2_workers", "bare_afxdp", "kernel"], ["bare", "kernel"])
if missing or bad:
    sys.exit(f"fwdbench-smoke: FAIL: nat: missing {missing}, non-positive or wrong {bad}")
print(f"fwdbench-smoke: nat ok (" + ", ".join(f"{c['name']} {c['mpps_median']:.3f}" for c in r["candidates"])
      + f" Mpps; NAT memio {r['memio_nat_cycles_per_pkt']:.0f} cycles, {r['new_flows_per_s']/1e6:.2f} M new flows/s)")
PY
# Network policy at 1 and 1,000 rules: vrouterd (which must have tracked flows, or
# fwdbench fails) beside the kernel's nftables chain (whose final accept must have
# counted), and the memio figures per N.
out=$(target/debug/fwdbench --quick --scenario policy --rules 1,1000 --routes 100000 --no-testpmd --no-two-workers --packets 400000 --json)
/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
rows = r.get("policy") or []
bad = []
if [x.get("rules") for x in rows] != [1, 1000]:
    bad.append(("rules", [x.get("rules") for x in rows]))
for x in rows:
    for k in ["vrouter_mpps", "kernel_policy_mpps", "ratio_vs_kernel_policy", "vrouter_tracked_flows",
              "memio_no_policy_cycles_per_pkt", "established_ratio_vs_no_policy", "new_ratio_vs_no_policy",
              "compile_publish_ms"]:
        if not (isinstance(x.get(k), (int, float)) and x[k] > 0):
            bad.append((x.get("rules"), k, x.get(k)))
    c = x.get("memio_policy_cycles_per_pkt") or {}
    for k in ["established", "new", "established_256_flows"]:
        if not (isinstance(c.get(k), (int, float)) and c[k] > 0):
            bad.append((x.get("rules"), "memio_policy_cycles_per_pkt." + k, c.get(k)))
if bad:
    sys.exit(f"fwdbench-smoke: FAIL: policy: missing, non-positive or wrong {bad}")
print("fwdbench-smoke: policy ok (" + "; ".join(
    f"N={x['rules']}: vrouterd {x['vrouter_mpps']:.3f} vs kernel {x['kernel_policy_mpps']:.3f} Mpps, "
    f"memio established {x['memio_policy_cycles_per_pkt']['established']:.0f} / new {x['memio_policy_cycles_per_pkt']['new']:.0f} cycles"
    for x in rows) + ")")
PY
