#!/usr/bin/env bash
# End to end, network policy (issue 18), in the style of Kubernetes' network-policy e2e
# suite: two vrouterd nodes sharing an etcd datastore (pools, workload endpoints and
# the namespaces' kns.<ns> profiles in Calico's keys), three namespaces x, y, z with
# three pods a, b, c each (a and b on node 1, c on node 2, VXLAN between them). Every
# pod serves TCP 80, TCP 81 and UDP 80 and answers ping. For every case the whole
# reachability matrix (72 pod pairs x TCP 80 / TCP 81 / UDP 80 / ICMP) is measured and
# compared with the expected one, written here case by case from the policies'
# documented meaning. Then: revocation of an established TCP stream by a policy change,
# timed; a policy watched from the datastore; bad input refused whole. WORKERS=2: two
# workers per node (flows whose packets arrive on the other worker are handed over).
# Needs root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
P=${P:-vrp$$}
WORKERS=${WORKERS:-1}
UNDERLAY_QUEUES=$WORKERS
die() { echo "policy: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping python3 ethtool etcd etcdctl; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD && -x $VROUTERCTL ]] || die "$VROUTERD / $VROUTERCTL not built"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
strict policy
chmod 755 "$WORK"
PIDS=()
PODS="xa xb xc ya yb yc za zb zc"
cleanup() {
    unstrict
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in hub n1 n2 $PODS; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- the underlay and a one-member etcd on the hub's bridge
hub
nsx ${P}hub ip addr add 10.96.0.250/24 dev br0
nsx ${P}hub ip link set lo up
EP=http://10.96.0.250:23779
ip netns exec ${P}hub etcd --name m1 --data-dir "$WORK/etcd" \
    --listen-client-urls $EP --advertise-client-urls $EP \
    --listen-peer-urls http://10.96.0.250:23780 --initial-advertise-peer-urls http://10.96.0.250:23780 \
    --initial-cluster m1=http://10.96.0.250:23780 >>"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
etcdctl_() { nsx ${P}hub env ETCDCTL_API=3 etcdctl --endpoints=$EP --command-timeout=3s "$@"; }
within 20 etcdctl_ put /vrouter-e2e ok >/dev/null 2>&1 || die "etcd did not come up"
R=/calico/resources/v3/projectcalico.org
etcdctl_ put $R/ippools/default-ipv4-ippool '{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","blockSize":26,"nodeSelector":"all()"}}' >/dev/null
etcdctl_ put $R/bgpconfigurations/default '{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"nodeToNodeMeshEnabled":true,"asNumber":64512}}' >/dev/null
# The namespaces' profiles as Calico's kube-controllers write them: labels as pcns.*.
for ns in x y z; do
    etcdctl_ put $R/profiles/kns.$ns "{\"kind\":\"Profile\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"kns.$ns\"},\"spec\":{\"ingress\":[{\"action\":\"Allow\"}],\"egress\":[{\"action\":\"Allow\"}],\"labelsToApply\":{\"pcns.projectcalico.org/name\":\"$ns\",\"pcns.kubernetes.io/metadata.name\":\"$ns\",\"pcns.team\":\"team-$ns\"}}}" >/dev/null
done

for i in 1 2; do
    underlay ${P}n$i 10.96.0.$i fd96::$i
    cat >"$WORK/n$i.toml" <<CFG
node_name = "node-$i"
state_dir = "$WORK/state-n$i"
api = { socket = "$WORK/api-n$i.sock" }
node_ips = ["10.96.0.$i/24"]
[[uplinks]]
name = "up0"
queues = [$(seq -s, 0 $((WORKERS - 1)))]
[workers]
count = $WORKERS
cores = [$( ((WORKERS == 1)) && echo $((i % 2)) || echo 0, 1)]
endpoint_slots = 16
[metrics]
listen = "127.0.0.1:$((9180 + i))"
[bgp]
restart_marker = "$WORK/n$i.restart"
[datastore]
type = "etcdv3"
endpoints = ["$EP"]
CFG
    ip netns exec ${P}n$i "$VROUTERD" --config "$WORK/n$i.toml" --stats-file "$WORK/n$i.json" >>"$WORK/n$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2; do
    for _ in $(seq 100); do [[ -s $WORK/n$i.json ]] && break; sleep 0.2; done
    [[ -s $WORK/n$i.json ]] || { tail -20 "$WORK/n$i.log"; die "vrouterd n$i did not start"; }
done
ctl_on() { local n=$1; shift; "$VROUTERCTL" --socket "$WORK/api-$n.sock" "$@"; }

# --- the pods: namespace and name from the pod's two letters; a and b on n1, c on n2
declare -A ADDR NODE_OF
k=0
for p in $PODS; do
    k=$((k + 1)); ns=${p:0:1} name=${p:1:1}
    n=n1; [[ $name == c ]] && n=n2
    NODE_OF[$p]=$n
    ip netns add ${P}$p
    nsx ${P}$p ip link set lo up
    ip link add v$p netns ${P}$n type veth peer name eth0 netns ${P}$p
    nsx ${P}$n ip link set v$p address ee:ee:ee:ee:ee:ee up
    off ${P}$n v$p
    nsx ${P}$p ip link set eth0 up
    off ${P}$p eth0
    out=$(ctl_on $n endpoint add "$ns/$name" --interface v$p --namespace $ns --label pod=$name --json)
    ADDR[$p]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["addresses"][0].split("/")[0])' <<<"$out")
    nsx ${P}$p ip addr add "${ADDR[$p]}/32" dev eth0
    nsx ${P}$p ip route add 169.254.1.1 dev eth0 scope link
    nsx ${P}$p ip route add default via 169.254.1.1 dev eth0
done

# Every pod serves TCP 80 and 81 (a line back) and UDP 80 (an echo); TCP 82 is a sink
# that logs when each chunk of a stream arrives (the revocation check).
cat >"$WORK/serve.py" <<'PY'
import socket, sys, threading, time
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(256)
    while True:
        c, _ = s.accept()
        try: c.sendall(b"ok\n")
        except OSError: pass
        c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 80))
    while True:
        d, a = s.recvfrom(2048); s.sendto(d, a)
def sink(log):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 82)); s.listen(8)
    while True:
        c, _ = s.accept()
        def reader(c=c):
            with open(log, "a") as f:
                while c.recv(65536):
                    f.write("%.3f\n" % time.time()); f.flush()
        threading.Thread(target=reader, daemon=True).start()
for t in [lambda: tcp(80), lambda: tcp(81), udp, lambda: sink(sys.argv[1])]:
    threading.Thread(target=t, daemon=True).start()
open(sys.argv[2], "w").write("up\n")
while True: time.sleep(3600)
PY
# From one pod to every other: TCP 80, TCP 81, UDP 80, ICMP, all at once; one line per
# probe: "dst kind 0|1".
cat >"$WORK/probe.py" <<'PY'
import socket, subprocess, sys, threading
me, targets = sys.argv[1], sys.argv[2:]
out, lock = [], threading.Lock()
def tcp(addr, port):
    try:
        c = socket.create_connection((addr, port), timeout=1.5)
        ok = c.recv(3) == b"ok\n"; c.close(); return ok
    except OSError: return False
def udp(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
    for _ in range(3):
        try:
            s.sendto(b"hi", (addr, 80))
            if s.recvfrom(64)[0] == b"hi": return True
        except OSError: pass
    return False
def icmp(addr):
    return subprocess.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", addr], stdout=subprocess.DEVNULL).returncode == 0
def one(name, addr, kind, f):
    ok = f()
    with lock: out.append("%s %s %d" % (name, kind, ok))
ts = []
for t in targets:
    name, addr = t.split("=")
    for kind, f in [("tcp80", lambda a=addr: tcp(a, 80)), ("tcp81", lambda a=addr: tcp(a, 81)),
                    ("udp80", lambda a=addr: udp(a)), ("icmp", lambda a=addr: icmp(a))]:
        th = threading.Thread(target=one, args=(name, addr, kind, f)); th.start(); ts.append(th)
for th in ts: th.join()
print("\n".join(sorted(out)))
PY
for p in $PODS; do
    nsx ${P}$p python3 "$WORK/serve.py" "$WORK/sink-$p.log" "$WORK/up-$p" >/dev/null 2>&1 &
    PIDS+=($!)
done
for p in $PODS; do within 10 test -s "$WORK/up-$p" || die "pod $p's servers did not start"; done

# measure CASE: the whole matrix into $WORK/CASE.got ("src dst kind 0|1" per line)
measure() {
    local c=$1 p q targets pids=()
    for p in $PODS; do
        targets=()
        for q in $PODS; do [[ $p == "$q" ]] || targets+=("$q=${ADDR[$q]}"); done
        (nsx ${P}$p python3 "$WORK/probe.py" "$p" "${targets[@]}" | sed "s/^/$p /" >"$WORK/$c.$p") &
        pids+=($!)
    done
    wait "${pids[@]}"
    cat "$WORK/$c".?? | sort >"$WORK/$c.got"
}
# compare CASE PYTHON-EXPR: expected(s, d, kind) from the expression over s, d (pods as
# "xa": s[0] namespace, s[1] name) and kind; prints the differences. The matrix must be
# complete (72 pairs x 4) or the check fails.
compare() {
    python3 - "$WORK/$1.got" "$2" <<'PY'
import sys
got_file, expr = sys.argv[1:3]
lines = [l.split() for l in open(got_file) if l.strip()]
if len(lines) != 72 * 4:
    sys.exit(f"{len(lines)} probes measured, not 288")
bad = []
allowed = 0
for s, d, kind, ok in lines:
    want = bool(eval(expr, {}, {"s": s, "d": d, "kind": kind}))
    allowed += int(ok)
    if want != (ok == "1"):
        bad.append(f"{s} -> {d} {kind}: {'allowed' if ok == '1' else 'denied'}, expected {'allowed' if want else 'denied'}")
print(f"{len(lines)} probes, {allowed} allowed, {len(bad)} differ from the expected matrix")
for b in bad[:20]: print("  " + b)
sys.exit(1 if bad else 0)
PY
}
# apply FILE: the same policies through both nodes' API
apply() { ctl_on n1 policy apply -f "$1" >/dev/null && ctl_on n2 policy apply -f "$1" >/dev/null; }
clear_policies() {
    local n k
    for n in n1 n2; do
        for k in $(ctl_on $n policy list --json | python3 -c 'import json,sys; print(" ".join(p["key"] for p in json.load(sys.stdin).get("policies", []) if p["origin"] == "api"))'); do
            ctl_on $n policy del "$k" >/dev/null
        done
    done
}
# case NAME FILE EXPR: apply FILE (none: "-"), measure, compare
case_() {
    local name=$1 file=$2 expr=$3
    CASE_N=$((CASE_N + 1))
    clear_policies
    [[ $file == - ]] || apply "$WORK/$file"
    measure "case$CASE_N"
    check "truth table: $name" compare "case$CASE_N" "$expr"
}
CASE_N=0

meshed() { for i in 1 2; do python3 -c "import json,sys; j=json.load(open('$WORK/n$i.json'))['bgp']; sys.exit(0 if any(p['state']=='Established' for p in j['peers']) else 1)" || return 1; done; }
check "the two nodes mesh through the datastore" within 60 meshed
allping() { local p q; for p in xa yc; do for q in $PODS; do [[ $p == "$q" ]] || nsx ${P}$p ping -c1 -W1 "${ADDR[$q]}" >/dev/null || { echo "$p -> $q"; return 1; }; done; done; }
check "pods reach each other across the nodes before any policy" within 30 allping

# --- the cases
case_ "no policy: everything reaches everything" - "True"

cat >"$WORK/deny-x.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
YAML
case_ "deny-all ingress in x" deny-x.yaml "d[0] != 'x'"

cat >"$WORK/from-y.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-y, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: team-y}}
YAML
case_ "x takes only namespace y (namespaceSelector over the profiles' labels)" from-y.yaml "d[0] != 'x' or s[0] == 'y'"

cat >"$WORK/by-label.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}
YAML
case_ "x/a takes only pod=b of its namespace (other x pods unselected)" by-label.yaml "d != 'xa' or s == 'xb'"

cat >"$WORK/ports.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: ports, namespace: y}
spec:
  selector: all()
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: ["81:90"]}
  - action: Allow
    protocol: UDP
    destination: {ports: [80]}
YAML
case_ "y takes TCP 81-90 and UDP 80 only (a port range)" ports.yaml "d[0] != 'y' or kind in ('tcp81', 'udp80')"

cat >"$WORK/ipblock.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ipblock, namespace: z}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - ipBlock: {cidr: 10.244.0.0/16, except: ["${ADDR[xa]}/32", "${ADDR[yc]}/32"]}
YAML
case_ "z takes the pool except x/a and y/c (ipBlock with except)" ipblock.yaml "d[0] != 'z' or s not in ('xa', 'yc')"

cat >"$WORK/egress.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-cidr, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: ${ADDR[zc]}/32}
    ports:
    - {protocol: TCP, port: 80}
YAML
case_ "y/a may send only TCP 80 to z/c (egress to a CIDR; replies come back)" egress.yaml "s != 'ya' or (d == 'zc' and kind == 'tcp80')"

cat >"$WORK/order-pass.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: z-first}
spec:
  order: 10
  selector: projectcalico.org/namespace == 'z'
  types: [Ingress]
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [81]}
  - action: Pass
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: z-closed, namespace: z}
spec:
  order: 20
  selector: all()
  types: [Ingress]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: x-deny-c}
spec:
  order: 1
  selector: pcns.team == 'team-x'
  types: [Ingress]
  ingress:
  - action: Deny
    source: {selector: pod == 'c'}
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: x-allow-all-later}
spec:
  order: 2
  selector: pcns.team == 'team-x'
  types: [Ingress]
  ingress:
  - action: Allow
YAML
case_ "order and Pass (z: Deny 81 then Pass over a later deny-all); a Deny above an Allow (x: no pod c)" order-pass.yaml \
    "(d[0] != 'z' or kind != 'tcp81') and (d[0] != 'x' or s[1] != 'c')"

# --- per-rule counters: the Deny rule of x-deny-c counted the packets it denied
rule_counted() {
    local out; out=$(ctl_on n1 policy show x-deny-c) || return 1
    echo "$out" | tail -1
    python3 -c "
import re, sys
m = re.search(r'packets per rule: ingress \[(\d+), (\d+)\]', sys.stdin.read())
sys.exit(0 if m and int(m.group(1)) > 0 and int(m.group(2)) > 0 else 1)" <<<"$out"
}
check "per-rule counters: x-deny-c's Deny and Allow both counted packets on node 1" rule_counted
if ((WORKERS > 1)); then
    handed() { local a b; a=$(jnum "$WORK/n1.json" 'd["handed_off"]') && b=$(jnum "$WORK/n2.json" 'd["handed_off"]') || return 1
        echo "frames handed to their flow's worker: node 1 $a, node 2 $b"; ((a + b > 0)); }
    check "two workers: flows met on the other worker were handed to their owner" handed
fi
check "denied packets counted under the drop reason 'policy'" bash -c "
    n=\$(python3 -c \"import json; print(json.load(open('$WORK/n1.json'))['drops']['policy'])\") || exit 1
    echo \"policy drops: \$n\"; ((n > 0))"

# --- revocation: a long-lived TCP stream from x/a to y/c (across the nodes), admitted
# under an allowing policy, then cut by a policy change; measured from the sink's log.
clear_policies
cat >"$WORK/allow-82.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: stream, namespace: y}
spec:
  selector: pod == 'c'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [82]}
YAML
cat >"$WORK/deny-82.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: stream, namespace: y}
spec:
  selector: pod == 'c'
  types: [Ingress]
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [82]}
YAML
apply "$WORK/allow-82.yaml"
: >"$WORK/sink-yc.log"
nsx ${P}xa python3 -c "
import socket, time
c = socket.create_connection(('${ADDR[yc]}', 82), timeout=2)
c.settimeout(0.5)
end = time.time() + 8
while time.time() < end:
    try: c.send(b'x' * 512)
    except OSError: pass
    time.sleep(0.01)
" >"$WORK/stream.out" 2>&1 &
STREAM=$!
sleep 2
T0=$(date +%s.%N)
ctl_on n2 policy apply -f "$WORK/deny-82.yaml" >/dev/null
ctl_on n1 policy apply -f "$WORK/deny-82.yaml" >/dev/null
wait $STREAM || true
revoked() {
    python3 - "$WORK/sink-yc.log" "$T0" <<'PY'
import sys
ts = [float(l) for l in open(sys.argv[1]) if l.strip()]
t0 = float(sys.argv[2])
if not ts: sys.exit("the sink received nothing: the stream never flowed")
before = [t for t in ts if t <= t0]
after = [t for t in ts if t > t0]
if not before or t0 - before[-1] > 0.2:
    sys.exit(f"the stream was not flowing when the policy changed (last chunk {t0 - (before[-1] if before else 0):.3f} s before)")
cut = (after[-1] - t0) if after else 0.0
print(f"{len(before)} chunks before the change, {len(after)} after; last chunk {cut * 1000:.0f} ms after it")
sys.exit(0 if cut < 1.0 else 1)
PY
}
check "an established stream is cut within 1 s of the policy change" revoked
sed "s/^/      /" "$WORK/out" # the figure, pass or fail

# --- from the datastore: a GlobalNetworkPolicy written into etcd as Calico's JSON
clear_policies
etcdctl_ put $R/globalnetworkpolicies/deny-zc '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-zc"},"spec":{"order":5,"selector":"pod == '"'"'c'"'"' && projectcalico.org/namespace == '"'"'z'"'"'","types":["Ingress"]}}' >/dev/null
watched() { local n; for n in n1 n2; do ctl_on $n policy list | grep -q deny-zc || return 1; done; }
check "the datastore's policy reaches both nodes" within 10 watched
measure datastore
check "truth table: z/c closed by a policy from the datastore" compare datastore "d != 'zc'"
etcdctl_ del $R/globalnetworkpolicies/deny-zc >/dev/null

# --- bad input: refused whole, with a message; the dataplane keeps what it had
bad() { # file expected-message
    local out
    if out=$(ctl_on n1 policy apply -f "$1" 2>&1); then echo "accepted: $out"; return 1; fi
    echo "$out"; grep -qi -- "$2" <<<"$out"
}
printf 'apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: m, namespace: x\n' >"$WORK/bad1.yaml"
printf 'apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: u, namespace: x}\nspec: {selector: all(), colour: red}\n' >"$WORK/bad2.yaml"
printf 'apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: s, namespace: x}\nspec: {selector: "pod == '"'"'a'"'"' &&"}\n' >"$WORK/bad3.yaml"
# A good policy then a bad one in one file: neither is taken.
cat "$WORK/deny-x.yaml" >"$WORK/bad4.yaml"; printf -- '---\n' >>"$WORK/bad4.yaml"; cat "$WORK/bad2.yaml" >>"$WORK/bad4.yaml"
check "malformed YAML is refused with a message" bad "$WORK/bad1.yaml" "yaml\|line"
check "an unknown field is refused, named" bad "$WORK/bad2.yaml" "colour"
check "a selector that does not parse is refused, at its character" bad "$WORK/bad3.yaml" "selector"
check "a file with one bad policy is refused whole (none applied)" bash -c "
    $VROUTERCTL --socket $WORK/api-n1.sock policy apply -f $WORK/bad4.yaml && exit 1
    ! $VROUTERCTL --socket $WORK/api-n1.sock policy list | grep -q deny-all"
python3 - "$WORK/many.yaml" <<'PY'
import sys
rules = "".join(f"  - action: Deny\n    protocol: TCP\n    source: {{nets: [10.{i // 250 % 250}.{i % 250}.0/24]}}\n    destination: {{ports: [{1000 + i % 60000}]}}\n" for i in range(100_000))
open(sys.argv[1], "w").write("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: many, namespace: x}\nspec:\n  selector: all()\n  types: [Ingress]\n  ingress:\n" + rules + "  - action: Allow\n")
PY
many() {
    local out
    out=$(ctl_on n1 policy apply -f "$WORK/many.yaml" 2>&1) || { echo "$out"; grep -qi "rules" <<<"$out"; return; }
    echo "$out"
    # The last set published holds the 100,001 rules for each of x's two identities
    # (pod=a, pod=b) on node 1 (the log's colour codes taken out).
    local last; last=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/n1.log" | grep "policy set published" | tail -1)
    echo "$last"
    grep -q "rules=200002 active=true" <<<"$last" || return 1
    # Accepted: x still answers (the last rule allows).
    nsx ${P}ya ping -c1 -W2 "${ADDR[xa]}" >/dev/null
}
check "100,000 rules: accepted and enforced, or refused with a clear error" many

finish policy bash -c "tail -30 $WORK/n1.log; tail -10 $WORK/n2.log"
