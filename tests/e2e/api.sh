#!/usr/bin/env bash
# End to end, operations: vrouterd in a node namespace is driven only through its API
# with vrouterctl (JSON output parsed): an endpoint is added (address from the pool's
# IPAM), traffic flows, it is deleted, traffic stops and the address is free again;
# pools applied from a Calico IPPool file; a BGP peer added and removed; events on the
# watch stream; bad requests refused with a message (daemon still up); the socket is
# root's only; a second vrouterd on the same uplink is refused; state survives a
# restart; a Prometheus scrape parsed by prometheus_client, /livez and /readyz. Needs
# root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
# Debian's python (its python3-prometheus-client), not a python3 earlier on PATH.
PY=/usr/bin/python3
P=${P:-vra$$}
die() { echo "api: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping ethtool python3 setpriv; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
$PY -c 'import prometheus_client.parser' 2>/dev/null ||
    die "python3-prometheus-client is not installed (run scripts/setup.sh)"
[[ -x $VROUTERD && -x $VROUTERCTL ]] || die "$VROUTERD / $VROUTERCTL not built"

WORK=$(mktemp -d)
chmod 755 "$WORK"
. tests/e2e/lib.sh
strict api
VR_PID=
WATCH_PID=
PING_PID=
cleanup() {
    unstrict
    [[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null
    [[ -n $VR_PID ]] && kill -9 "$VR_PID" 2>/dev/null
    for ns in hub n r p1 p2; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
export VROUTER_SOCKET=$WORK/api.sock
ctl() { "$VROUTERCTL" "$@"; }
# jq-less JSON checks: json 'expression over d' < file
json() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

hub
underlay ${P}n 10.97.0.1 fd97::1
underlay ${P}r 10.97.0.2 fd97::2
nsx ${P}r ip route add 10.66.0.0/16 via 10.97.0.1
# Pods' host sides exist before vrouterd hears of them (as the CNI plugin makes them).
veth_pod() { # pod-ns host-if
    ip netns add "$1"
    nsx "$1" ip link set lo up
    ip link add "$2" netns ${P}n type veth peer name eth0 netns "$1"
    nsx ${P}n ip link set "$2" address ee:ee:ee:ee:ee:ee up
    off ${P}n "$2"
    nsx "$1" ip link set eth0 up
    off "$1" eth0
}
pod_ip() { # pod-ns addr: the address vrouterd allocated, gateway 169.254.1.1
    nsx "$1" ip addr flush dev eth0
    nsx "$1" ip addr add "$2/32" dev eth0
    nsx "$1" ip route add 169.254.1.1 dev eth0 scope link
    nsx "$1" ip route add default via 169.254.1.1 dev eth0
}
veth_pod ${P}p1 cali1
veth_pod ${P}p2 cali2

tests/e2e/make-certs.sh "$WORK/pki" || die "test certificates (openssl)"
cat >"$WORK/node.toml" <<CFG
node_name = "apinode"
node_ips = ["10.97.0.1/24"]
state_dir = "$WORK/state"
[api]
socket = "$WORK/api.sock"
listen = "127.0.0.1:50052"
cert_file = "$WORK/pki/server.pem"
key_file = "$WORK/pki/server.key"
client_ca_file = "$WORK/pki/ca.pem"
[metrics]
listen = "127.0.0.1:9469"
[[uplinks]]
name = "up0"
[[pools]]
cidr = "10.66.0.0/16"
[workers]
cores = [1]
endpoint_slots = 4
[[routes]]
dst = "0.0.0.0/0"
via = "10.97.0.2"
[bgp]
mesh = false
CFG
start() {
    ip netns exec ${P}n "$VROUTERD" --config "$WORK/node.toml" >>"$WORK/vrouterd.log" 2>&1 &
    VR_PID=$!
    for _ in $(seq 50); do ctl node status >/dev/null 2>&1 && return 0; sleep 0.2; done
    cat "$WORK/vrouterd.log"; die "vrouterd did not start"
}
stop() { kill "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=; }
alive() { kill -0 "$VR_PID"; }
# refused expected-text command...: the command fails (exit status read, not dropped
# through a `;`) and its output has the text.
refused() {
    local want=$1; shift
    if "$@" >"$WORK/refused" 2>&1; then cat "$WORK/refused"; echo "(succeeded; want a refusal)"; return 1; fi
    cat "$WORK/refused"; grep -q "$want" "$WORK/refused"
}

check "vrouterctl says so when vrouterd is not running" refused "vrouterd is not running" ctl node status
start
check "the API socket is mode 0600, owned by root" \
    test "$(stat -c '%a %U' "$WORK/api.sock")" = "600 root"
# Its positive twin: the same command as root succeeds.
check "root's vrouterctl node status succeeds" ctl node status
first_line() { ctl node status >"$WORK/status.txt" || return 1; head -n 2 "$WORK/status.txt"; [[ $(head -n 1 "$WORK/status.txt") == "vrouterd process is running." ]]; }
check "node status: the first line reads as calicoctl's (for scripts that grep it)" first_line
versions() {
    local out
    out=$(ctl version) || return 1
    echo "$out"
    grep -qE '^Client Version: +[0-9]+\.[0-9]+\.[0-9]+$' <<<"$out" &&
        grep -qE '^Daemon Version: +[0-9]+\.[0-9]+\.[0-9]+ \(node [^ ]+, up [0-9]' <<<"$out" &&
        ctl version -o json | python3 -c 'import json,sys; v=json.load(sys.stdin); assert v["client"] and v["daemon"]["version"], v'
}
check "version: the client's and the daemon's (text and JSON)" versions
log_level() {
    ctl log level | tee /dev/stderr | grep -qx 'log level: info' || return 1
    ctl log level 'info,control::speaker=debug' | tee /dev/stderr | grep -qx 'log level: info,control::speaker=debug (was info)' || return 1
    ctl log level -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)["level"] == "info,control::speaker=debug"' || return 1
    local e
    e=$(ctl log level 'info,control=loud' 2>&1) && { echo "a bad level was taken"; return 1; }
    echo "$e"; grep -q 'loud' <<<"$e" || return 1
    ctl log level info >/dev/null
}
check "log level: read, set while running, a bad one refused naming it" log_level
plain_log() { # vrouterd's stderr is a file here: no colour codes, MACs in text form
    [[ -s "$WORK/vrouterd.log" ]] || { echo "empty log"; return 1; }
    ! grep -q $'\x1b' "$WORK/vrouterd.log" || { echo "ANSI escapes in the log"; return 1; }
    grep -qE 'mac=([0-9a-f]{2}:){5}[0-9a-f]{2}' "$WORK/vrouterd.log" || { tail -n 5 "$WORK/vrouterd.log"; return 1; }
}
check "the log off a terminal: plain text, MACs as aa:bb:cc:dd:ee:ff" plain_log

# The TCP listener: mutual TLS only.
tcpctl() { ip netns exec ${P}n "$VROUTERCTL" --socket https://127.0.0.1:50052 "$@"; }
check "over TCP, a client with a certificate from client_ca_file is answered" \
    tcpctl --tls-cert "$WORK/pki/client.pem" --tls-key "$WORK/pki/client.key" --tls-ca "$WORK/pki/ca.pem" node status
# TLS 1.3: the client finishes its side of the handshake before the server has read the
# certificate, so the server's alert races the client's first request. The refusal reads
# as the alert (UnknownCA), a closed connection, or a write into the closed socket.
check "over TCP, a client certificate from another CA is refused" \
    refused "UnknownCA\\|connection closed\\|broken pipe\\|connection reset" tcpctl --tls-cert "$WORK/pki/rogue.pem" --tls-key "$WORK/pki/rogue.key" --tls-ca "$WORK/pki/ca.pem" node status
check "after that refusal, the listener still answers the right certificate" \
    tcpctl --tls-cert "$WORK/pki/client.pem" --tls-key "$WORK/pki/client.key" --tls-ca "$WORK/pki/ca.pem" node status
check "over TCP, no client certificate is refused before connecting" \
    refused "tls-cert" tcpctl node status
check "plain HTTP to the TCP listener is refused" \
    refused "mutual TLS only" ip netns exec ${P}n "$VROUTERCTL" --socket http://127.0.0.1:50052 node status
check "plain HTTP/2 bytes get no gRPC answer from the TLS port" bash -c "
    ! ip netns exec ${P}n curl -s --http2-prior-knowledge -m 3 -o /dev/null -w '%{http_code}' \
        -H 'content-type: application/grpc' -X POST http://127.0.0.1:50052/vrouter.v1.Vrouter/GetStats 2>/dev/null | grep -q 200"
# vrouterd --check: no TCP listener without TLS, and the interfaces looked up.
sed -e '/^cert_file\|^key_file\|^client_ca_file/d' "$WORK/node.toml" >"$WORK/notls.toml"
check "--check refuses a TCP listener without mutual TLS" \
    refused "needs cert_file, key_file and client_ca_file" "$VROUTERD" --config "$WORK/notls.toml" --check
sed -e 's/^name = "up0"/name = "nope0"/' "$WORK/node.toml" >"$WORK/noup.toml"
check "--check looks up the uplink (read only)" \
    refused "interface nope0 does not exist here" ip netns exec ${P}n "$VROUTERD" --config "$WORK/noup.toml" --check
check "--check passes the running config and names what only start checks" bash -c "
    ip netns exec ${P}n $VROUTERD --config $WORK/node.toml --check | grep -q 'XDP and AF_XDP sockets are checked at start'"
check "a non-root user is refused with a clear message" \
    refused "permission denied" setpriv --reuid=65534 --regid=65534 --clear-groups "$VROUTERCTL" node status

ctl watch --json >"$WORK/events" 2>&1 &
WATCH_PID=$!
sleep 0.5
ctl endpoint add pod1 --interface cali1 --label app=web --label tier=front --json >"$WORK/add1.json" 2>>"$WORK/ctl.err"
cat "$WORK/add1.json"
A1=$(jget 'd["addresses"][0]' <"$WORK/add1.json") || die "endpoint add gave no address"
check "endpoint add allocates an address from the pool" \
    python3 -c "import ipaddress as i; assert i.ip_address('$A1') in i.ip_network('10.66.0.0/16')"
pod_ip ${P}p1 "$A1"
check "the new endpoint forwards at once (pod -> remote)" ping4 ${P}p1 10.97.0.2
check "the node's kernel routes to the new pod (proto 118)" kroute ${P}n "$A1" cali1
check "the node reaches the new pod, and the pod the node" \
    bash -c "ip netns exec ${P}n ping -c 2 -i 0.2 -W 2 $A1 && ip netns exec ${P}p1 ping -c 2 -i 0.2 -W 2 10.97.0.1"
check "endpoint add --label: the pod's labels are kept (endpoint list)" \
    bash -c "$VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); l=[e.get(\"labels\") for e in d[\"endpoints\"] if e[\"name\"]==\"pod1\"]; assert l==[{\"app\":\"web\",\"tier\":\"front\"}], l'"
check "endpoint list --json shows it, origin api" \
    bash -c "$VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [(e[\"name\"],e[\"origin\"],e[\"addresses\"]) for e in d[\"endpoints\"]]==[(\"pod1\",\"api\",[\"$A1\"])], d'"
ctl route list --json >"$WORK/routes.json"
check "route list: the pod's /32 is connected, its block blackholed, default static" \
    json "{r['prefix']: r['source'] for r in d['routes']}.get('$A1/32') == 'connected' and
          {r['prefix']: r['source'] for r in d['routes']}.get('0.0.0.0/0') == 'static' and
          any(r['source'] == 'blackhole' and r['prefix'].endswith('/26') for r in d['routes'])" \
    <"$WORK/routes.json"
check "pool list shows the block the node claimed" \
    bash -c "$VROUTERCTL pool list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); p=d[\"pools\"][0]; assert p[\"cidr\"]==\"10.66.0.0/16\" and len(p[\"blocks\"])==1 and p[\"origin\"]==\"config\", p'"

# A second vrouterd on the same uplink (its own socket, state and no listeners, so that
# the uplink is what it trips on): refused, saying why, without trying generic mode;
# the first one goes on forwarding.
sed -e "s|^state_dir = .*|state_dir = \"$WORK/state2\"|" -e "s|^socket = .*|socket = \"$WORK/api2.sock\"|" \
    -e '/^listen = /d' -e '/^cert_file\|^key_file\|^client_ca_file/d' -e '/^\[metrics\]/d' \
    -e '/^\[bgp\]/,$d' "$WORK/node.toml" >"$WORK/second.toml"
second_vrouterd() {
    if ip netns exec ${P}n timeout 60 "$VROUTERD" --config "$WORK/second.toml" >"$WORK/second.log" 2>&1; then
        cat "$WORK/second.log"; echo "(the second vrouterd ran; want a refusal)"; return 1
    fi
    tail -5 "$WORK/second.log"
    grep -q "up0 already has an XDP program attached (another vrouterd running?)" "$WORK/second.log" &&
        ! grep -q "native XDP refused" "$WORK/second.log"
}
check "a second vrouterd on the same uplink exits, naming the XDP program already there" second_vrouterd
check "the first vrouterd still answers and forwards" \
    bash -c "kill -0 $VR_PID && $VROUTERCTL node status >/dev/null && ip netns exec ${P}p1 ping -c 2 -i 0.2 -W 2 10.97.0.2"

# A BGP peer added and removed while running (nothing answers there: it stays Active).
check "peer add" ctl peer add 10.97.0.2 --asn 64512
refused_peer() { # address reason: refused with InvalidArgument naming the reason
    local out; if out=$(ctl peer add "$1" --asn 64512 2>&1); then echo "accepted: $out"; return 1; fi
    echo "$out"; grep -q "$2" <<<"$out"
}
check "state files are the owner's alone (0600: a peer's password may be in them)" bash -c "
    ls -l $WORK/state/*.json; for f in $WORK/state/*.json; do [[ \$(stat -c %a \$f) == 600 ]] || exit 1; done"
printf 'k3y-from-file\nignored\n' >"$WORK/peer.key"; chmod 644 "$WORK/peer.key"
check "peer add --password-file refuses a key file others may read" bash -c "
    out=\$($VROUTERCTL peer add 10.97.0.3 --asn 64512 --password-file $WORK/peer.key 2>&1) && exit 1
    echo \"\$out\"; grep -q 'chmod 600' <<<\"\$out\""
chmod 600 "$WORK/peer.key"
check "peer add --password-file: the path is kept in state, never the key" bash -c "
    $VROUTERCTL peer add 10.97.0.3 --asn 64512 --password-file $WORK/peer.key || exit 1
    grep -q '\"password_file\": \"$WORK/peer.key\"' $WORK/state/api.json || { cat $WORK/state/api.json; exit 1; }
    ! grep -q k3y-from-file $WORK/state/api.json && $VROUTERCTL peer del 10.97.0.3"
check "peer add refuses the node's own address, loopback and 0.0.0.0" bash -c "
    $(declare -f ctl refused_peer); VROUTERCTL=$VROUTERCTL
    refused_peer 10.97.0.1 \"own address\" && refused_peer 127.0.0.1 loopback && refused_peer 0.0.0.0 unspecified"
ctl node status >"$WORK/status.txt"; cat "$WORK/status.txt"
check "node status prints calicoctl's peer table with the added peer" \
    bash -c "grep -Eq 'PEER ADDRESS \| PEER TYPE +\| STATE +\| SINCE +\| INFO' $WORK/status.txt &&
             grep -E '^\| 10\.97\.0\.2 +\| api ' $WORK/status.txt"
check "peer list --json has it, with the hold time and port in use (90, 179)" \
    bash -c "$VROUTERCTL peer list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [(p[\"address\"], p[\"hold_time\"], p[\"port\"]) for p in d[\"peers\"]]==[(\"10.97.0.2\", 90, 179)], d'"
check "peer del" ctl peer del 10.97.0.2
check "the peer is gone" \
    bash -c "$VROUTERCTL peer list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"peers\"]==[], d'"

# Bad requests: a message and exit 1, never a crash.
bad() { refused "$@" && alive; } # expected-text command...
check "an address outside every pool is refused" bad "in no pool" ctl endpoint add x --interface cali2 --ip 10.99.0.5
check "a taken address is refused, naming its holder" bad "already endpoint pod1's" ctl endpoint add x --interface cali2 --ip "$A1"
check "a second endpoint of the same name is refused" bad "exists" ctl endpoint add pod1 --interface cali2
check "a missing interface is refused" bad "nosuch" ctl endpoint add x --interface nosuch
check "a bad address is refused" bad "address" ctl endpoint add x --interface cali2 --ip 10.66.0.300
check "removing an unknown endpoint is refused" bad "no endpoint" ctl endpoint del nosuch
check "endpoint add --label: a bad label is refused, saying why" \
    bad "not a Kubernetes label" ctl endpoint add x --interface cali2 --label "a b=c"
printf 'kind: IPPool\nspec:\n  cidr: 10.67.0.0/16\n  vxlanMode: Sometimes\n' >"$WORK/badpool.yaml"
check "a bad pool mode is refused" bad "vxlanMode" ctl pool apply -f "$WORK/badpool.yaml"
check "an overlapping pool is refused" bad "overlap" bash -c "printf 'kind: IPPool\nspec:\n  cidr: 10.66.128.0/17\n' >$WORK/ov.yaml; $VROUTERCTL pool apply -f $WORK/ov.yaml"
check "a file's pool cannot be removed through the API" bad "configuration file" ctl pool del 10.66.0.0/16
check "the refused adds left nothing behind: pod1 alone, its address its own" \
    bash -c "$VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [(e[\"name\"],e[\"addresses\"]) for e in d[\"endpoints\"]]==[(\"pod1\",[\"$A1\"])], d'"

# Pools from a Calico IPPool file.
cat >"$WORK/pool.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: extra
spec:
  cidr: 10.68.0.0/16
  blockSize: 28
  ipipMode: Never
  vxlanMode: Always
  natOutgoing: true
  nodeSelector: all()
YAML
check "pool apply -f a Calico IPPool (YAML)" ctl pool apply -f "$WORK/pool.yaml"
check "pool list has it with its fields, origin api" \
    bash -c "$VROUTERCTL pool list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); p=[p for p in d[\"pools\"] if p[\"cidr\"]==\"10.68.0.0/16\"][0]; assert (p[\"block_size\"],p[\"vxlan_mode\"],p[\"origin\"])==(28,\"Always\",\"api\"), p'"

sed -i 's/  natOutgoing: true/  natOutgoing: true\n  disabled: true/' "$WORK/pool.yaml"
check "pool apply updates a pool: disabled and natOutgoing kept" \
    bash -c "$VROUTERCTL pool apply -f $WORK/pool.yaml && $VROUTERCTL pool list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); p=[p for p in d[\"pools\"] if p[\"cidr\"]==\"10.68.0.0/16\"][0]; assert p[\"disabled\"] and p[\"nat_outgoing\"], p'"

# Calico's own field names, honoured; pool list -o yaml applies back to the same pools.
sed -i 's/  nodeSelector: all()/  nodeSelector: "!all()"\n  disableBGPExport: true\n  allowedUses: [Workload]\n  assignmentMode: Manual/' "$WORK/pool.yaml"
check "pool apply takes disableBGPExport, nodeSelector, allowedUses, assignmentMode" \
    bash -c "$VROUTERCTL pool apply -f $WORK/pool.yaml && $VROUTERCTL pool list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); p=[p for p in d[\"pools\"] if p[\"cidr\"]==\"10.68.0.0/16\"][0]; assert (p[\"disable_bgp_export\"],p[\"node_selector\"],p[\"allowed_uses\"],p[\"assignment_mode\"])==(True,\"!all()\",[\"Workload\"],\"Manual\"), p'"
check "pool list -o yaml applies back to the same pools" \
    bash -c "$VROUTERCTL pool list -o yaml >$WORK/pools.yaml && grep -q 'kind: IPPoolList' $WORK/pools.yaml &&
             grep -q 'disableBGPExport: true' $WORK/pools.yaml && $VROUTERCTL pool apply -f $WORK/pools.yaml >/dev/null &&
             $VROUTERCTL pool list -o yaml | cmp - $WORK/pools.yaml"
printf 'kind: IPPool\nspec:\n  cidr: 10.69.0.0/16\n  disableBgpExport: true\n' >"$WORK/badpool2.yaml"
check "a field vrouterd does not know is refused by name" bad "disableBgpExport" ctl pool apply -f "$WORK/badpool2.yaml"

# A tap endpoint (a VM's): vrouterd creates the tap; the MAC is given.
check "a tap endpoint is added with its MAC, listed, and removed" \
    bash -c "$VROUTERCTL endpoint add vm1 --kind tap --interface vtap1 --mac 52:54:00:00:00:01 --json >/dev/null &&
             $VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); e=[e for e in d[\"endpoints\"] if e[\"name\"]==\"vm1\"][0]; assert (e[\"kind\"],e[\"mac\"])==(\"tap\",\"52:54:00:00:00:01\"), e' &&
             ip netns exec ${P}n ip link show vtap1 >/dev/null &&
             $VROUTERCTL endpoint del vm1 >/dev/null"

# Endpoint events reached the watcher.
check "the watch stream carried the endpoint and its route" \
    bash -c "grep -q '\"op\":\"add\".*pod1' $WORK/events && grep -q '$A1/32' $WORK/events"

check "stats --json counts what pod1 sent" \
    bash -c "$VROUTERCTL stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); t={c[\"name\"]:c[\"value\"] for c in d[\"total\"]}; assert t[\"rx\"]>0 and t[\"tx\"]>0 and len(d[\"workers\"])==1 and d[\"endpoints\"][0][\"name\"]==\"pod1\", d'"

# Prometheus text format, parsed by prometheus_client; health endpoints.
cat >"$WORK/scrape.py" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
base = "http://127.0.0.1:9469"
r = urllib.request.urlopen(base + "/metrics", timeout=5)
assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
fams = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
rx = sum(s.value for s in fams["vrouter_rx_packets"].samples if s.name.endswith("_total"))
assert rx > 0, rx
drops = {s.labels["reason"] for s in fams["vrouter_drops"].samples}
assert "no_route" in drops, drops
routes = {s.labels["source"]: s.value for s in fams["vrouter_routes"].samples}
assert routes["connected"] >= 1 and routes["static"] >= 1, routes
assert fams["vrouter_fib_bytes"].samples[0].value > 0
# The process collector's series and the build, as every exporter has them.
import time
proc = {n: fams[n].samples[0].value for n in ("process_cpu_seconds", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds")}
assert proc["process_cpu_seconds"] > 0 and proc["process_resident_memory_bytes"] > 1e6, proc
assert 0 < proc["process_open_fds"] <= proc["process_max_fds"], proc
assert time.time() - 600 < proc["process_start_time_seconds"] <= time.time(), proc
build = fams["vrouter_build_info"].samples[0]
assert build.value == 1 and build.labels["version"] and build.labels["profile"] in ("debug", "release"), build
# Histograms (issue 21): FIB batch install and UPDATE processing, cumulative buckets.
for h in ("vrouter_fib_batch_install_seconds", "vrouter_bgp_update_seconds"):
    f = fams[h]
    assert f.type == "histogram", (h, f.type)
    buckets = [s.value for s in f.samples if s.name == h + "_bucket"]
    count = [s.value for s in f.samples if s.name == h + "_count"]
    assert len(buckets) == 20 and buckets == sorted(buckets) and count == [buckets[-1]], (h, buckets, count)
for path in ("/livez", "/readyz"):
    assert urllib.request.urlopen(base + path, timeout=5).status == 200, path
print("families:", len(fams), "rx:", rx, "routes:", routes)
PY
check "metrics scrape parsed by prometheus_client; /livez and /readyz 200" \
    nsx ${P}n $PY "$WORK/scrape.py"

# Delete: traffic stops, the address is free again.
# no_reply pod-ns addr: the ping was sent and got no reply (exit 1), not an error (exit 2).
no_reply() {
    local rc=0; nsx "$1" ping -c 2 -i 0.2 -W 1 "$2" || rc=$?
    ((rc == 1)) || { echo "ping $2 from $1: exit $rc, want 1 (sent, no reply)"; return 1; }
}
# The positive twin of "traffic stops": the same ping flows just before the delete (and
# again once the address is given to pod3, below).
check "pod1 forwards just before its endpoint is deleted" ping4 ${P}p1 10.97.0.2
check "endpoint del releases the address" \
    bash -c "set -o pipefail; $VROUTERCTL endpoint del pod1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"released\"]==[\"$A1\"], d'"
gone() { # the /32 is out of the FIB (read back) and the pod's ping gets no reply
    local out; out=$(ctl route list --filter "$A1/32" --json) || return 1
    echo "$out"
    json "not any(r['prefix'] == '$A1/32' for r in d['routes'])" <<<"$out" && no_reply ${P}p1 10.97.0.2
}
check "traffic stops once the endpoint is gone (its route too)" gone
check "the node's kernel route to the pod went with the endpoint" no_kroute ${P}n "$A1"
check "the watch stream carried the removal" bash -c "sleep 0.3; grep -q '\"op\":\"remove\".*pod1' $WORK/events"
ctl endpoint add pod3 --interface cali1 --json >"$WORK/add3.json" 2>>"$WORK/ctl.err"
cat "$WORK/add3.json"
A3=$(jget 'd["addresses"][0]' <"$WORK/add3.json") || die "endpoint add gave no address"
check "the freed address is allocated again" test "$A3" = "$A1"
check "the slot is reused and forwards (same veth, new endpoint)" ping4 ${P}p1 10.97.0.2

# Static routes through the API.
check "route add via a neighbour" ctl route add 10.70.0.0/16 --via 10.97.0.2
check "route list shows it static, via 10.97.0.2 out of up0" \
    bash -c "$VROUTERCTL route list --filter 10.70.0.0/16 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d[\"routes\"]; assert [(x[\"prefix\"],x[\"source\"],x[\"next_hops\"],x[\"out\"]) for x in r]==[(\"10.70.0.0/16\",\"static\",[\"10.97.0.2\"],[\"up0\"])], r'"
check "a second route to the same prefix is refused" bad "exists" ctl route add 10.70.0.0/16 --via 10.97.0.3
check "a route with no next hop is refused" bad "via" ctl route add 10.72.0.0/16
check "the file's default route cannot be removed through the API" bad "configuration file" ctl route del 0.0.0.0/0
check "route del" ctl route del 10.70.0.0/16
check "the route is gone" bash -c "$VROUTERCTL route list --filter 10.70.0.0/16 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"total\"]==0, d'"

# Network policies (issue 18's first piece): a Calico GlobalNetworkPolicy and a
# Kubernetes NetworkPolicy applied from one file, listed, shown, round-tripped through
# `list -o yaml`, a bad file refused whole, one removed; they survive the restart below.
cat >"$WORK/policies.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-db
spec:
  order: 10
  selector: app == 'db'
  types: [Ingress]
  ingress:
    - action: Deny
      source:
        notSelector: tier == 'back'
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
    - ports:
        - protocol: TCP
          port: 80
YAML
policies_are() { # expected keys, space-separated
    local got; got=$($VROUTERCTL policy list --json | python3 -c 'import json,sys; print(" ".join(p["key"] for p in json.load(sys.stdin).get("policies", [])))') || return 1
    echo "policies: '$got'"; [[ $got == "$1" ]]
}
check "policy apply -f: a Calico and a Kubernetes policy from one file" ctl policy apply -f "$WORK/policies.yaml"
check "policy list: both, by key" policies_are "deny-db shop/knp.default.web"
check "policy show: the resource as applied" bash -c "$VROUTERCTL policy show deny-db | grep -q \"notSelector: tier == 'back'\""
roundtrip() {
    $VROUTERCTL policy list -o yaml >"$WORK/back.yaml" || return 1
    $VROUTERCTL policy del deny-db && $VROUTERCTL policy del shop/knp.default.web || return 1
    policies_are "" || return 1
    $VROUTERCTL policy apply -f "$WORK/back.yaml" && policies_are "deny-db shop/knp.default.web"
}
check "policy list -o yaml round-trips through apply -f" roundtrip
printf -- '---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: extra\nspec:\n  colour: red\n' >"$WORK/bad.yaml"
cat "$WORK/policies.yaml" "$WORK/bad.yaml" | sed 's/name: deny-db/name: deny-db2/' >"$WORK/bad2.yaml"
check "a file with one bad document is refused whole, naming the field" bad "colour" ctl policy apply -f "$WORK/bad2.yaml"
check "nothing of the refused file was applied" policies_are "deny-db shop/knp.default.web"
check "policy del of an unknown policy is refused" bad "no policy" ctl policy del nosuch

# Reload (SIGHUP, then vrouterctl reload): a pool, an endpoint and a route added to the
# file go live; pod1's traffic (unchanged) keeps flowing; settings needing a restart are named.
cp "$WORK/node.toml" "$WORK/node.orig.toml"
# pod2 in the file (with its pool): added here, and again at the end of the script.
cat >"$WORK/pod2.toml" <<'CFG'
[[pools]]
cidr = "10.69.0.0/16"
[[endpoints]]
name = "pod2"
kind = "veth"
interface = "cali2"
ips = ["10.69.0.5/32"]
CFG
cat "$WORK/pod2.toml" >>"$WORK/node.toml"
cat >>"$WORK/node.toml" <<'CFG'
[[routes]]
dst = "10.71.0.0/16"
via = "10.97.0.2"
CFG
# [bgp] ends the file: the appended tables follow it, as TOML allows.
nsx ${P}r ip route add 10.69.0.0/16 via 10.97.0.1
pod_ip ${P}p2 10.69.0.5
nsx ${P}p1 ping -i 0.05 -c 200 10.97.0.2 >"$WORK/during-reload.txt" 2>&1 &
PING_PID=$!
kill -HUP "$VR_PID"
sleep 1
check "SIGHUP: the file's new endpoint is up, origin config" \
    bash -c "$VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [(e[\"name\"],e[\"origin\"]) for e in d[\"endpoints\"] if e[\"name\"]==\"pod2\"]==[(\"pod2\",\"config\")], d'"
check "SIGHUP: the new endpoint forwards" ping4 ${P}p2 10.97.0.2
check "SIGHUP: the file's new route is in the FIB" \
    bash -c "set -o pipefail; $VROUTERCTL route list --filter 10.71.0.0/16 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d[\"routes\"]; assert [(x[\"prefix\"],x[\"source\"],x[\"next_hops\"]) for x in r]==[(\"10.71.0.0/16\",\"static\",[\"10.97.0.2\"])], r'"
wait $PING_PID || true # its count is checked next
check "an unchanged pod lost no packet across the reload (200 of 200 replies)" \
    grep -q "200 packets transmitted, 200 received, 0% packet loss" "$WORK/during-reload.txt"
cp "$WORK/node.orig.toml" "$WORK/node.toml"
sed -i 's/^endpoint_slots = 4/endpoint_slots = 5/' "$WORK/node.toml"
RELOAD_RC=0; ctl reload >"$WORK/reload.txt" 2>&1 || RELOAD_RC=$?; cat "$WORK/reload.txt"
check "vrouterctl reload succeeds" test "$RELOAD_RC" -eq 0
check "vrouterctl reload removes what left the file" \
    bash -c "grep -q 'endpoint pod2 removed' $WORK/reload.txt && grep -q 'route 10.71.0.0/16 removed' $WORK/reload.txt && grep -q 'pool 10.69.0.0/16 removed' $WORK/reload.txt"
check "vrouterctl reload names what needs a restart" grep -q "workers changed: needs a restart" "$WORK/reload.txt"
# Its positive twin: the unchanged pod1 (pod3's veth) still forwards after the reload.
check "after the reload pod2 no longer forwards" no_reply ${P}p2 10.97.0.2
check "after the reload the unchanged pod still forwards" ping4 ${P}p1 10.97.0.2
cp "$WORK/node.orig.toml" "$WORK/node.toml"
printf '[[pools]]\ncidr = "10.80.0.0/16"\nblock_size = 40\n' >>"$WORK/node.toml"
check "a bad file on reload: the error names file, line and field; nothing changes" \
    bad "node.toml:[0-9]*:[0-9]*: pool 10.80.0.0/16: block_size" ctl reload
check "the running pools are unchanged after the refused reload" \
    bash -c "set -o pipefail; $VROUTERCTL pool list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); c=sorted(p[\"cidr\"] for p in d[\"pools\"]); assert c==[\"10.66.0.0/16\",\"10.68.0.0/16\"], c; print(c)'"
cp "$WORK/node.orig.toml" "$WORK/node.toml"

# Restart: API endpoints and pools come back from state_dir, IPAM keeps the address.
stop
check "vrouterctl says vrouterd is not running after it stopped" refused "not running" ctl node status
# The watcher from the start saw the daemon go: a plain word and a failing status.
WATCH_RC=0; timeout 5 tail --pid="$WATCH_PID" -f /dev/null; kill "$WATCH_PID" 2>/dev/null || true
wait "$WATCH_PID" || WATCH_RC=$?; WATCH_PID=
check "watch ends with 'vrouterd closed the stream (stopped?)' and a non-zero status" \
    bash -c "test $WATCH_RC -ne 0 && grep -q 'vrouterd closed the stream (stopped?)' $WORK/events && ! grep -q 'h2 protocol' $WORK/events"
start
check "after a restart the API's endpoint is back with its address" \
    bash -c "$VROUTERCTL endpoint list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); e=[e for e in d[\"endpoints\"] if e[\"name\"]==\"pod3\"][0]; assert e[\"addresses\"]==[\"$A1\"] and e[\"origin\"]==\"api\", d'"
check "after a restart the API's pool is back" \
    bash -c "$VROUTERCTL pool list --json | grep -q 10.68.0.0/16"
check "after a restart the pod forwards" ping4 ${P}p1 10.97.0.2
check "after a restart the policies are back" policies_are "deny-db shop/knp.default.web"
check "IPAM state on disk holds the address" grep -q "\"$A1\"" "$WORK/state/ipam.json"

# SIGKILL, then a start repairs the kernel's routes to the pods: pod3's, deleted while
# vrouterd was down, comes back; ours to a pod gone since goes; another owner's stays.
check "the node's kernel routes to pod3 before the kill" kroute ${P}n "$A1" cali1
kill -9 "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=
nsx ${P}n ip route del "$A1/32"
nsx ${P}n ip route add 10.66.250.1/32 dev cali2 proto 118 scope link
nsx ${P}n ip route add 10.66.250.2/32 dev cali2 proto static scope link
start
check "after kill -9 and a start, the route to pod3 is back" kroute ${P}n "$A1" cali1
check "and the node reaches pod3 through it" nsx ${P}n ping -c 2 -i 0.2 -W 2 "$A1"
check "a stale route of ours (proto 118) is removed at start" no_kroute ${P}n 10.66.250.1
check "another owner's route is left alone" \
    bash -c "ip -n ${P}n route show 10.66.250.2 | grep -q 'proto static'"
nsx ${P}n ip route del 10.66.250.2/32
check "vrouterd is still running after all of it" alive

# An endpoint of the file at start, removed from the file and reloaded, then put back:
# its XDP program goes with it (one path for the file's endpoints and the API's), so it
# comes back instead of failing with "XDP on cali2: File exists" until a restart.
cat "$WORK/node.orig.toml" "$WORK/pod2.toml" >"$WORK/node.pod2.toml"
cp "$WORK/node.pod2.toml" "$WORK/node.toml"
stop
start
check "a file endpoint at start forwards" ping4 ${P}p2 10.97.0.2
check "its veth carries our XDP program" bash -c "ip -n ${P}n link show cali2 | grep -q 'prog/xdp'"
cp "$WORK/node.orig.toml" "$WORK/node.toml"
RELOAD_RC=0; ctl reload >"$WORK/reload-rm.txt" 2>&1 || RELOAD_RC=$?; cat "$WORK/reload-rm.txt"
check "reload removes the file's start-up endpoint" \
    bash -c "test $RELOAD_RC -eq 0 && grep -q 'endpoint pod2 removed' $WORK/reload-rm.txt"
# (The detach finishes off the control loop, after the reload's answer.)
detached() { ip -n ${P}n link show cali2 >"$WORK/cali2.txt" && grep -q cali2 "$WORK/cali2.txt" && ! grep -q 'prog/xdp' "$WORK/cali2.txt"; }
check "its XDP program is detached within 2 s (the veth is still there)" within 2 detached
cp "$WORK/node.pod2.toml" "$WORK/node.toml"
RELOAD_RC=0; ctl reload >"$WORK/reload-back.txt" 2>&1 || RELOAD_RC=$?; cat "$WORK/reload-back.txt"
check "put back in the file, the endpoint comes up on the next reload" \
    bash -c "test $RELOAD_RC -eq 0 && grep -q 'endpoint pod2 added' $WORK/reload-back.txt"
check "and forwards again" ping4 ${P}p2 10.97.0.2
cp "$WORK/node.orig.toml" "$WORK/node.toml"

kill "$WATCH_PID" 2>/dev/null || true; WATCH_PID=
stop
logs() { echo "vrouterd log:"; tail -20 "$WORK/vrouterd.log"; }
finish api logs
