#!/usr/bin/env bash
# The demo: a one-node namespace topology (two veth pods, a tap pod, a host behind the
# uplink; see scripts/topology.sh), vrouterd forwarding between them, traffic crossing it
# and its counters. Then a cluster: etcd and three nodes that find each other through it
# (scripts/demo-cluster.sh). Then the FIB on full-size tables (beside DPDK when
# installed). Pass --no-fib to stop before the FIB part. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
cargo build --release --locked -q -p vrouter -p control -p bench
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (namespaces, AF_XDP)" >&2; exit 1; }

P=vrdemo
source scripts/topology.sh
WORK=$(mktemp -d)
VR_PID=
cleanup() { [[ -n $VR_PID ]] && kill "$VR_PID" 2>/dev/null; sleep 0.3; topology_down; rm -rf "$WORK"; }
trap cleanup EXIT
topology_down
topology_up
write_config "$WORK/node.toml" adaptive

echo "== vrouterd on node $NODE: uplink up0 (10.99.0.1), pods A, B (veth) and C (tap) =="
sed 's/^/    /' "$WORK/node.toml" | head -12; echo "    ..."
ip netns exec "$NODE" ./target/release/vrouterd --config "$WORK/node.toml" \
    --stats-file "$WORK/stats.json" 2>"$WORK/vrouterd.log" &
VR_PID=$!
for _ in $(seq 50); do [[ -s $WORK/stats.json ]] && break; sleep 0.2; done
tap_pod_up
sed 's/^/    /' "$WORK/vrouterd.log"
echo "    XDP on the uplink: $(nsx "$NODE" ip link show up0 | grep -o 'prog/xdp id [0-9]* name [a-z_]*')"

show() { echo; echo "\$ $*"; "$@" 2>&1 | sed "s/^/    /" || true; }
show nsx ${P}a ping -c 3 -i 0.2 10.244.1.3
show nsx ${P}a ping -6 -c 3 -i 0.2 fd10::3
show nsx ${P}c ping -c 3 -i 0.2 10.244.1.2
show nsx ${P}h ping -c 3 -i 0.2 10.244.1.4
show nsx ${P}h ping -c 1 -t 1 10.244.1.2
nsx ${P}b iperf3 -s -1 >/dev/null 2>&1 &
sleep 0.3
echo; echo "\$ iperf3 pod A -> pod B (TCP, 3 s)"
nsx ${P}a iperf3 -c 10.244.1.3 -t 3 | grep -E "sender|receiver" | sed 's/^/    /'
sleep 1.2
echo; echo "== counters (summed over workers) =="
python3 - "$WORK/stats.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("rx", "tx", "replies", "icmp_errors", "held", "to_kernel"):
    print(f"    {k:<12} {d[k]:>12,}")
for k, v in d["drops"].items():
    if v:
        print(f"    drop {k:<7} {v:>12,}")
for e in d["endpoints"]:
    print(f"    endpoint {e['name']:<12} {e['interface']:<10} MAC learnt: {e['resolved']}")
PY
CTL="target/release/vrouterctl --socket $WORK/api.sock"
show $CTL node status
show $CTL endpoint list
show $CTL route list --limit 8
kill "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=
echo "    (vrouterd stopped; XDP left the uplink: $(nsx "$NODE" ip link show up0 | grep -c prog/xdp) programs attached)"

echo
echo "== the cluster: etcd and three nodes that find each other through it =="
scripts/demo-cluster.sh

[[ ${1:-} == --no-fib ]] && exit 0
echo
echo "== FIB, IPv4: 1,076,806 prefixes (DPDK's distribution), with rte_lpm / rte_fib beside =="
./target/release/fibbench --family v4 --compare-dpdk
echo
echo "== FIB, IPv6: 200,000 prefixes =="
./target/release/fibbench --family v6
