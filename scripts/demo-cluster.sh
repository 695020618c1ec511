#!/usr/bin/env bash
# The cluster part of the demo: a small etcd and three vrouterd nodes whose files name
# no other node and no pool. The pool is applied to etcd as calicoctl would; the nodes
# register, find each other, mesh over BGP and carry pod traffic over VXLAN; pods get
# their addresses from the shared IPAM. As root; called by scripts/demo.sh (release
# binaries built).
set -euo pipefail
cd "$(dirname "$0")/.."
P=vrcl
WORK=$(mktemp -d)
. tests/e2e/lib.sh
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for ns in hub n1 n2 n3 a1 a2 a3; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$P$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup 2>/dev/null; WORK=$(mktemp -d)
VROUTERD=target/release/vrouterd
CTL=target/release/vrouterctl
EP=http://10.96.0.250:2379
show() { echo; echo "\$ $*"; "$@" 2>&1 | sed "s/^/    /" || true; }

hub
nsx ${P}hub ip addr add 10.96.0.250/24 dev br0
nsx ${P}hub ip link set lo up
ip netns exec ${P}hub etcd --name demo --data-dir "$WORK/etcd" \
    --listen-client-urls $EP --advertise-client-urls $EP \
    --listen-peer-urls http://10.96.0.250:2380 --initial-advertise-peer-urls http://10.96.0.250:2380 \
    --initial-cluster demo=http://10.96.0.250:2380 >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do nsx ${P}hub env ETCDCTL_API=3 etcdctl --endpoints=$EP put /demo ok >/dev/null 2>&1 && break; sleep 0.2; done
echo "== etcd on the underlay ($EP); pools applied to it as calicoctl would =="
cat >"$WORK/pools.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  vxlanMode: Always
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv6-ippool
spec:
  cidr: fd10::/48
  vxlanMode: Always
YAML
show nsx ${P}hub $CTL --etcd-endpoints $EP pool apply -f "$WORK/pools.yaml"

for i in 1 2 3; do
    underlay ${P}n$i 10.96.0.$i fd96::$i
    cat >"$WORK/n$i.toml" <<CFG
node_name = "node-$i"
node_ips = ["10.96.0.$i/24", "fd96::$i/64"]
state_dir = "$WORK/state-$i"
api = { socket = "$WORK/api-$i.sock" }
[[uplinks]]
name = "up0"
[workers]
cores = [$((i % 2))]
endpoint_slots = 4
[bgp]
restart_marker = "$WORK/n$i.restart"
[datastore]
type = "etcdv3"
endpoints = ["$EP"]
CFG
    ip netns exec ${P}n$i $VROUTERD --config "$WORK/n$i.toml" --stats-file "$WORK/n$i.json" 2>"$WORK/n$i.log" &
    PIDS+=($!)
done
echo; echo "== three nodes; node-1's whole file (no [[nodes]], no [[pools]]) =="
sed 's/^/    /' "$WORK/n1.toml"
meshed() { python3 -c "import json,sys; j=json.load(open('$WORK/n$1.json'))['bgp']; sys.exit(0 if sum(p['state']=='Established' for p in j['peers'])>=2 else 1)" 2>/dev/null; }
for _ in $(seq 150); do meshed 1 && meshed 2 && meshed 3 && break; sleep 0.2; done

declare -A V4 V6
for i in 1 2 3; do
    ip netns add ${P}a$i
    nsx ${P}a$i ip link set lo up
    ip link add pod$i netns ${P}n$i type veth peer name eth0 netns ${P}a$i
    nsx ${P}n$i ip link set pod$i address ee:ee:ee:ee:ee:ee up
    off ${P}n$i pod$i
    nsx ${P}a$i ip link set eth0 up
    off ${P}a$i eth0
    out=$($CTL --socket "$WORK/api-$i.sock" endpoint add pod --interface pod$i --ipv6 --json)
    V4[$i]=$(python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["addresses"] if ":" not in a][0].split("/")[0])' <<<"$out")
    V6[$i]=$(python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["addresses"] if ":" in a][0].split("/")[0])' <<<"$out")
    nsx ${P}a$i ip addr add "${V4[$i]}/32" dev eth0
    nsx ${P}a$i ip -6 addr add "${V6[$i]}/128" dev eth0 nodad
    nsx ${P}a$i ip route add 169.254.1.1 dev eth0 scope link
    nsx ${P}a$i ip route add default via 169.254.1.1 dev eth0
    nsx ${P}a$i ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0
    echo "    pod on node-$i: ${V4[$i]} ${V6[$i]} (from the shared IPAM)"
done
show nsx ${P}a1 ping -c 3 -i 0.2 "${V4[2]}"
show nsx ${P}a3 ping -6 -c 3 -i 0.2 "${V6[1]}"
show $CTL --socket "$WORK/api-1.sock" node status
show nsx ${P}hub $CTL --etcd-endpoints $EP node list
show nsx ${P}hub $CTL --etcd-endpoints $EP ipam show --show-blocks
show nsx ${P}hub $CTL --etcd-endpoints $EP ipam check
