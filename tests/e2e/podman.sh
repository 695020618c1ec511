#!/usr/bin/env bash
# End to end, a real container runtime: Debian's podman with its CNI backend runs
# vrouter-cni (configs/10-vrouter.conflist, chained with containernetworking-plugins'
# tuning) on two vrouterd nodes joined by VXLAN, with a busybox image imported from a
# rootfs (no registry). Containers get addresses from their node's pool; they ping and
# talk TCP (busybox nc) to each other on one node and across nodes (VXLAN seen on the
# underlay); they reach their node and the node reaches them; `podman rm` takes the
# endpoint, veth, route and address away; 20 `podman run` at once get 20 distinct
# addresses; vrouterd killed (SIGKILL) on both nodes and restarted while containers run:
# same processes, same addresses, traffic again. Needs root; fails loudly.
#
# Podman runs in the node's network namespace through `nsenter --net`, not `ip netns
# exec`: the latter remounts /sys, which hides the cgroup mounts runc needs ("no cgroup
# mount found in mountinfo"), and gives each podman command a mount namespace of its own,
# so the container netns bind mounts podman makes would not outlive the command. Each node
# has its own podman configuration, storage and state under the test's directory.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
VROUTERCTL=${VROUTERCTL:-target/debug/vrouterctl}
CNI=${CNI:-target/debug/vrouter-cni}
P=${P:-vrp$$}
die() { echo "podman: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping ethtool python3 tcpdump nsenter podman runc; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    die "busybox-static is not installed (run scripts/setup.sh)"
[[ -x /usr/lib/cni/tuning ]] || die "containernetworking-plugins is not installed (run scripts/setup.sh)"
APPLETS=(sh ping nc ip sleep cat netstat)
HAS=$(/bin/busybox --list) || die "/bin/busybox does not run"
for a in "${APPLETS[@]}"; do grep -qx "$a" <<<"$HAS" || die "busybox has no $a applet"; done
[[ -x $VROUTERD && -x $VROUTERCTL && -x $CNI ]] || die "$VROUTERD / $VROUTERCTL / $CNI not built"
VROUTERD=$(realpath "$VROUTERD") VROUTERCTL=$(realpath "$VROUTERCTL") CNI=$(realpath "$CNI")
START=$SECONDS

# What podman, libcni and runc create on the host outside our directory (the image blob
# cache, libcni's result cache, runc's state root): removed at the end if we made them.
HOST_NEW=()
for d in /var/lib/containers /var/lib/cni /run/runc; do [[ -e $d ]] || HOST_NEW+=("$d"); done
WORK=$(mktemp -d)
chmod 755 "$WORK"
. tests/e2e/lib.sh
strict podman
declare -A VR_PID=()
cleanup() {
    unstrict
    local n p i
    for n in a b; do
        [[ -x $WORK/$n/podman ]] && timeout 60 "$WORK/$n/podman" rm -af -t 0 >/dev/null 2>&1
        # Whatever podman could not remove: its conmon and container processes, by pid.
        for p in "$WORK"/$n/run/vfs-containers/*/userdata/{conmon.pid,pidfile}; do
            [[ -s $p ]] && kill -9 "$(cat "$p")" 2>/dev/null
        done
    done
    # conmon runs `podman container cleanup` (and so runc) after a container's end, on
    # its own: wait for those (their arguments name our directory) before removing.
    for i in $(seq 50); do pgrep -f "$WORK/[ab]/" >/dev/null || break; sleep 0.2; done
    for p in "${VR_PID[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for n in hub a b; do
        ip netns pids "$P$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$n" 2>/dev/null
    done
    # Mounts left under our directory (a container's /dev/shm) go before the files.
    awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$WORK"
    for d in "${HOST_NEW[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
ctl() { local n=$1; shift; VROUTER_SOCKET=$WORK/api-$n.sock "$VROUTERCTL" "$@"; }

# --- two nodes on the underlay; each allocates from its own pool (node_selector, as
# Calico pools pinned to nodes) and routes the other's through VXLAN (static [[nodes]]).
hub
underlay ${P}a 10.98.0.1 fd98::1
underlay ${P}b 10.98.0.2 fd98::2
declare -A NODE_IP=([a]=10.98.0.1 [b]=10.98.0.2) POOL=([a]=10.67.1.0/24 [b]=10.67.2.0/24)
node_conf() { # node core other
    cat >"$WORK/$1.toml" <<CFG
node_name = "node-$1"
node_ips = ["${NODE_IP[$1]}/24"]
state_dir = "$WORK/state-$1"
[api]
socket = "$WORK/api-$1.sock"
[[uplinks]]
name = "up0"
[[pools]]
cidr = "${POOL[a]}"
vxlan_mode = "Always"
node_selector = "projectcalico.org/name == 'node-a'"
[[pools]]
cidr = "${POOL[b]}"
vxlan_mode = "Always"
node_selector = "projectcalico.org/name == 'node-b'"
[workers]
cores = [$2]
# 20 containers at once and the others.
endpoint_slots = 32
[[nodes]]
name = "node-$3"
ips = ["${NODE_IP[$3]}/24"]
[[routes]]
dst = "${POOL[$3]}"
node = "node-$3"
CFG
}
node_conf a 1 b
node_conf b 0 a
start() { # node
    ip netns exec "$P$1" "$VROUTERD" --config "$WORK/$1.toml" >>"$WORK/vrouterd-$1.log" 2>&1 &
    VR_PID[$1]=$!
    for _ in $(seq 50); do ctl "$1" node status >/dev/null 2>&1 && return 0; sleep 0.2; done
    cat "$WORK/vrouterd-$1.log"; die "vrouterd on node-$1 did not start"
}
start a
start b

# --- podman per node: CNI backend, our plugin directory first, the node's conflist,
# storage and state in $WORK; `$WORK/<node>/podman` runs it in the node's netns.
mkdir -p "$WORK/cni-bin"
ln -s "$CNI" "$WORK/cni-bin/vrouter-cni"
lower() { # limit-flag wanted: the wanted limit, or the hard limit if that is lower
    local h; h=$(ulimit -H"$1")
    if [[ $h != unlimited ]] && ((h < $2)); then echo "$h"; else echo "$2"; fi
}
NOFILE=$(lower n 4096) NPROC=$(lower u 32768)
podman_conf() { # node
    local d=$WORK/$1
    mkdir -p "$d/net" "$d/tmp"
    # Limits podman would raise (nofile 1048576) runc may not set without
    # CAP_SYS_RESOURCE: ask for ones within the hard limits.
    cat >"$d/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$WORK/cni-bin", "/usr/lib/cni"]
network_config_dir = "$d/net"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/events.log"
tmp_dir = "$d/tmp"
CONF
    cat >"$d/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$d/storage"
runroot = "$d/run"
CONF
    # The example conflist, with the node's API socket, and tuning chained after us
    # (it reads our result as prevResult).
    python3 - configs/10-vrouter.conflist "$WORK/api-$1.sock" >"$d/net/10-vrouter.conflist" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["plugins"][0]["vrouter_socket"] = sys.argv[2]
c["plugins"].append({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.log_martians": "1"}})
print(json.dumps(c, indent=2))
PY
    cat >"$d/podman" <<SH
#!/bin/sh
# podman of node-$1: its configuration and storage, in the node's network namespace.
export CONTAINERS_CONF=$d/containers.conf CONTAINERS_STORAGE_CONF=$d/storage.conf TMPDIR=$d/tmp
exec nsenter --net=/run/netns/$P$1 podman "\$@"
SH
    chmod +x "$d/podman"
}
podman_conf a
podman_conf b
pm() { local n=$1; shift; "$WORK/$n/podman" "$@"; }
backend=$(pm a info --format '{{.Host.NetworkBackend}}')
[[ $backend == cni ]] || die "podman's network backend is '$backend', not cni"
pm a network ls --format '{{.Name}} {{.Driver}}' | grep -qx "vrouter vrouter-cni" ||
    die "podman does not see the vrouter network: $(pm a network ls)"

# --- the image: busybox-static and its applets, imported (no registry).
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs"/{proc,sys,dev,etc,tmp}
chmod 1777 "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in "${APPLETS[@]}"; do ln -s busybox "$WORK/rootfs/bin/$a"; done
IMG=localhost/vrouter-busybox:test
for n in a b; do tar -C "$WORK/rootfs" -c . | pm $n import -q - "$IMG" >/dev/null; done

run() { # node name: a container on the vrouter network, running until removed
    pm "$1" run -d --name "$2" --network vrouter "$IMG" sleep 100000
}
addr() { # node name: its address on the vrouter network, as podman recorded it
    pm "$1" inspect "$2" --format '{{.NetworkSettings.Networks.vrouter.IPAddress}}'
}
cid() { pm "$1" inspect "$2" --format '{{.Id}}'; }
in_pool() { # address cidr
    python3 -c "import ipaddress,sys; sys.exit(0 if ipaddress.ip_address('$1') in ipaddress.ip_network('$2') else 1)" 2>/dev/null
}
holds() { # node name addr: in its pool, and on its eth0 as a /32 (the only global IPv4)
    local got
    got=$(pm "$1" exec "$2" ip -4 -o addr show dev eth0) || return 1
    echo "podman: $3; eth0: $got"
    [[ -n $3 ]] && in_pool "$3" "${POOL[$1]}" &&
        [[ $(grep -c 'scope global' <<<"$got") == 1 ]] && grep -q "inet $3/32 " <<<"$got"
}
endpoint() { # node container-id python-assertion-over-e: vrouterd's endpoint of it
    ctl "$1" endpoint list --json >"$WORK/eps.json" || return 1
    python3 - "$WORK/eps.json" "$2" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); eps = d["endpoints"] if isinstance(d, dict) else d
e = [e for e in eps if e["container_id"] == sys.argv[2]]
assert sys.argv[2] and len(e) == 1, f"no single endpoint of container {sys.argv[2]!r} in {eps}"
e = e[0]
print(e["name"], e["interface"], e["addresses"])
assert eval(sys.argv[3]), e
PY
}
no_endpoint() { # node container-id: no endpoint of it (read from a list that was read)
    ctl "$1" endpoint list --json >"$WORK/eps.json" || return 1
    python3 - "$WORK/eps.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); eps = d["endpoints"] if isinstance(d, dict) else d
print(f"{len(eps)} endpoints: {[e['container_id'][:12] for e in eps]}")
assert sys.argv[2] and not [e for e in eps if e["container_id"] == sys.argv[2]]
PY
}
veth_of() { # node container-id: the host side of its veth, as vrouterd knows it
    ctl "$1" endpoint list --json | python3 -c "
import json, sys
print([e for e in json.load(sys.stdin)['endpoints'] if e['container_id'] == sys.argv[1]][0]['interface'])" "$2"
}
allocated() { # node addr: vrouterd's IPAM state holds the address
    python3 - "$WORK/state-$1/ipam.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
held = {a: o for b in d["blocks"].values() for a, o in b.items()}
print(f"{len(held)} addresses allocated")
sys.exit(0 if sys.argv[2] and sys.argv[2] in held else 1)
PY
}
released() { # node addr: read the IPAM state, and the address is not in it
    [[ -n $2 && -s $WORK/state-$1/ipam.json ]] && ! allocated "$@"
}
cping() { # node container addr: busybox ping from inside the container
    # Passes on any reply, as iputils' ping in lib.sh's ping4 (with a deadline, -w,
    # busybox would fail on one lost echo: a first one lost on a loaded machine).
    [[ -n $3 ]] && pm "$1" exec "$2" ping -c 3 -W 3 "$3"
}
again() { # command...: until it passes, for up to 10 s (after a restart)
    local i
    for i in $(seq 10); do "$@" && return 0; sleep 1; done
    return 1
}
tcp() { # server-node server client-node client addr: a token each way over busybox nc
    # Each side's program (nc -e) records what it read before it answers or ends, so
    # both files are written once the client is done: no race with nc's exit on EOF.
    local tok=t$RANDOM$RANDOM port=$((7000 + RANDOM % 1000)) out got i
    [[ -n $5 ]] || return 1
    pm "$1" exec -d "$2" nc -l -p "$port" -e sh -c "read x; echo \"\$x\" >/got-$tok; echo pong-$tok" >/dev/null || return 1
    for i in $(seq 20); do pm "$1" exec "$2" netstat -ltn | grep -q ":$port " && break; sleep 0.2; done
    timeout 15 "$WORK/$3/podman" exec "$4" nc -w 5 "$5" "$port" \
        -e sh -c "echo ping-$tok; read y; echo \"\$y\" >/reply-$tok" || return 1
    out=$(pm "$3" exec "$4" cat "/reply-$tok") || return 1
    got=$(pm "$1" exec "$2" cat "/got-$tok") || return 1
    echo "client got '$out', server got '$got'"
    [[ $out == "pong-$tok" && $got == "ping-$tok" ]]
}

# --- containers on both nodes
check "podman run --network vrouter: ca1 on node-a" run a ca1
check "podman run --network vrouter: ca2 on node-a" run a ca2
check "podman run --network vrouter: cb1 on node-b" run b cb1
A1=$(addr a ca1 || true) A2=$(addr a ca2 || true) B1=$(addr b cb1 || true)
ID_A1=$(cid a ca1 || true) ID_A2=$(cid a ca2 || true) ID_B1=$(cid b cb1 || true)
echo "      ca1 $A1, ca2 $A2 (node-a), cb1 $B1 (node-b)"
check "ca1 holds its address (podman's record) from node-a's pool, a /32 on eth0" holds a ca1 "$A1"
check "ca2 holds its address from node-a's pool" holds a ca2 "$A2"
check "cb1 holds its address from node-b's pool" holds b cb1 "$B1"
check "ca1 and ca2 got different addresses" test -n "$A1" -a -n "$A2" -a "$A1" != "$A2"
check "vrouterd on node-a has ca1's endpoint: container id, address, a cali veth" \
    endpoint a "$ID_A1" "e['addresses']==['$A1'] and e['interface'].startswith('cali')"
check "vrouterd on node-b has cb1's endpoint" endpoint b "$ID_B1" "e['addresses']==['$B1']"
tuned() { local v; v=$(pm a exec ca1 cat /proc/sys/net/ipv4/conf/eth0/log_martians) && echo "log_martians: $v" && [[ $v == 1 ]]; }
check "tuning, chained after vrouter-cni, ran on its result (sysctl set in ca1)" tuned

# --- traffic: one node, across nodes (VXLAN), container <-> node
check "ping ca1 -> ca2 (one node)" cping a ca1 "$A2"
check "ping ca2 -> ca1 (one node)" cping a ca2 "$A1"
vxlan_seen() { # ping ca1 -> cb1 while the underlay is captured: VXLAN carries it
    nsx ${P}hub timeout 10 tcpdump -nn -i "p-${P}a" -w "$WORK/vx.pcap" -U -c 6 udp port 4789 \
        >/dev/null 2>"$WORK/vx.err" &
    local cap=$! rc=0 n
    for _ in $(seq 50); do grep -q "listening on" "$WORK/vx.err" && break; sleep 0.1; done
    grep -q "listening on" "$WORK/vx.err" || { cat "$WORK/vx.err"; return 1; }
    cping a ca1 "$B1" || rc=1
    wait "$cap" || [[ $? == 124 ]] || rc=1
    tcpdump -nn -r "$WORK/vx.pcap" >"$WORK/vx.txt" 2>/dev/null || rc=1
    head -4 "$WORK/vx.txt"
    # tcpdump prints the inner packet on the line after the outer one.
    n=$(grep -A1 "> 10.98.0.2.4789: VXLAN.* vni 4096" "$WORK/vx.txt" | grep -c "IP $A1 > $B1: ICMP echo request" || true)
    echo "$n echo requests ca1 -> cb1 in VXLAN (VNI 4096) on node-a's underlay port"
    ((rc == 0 && n >= 2))
}
check "ping ca1 -> cb1 across nodes, carried in VXLAN on the underlay" vxlan_seen
check "ping cb1 -> ca1 across nodes" cping b cb1 "$A1"
check "TCP (busybox nc) ca1 -> cb1 across nodes" tcp b cb1 a ca1 "$B1"
check "TCP (busybox nc) cb1 -> ca2 across nodes" tcp a ca2 b cb1 "$A2"
check "TCP (busybox nc) ca2 -> ca1 on one node" tcp a ca1 a ca2 "$A1"
VETH_A1=$(veth_of a "$ID_A1" || true)
check "node-a's kernel routes to ca1 through its veth (proto 118)" kroute ${P}a "$A1" "$VETH_A1"
check "ca1 reaches its node (ping node-a's address)" cping a ca1 10.98.0.1
check "node-a reaches ca1 (ping from the node)" ping4 ${P}a "$A1"
check "cb1 reaches its node" cping b cb1 10.98.0.2
check "node-b reaches cb1" ping4 ${P}b "$B1"
node_tcp() { # node container addr: the node opens a TCP connection to the container
    local out got i
    [[ -n $3 ]] || return 1
    pm "$1" exec -d "$2" nc -l -p 7999 -e sh -c 'read x; echo "$x" >/from-node; echo hello-node' >/dev/null || return 1
    for i in $(seq 20); do pm "$1" exec "$2" netstat -ltn | grep -q ":7999 " && break; sleep 0.2; done
    out=$(echo hi-container | nsx "$P$1" timeout 10 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 7999), timeout=5)
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode().strip())' "$3") || return 1
    got=$(pm "$1" exec "$2" cat /from-node) || return 1
    echo "node got '$out', container got '$got'"
    [[ $out == hello-node && $got == hi-container ]]
}
check "TCP node-a -> ca1 (python on the node, busybox nc in the container)" node_tcp a ca1 "$A1"

# --- podman rm: endpoint, veth, route and address go
VETH_A2=$(veth_of a "$ID_A2" || true)
check "before rm: ca2's address is allocated in node-a's IPAM state" allocated a "$A2"
check "before rm: ca2's endpoint and veth are there" bash -c \
    "[[ -n '$VETH_A2' ]] && ip -n ${P}a link show '$VETH_A2' >/dev/null"
check "podman rm -f ca2" pm a rm -f -t 0 ca2
check "ca2's endpoint is gone from vrouterd" no_endpoint a "$ID_A2"
check "ca2's veth is gone from node-a" bash -c "[[ -n '$VETH_A2' ]] && ! ip -n ${P}a link show '$VETH_A2' 2>/dev/null"
check "node-a's route to ca2 is gone" no_kroute ${P}a "$A2"
check "ca2's address is released (not in node-a's IPAM state)" released a "$A2"
check "ca1 still reaches cb1" cping a ca1 "$B1"

# A container whose process ends: podman's own cleanup (conmon's exit command) runs the
# DEL, and its endpoint goes.
check "podman run of a container that ends after 3 s (cshort on node-a)" \
    pm a run -d --name cshort --network vrouter "$IMG" sleep 3
ID_SHORT=$(cid a cshort || true)
check "cshort had its endpoint" endpoint a "$ID_SHORT" True
ended() { # the container exited, and its endpoint went with it
    local st
    for _ in $(seq 30); do
        st=$(pm a inspect cshort --format '{{.State.Status}}') || return 1
        [[ $st == exited ]] && no_endpoint a "$ID_SHORT" && return 0
        sleep 0.5
    done
    echo "cshort: $st"; no_endpoint a "$ID_SHORT"
}
check "cshort exited by itself: its endpoint is gone (podman's cleanup ran the DEL)" ended
pm a rm -f cshort >/dev/null

# --- 20 containers at once on node-a
RUNS=()
for i in $(seq 1 20); do run a m$i >"$WORK/m$i.out" 2>&1 & RUNS+=($!); done
FAILED=0
for j in "${RUNS[@]}"; do wait "$j" || FAILED=$((FAILED + 1)); done
all_ran() { ((FAILED == 0)) || { tail -n 3 "$WORK"/m*.out; return 1; }; }
check "20 podman run at once all succeeded" all_ran
for i in $(seq 1 20); do addr a m$i || true; done >"$WORK/m.addrs"
distinct20() {
    python3 - "$WORK/m.addrs" "${POOL[a]}" "$A1" <<'PY'
import ipaddress, sys
addrs = [l.strip() for l in open(sys.argv[1]) if l.strip()]
pool = ipaddress.ip_network(sys.argv[2])
print(f"{len(addrs)} addresses, {len(set(addrs))} distinct: {' '.join(addrs)}")
assert len(addrs) == 20 and len(set(addrs)) == 20, "not 20 distinct"
assert all(ipaddress.ip_address(a) in pool for a in addrs), "outside node-a's pool"
assert sys.argv[3] not in addrs, "one has ca1's address"
PY
}
check "20 distinct addresses from node-a's pool (none of ca1's)" distinct20
eps20() {
    ctl a endpoint list --json | python3 -c "
import json, sys
eps = json.load(sys.stdin)['endpoints']
mine = sorted(a for e in eps for a in e['addresses'])
want = sorted(l.strip() for l in open('$WORK/m.addrs') if l.strip())
print(f'{len(eps)} endpoints')
assert len(want) == 20 and set(want) <= set(mine), (want, mine)"
}
check "vrouterd on node-a has the 20 endpoints with those addresses" eps20
M7=$(sed -n 7p "$WORK/m.addrs") M13=$(sed -n 13p "$WORK/m.addrs")
check "ca1 reaches m7 (one node)" cping a ca1 "$M7"
check "cb1 reaches m13 (across nodes)" cping b cb1 "$M13"
check "podman rm -f of the 20" pm a rm -f -t 0 $(printf 'm%s ' $(seq 1 20))
gone20() {
    ctl a endpoint list --json | python3 -c "
import json, sys
eps = json.load(sys.stdin)['endpoints']
print(f'{len(eps)} endpoints left: {[e[\"addresses\"] for e in eps]}')
assert len(eps) == 1 and eps[0]['addresses'] == ['$A1']"
}
check "the 20 endpoints are gone, ca1's stays" gone20

# --- vrouterd killed on both nodes while containers run, and started again
PID_A1=$(pm a inspect ca1 --format '{{.State.Pid}}' || true)
PID_B1=$(pm b inspect cb1 --format '{{.State.Pid}}' || true)
for n in a b; do kill -9 "${VR_PID[$n]}"; wait "${VR_PID[$n]}" 2>/dev/null || true; done
down() { # ca1 runs and pings cb1: nothing comes back
    local out
    out=$(pm a exec ca1 ping -c 2 -w 3 "$B1" 2>&1); echo "$out"
    [[ -n $B1 ]] && grep -q "2 packets transmitted, 0 packets received" <<<"$out"
}
check "with vrouterd down, ca1 does not reach cb1 (the dataplane is vrouterd's)" down
start a
start b
running() { # node name pid: the same container process, still running
    local st; st=$(pm "$1" inspect "$2" --format '{{.State.Status}} {{.State.Pid}}') || return 1
    echo "$2: $st"; [[ -n $3 && $st == "running $3" ]]
}
check "after the restarts ca1 runs on, same process" running a ca1 "$PID_A1"
check "and cb1" running b cb1 "$PID_B1"
check "ca1 keeps its address" holds a ca1 "$A1"
check "cb1 keeps its address" holds b cb1 "$B1"
check "vrouterd on node-a has ca1's endpoint again, same address" \
    endpoint a "$ID_A1" "e['addresses']==['$A1']"
check "vrouterd on node-b has cb1's endpoint again" endpoint b "$ID_B1" "e['addresses']==['$B1']"
check "ping ca1 -> cb1 across nodes again" again cping a ca1 "$B1"
check "ping cb1 -> ca1 again" again cping b cb1 "$A1"
check "TCP ca1 -> cb1 again" tcp b cb1 a ca1 "$B1"
check "node-a's route to ca1 is back (proto 118)" kroute ${P}a "$A1" "$VETH_A1"
check "node-a reaches ca1 again" ping4 ${P}a "$A1"
check "ca1 reaches its node again" cping a ca1 10.98.0.1

echo "      run time: $((SECONDS - START)) s"
logs() { for n in a b; do echo "== vrouterd node-$n"; tail -n 15 "$WORK/vrouterd-$n.log"; done; }
finish podman logs
