#!/usr/bin/env bash
# End to end, chaos under traffic (issue 19): chaosbench builds three vrouterd nodes on a
# 3-member etcd with a BIRD route reflector, four pods, sequence-numbered UDP probes
# (a1 -> a2 and a3 -> a1 at 10 kpps, b1 -> a1 on one node at 1 kHz) and iperf3 TCP
# a1 -> a2, injects each fault and measures it; this script judges its JSON:
#   reload   SIGHUP: no flow loses a packet;
#   churn    endpoints added and removed under load: no flow loses a packet;
#   etcd     a member killed and restarted: no flow loses a packet;
#   rr       BIRD killed and restarted: the nodes keep its routes (graceful restart),
#            every flow keeps delivering (loss reported: zero is the goal, not met
#            yet under load — see docs/decisions.md);
#   flap     node 3's uplink down 1 s: its flow recovers, the others lose nothing;
#   kill9    vrouterd of node 2 killed (-9), started after RestartSec: nodes 1 and 3 and
#            BIRD keep its routes while it is away, flows not through it lose nothing,
#            the flow through it recovers within the window;
#   restart  node 1 killed and started at once, then stopped (SIGTERM) and started:
#            the new run takes over the sockets and UMEM the fd store kept (chaosbench
#            plays systemd's store), the same-node stream recovers (its outage is
#            reported, bounded loosely).
# Missing evidence fails: an absent or non-numeric figure, an event not run, a flow
# that sent nothing. Needs root, etcd, bird2, iperf3. Fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
CHAOSBENCH=${CHAOSBENCH:-$T/debug/chaosbench}
VROUTERD=${VROUTERD:-$T/debug/vrouterd}
die() { echo "chaos: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in etcd etcdctl bird birdc iperf3 python3 ethtool; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $CHAOSBENCH ]] || die "$CHAOSBENCH not built (cargo build -p bench)"
[[ -x $VROUTERD ]] || die "$VROUTERD not built (cargo build -p vrouter)"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
strict chaos
cleanup() { unstrict; rm -rf "$WORK"; } # chaosbench removes its namespaces itself
trap cleanup EXIT

RC=0
"$CHAOSBENCH" --scenario "${SCENARIOS:-all}" --quick --vrouterd "$VROUTERD" \
    --out "$WORK/chaos.json" --keep-logs "$WORK/logs" >"$WORK/table" 2>"$WORK/bench.log" || RC=$?
cat "$WORK/table"
J=$WORK/chaos.json
ran() {
    tail -n 20 "$WORK/bench.log"
    echo "exit $RC"; ((RC == 0)) && [[ -s $J ]]
}
check "chaosbench ran and wrote its report (exit 0, no measuring error)" ran
[[ -s $J ]] || finish chaos

# ev event python-condition: over e (the event), f (its flows by name), x (its evidence);
# a missing key or a non-number where a number is wanted fails the check.
ev() {
    python3 - "$J" "$1" "$2" <<'PY'
import json, sys
path, name, cond = sys.argv[1:4]
r = json.load(open(path))
es = [e for e in r["events"] if e["event"] == name]
assert len(es) == 1, f"event {name}: {len(es)} in the report"
e = es[0]
f = {fl["flow"]: fl for fl in e["flows"]}
x = e["evidence"]
num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
for fl in e["flows"]:
    for k in ("sent", "received", "lost_packets", "outage_ms", "reordered"):
        assert num(fl[k]), f"{fl['flow']}: {k} = {fl[k]!r}"
    assert fl["sent"] > 0, f"{fl['flow']} sent nothing in the window"
print(json.dumps({k: e[k] for k in ("lost_packets", "outage_ms", "reordered", "lost_packets_other_flows", "healthy_before", "errors")}))
print("flows:", json.dumps([{k: fl[k] for k in ("flow", "sent", "lost_packets", "outage_ms", "through_fault", "tail_delivery")} for fl in e["flows"]]))
print("evidence:", json.dumps(x))
assert e["healthy_before"], "a flow was not delivering before the fault"
assert not e["errors"], e["errors"]
assert eval(cond), cond
PY
}
ZERO='e["lost_packets"] == 0'
# The reflector's restart cost cross-node flows up to 0.1 s once under a loaded host
# (open: docs/decisions.md, "Chaos and soak"): asserted is that every flow delivers at
# the end of the window (>= 90 % of its last 250 ms) and no silence lasts 5 s; the loss
# is printed. Churn lost nothing once endpoints' sockets and taps were opened and closed
# off the workers.
KEEPS='all(fl["tail_delivery"] >= 0.9 and fl["outage_ms"] < 5000 for fl in e["flows"])'
check "reload   SIGHUP reloaded (logged, same process), no flow lost a packet" \
    ev reload_node1 "x['reloaded_logged'] and x['same_pid'] and $ZERO"
check "churn    endpoints added and removed without an API error, no flow lost a packet" \
    ev churn "x['endpoints_added'] == x['endpoints_removed'] == 2 * x['rounds'] > 0 and not x['api_errors'] and $ZERO"
check "etcd     member killed (gone) and restarted, no flow lost a packet" \
    ev etcd_member_kill "x['member_gone'] and x['restarted'] and $ZERO"
check "rr       BIRD killed: node 1 saw its session go, nodes kept the routes (GR), flows delivered" \
    ev rr_kill "x['routes_before'] and x['node1_saw_session_down'] and x['route_samples_while_down'] > 0 and x['routes_kept_by_nodes'] and $KEEPS"
check "flap     node 3's uplink flapped: its flow was cut and recovered, the others lost nothing" \
    ev flap_node3_uplink "f['a3>a1']['lost_packets'] > 0 and f['a3>a1']['recovered'] and f['a3>a1']['outage_ms'] < 30000 and e['lost_packets_other_flows'] == 0"
check "kill9    node 2 killed: BIRD saw it go, nodes 1 and 3 kept its routes (GR) meanwhile" \
    ev kill9_node2 "x['killed_pid_gone'] and 'Established' not in x['rr_session_while_down'] and x['routes_before'] and x['route_samples_while_down'] > 0 and x['routes_kept_by_peers']"
check "kill9    flows not through node 2 lost nothing" \
    ev kill9_node2 "e['lost_packets_other_flows'] == 0 and not f['a3>a1']['through_fault']"
check "kill9    the flow through node 2 was cut and recovered within the window (< 15 s)" \
    ev kill9_node2 "f['a1>a2']['lost_packets'] > 0 and f['a1>a2']['recovered'] and 0 < f['a1>a2']['outage_ms'] < 15000 and x['forwarding_again_ms'] < 15000"
# The restarted node takes over what systemd's fd store (chaosbench's) kept: its
# sockets, UMEM and XDP programs.
check "restart  kill -9 + start at once: sockets taken over, the same-node stream recovered" \
    ev restart_kill9_node1 "x['took_over'] and any(n.startswith('umem/') for n in x['fds_stored']) and f['b1>a1']['recovered'] and f['b1>a1']['outage_ms'] < 10000"
check "restart  SIGTERM + start at once: sockets taken over, the same-node stream recovered" \
    ev restart_planned_node1 "x['took_over'] and f['b1>a1']['recovered'] and f['b1>a1']['outage_ms'] < 10000"
top() {
    python3 - "$J" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
for k in ("restart_kill9_outage_ms", "restart_planned_outage_ms", "restart_kill9_lost", "restart_planned_lost"):
    assert num(r[k]), f"{k} = {r[k]!r}"
print({k: r[k] for k in ("restart_kill9_outage_ms", "restart_planned_outage_ms", "iperf_survived", "iperf_intervals", "probe_send_errors")})
k = [e for e in r["events"] if e["event"] == "kill9_node2"][0]
assert k["iperf"]["intervals"] > 0, "no iperf3 interval during kill9"
assert r["iperf_survived"] and r["iperf_intervals"] > 10, "iperf3 did not survive the events"
PY
}
check "restart figures present; iperf3 TCP through node 2 survived every event" top

logs() { echo "chaosbench log:"; tail -n 30 "$WORK/bench.log"; tail -n 5 "$WORK"/logs/*.log 2>/dev/null || true; }
finish chaos logs
