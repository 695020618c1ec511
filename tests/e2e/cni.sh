#!/usr/bin/env bash
# End to end, CNI: vrouter-cni invoked exactly as libcni invokes a plugin (CNI_*
# environment, the network configuration on stdin, the result or error JSON on stdout)
# inside a node namespace running vrouterd: VERSION per version; ADD gives pods their
# veth, /32 + /128 and Calico's gateways; pods ping each other (v4, v6); CHECK; results
# in each version's shape; DEL releases the address, again and with the netns gone too;
# bad input answered with the spec's error codes and nothing left behind; vrouterd away
# (code 11); 20 ADDs at once get 20 distinct addresses; vrouterd killed and restarted:
# pods keep their addresses and traffic. Needs root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
CNI=${CNI:-target/debug/vrouter-cni}
P=${P:-vrc$$}
die() { echo "cni: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping ethtool python3; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD && -x $VROUTERCTL && -x $CNI ]] || die "$VROUTERD / $VROUTERCTL / $CNI not built"
CNI=$(realpath "$CNI")

WORK=$(mktemp -d)
chmod 755 "$WORK"
. tests/e2e/lib.sh
strict cni
VR_PID=
PODS=(a b c v0 v3 v4 v11 gone busy dup)
for i in $(seq 1 20); do PODS+=("m$i"); done
cleanup() {
    unstrict
    [[ -n $VR_PID ]] && kill -9 "$VR_PID" 2>/dev/null
    for ns in hub n "${PODS[@]}"; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
export VROUTER_SOCKET=$WORK/api.sock
ctl() { "$VROUTERCTL" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

hub
underlay ${P}n 10.98.0.1 fd98::1
cat >"$WORK/node.toml" <<CFG
node_name = "cninode"
node_ips = ["10.98.0.1/24"]
state_dir = "$WORK/state"
[api]
socket = "$WORK/api.sock"
[[uplinks]]
name = "up0"
[[pools]]
cidr = "10.67.0.0/16"
[[pools]]
cidr = "fd67::/112"
[workers]
cores = [1]
endpoint_slots = 32
[bgp]
mesh = false
CFG
start() {
    ip netns exec ${P}n "$VROUTERD" --config "$WORK/node.toml" >>"$WORK/vrouterd.log" 2>&1 &
    VR_PID=$!
    for _ in $(seq 50); do ctl node status >/dev/null 2>&1 && return 0; sleep 0.2; done
    cat "$WORK/vrouterd.log"; die "vrouterd did not start"
}
conf() { # cniVersion
    printf '{"cniVersion":"%s","name":"vrouter","type":"vrouter-cni","vrouter_socket":"%s","ipv6":true,"args":{"cni":{"labels":[{"key":"app","value":"web"}]}}}' \
        "$1" "$WORK/api.sock"
}
# cni COMMAND pod [version] [ifname]: the plugin run in the node's namespace as libcni
# runs it; stdout to $WORK/<pod>.<command>.json, the exit status returned.
cni() {
    local cmd=$1 pod=$2 ver=${3:-1.0.0} ifname=${4:-eth0}
    conf "$ver" | ip netns exec ${P}n env -i PATH="$PATH" CNI_COMMAND="$cmd" \
        CNI_CONTAINERID="ctr-$pod" CNI_NETNS="/run/netns/$P$pod" CNI_IFNAME="$ifname" \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod" \
        CNI_PATH=/usr/lib/cni "$CNI" >"$WORK/$pod.$cmd.json" 2>>"$WORK/cni.err"
}
newpod() { ip netns add "$P$1"; }
errcode() { # file code: a spec error JSON with that code and a message
    python3 -c "import json,sys; d=json.load(open('$1')); sys.exit(0 if d.get('code')==$2 and d.get('msg') else 1)"
}
fails_with() { # code command...: the command fails and its JSON error has the code
    local code=$1; shift
    ! "$@" && errcode "$WORK/$3.$2.json" "$code"
}
endpoint_count() { ctl endpoint list --json | jget 'len(d["endpoints"]) if isinstance(d, dict) else len(d)'; }
veths() { nsx ${P}n ip -o link show | grep -c ' cali' || true; }

start

# VERSION, per requested version.
for v in 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; do
    check "VERSION $v: supported versions, answered in $v" bash -c \
        "printf '{\"cniVersion\":\"$v\"}' | CNI_COMMAND=VERSION $CNI | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"cniVersion\"]==\"$v\" and len(d[\"supportedVersions\"])==5, d'"
done

newpod a; newpod b
check "ADD pod a" cni ADD a
check "ADD pod b" cni ADD b
check "the result has the pod's /32 and /128 on its eth0 and the gateway routes" json \
    'len(d["ips"])==2 and d["ips"][0]["address"].endswith("/32") and d["ips"][1]["address"].endswith("/128") and d["interfaces"][d["ips"][0]["interface"]]["name"]=="eth0" and {"dst":"0.0.0.0/0","gw":"169.254.1.1"} in d["routes"]' \
    <"$WORK/b.ADD.json"
A4=$(jget 'd["ips"][0]["address"].split("/")[0]' <"$WORK/a.ADD.json")
A6=$(jget 'd["ips"][1]["address"].split("/")[0]' <"$WORK/a.ADD.json")
B4=$(jget 'd["ips"][0]["address"].split("/")[0]' <"$WORK/b.ADD.json")
B6=$(jget 'd["ips"][1]["address"].split("/")[0]' <"$WORK/b.ADD.json")
holds() { # pod addr...: the pod's eth0 has exactly these global addresses
    local pod=$1; shift
    [[ $(ip -n "$P$pod" -j addr show dev eth0 | python3 -c 'import json,sys; print(" ".join(sorted(a["local"] for a in json.load(sys.stdin)[0]["addr_info"] if a["scope"]=="global")))') == "$(printf '%s\n' "$@" | sort | xargs)" ]]
}
check "pod b's eth0 holds the result's addresses" holds b "$B4" "$B6"
check "pod b's default routes go via 169.254.1.1 and fe80::ecee:eeff:feee:eeee" bash -c \
    "ip -n ${P}b route show default | grep -q 'via 169.254.1.1 dev eth0' && ip -n ${P}b -6 route show default | grep -q 'via fe80::ecee:eeff:feee:eeee dev eth0'"
check "the host side is named cali + sha1(default.b)[0..11]" bash -c \
    "ip -n ${P}n link show cali\$(printf default.b | sha1sum | cut -c1-11) >/dev/null"
endpoint_of() { # name python-assertion-over-e
    ctl endpoint list --json >"$WORK/eps.json" && python3 - "$WORK/eps.json" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); eps = d["endpoints"] if isinstance(d, dict) else d
e = [e for e in eps if e["name"] == sys.argv[2]]
assert e, f"no endpoint {sys.argv[2]} in {eps}"
e = e[0]
assert eval(sys.argv[3]), e
PY
}
check "vrouterd has endpoint default/b with the container id and labels" \
    endpoint_of default/b 'e["container_id"]=="ctr-b" and e["labels"]=={"app":"web"}'
check "pod a pings pod b (IPv4)" ping4 ${P}a "$B4"
check "pod a pings pod b (IPv6)" ping6 ${P}a "$B6"

# CHECK with the ADD's result as prevResult.
check_with_prev() { # pod
    python3 - "$WORK/$1.ADD.json" "$WORK/api.sock" <<'PY' >"$WORK/$1.check.conf"
import json, sys
prev = json.load(open(sys.argv[1]))
print(json.dumps({"cniVersion": "1.0.0", "name": "vrouter", "type": "vrouter-cni",
                  "vrouter_socket": sys.argv[2], "ipv6": True, "prevResult": prev}))
PY
    ip netns exec ${P}n env -i PATH="$PATH" CNI_COMMAND=CHECK CNI_CONTAINERID="ctr-$1" \
        CNI_NETNS="/run/netns/$P$1" CNI_IFNAME=eth0 \
        CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=$1" "$CNI" <"$WORK/$1.check.conf"
}
check "CHECK passes on an intact pod" check_with_prev b
nsx ${P}b ip addr del "$B4/32" dev eth0
check_fails() { ! check_with_prev "$1" >"$WORK/$1.check.json" && errcode "$WORK/$1.check.json" 100; }
check "CHECK fails (code 100) when the pod lost its address" check_fails b
nsx ${P}b ip addr add "$B4/32" dev eth0

# Results in each version's shape (0.x says each address's family, 1.x does not).
shaped() { # pod version
    cni ADD "$1" "$2" && python3 - "$WORK/$1.ADD.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); v = sys.argv[2]
fam = d["ips"][0].get("version")
assert d["cniVersion"] == v and (fam == "4") == v.startswith("0."), d
PY
}
for v in 0.3.0 0.4.0 1.1.0; do
    case $v in 0.3.0) pod=v3 ;; 0.4.0) pod=v4 ;; 1.1.0) pod=v11 ;; esac
    newpod $pod
    check "ADD answers in $v's shape" shaped $pod $v
    check "DEL ($v)" cni DEL $pod $v
done

# DEL: the address goes back, the veth and endpoint go; again and again.
BEFORE=$(endpoint_count)
check "DEL pod b" cni DEL b
check "DEL printed nothing" test ! -s "$WORK/b.DEL.json"
gone() { local n; n=$(endpoint_count) && [[ -n $n ]] && ((n == BEFORE - 1)) && ! endpoint_of default/b True 2>/dev/null; }
check "pod b's endpoint is gone" gone
check "pod b's veth is gone" bash -c "! ip -n ${P}n link show cali\$(printf default.b | sha1sum | cut -c1-11) 2>/dev/null"
check "DEL again succeeds" cni DEL b
ip netns del ${P}b
check "DEL with the netns gone succeeds" cni DEL b
unheld() { ctl endpoint list --json >"$WORK/eps.json" && [[ -s $WORK/eps.json ]] && ! grep -q "\"$B4\"" "$WORK/eps.json"; }
check "no endpoint holds pod b's address any more" unheld

# Bad input: the spec's error JSON, non-zero exit, nothing left behind.
N0=$(endpoint_count); V0=$(veths)
garbage() { ! echo 'not json' | ip netns exec ${P}n env -i CNI_COMMAND=ADD CNI_CONTAINERID=x \
    CNI_NETNS=/run/netns/${P}a CNI_IFNAME=eth1 "$CNI" >"$WORK/garbage.json" && errcode "$WORK/garbage.json" 6; }
frob() { ! conf 1.0.0 | CNI_COMMAND=FROB "$CNI" >"$WORK/frob.json" && errcode "$WORK/frob.json" 4; }
check "garbage stdin: code 6" garbage
check "unknown command: code 4" frob
check "missing netns: code 3" fails_with 3 cni ADD nonexistent
newpod busy
nsx ${P}busy ip link add eth0 type veth peer name eth0peer
taken() { ! cni ADD busy && grep -q 'eth0 exists' "$WORK/busy.ADD.json"; }
check "an interface name that exists in the pod: an error naming it" taken
unchanged() { local n v; n=$(endpoint_count) && v=$(veths) && [[ $n == "$N0" && $v == "$V0" ]]; }
check "nothing left behind by the failed ADDs (no endpoint, no veth)" unchanged

# vrouter-ipam: the same binary as the IPAM plugin of another plugin's network, run as
# libcni runs a delegated IPAM plugin (under its own name, the whole configuration).
mkdir -p "$WORK/bin" && ln -s "$(realpath "$CNI")" "$WORK/bin/vrouter-ipam"
ipam() { # command id [version] [prevResult file]
    local prev=""
    [[ -n ${4:-} ]] && prev=",\"prevResult\":$(cat "$4")"
    printf '{"cniVersion":"%s","name":"othernet","type":"ptp","ipam":{"type":"vrouter-ipam","vrouter_socket":"%s","ipv6":true}%s}' \
        "${3:-1.0.0}" "$WORK/api.sock" "$prev" |
        env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS=/run/netns/${P}a \
            CNI_IFNAME=eth0 CNI_PATH="$WORK/bin" "$WORK/bin/vrouter-ipam" >"$WORK/ipam-$2.$1.json"
}
ipam_result() { # id version: one IPv4 /32 and one IPv6 /128 from the node's pools, no interface
    python3 - "$WORK/ipam-$1.ADD.json" "$2" <<'PY'
import ipaddress, json, sys
d = json.load(open(sys.argv[1]))
assert d["cniVersion"] == sys.argv[2], d
nets = [ipaddress.ip_interface(i["address"]) for i in d["ips"]]
assert [n.network.prefixlen for n in nets] == [32, 128], d
assert nets[0].ip in ipaddress.ip_network("10.67.0.0/16") and nets[1].ip in ipaddress.ip_network("fd67::/112"), d
assert not d.get("interfaces"), d
if sys.argv[2].startswith("0."):
    assert [i["version"] for i in d["ips"]] == ["4", "6"], d
print(d["ips"])
PY
}
for v in 0.3.1 0.4.0 1.0.0 1.1.0; do
    check "vrouter-ipam ADD ($v): an IPv4 /32 and an IPv6 /128 from the pools" \
        bash -c "$(declare -f ipam ipam_result); P=$P WORK=$WORK; ipam ADD ipam-$v $v && ipam_result ipam-$v $v"
done
check "vrouter-ipam ADD again: the same addresses" bash -c \
    "cp $WORK/ipam-ipam-1.0.0.ADD.json $WORK/first.json; $(declare -f ipam); P=$P WORK=$WORK; ipam ADD ipam-1.0.0 && cmp $WORK/first.json $WORK/ipam-ipam-1.0.0.ADD.json"
# (Four ADDs of two addresses each, and pod a's two: ten, or the evidence is missing.)
check "vrouter-ipam: its addresses and a running pod's all distinct" bash -c \
    "cat $WORK/ipam-*.ADD.json $WORK/a.ADD.json | python3 -c 'import json,sys; a=[i[\"address\"] for l in sys.stdin if l.strip() for i in json.loads(l)[\"ips\"]]; print(len(a)); sys.exit(len(a) < 10 or len(a) != len(set(a)))'"
check "vrouter-ipam CHECK with its prevResult" ipam CHECK ipam-1.0.0 1.0.0 "$WORK/first.json"

# vrouterd away: try again later; nothing left behind.
kill -9 "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=
newpod gone
check "ADD with vrouterd down: code 11" fails_with 11 cni ADD gone
check "no veth left by it" bash -c "! ip -n ${P}n link show cali\$(printf default.gone | sha1sum | cut -c1-11) 2>/dev/null"
start
check "after vrouterd's restart pod a still holds its addresses" holds a "$A4" "$A6"
check "after vrouterd's restart a vrouter-ipam handle still holds its addresses" ipam CHECK ipam-1.0.0 1.0.0 "$WORK/first.json"
check "vrouter-ipam DEL" ipam DEL ipam-1.0.0
check "vrouter-ipam DEL again: still success" ipam DEL ipam-1.0.0
check "after DEL, CHECK says the handle holds nothing (code 100)" bash -c \
    "$(declare -f ipam); P=$P WORK=$WORK; ! ipam CHECK ipam-1.0.0 && grep -q '\"code\": *100' $WORK/ipam-ipam-1.0.0.CHECK.json"
check "vrouter-ipam ADD with vrouterd reachable but nothing held: a fresh address" bash -c \
    "$(declare -f ipam ipam_result); P=$P WORK=$WORK; ipam ADD ipam-again 1.0.0 && ipam_result ipam-again 1.0.0"
newpod c
check "ADD pod c after the restart" cni ADD c
C4=$(jget 'd["ips"][0]["address"].split("/")[0]' <"$WORK/c.ADD.json")
check "pod a reaches pod c after vrouterd's restart" ping4 ${P}a "$C4"

# 20 ADDs at once: 20 distinct addresses, all reachable.
for i in $(seq 1 20); do newpod m$i; done
# (vrouterd is a job of this shell too: wait for the plugin runs by pid.)
RUNS=()
for i in $(seq 1 20); do cni ADD m$i & RUNS+=($!); done
FAILED=0
for j in "${RUNS[@]}"; do wait "$j" || FAILED=$((FAILED + 1)); done
check "20 concurrent ADDs succeeded" test "$FAILED" -eq 0
check "20 distinct addresses" bash -c \
    "[[ \$(cat $WORK/m*.ADD.json | python3 -c 'import json,sys; print(len({json.loads(l)[\"ips\"][0][\"address\"] for l in sys.stdin if l.strip()}))') == 20 ]]"
M7=$(jget 'd["ips"][0]["address"].split("/")[0]' <"$WORK/m7.ADD.json")
check "pod a reaches one of them" ping4 ${P}a "$M7"
RUNS=()
for i in $(seq 1 20); do cni DEL m$i & RUNS+=($!); done
FAILED=0
for j in "${RUNS[@]}"; do wait "$j" || FAILED=$((FAILED + 1)); done
check "20 concurrent DELs succeeded" test "$FAILED" -eq 0
check "20 concurrent DELs left no veth of theirs" bash -c \
    "for i in \$(seq 1 20); do ! ip -n ${P}n link show cali\$(printf default.m\$i | sha1sum | cut -c1-11) 2>/dev/null || exit 1; done"

finish cni bash -c "tail -30 $WORK/vrouterd.log; tail -20 $WORK/cni.err"
