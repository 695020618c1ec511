#!/usr/bin/env bash
# End to end: NAT outgoing (issue 17). Pods of a natOutgoing pool reach an "internet" host
# that has no route to the pools; a pod of a pool without it does not; pod-to-pod and
# pod-to-other-node traffic keeps its addresses; the node's own TCP service, its outgoing
# connections and its BGP session (BIRD on the router) keep working; 10,000 concurrent
# flows get 10,000 distinct ports. WORKERS=2 runs two workers (replies cross workers).
#
#   ns ${P}i "internet"  eth0 203.0.113.1/24 fd77::1/64  (mtu 1400; default via the router)
#        │
#   ns ${P}r router      eth1 203.0.113.254 fd77::fe (mtu 1400)   eth0 10.99.0.254 fd99::fe
#        │                (no route to the pools; 10.99.0.2 stands for node-b; BIRD)
#   ns ${P}n the node    up0 10.99.0.1/24 fd99::1/64 (vrouterd)
#        ├─ ${P}a pod A 10.244.1.2 fd10::2   pool 10.244.0.0/16, fd10::/48: natOutgoing
#        ├─ ${P}b pod B 10.244.1.3 fd10::3
#        └─ ${P}c pod C 10.245.1.2            pool 10.245.0.0/16: no NAT
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
P=${P:-vrn$$}
WORKERS=${WORKERS:-1}
NODE=${P}n R=${P}r I=${P}i A=${P}a B=${P}b C=${P}c

die() { echo "nat: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, AF_XDP)"
for c in ip ping iperf3 socat ethtool python3 tshark bird birdc; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD && -x $VROUTERCTL ]] || die "$VROUTERD / $VROUTERCTL not built (cargo build)"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
cleanup() {
    unstrict
    [[ -n ${VR_PID:-} ]] && kill -9 "$VR_PID" 2>/dev/null
    for ns in "$NODE" "$R" "$I" "$A" "$B" "$C"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
strict nat

for ns in "$NODE" "$R" "$I"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done
ip link add up0 netns "$NODE" numrxqueues "$WORKERS" numtxqueues "$WORKERS" type veth \
    peer name eth0 netns "$R" numrxqueues "$WORKERS" numtxqueues "$WORKERS"
nsx "$NODE" ip link set up0 up
nsx "$NODE" ip addr add 10.99.0.1/24 dev up0
nsx "$NODE" ip -6 addr add fd99::1/64 dev up0 nodad
nsx "$NODE" ip route add default via 10.99.0.254 # the node's own, for its own connections
off "$NODE" up0
nsx "$R" ip link set eth0 up
nsx "$R" ip addr add 10.99.0.254/24 dev eth0
nsx "$R" ip addr add 10.99.0.2/24 dev eth0 # node-b, as far as the node can tell
nsx "$R" ip -6 addr add fd99::fe/64 dev eth0 nodad
off "$R" eth0
ip link add eth1 netns "$R" type veth peer name eth0 netns "$I"
nsx "$R" ip link set eth1 mtu 1400 up
nsx "$R" ip addr add 203.0.113.254/24 dev eth1
nsx "$R" ip -6 addr add fd77::fe/64 dev eth1 nodad
nsx "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
nsx "$I" ip link set eth0 mtu 1400 up
nsx "$I" ip addr add 203.0.113.1/24 dev eth0
nsx "$I" ip -6 addr add fd77::1/64 dev eth0 nodad
nsx "$I" ip route add default via 203.0.113.254
nsx "$I" ip -6 route add default via fd77::fe
pod "$A" "$NODE" "${P}a0" 10.244.1.2 fd10::2
pod "$B" "$NODE" "${P}b0" 10.244.1.3 fd10::3
pod "$C" "$NODE" "${P}c0" 10.245.1.2

# BIRD on the router peers with the node (its BGP session must survive NAT).
cat >"$WORK/bird.conf" <<EOF
log "$WORK/bird.log" all;
router id 10.99.0.254;
protocol device { scan time 2; }
protocol bgp node { local 10.99.0.254 as 64512; neighbor 10.99.0.1 as 64512;
  hold time 9; keepalive time 3; connect retry time 2; ipv4 { import all; export none; }; }
EOF
nsx "$R" bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"

cat >"$WORK/node.toml" <<CFG
node_name = "${P}-node"
state_dir = "$WORK/state"
api = { socket = "$WORK/api.sock" }
node_ips = ["10.99.0.1/24", "fd99::1/64"]
[[uplinks]]
name = "up0"
queues = [$(seq -s, 0 $((WORKERS - 1)))]
[[pools]]
cidr = "10.244.0.0/16"
nat_outgoing = true
[[pools]]
cidr = "fd10::/48"
nat_outgoing = true
[[pools]]
cidr = "10.245.0.0/16"
[metrics]
listen = "127.0.0.1:9469"
[workers]
count = $WORKERS
cores = [$( ((WORKERS == 1)) && echo "${CORE:-1}" || seq -s, 0 $((WORKERS - 1)))]
[conntrack]
# Wider than the default (10,000 flows to one destination need 10,000 ports): it
# overlaps the kernel's ephemeral ports, which vrouterd then reserves.
nat_ports = "40000-65535"
[[endpoints]]
name = "demo/pod-a"
kind = "veth"
interface = "${P}a0"
ips = ["10.244.1.2/32", "fd10::2/128"]
[[endpoints]]
name = "demo/pod-b"
kind = "veth"
interface = "${P}b0"
ips = ["10.244.1.3/32", "fd10::3/128"]
[[endpoints]]
name = "demo/pod-c"
kind = "veth"
interface = "${P}c0"
ips = ["10.245.1.2/32"]
[[nodes]]
name = "node-b"
ips = ["10.99.0.2/24"]
[[routes]]
dst = "10.244.2.0/26"
node = "node-b"
[[routes]]
dst = "0.0.0.0/0"
via = "10.99.0.254"
[[routes]]
dst = "::/0"
via = "fd99::fe"
[bgp]
mesh = false
[[bgp.peers]]
address = "10.99.0.254"
hold_time = 9
CFG

RESERVED_BEFORE=$(nsx "$NODE" cat /proc/sys/net/ipv4/ip_local_reserved_ports)
# The node's own TCP service (sshd's stand-in) and the internet's servers.
nsx "$NODE" socat TCP-LISTEN:2222,fork,reuseaddr EXEC:cat &>/dev/null &
nsx "$I" socat UDP6-RECVFROM:9000,ipv6only=0,fork EXEC:cat &>/dev/null &
nsx "$I" socat TCP6-LISTEN:9001,ipv6only=0,fork,reuseaddr EXEC:cat &>/dev/null &
ip netns exec "$NODE" "$VROUTERD" --config "$WORK/node.toml" --stats-file "$WORK/stats.json" \
    >"$WORK/vrouterd.log" 2>&1 &
VR_PID=$!
for _ in $(seq 50); do [[ -s $WORK/stats.json ]] && break; sleep 0.2; done
[[ -s $WORK/stats.json ]] || { cat "$WORK/vrouterd.log"; die "vrouterd did not start"; }
unstrict

counter() { jnum "$WORK/stats.json" "$1"; }
ctl() { "$VROUTERCTL" --socket "$WORK/api.sock" "$@"; }
udp_echo() { # ns addr: a line over UDP comes back
    local out; out=$(echo "hello $2" | nsx "$1" timeout 5 socat -t 2 - "UDP:$2:9000") || return 1
    echo "got: $out"; [[ $out == "hello $2" ]]
}
tcp_echo() { # ns addr port
    local out; out=$(echo "hello $2" | nsx "$1" timeout 5 socat -t 2 - "TCP:$2:$3") || return 1
    echo "got: $out"; [[ $out == "hello $2" ]]
}
reserved_now() {
    local r; r=$(nsx "$NODE" cat /proc/sys/net/ipv4/ip_local_reserved_ports) || return 1
    echo "ip_local_reserved_ports: '$r'"; [[ $r == *40000-60999* ]]
}
check "start: NAT ports overlapping the kernel's are reserved (40000-60999)" reserved_now

# vrouterd asks the kernel to resolve its gateways; IPv6's takes a second or two.
gateways_known() {
    nsx "$NODE" ip neigh show 10.99.0.254 | grep -q lladdr && nsx "$NODE" ip -6 neigh show fd99::fe | grep -q lladdr
}
check "start: the node's gateways are resolved (v4 and v6)" within 15 gateways_known
check "ICMP  v4 pod A -> internet"             ping4 "$A" 203.0.113.1
check "ICMP  v6 pod A -> internet (fd10::/48 is natOutgoing)" ping6 "$A" fd77::1
check "UDP   v4 pod B -> internet echo"        udp_echo "$B" 203.0.113.1
check "UDP   v6 pod B -> internet echo"        udp_echo "$B" "[fd77::1]"
check "TCP   v4 pod A -> internet echo"        tcp_echo "$A" 203.0.113.1 9001
iperf_both() { # a TCP run each way between pod A and the internet
    nsx "$I" timeout 30 iperf3 -s -p 5201 >/dev/null 2>&1 &
    local sp=$!; sleep 0.3
    local rc=0
    nsx "$A" iperf3 -c 203.0.113.1 -p 5201 -t 2 --json >"$WORK/up.json" || rc=1
    nsx "$A" iperf3 -c 203.0.113.1 -p 5201 -t 2 -R --json >"$WORK/down.json" || rc=1
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
    ((rc == 0)) || { tail -5 "$WORK/up.json" "$WORK/down.json"; return 1; }
    python3 - "$WORK/up.json" "$WORK/down.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    end = json.load(open(f))["end"]
    got = end["sum_received"]["bytes"]
    print(f'{f}: received {got} bytes, {end["sum_received"]["bits_per_second"]/1e6:.0f} Mbit/s')
    assert got > 1_000_000, "too little received"
PY
}
check "TCP   iperf3 pod A -> internet, both directions (through a 1400 MTU hop)" iperf_both
pmtu() { # a 1500-byte DF ping meets the 1400 hop: frag-needed reaches pod A, translated
    nsx "$A" ip route flush cache
    nsx "$A" ping -c 2 -i 0.3 -W 1 -M do -s 1472 203.0.113.1 || true
    local r; r=$(nsx "$A" ip route get 203.0.113.1) || return 1
    echo "$r"; grep -q "mtu 1400" <<<"$r"
}
check "PMTU  frag-needed from the router is translated back: pod A learns mtu 1400" pmtu

# Pod C's pool has no natOutgoing: its packets leave untranslated and the internet
# cannot answer (no route to 10.245.0.0/16). The capture is the evidence that they left.
capture() { # ns iface filter seconds file: tshark in the background, for N seconds of capture
    nsx "$1" timeout $(($4 + 15)) tshark -i "$2" -n -f "$3" -a "duration:$4" \
        -T fields -e ip.src -e ip.dst -e frame.len >"$5" 2>"$5.err" &
    # Traffic starts only once the capture runs: tshark can take seconds to start on a
    # busy host, and a capture that missed the packets would be empty (CI saw this).
    local _
    for _ in $(seq 100); do grep -q "Capture started" "$5.err" && return 0; sleep 0.1; done
    cat "$5.err"; echo "tshark did not start on $1 $2 within 10 s"
}
no_nat_pool() {
    capture "$I" eth0 "icmp" 6 "$WORK/c.txt"
    local cap=$!
    local rc=0; nsx "$C" ping -c 3 -i 0.2 -W 1 203.0.113.1 && rc=1
    wait $cap || true
    cat "$WORK/c.txt"
    [[ -s $WORK/c.txt ]] || { echo "empty capture"; cat "$WORK/c.txt.err"; return 1; }
    grep -q "^10.245.1.2	203.0.113.1" "$WORK/c.txt" || { echo "pod C's source not seen"; return 1; }
    ! grep -q "^10.99.0.1	" "$WORK/c.txt" || { echo "pod C was translated"; return 1; }
    ((rc == 0)) || { echo "pod C got answers"; return 1; }
}
check "no NAT: pod C (pool without natOutgoing) leaves untranslated, gets no answer" no_nat_pool
untranslated() { # to pod B and to node-b's block: the router sees pod A's own address
    capture "$B" eth0 "icmp" 5 "$WORK/b.txt"; local cb=$!
    capture "$R" eth0 "icmp and host 10.244.2.5" 5 "$WORK/r.txt"; local cr=$!
    nsx "$A" ping -c 2 -i 0.2 -W 1 10.244.1.3 >/dev/null || { echo "pod A -> pod B failed"; return 1; }
    nsx "$A" ping -c 2 -i 0.2 -W 1 10.244.2.5 >/dev/null || true # node-b is not really there
    wait $cb $cr || true
    echo "at pod B:"; cat "$WORK/b.txt"; echo "at the router:"; cat "$WORK/r.txt"
    [[ -s $WORK/b.txt && -s $WORK/r.txt ]] || { echo "empty capture"; return 1; }
    grep -q "^10.244.1.2	10.244.1.3" "$WORK/b.txt" && grep -q "^10.244.1.2	10.244.2.5" "$WORK/r.txt" &&
        ! grep -q "^10.99.0.1	" "$WORK/b.txt" "$WORK/r.txt"
}
check "no NAT: pod-to-pod and pod-to-other-node keep pod A's address (tshark)" untranslated

check "node: its own TCP service is reached from the router" tcp_echo "$R" 10.99.0.1 2222
own_connections() { # 200 of the node's own connections out: none is taken for NAT
    local i ok=0
    for i in $(seq 200); do
        echo "x$i" | nsx "$NODE" timeout 3 socat -t 1 - TCP:203.0.113.1:9001 >/dev/null && ok=$((ok + 1))
    done
    echo "$ok of 200 connections from the node itself worked"; ((ok == 200))
}
check "node: its own outgoing connections work beside NAT (200 of them)" own_connections
bgp_up() {
    local out; out=$(nsx "$R" birdc -s "$WORK/bird.ctl" show protocols node) || return 1
    echo "$out"; grep -q Established <<<"$out"
}
check "node: BGP session with BIRD on the router is Established" within 30 bgp_up

# 10,000 concurrent UDP flows from pods A and B (5,000 sockets each) to one internet port:
# every flow is answered, and the internet saw 10,000 distinct source ports.
cat >"$WORK/flows_server.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", 9100))
s.settimeout(4)  # the end: 4 s without a datagram (clients retry what went unanswered)
seen = set()
try:
    while True:
        data, addr = s.recvfrom(64)
        seen.add(addr); s.sendto(data, addr)
except socket.timeout:
    pass
open(sys.argv[1], "w").write("\n".join(f"{a} {p}" for a, p in sorted(seen)))
PY
cat >"$WORK/flows_client.py" <<'PY'
import socket, select, sys, time
n = int(sys.argv[1])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
    s.connect(("203.0.113.1", 9100)); socks.append(s)
by_fd = {s.fileno(): i for i, s in enumerate(socks)}
answered = set()
errors = {}
for attempt in range(3):
    for i, s in enumerate(socks):
        if i not in answered:
            s.send(b"%d" % i)
            if i % 500 == 0: time.sleep(0.01)
    deadline = time.time() + 3
    p = select.poll()
    for i, s in enumerate(socks):
        if i not in answered: p.register(s, select.POLLIN)
    while time.time() < deadline and len(answered) < n:
        for fd, _ in p.poll(200):
            i = by_fd[fd]
            p.unregister(fd)
            try: socks[i].recv(64); answered.add(i)
            except OSError as e: errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    if len(answered) == n: break
print(f"{len(answered)} of {n} flows answered; errors {errors}")
sys.exit(0 if len(answered) == n else 1)
PY
many_flows() {
    nsx "$I" python3 "$WORK/flows_server.py" "$WORK/ports.txt" 10000 &
    local sp=$!; sleep 0.5
    nsx "$A" bash -c "ulimit -n 20000; python3 $WORK/flows_client.py 5000" >"$WORK/fa.txt" 2>&1 &
    local pa=$!
    nsx "$B" bash -c "ulimit -n 20000; python3 $WORK/flows_client.py 5000" >"$WORK/fb.txt" 2>&1 &
    local pb=$!
    local rc=0; wait $pa || rc=1; wait $pb || rc=1
    wait $sp || true
    cat "$WORK/fa.txt" "$WORK/fb.txt"
    python3 - "$WORK/ports.txt" <<'PY' || rc=1
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
srcs = {a for a, _ in rows}
ports = {int(p) for _, p in rows}
print(f"internet saw {len(rows)} flows from {sorted(srcs)}, {len(ports)} distinct ports "
      f"{min(ports, default=0)}-{max(ports, default=0)}")
assert srcs == {"10.99.0.1"}, "a flow was not translated"
assert len(rows) == 10000 and len(ports) == 10000, "flows or ports missing"
assert all(40000 <= p <= 65535 for p in ports), "a port outside the NAT range"
PY
    return $rc
}
check "flows: 10,000 concurrent UDP flows from two pods, all answered, distinct ports" many_flows
ct_json() { # file python-assertions-over-j: a vrouterctl --json reply checked
    python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(json.dumps(j)[:600])
exec(sys.argv[2])
PY
}
ct_stats() {
    ctl --json conntrack stats >"$WORK/ct.json" || return 1
    ct_json "$WORK/ct.json" '
c = {x["name"]: x["value"] for x in j["total"]}
assert c["flows"] >= 10000, c
assert c["created"] >= 10000 and c["nat_translated"] > 20000, c
assert j["nat_ports"] == "40000-65535", j["nat_ports"]'
}
check "conntrack stats: >= 10,000 flows, NAT ports shown" ct_stats
ct_list() {
    ctl --json conntrack list --filter "proto=udp dst=203.0.113.1 port=9100" --limit 3 >"$WORK/ct.json" || return 1
    ct_json "$WORK/ct.json" '
assert int(j["matched"]) >= 10000, j["matched"]
assert len(j["flows"]) == 3
for f in j["flows"]:
    assert f["translated"] and f["reply"]["dst"] == "10.99.0.1", f
    assert 40000 <= f["reply"]["dport"] <= 65535 and f["state"] == "REPLIED", f
    assert f["orig"]["src"] in ("10.244.1.2", "10.244.1.3"), f'
}
check "conntrack list --filter: the flows, translated to the node's address" ct_list
ct_metrics() {
    local m; m=$(nsx "$NODE" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9469/metrics", timeout=5).read().decode())') || return 1
    grep -E '^vrouter_conntrack_(flows|created_total)\{' <<<"$m" || { echo "no conntrack metrics"; return 1; }
    python3 -c '
import re, sys
v = sum(float(x) for x in re.findall(r"^vrouter_conntrack_flows\{[^}]*\} (\S+)$", sys.stdin.read(), re.M))
print("flows", v); sys.exit(0 if v >= 10000 else 1)' <<<"$m"
}
check "metrics: vrouter_conntrack_flows counts them" ct_metrics
ct_flush() {
    ctl --json conntrack flush --filter "addr=10.244.1.3" >"$WORK/ct.json" || return 1
    ct_json "$WORK/ct.json" 'assert int(j["flushed"]) >= 5000, j' || return 1
    ctl --json conntrack list --filter "addr=10.244.1.3" >"$WORK/ct.json" || return 1
    ct_json "$WORK/ct.json" 'assert int(j.get("matched", 0)) == 0, j'
}
check "conntrack flush --filter: pod B's flows go, pod A's stay" ct_flush
bad_filter() {
    local out rc=0; out=$(ctl conntrack list --filter "colour=red" 2>&1) || rc=$?
    echo "exit $rc: $out"; ((rc != 0)) && grep -q "not a filter key" <<<"$out"
}
check "conntrack list: a bad filter is refused, saying why" bad_filter
translated() { local n; n=$(counter 'd["nat_translated"]') || return 1; echo "nat_translated $n"; ((n > 20000)); }
check "stats: nat_translated counts both directions of those flows" translated

kill "$VR_PID"; wait "$VR_PID" 2>/dev/null; VR_PID=
released() {
    local r; r=$(nsx "$NODE" cat /proc/sys/net/ipv4/ip_local_reserved_ports) || return 1
    echo "before: '$RESERVED_BEFORE' after: '$r'"; [[ $r == "$RESERVED_BEFORE" ]]
}
check "stop: the port reservation is given back" released
finish nat tail -40 "$WORK/vrouterd.log"
