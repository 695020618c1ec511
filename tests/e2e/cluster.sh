#!/usr/bin/env bash
# End to end, the cluster datastore: a 3-member etcd (Debian's etcd-server) and vrouterd
# nodes in namespaces on one underlay bridge (10.97.0.0/24), with no [[nodes]] and no
# pools in any file. Pools and the BGP configuration are written into etcd as Calico
# writes them; the nodes register, find each other, mesh over BGP and carry pod traffic
# over VXLAN; pods get their addresses from the shared IPAM through the API.
#   - every pod pings every other pod, IPv4 and IPv6;
#   - 200 endpoints added at once across the nodes: all addresses distinct;
#   - one etcd member killed: a 6th node joins and is reachable within seconds,
#     allocation goes on;
#   - every member stopped: pod traffic flows, allocation fails naming the datastore,
#     node status and /readyz say since when;
#   - every endpoint is a Calico WorkloadEndpoint in etcd, one the CNI plugin made
#     named and labelled as Calico's plugin names it; removed endpoints' go;
#   - members back: resync, allocation works, `vrouterctl ipam check` is clean.
# Needs root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
CNI=${CNI:-target/debug/vrouter-cni}
P=${P:-vrc$$}
die() { echo "cluster: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping python3 ethtool etcd etcdctl curl; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD && -x $VROUTERCTL && -x $CNI ]] || die "$VROUTERD / $VROUTERCTL / $CNI not built"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
strict cluster
chmod 755 "$WORK"
PIDS=()
NODES="n1 n2 n3 n4 n5 n6"
cleanup() {
    unstrict
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in hub $NODES a1 a2 a3 a4 a5 a6 web0; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- the underlay; etcd on the hub's bridge address (10.97.0.250), as a real cluster's
# etcd sits on the network, not on each node's loopback.
hub
nsx ${P}hub ip addr add 10.97.0.250/24 dev br0
nsx ${P}hub ip link set lo up
EP=http://10.97.0.250:23791,http://10.97.0.250:23792,http://10.97.0.250:23793
CL=m1=http://10.97.0.250:23801,m2=http://10.97.0.250:23802,m3=http://10.97.0.250:23803
declare -A ETCD_PID
etcd_start() { # member number, "new" or "existing"
    local i=$1
    # ip netns exec execs etcd itself: $! is etcd's pid (kill -9 kills the member).
    ip netns exec ${P}hub etcd --name m$i --data-dir "$WORK/etcd-m$i" \
        --listen-client-urls http://10.97.0.250:2379$i --advertise-client-urls http://10.97.0.250:2379$i \
        --listen-peer-urls http://10.97.0.250:2380$i --initial-advertise-peer-urls http://10.97.0.250:2380$i \
        --initial-cluster "$CL" --initial-cluster-state "$2" --initial-cluster-token vr-e2e \
        --heartbeat-interval 50 --election-timeout 500 >>"$WORK/etcd-m$i.log" 2>&1 &
    ETCD_PID[$i]=$!
    PIDS+=($!)
}
etcdctl_() { nsx ${P}hub env ETCDCTL_API=3 etcdctl --endpoints=$EP --command-timeout=3s "$@"; }
etcd_healthy() { etcdctl_ put /vrouter-e2e ok >/dev/null 2>&1; }
for i in 1 2 3; do etcd_start $i new; done
within 20 etcd_healthy || { tail -5 "$WORK"/etcd-m*.log; die "etcd did not come up"; }

# --- Calico's records, byte for byte as calicoctl stores them.
R=/calico/resources/v3/projectcalico.org
etcdctl_ put $R/ippools/default-ipv4-ippool '{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":"0b2f6e8e-7c1a-4f0e-9a51-2d6f3c1b9e01","creationTimestamp":"2026-12-02T10:00:00Z"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}' >/dev/null
etcdctl_ put $R/ippools/default-ipv6-ippool '{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv6-ippool"},"spec":{"cidr":"fd10::/48","vxlanMode":"Always","ipipMode":"Never","blockSize":122,"nodeSelector":"all()"}}' >/dev/null
etcdctl_ put $R/bgpconfigurations/default '{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":true,"asNumber":64512}}' >/dev/null
# A malformed record: named in the logs and skipped, never fatal.
etcdctl_ put $R/bgppeers/broken '{"kind":"BGPPeer","spec":' >/dev/null

declare -A NUM=([n1]=1 [n2]=2 [n3]=3 [n4]=4 [n5]=5 [n6]=6)
for n in $NODES; do
    underlay ${P}$n 10.97.0.${NUM[$n]} fd97::${NUM[$n]}
done
config() { # n: no [[nodes]], no pools; the datastore and the mesh
    local n=$1 i=${NUM[$1]}
    cat >"$WORK/$n.toml" <<CFG
node_name = "node-$i"
state_dir = "$WORK/state-$n"
api = { socket = "$WORK/api-$n.sock" }
node_ips = ["10.97.0.$i/24", "fd97::$i/64"]
[[uplinks]]
name = "up0"
[workers]
cores = [$((i % 2))]
endpoint_slots = 48
[metrics]
listen = "127.0.0.1:9$((100 + i))"
[bgp]
restart_marker = "$WORK/$n.restart"
[datastore]
type = "etcdv3"
endpoints = ["${EP//,/\", \"}"]
CFG
}
start_node() {
    local n=$1
    config "$n"
    rm -f "$WORK/$n.json"
    ip netns exec ${P}$n "$VROUTERD" --config "$WORK/$n.toml" --stats-file "$WORK/$n.json" >>"$WORK/$n.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [[ -s $WORK/$n.json ]] && break; sleep 0.2; done
    [[ -s $WORK/$n.json ]] || { tail -20 "$WORK/$n.log"; die "vrouterd $n did not start"; }
}
ctl_on() { local n=$1; shift; "$VROUTERCTL" --socket "$WORK/api-$n.sock" "$@"; }
established() { # n count: the node's sessions Established
    python3 -c "import json,sys; j=json.load(open('$WORK/$1.json'))['bgp']; sys.exit(0 if sum(p['state']=='Established' for p in j['peers']) >= $2 else 1)" 2>/dev/null
}
meshed() { # every node in "$@" Established with all the others
    local n; for n in "$@"; do established "$n" $(($# - 1)) || { echo "$n not meshed"; return 1; }; done
}
# A pod on node n, its addresses from the shared IPAM through the API.
add_pod() { # n
    local n=$1 i=${NUM[$1]} out
    ip netns add ${P}a$i
    nsx ${P}a$i ip link set lo up
    ip link add pod$i netns ${P}$n type veth peer name eth0 netns ${P}a$i
    nsx ${P}$n ip link set pod$i address ee:ee:ee:ee:ee:ee up
    off ${P}$n pod$i
    nsx ${P}a$i ip link set eth0 up
    off ${P}a$i eth0
    out=$(ctl_on "$n" endpoint add pod --interface pod$i --ipv6 --json) || return 1
    V4[$n]=$(python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["addresses"] if ":" not in a][0].split("/")[0])' <<<"$out")
    V6[$n]=$(python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["addresses"] if ":" in a][0].split("/")[0])' <<<"$out")
    nsx ${P}a$i ip addr add "${V4[$n]}/32" dev eth0
    nsx ${P}a$i ip -6 addr add "${V6[$n]}/128" dev eth0 nodad
    nsx ${P}a$i ip route add 169.254.1.1 dev eth0 scope link
    nsx ${P}a$i ip route add default via 169.254.1.1 dev eth0
    nsx ${P}a$i ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0
}
declare -A V4 V6
export -f nsx within
all_ping() { # family nodes...: every pod pings every other pod
    local fam=$1 a b; shift
    for a in "$@"; do for b in "$@"; do
        [[ $a == "$b" ]] && continue
        if [[ $fam == 4 ]]; then
            within 10 nsx ${P}a${NUM[$a]} ping -c 1 -W 1 "${V4[$b]}" >/dev/null || { echo "pod $a -> pod $b (${V4[$b]}) fails"; return 1; }
        else
            within 10 nsx ${P}a${NUM[$a]} ping -6 -c 1 -W 1 "${V6[$b]}" >/dev/null || { echo "pod $a -> pod $b (${V6[$b]}) fails"; return 1; }
        fi
    done; done
    echo "every pod reached every other pod (IPv$fam)"
}

# --------------------------------------------------------------- five nodes
FIVE="n1 n2 n3 n4 n5"
for n in $FIVE; do start_node $n; done
registered() { # count: Node resources in etcd
    local c; c=$(etcdctl_ get --prefix --keys-only $R/nodes/ | grep -c node-) || return 1
    echo "$c nodes registered"; ((c == $1))
}
check "five nodes register their Node resource in etcd" within 20 registered 5
check "the five mesh with each other (4 sessions each, no [[nodes]] anywhere)" within 60 meshed $FIVE
check "the registered Node has Calico's shape (bgp.ipv4Address, VTEP MAC, VXLAN tunnel address, status)" bash -c "
    nsx ${P}hub env ETCDCTL_API=3 etcdctl --endpoints=$EP get --print-value-only $R/nodes/node-1 | python3 -c '
import json, sys
n = json.load(sys.stdin)
assert (n[\"kind\"], n[\"apiVersion\"]) == (\"Node\", \"projectcalico.org/v3\"), n
s = n[\"spec\"]
assert s[\"bgp\"][\"ipv4Address\"] == \"10.97.0.1/24\" and s[\"bgp\"][\"ipv6Address\"] == \"fd97::1/64\", s
assert s[\"vxlanTunnelMACAddr\"].startswith(\"66:\"), s
assert s[\"ipv4VXLANTunnelAddr\"].startswith(\"10.244.\"), s
assert n[\"status\"] == {} and n[\"metadata\"][\"uid\"] and n[\"metadata\"][\"creationTimestamp\"], n
print(s)'"
for n in $FIVE; do add_pod $n; done
check "pods' addresses come from the shared IPAM, all distinct" bash -c "printf '%s\n' ${V4[*]} ${V6[*]} | sort | uniq -d | grep . && exit 1; echo ${V4[*]} ${V6[*]}"
check "every pod pings every other pod (IPv4, over VXLAN)" all_ping 4 $FIVE
check "every pod pings every other pod (IPv6)" all_ping 6 $FIVE
check "node status prints the mesh and the datastore in sync" bash -c "
    ctl_out=\$($VROUTERCTL --socket $WORK/api-n1.sock node status) || exit 1; echo \"\$ctl_out\"
    grep -q 'Datastore: in sync' <<<\"\$ctl_out\" && [[ \$(grep -c 'node-to-node mesh' <<<\"\$ctl_out\") -ge 4 ]]"
check "the malformed BGPPeer is named in the log and skipped" grep -q "bgppeers/broken" "$WORK/n1.log"

# Pools through the datastore, as calicoctl: applied anywhere, used everywhere.
cat >"$WORK/pool.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: extra-pool
spec:
  cidr: 10.246.0.0/16
  blockSize: 26
  vxlanMode: Always
  ipipMode: Never
  natOutgoing: true
  disableBGPExport: false
  nodeSelector: all()
  allowedUses: [Workload, Tunnel]
  assignmentMode: Automatic
YAML
dsctl() { nsx ${P}hub "$VROUTERCTL" --etcd-endpoints "$EP" "$@"; }
has_pool() { # n cidr
    ctl_on "$1" pool list --json | python3 -c "import json,sys; sys.exit(0 if any(p['cidr']=='$2' for p in json.load(sys.stdin)['pools']) else 1)"
}
on_every_node() { local n; for n in $FIVE; do has_pool $n 10.246.0.0/16 || { echo "$n lacks it"; return 1; }; done; echo "on all five"; }
check "pool apply -f (Calico's YAML) into the datastore" dsctl pool apply -f "$WORK/pool.yaml"
check "the applied pool is used on every node within seconds" within 10 on_every_node
sed 's/10.246.0.0\/16/10.246.128.0\/17/; s/extra-pool/overlap/' "$WORK/pool.yaml" >"$WORK/overlap.yaml"
refused() { # expected-text command...
    local want=$1 out; shift
    out=$("$@" 2>&1) && { echo "accepted: $out"; return 1; }
    echo "$out"; grep -q "$want" <<<"$out"
}
check "a pool overlapping another is refused with a message" refused "overlaps pool" dsctl pool apply -f "$WORK/overlap.yaml"
round_trip() {
    dsctl pool list -o yaml >"$WORK/pools-1.yaml" && dsctl pool apply -f "$WORK/pools-1.yaml" &&
        dsctl pool list -o yaml >"$WORK/pools-2.yaml" && cmp "$WORK/pools-1.yaml" "$WORK/pools-2.yaml" &&
        grep -q "disableBGPExport\|cidr: 10.246.0.0/16" "$WORK/pools-1.yaml"
}
check "pool list -o yaml round-trips through pool apply -f" round_trip
check "a node's own API refuses a pool in cluster mode, naming the datastore" \
    refused "pools are the cluster's" ctl_on n2 pool apply -f "$WORK/pool.yaml"
# A node written by a kernel Calico node (its BGP address, VTEP MAC): peered; deleted:
# unpeered, with no change on any node.
etcdctl_ put $R/nodes/kernel-1 '{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"kernel-1"},"spec":{"bgp":{"ipv4Address":"10.97.0.99/24"},"ipv4VXLANTunnelAddr":"10.244.250.0","vxlanTunnelMACAddr":"66:1a:2b:3c:4d:5e"},"status":{}}' >/dev/null
peers_has() { # n address yes|no
    local got
    got=$(ctl_on "$1" peer list --json | python3 -c "import json,sys; print(any(p['address']=='$2' for p in json.load(sys.stdin)['peers']))") || return 1
    [[ $got == "$([[ $3 == yes ]] && echo True || echo False)" ]]
}
check "a kernel Calico node's Node resource: every vrouterd peers with it" \
    within 10 bash -c "$(declare -f peers_has ctl_on); VROUTERCTL=$VROUTERCTL WORK=$WORK; for n in $FIVE; do peers_has \$n 10.97.0.99 yes || exit 1; done"
etcdctl_ del $R/nodes/kernel-1 >/dev/null
check "its Node deleted: unpeered everywhere" \
    within 10 bash -c "$(declare -f peers_has ctl_on); VROUTERCTL=$VROUTERCTL WORK=$WORK; for n in $FIVE; do peers_has \$n 10.97.0.99 no || exit 1; done"

# Network policies in the datastore (issue 18): a GlobalNetworkPolicy and a namespaced
# NetworkPolicy as Calico stores them reach every node's policy list, origin
# datastore; deleted, they go.
etcdctl_ put $R/globalnetworkpolicies/deny-db '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-db","uid":"5e0c8a58-0b5e-4c61-9a0c-1f2e3d4c5b6a"},"spec":{"order":10,"selector":"app == '"'"'db'"'"'","types":["Ingress"],"ingress":[{"action":"Deny","source":{"notSelector":"tier == '"'"'back'"'"'"}}]}}' >/dev/null
etcdctl_ put $R/networkpolicies/shop/allow-web '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web","namespace":"shop"},"spec":{"selector":"app == '"'"'web'"'"'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[80,"8000:8080"]}}]}}' >/dev/null
policies_on() { # n expected "key:origin ..."
    local got
    got=$(ctl_on "$1" policy list --json | python3 -c "import json,sys; print(' '.join(p['key']+':'+p['origin'] for p in json.load(sys.stdin).get('policies', [])))") || return 1
    echo "$1: '$got'"; [[ $got == "$2" ]]
}
check "datastore policies reach every node's policy list (origin datastore)" \
    within 10 bash -c "$(declare -f policies_on ctl_on); VROUTERCTL=$VROUTERCTL WORK=$WORK; for n in $FIVE; do policies_on \$n 'deny-db:datastore shop/allow-web:datastore' || exit 1; done"
etcdctl_ del $R/globalnetworkpolicies/deny-db >/dev/null
etcdctl_ del $R/networkpolicies/shop/allow-web >/dev/null
check "deleted from the datastore: gone from every node" \
    within 10 bash -c "$(declare -f policies_on ctl_on); VROUTERCTL=$VROUTERCTL WORK=$WORK; for n in $FIVE; do policies_on \$n '' || exit 1; done"

# 200 endpoints at once across the five nodes (taps: vrouterd creates them).
many() {
    local n k pids=() rc=0
    for n in $FIVE; do
        for k in $(seq 1 40); do
            ctl_on $n endpoint add "vm$k" --kind tap --interface "t$k" --json >"$WORK/many-$n-$k.json" 2>"$WORK/many-$n-$k.err" &
            pids+=($!)
        done
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) || { cat "$WORK"/many-*.err | sort | uniq -c | head; return 1; }
    python3 - "$WORK" <<'PY'
import glob, json, sys
addrs = [a for f in glob.glob(sys.argv[1] + "/many-*.json") for a in json.load(open(f))["addresses"]]
assert len(addrs) == 200, f"{len(addrs)} addresses"
assert len(set(addrs)) == 200, "duplicates: " + str(sorted(a for a in set(addrs) if addrs.count(a) > 1))
print("200 endpoints, 200 distinct addresses")
PY
}
check "200 endpoints added concurrently across the nodes: all addresses distinct" many
ipam_check() { "$VROUTERCTL" --etcd-endpoints "$EP" ipam check; }
export VROUTERCTL EP
check "ipam check is clean after the burst" nsx ${P}hub "$VROUTERCTL" --etcd-endpoints "$EP" ipam check
in_use() { # addresses in use in every pool, from etcd
    nsx ${P}hub "$VROUTERCTL" --etcd-endpoints "$EP" ipam show --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(x["in_use"] for x in r if x["grouping"]=="IP Pool"))'
}
released() { # count-before: one fewer in use
    local now; now=$(in_use) || return 1; echo "in use: $1 -> $now"; ((now == $1 - 1))
}
BEFORE=$(in_use)
[[ $BEFORE =~ ^[0-9]+$ ]] || die "ipam show gave no count: $BEFORE"
ctl_on n1 endpoint del vm1 >/dev/null
check "an endpoint removed: its address is released in the shared IPAM" within 10 released "$BEFORE"
# Every endpoint of every node as a WorkloadEndpoint (an operator's: orchestrator
# "vrouter", its interface as the pod's), and none for one removed.
weps_match() {
    local n lists=()
    for n in $FIVE; do
        ctl_on $n endpoint list --json >"$WORK/eps-$n.json" || return 1
        lists+=("$WORK/eps-$n.json")
    done
    etcdctl_ get --prefix --print-value-only $R/workloadendpoints/ >"$WORK/weps.txt" || return 1
    python3 - "$WORK/weps.txt" "${lists[@]}" <<'PY'
import json, sys
weps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
have = {(w["spec"]["node"], w["spec"]["interfaceName"], tuple(sorted(n.split("/")[0] for n in w["spec"]["ipNetworks"]))) for w in weps}
want = set()
for f in sys.argv[2:]:
    node = "node-" + f.rsplit("-", 1)[1].split(".")[0].lstrip("n")
    d = json.load(open(f))
    for e in (d.get("endpoints", []) if isinstance(d, dict) else d):
        want.add((node, e["interface"], tuple(sorted(a.split("/")[0] for a in e["addresses"]))))
assert want, "no endpoints listed"
assert have == want, f"missing {sorted(want - have)[:3]} extra {sorted(have - want)[:3]}"
w = next(w for w in weps if w["spec"]["interfaceName"] == "t7")
assert w["spec"]["orchestrator"] == "vrouter" and w["spec"]["endpoint"] == "t7", w
assert w["metadata"]["namespace"] == "default" and len(w["metadata"]["uid"]) == 36, w
print(f"{len(have)} WorkloadEndpoints, one per endpoint")
PY
}
check "every endpoint is a WorkloadEndpoint in etcd, the removed one's gone" within 15 weps_match
# A pod plugged by vrouter-cni on node-1: Calico's name (dashes doubled), spec and labels.
ip netns add ${P}web0
cni_on_n1() { # command
    printf '{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"vrouter-cni","vrouter_socket":"%s","args":{"cni":{"labels":[{"key":"app","value":"web"}]}}}' "$WORK/api-n1.sock" |
        ip netns exec ${P}n1 env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID=ctr-web0 \
        CNI_NETNS=/run/netns/${P}web0 CNI_IFNAME=eth0 \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0" CNI_PATH=/usr/lib/cni "$CNI"
}
WEP=$R/workloadendpoints/shop/node--1-k8s-web--0-eth0
check "vrouter-cni ADD on a cluster node" bash -c "$(declare -f cni_on_n1); P=$P WORK=$WORK CNI=$CNI cni_on_n1 ADD >$WORK/web0.json"
cni_wep() {
    etcdctl_ get --print-value-only $WEP >"$WORK/web0.wep" || return 1
    python3 - "$WORK/web0.wep" "$WORK/web0.json" <<'PY'
import json, sys
w = json.loads(open(sys.argv[1]).read() or "null")
assert w, "no WorkloadEndpoint at the key Calico's plugin uses"
r = json.load(open(sys.argv[2]))
s, m = w["spec"], w["metadata"]
assert (s["orchestrator"], s["node"], s["pod"], s["endpoint"], s["containerID"]) == ("k8s", "node-1", "web-0", "eth0", "ctr-web0"), s
assert s["ipNetworks"] == [i["address"] for i in r["ips"]], (s, r["ips"])
assert s["interfaceName"].startswith("cali") and len(s["interfaceName"]) == 15, s
assert s["profiles"] == ["kns.shop"], s
assert m["name"] == "node--1-k8s-web--0-eth0" and m["namespace"] == "shop", m
assert m["labels"] == {"app": "web", "projectcalico.org/namespace": "shop", "projectcalico.org/orchestrator": "k8s"}, m
print(w["metadata"]["name"], s["ipNetworks"])
PY
}
check "its WorkloadEndpoint is in etcd as Calico's plugin writes it" within 10 cni_wep
check "vrouter-cni DEL" bash -c "$(declare -f cni_on_n1); P=$P WORK=$WORK CNI=$CNI cni_on_n1 DEL"
absent_in_etcd() { # key: etcd answered, and holds nothing there (a failed get is no proof)
    local v; v=$(etcdctl_ get --print-value-only "$1") || return 1; [[ -z $v ]]
}
check "DEL: its WorkloadEndpoint is deleted" within 10 absent_in_etcd "$WEP"
# vrouter-ipam on a cluster node: the shared IPAM, under calico-ipam's handle.
mkdir -p "$WORK/bin" && ln -s "$(realpath "$CNI")" "$WORK/bin/vrouter-ipam"
ipam_on_n1() { # command
    printf '{"cniVersion":"1.0.0","name":"othernet","type":"ptp","ipam":{"type":"vrouter-ipam","vrouter_socket":"%s"}}' "$WORK/api-n1.sock" |
        env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID=ctr-i1 CNI_NETNS=/run/netns/${P}web0 \
            CNI_IFNAME=eth0 CNI_PATH="$WORK/bin" "$WORK/bin/vrouter-ipam" >"$WORK/i1.$1.json"
}
handle_holds() { # the handle's record in etcd holds the result's address's block
    local a; a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ips"][0]["address"])' "$WORK/i1.ADD.json") || return 1
    etcdctl_ get --print-value-only /calico/ipam/v2/handle/othernet.ctr-i1 | grep -q '"block"' && echo "$a"
}
check "vrouter-ipam ADD on a cluster node: an address under handle othernet.ctr-i1 in etcd" \
    bash -c "$(declare -f ipam_on_n1 etcdctl_ nsx handle_holds); P=$P WORK=$WORK EP=$EP; ipam_on_n1 ADD && handle_holds"
check "vrouter-ipam DEL: the handle is gone from etcd" \
    bash -c "$(declare -f ipam_on_n1 etcdctl_ nsx absent_in_etcd); P=$P WORK=$WORK EP=$EP; ipam_on_n1 DEL && absent_in_etcd /calico/ipam/v2/handle/othernet.ctr-i1"
check "ipam show --show-blocks lists blocks per node" bash -c "
    out=\$(nsx ${P}hub $VROUTERCTL --etcd-endpoints $EP ipam show --show-blocks) || exit 1; echo \"\$out\"
    grep -q 'IP Pool .*10.244.0.0/16' <<<\"\$out\" && grep -q 'Block .*node-3' <<<\"\$out\""

# --------------------------------------------------------------- a member down, a 6th node
kill -9 "${ETCD_PID[1]}"
check "one etcd member killed: allocation goes on" bash -c "$VROUTERCTL --socket $WORK/api-n2.sock endpoint add late --kind tap --interface tlate --json"
T0=$SECONDS
start_node n6
add_pod n6
check "a 6th node joins with a member down: meshed with all five within 10 s" within 10 meshed $FIVE n6
echo "      (joined to mesh in $((SECONDS - T0)) s)"
check "the 6th node's pod reaches every other pod" all_ping 4 n6 n1 n3 n5
etcd_start 1 existing

# --------------------------------------------------------------- every member stopped
within 20 etcd_healthy || die "etcd member 1 did not rejoin"
for i in 1 2 3; do kill -9 "${ETCD_PID[$i]}"; done
check "etcd away: pod traffic keeps flowing (v4 and v6)" bash -c "$(declare -f within nsx all_ping); $(declare -p V4 V6 NUM); P=$P; all_ping 4 n1 n2 n6 && all_ping 6 n1 n4"
unavailable() {
    local out
    out=$(ctl_on n1 endpoint add nope --kind tap --interface tnope 2>&1) && { echo "allocated with etcd away: $out"; return 1; }
    echo "$out"; grep -q "datastore unreachable" <<<"$out"
}
check "etcd away: an allocation fails, naming the datastore" within 15 unavailable
check "etcd away: node status says since when" within 15 bash -c "$VROUTERCTL --socket $WORK/api-n1.sock node status | grep 'datastore unreachable since'"
readyz_says() { # the body names the datastore's absence, and the code is 503
    local code
    code=$(nsx ${P}n1 curl -s -o "$WORK/readyz" -w '%{http_code}' http://127.0.0.1:9101/readyz) || return 1
    echo "$code $(cat "$WORK/readyz")"
    [[ $code == 503 ]] && grep -q 'datastore unreachable since' "$WORK/readyz"
}
check "etcd away: /readyz says so (503)" readyz_says
check "etcd away: BGP sessions stay up" meshed $FIVE n6

# --------------------------------------------------------------- back
for i in 1 2 3; do etcd_start $i existing; done
within 30 etcd_healthy || die "etcd did not come back"
check "members back: the node resyncs" within 20 bash -c "$VROUTERCTL --socket $WORK/api-n1.sock node status | grep 'Datastore: in sync'"
check "members back: allocation works again" within 10 bash -c "$VROUTERCTL --socket $WORK/api-n1.sock endpoint add back --kind tap --interface tback --json"
check "members back: ipam check clean, nothing lost or doubled" nsx ${P}hub "$VROUTERCTL" --etcd-endpoints "$EP" ipam check
check "node list shows the six nodes and their blocks" bash -c "
    out=\$(nsx ${P}hub $VROUTERCTL --etcd-endpoints $EP node list) || exit 1; echo \"\$out\"
    [[ \$(grep -c '| node-' <<<\"\$out\") -eq 6 ]]"
finish cluster tail -30 "$WORK/n1.log"
