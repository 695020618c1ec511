#!/usr/bin/env bash
# End to end: vrouterd in a namespace node forwards between two veth pods, a tap pod and
# a host behind the uplink (IPv4 and IPv6: ICMP, TCP and UDP with iperf3); ICMP time
# exceeded; a spoofed source is dropped and counted; the node's own TCP service works
# while vrouterd runs and after `kill -9` (the BPF link goes with the process).
# WORKERS=2 runs two workers (pods A, C on worker 0, B on worker 1). Needs root. Fails loudly (exit 1) when a prerequisite is missing or a check fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
P=${P:-vre$$}
UPLINK_MTU=1400 # pods have 1500: packets to the host behind the uplink are too big
source scripts/topology.sh

die() { echo "e2e: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, AF_XDP)"
for c in ip ping iperf3 socat ethtool python3; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD ]] || die "$VROUTERD not built (cargo build -p vrouter)"

WORK=$(mktemp -d)
. tests/e2e/lib.sh # check, finish, strict, jnum
cleanup() {
    unstrict
    [[ -n ${VR_PID:-} ]] && kill -9 "$VR_PID" 2>/dev/null
    topology_down
    rm -rf "$WORK"
}
trap cleanup EXIT
# From here every setup step must succeed (see strict in lib.sh): topology_up is called
# bare, not as `topology_up || die`, which would look only at its last command.
strict dataplane

topology_up
write_config "$WORK/node.toml" adaptive
# The node's own TCP service (like sshd / BGP): an echo server on the node IP.
nsx "$NODE" socat TCP-LISTEN:7000,fork,reuseaddr EXEC:cat &>/dev/null &
# `ip netns exec` execs vrouterd: $! is vrouterd itself (a shell function would fork).
ip netns exec "$NODE" "$VROUTERD" --config "$WORK/node.toml" --stats-file "$WORK/stats.json" \
    >"$WORK/vrouterd.log" 2>&1 &
VR_PID=$!
for _ in $(seq 50); do [[ -s $WORK/stats.json ]] && break; sleep 0.2; done
[[ -s $WORK/stats.json ]] || { cat "$WORK/vrouterd.log"; die "vrouterd did not start"; }
tap_pod_up

A=${P}a B=${P}b C=${P}c H=${P}h
# A counter from vrouterd's stats file (rewritten every second): counter 'd["tx"]' prints a
# whole number or fails saying what it found instead.
counter() { jnum "$WORK/stats.json" "$1"; }
check "ICMP  v4 pod A -> pod B (veth)"          ping4 "$A" 10.244.1.3
check "ICMP  v6 pod A -> pod B (veth)"          ping6 "$A" fd10::3
check "ICMP  v4 pod A -> pod C (tap)"           ping4 "$A" 10.244.1.4
check "ICMP  v6 pod C (tap) -> pod B"           ping6 "$C" fd10::3
check "ICMP  v4 pod A -> host behind uplink"    ping4 "$A" 10.99.0.254
check "ICMP  v6 host behind uplink -> pod B"    ping6 "$H" fd10::3
check "ICMP  v4 host behind uplink -> pod C"    ping4 "$H" 10.244.1.4
full_mtu() { nsx "$A" ping -c 2 -i 0.2 -W 2 -s 1472 -M do "$1" && nsx "$A" ping -6 -c 2 -i 0.2 -W 2 -s 1452 -M do "$2"; }
check "ICMP  full 1500-byte packets pod A -> pod B, v4 and v6" full_mtu 10.244.1.3 fd10::3
check "ICMP  full 1500-byte packets pod A -> pod C (tap)"      full_mtu 10.244.1.4 fd10::4

# The node's own processes and its pods (issue 16): vrouterd keeps the kernel's routes
# to its veth pods (`dev <veth> proto 118`), and the pods' answers to the kernel's ARP /
# ND reach it. Both directions, IPv4 and IPv6, ICMP and TCP (an echo over socat).
check "kernel route: 10.244.1.2 dev ${P}a0 proto 118"  kroute "$NODE" 10.244.1.2 "${P}a0"
check "kernel route: fd10::3 dev ${P}b0 proto 118"     kroute "$NODE" fd10::3 "${P}b0"
nsx "$NODE" socat TCP6-LISTEN:7001,ipv6only=0,fork,reuseaddr EXEC:cat &>/dev/null &
nsx "$A" socat TCP6-LISTEN:7001,ipv6only=0,fork,reuseaddr EXEC:cat &>/dev/null &
sleep 0.2
echoed() { # ns addr: a line sent over TCP to addr:7001 comes back
    local out; out=$(echo "hello $2" | nsx "$1" timeout 5 socat -t 2 - "TCP:$2:7001") || return 1
    echo "got: $out"; [[ $out == "hello $2" ]]
}
check "ICMP  v4 node -> pod A"  ping4 "$NODE" 10.244.1.2
check "ICMP  v6 node -> pod A"  ping6 "$NODE" fd10::2
check "ICMP  v4 pod A -> node"  ping4 "$A" 10.99.0.1
check "ICMP  v6 pod A -> node"  ping6 "$A" fd99::1
check "TCP   v4 node -> pod A"  echoed "$NODE" 10.244.1.2
check "TCP   v6 node -> pod A"  echoed "$NODE" "[fd10::2]"
check "TCP   v4 pod B -> node"  echoed "$B" 10.99.0.1
check "TCP   v6 pod B -> node"  echoed "$B" "[fd99::1]"

fragmented() {
    # From pod B, which has no path MTU cached for the host (A learns 1400 below).
    nsx "$B" ping -c 2 -i 0.2 -W 2 -s 1472 -M dont 10.99.0.254 || return 1
    sleep 1.2
    local n; n=$(counter 'd["fragmented"]') || return 1
    echo "fragmented: $n"
    ((n >= 2))
}
frag_needed() {
    local out
    out=$(nsx "$A" ping -c 1 -W 2 -s 1472 -M do 10.99.0.254)
    echo "$out"
    grep -q "From 10.99.0.1 .*Frag needed and DF set (mtu = 1400)" <<<"$out"
}
too_big6() {
    local out
    out=$(nsx "$A" ping -6 -c 1 -W 2 -s 1452 -M do fd99::fe)
    echo "$out"
    grep -q "From fd99::1 .*Packet too big: mtu=1400" <<<"$out"
}

iperf_pair() { # server-ns client-ns addr extra...
    local s=$1 c=$2 addr=$3; shift 3
    nsx "$s" timeout 20 iperf3 -s -1 -p 5201 >/dev/null 2>&1 & # bounded: no hang if no client comes
    local sp=$!
    sleep 0.3
    local rc=0
    nsx "$c" iperf3 -c "$addr" -p 5201 -t 2 "$@" --json >"$WORK/iperf.json" || rc=$?
    wait "$sp" || true
    [[ $rc -eq 0 ]] || return 1
    python3 - "$WORK/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
end = r["end"]
if "sum_received" in end:
    got = end["sum_received"]["bytes"]
    print(f'received {got} bytes, {end["sum_received"]["bits_per_second"]/1e6:.0f} Mbit/s')
else:
    s = end["sum"]
    got = s["bytes"] * (1 - s["lost_percent"] / 100)
    print(f'{s["bytes"]} bytes sent, lost {s["lost_percent"]:.1f}%')
    assert s["lost_percent"] < 50, "more than half the datagrams lost"
assert got > 0, "nothing received"
PY
}
check "TCP   v4 pod A -> pod B (iperf3)"        iperf_pair "$B" "$A" 10.244.1.3
check "TCP   v6 pod B -> pod A (iperf3)"        iperf_pair "$A" "$B" fd10::2
check "TCP   v4 pod C (tap) -> pod A (iperf3)"  iperf_pair "$A" "$C" 10.244.1.2
check "TCP   v6 pod A -> pod C (tap) (iperf3)"  iperf_pair "$C" "$A" fd10::4
check "IPv4 without DF is fragmented to the uplink MTU" fragmented
check "ICMP  frag-needed (DF, 1500 > uplink MTU 1400)" frag_needed
check "ICMPv6 packet-too-big (1500 > uplink MTU 1400)" too_big6
check "TCP   v4 pod A -> host behind uplink (PMTU 1400)" iperf_pair "$H" "$A" 10.99.0.254
check "TCP   v6 host behind uplink -> pod B (PMTU 1400)" iperf_pair "$B" "$H" fd10::3
check "UDP   v4 pod A -> pod B (iperf3)"        iperf_pair "$B" "$A" 10.244.1.3 -u -b 50M
check "UDP   v6 pod B -> pod A (iperf3)"        iperf_pair "$A" "$B" fd10::2 -u -b 50M
check "UDP   v4 pod C (tap) -> pod B (iperf3)"  iperf_pair "$B" "$C" 10.244.1.3 -u -b 20M

ttl_exceeded() {
    local out
    out=$(nsx "$H" ping -c 1 -t 1 -W 2 10.244.1.2)
    echo "$out"
    grep -q "From 10.99.0.1 .*Time to live exceeded" <<<"$out"
}
check "ICMP  time exceeded from the node (TTL 1 from the uplink)" ttl_exceeded

spoofed_dropped() {
    local before after rc=0
    # The positive twin: from its own address pod A reaches pod B, so the ping below
    # fails for its source address and nothing else.
    nsx "$A" ping -c 1 -W 2 10.244.1.3 || { echo "pod A -> pod B fails from its own address"; return 1; }
    before=$(counter 'd["drops"]["spoofed"]') || return 1
    nsx "$A" ip addr add 10.244.1.99/32 dev eth0 || return 1
    nsx "$A" ping -c 2 -i 0.2 -W 1 -I 10.244.1.99 10.244.1.3 || rc=$?
    nsx "$A" ip addr del 10.244.1.99/32 dev eth0 || return 1
    # ping exits 1 when no reply came; 0 (replies) or 2 (an error, e.g. no such source) is wrong.
    ((rc == 1)) || { echo "spoofed ping: exit $rc, want 1 (sent, no reply)"; return 1; }
    sleep 1.2 # the stats file is rewritten every second
    after=$(counter 'd["drops"]["spoofed"]') || return 1
    echo "spoofed drops $before -> $after"
    ((after >= before + 2))
}
check "spoofed source from pod A dropped and counted" spoofed_dropped

counters_move() {
    sleep 1.2
    cat "$WORK/stats.json"; echo
    local rx tx
    rx=$(counter 'd["rx"]') && tx=$(counter 'd["tx"]') || return 1
    echo "rx $rx, tx $tx"
    ((tx > 1000 && rx >= tx))
}
check "counters: rx >= tx > 1000" counters_move
# A zero that was read, not an empty string (`[[ "" -eq 0 ]]` is true).
no_lost_ports() { local n; n=$(counter 'd["backend"]["not_our_port"]') || return 1; echo "not_our_port: $n"; ((n == 0)); }
check "backend: no frame for a port no worker owns" no_lost_ports
# The uplink flapped (down 1 s, up): forwarding through it comes back by itself, as the
# kernel's own does (the AF_XDP sockets bound to it are rebound when it comes up).
# Under load: the flap catches frames in the uplink's rings.
nsx "$H" timeout 8 iperf3 -s -1 >/dev/null 2>&1 &
sleep 0.3
nsx "$A" timeout 6 iperf3 -c 10.99.0.254 -u -b 300M -t 3 >/dev/null 2>&1 &
FLOOD=$!
sleep 1; nsx "$NODE" ip link set up0 down; sleep 1; nsx "$NODE" ip link set up0 up
wait $FLOOD || true
check "uplink down 1 s and up: pod A -> host behind it again within 5 s" \
    within 5 nsx "$A" ping -c 1 -W 1 10.99.0.254
check "uplink down and up: host behind it -> pod C (tap)" ping4 "$H" 10.244.1.4
if ((WORKERS > 1)); then
    mail() {
        local n; n=$(counter 'd["backend"]["mailbox_delivered"]') || return 1
        echo "mailbox_delivered: $n"; ((n > 100))
    }
    check "two workers: pod A (worker 0) <-> pod B (worker 1) through the mailboxes" mail
fi

# Neighbour changes lost to an overrun (issue 21): while vrouterd is stopped, 10,000
# changes to 50 entries overflow its RTNLGRP_NEIGH socket and then the gateway's MAC
# changes, lost with them. On SIGCONT it reads ENOBUFS, reads the table again and points
# the next hop at the new MAC. Then the entry goes and the kernel resolves it afresh.
flood_neighbours() { # ip batch commands on 10.97.0.1-50
    local i
    for i in $(seq 0 9999); do
        printf 'neigh replace 10.97.0.%d lladdr 02:00:00:00:%02x:%02x dev up0 nud permanent\n' \
            $((i % 50 + 1)) $((i / 256 % 256)) $((i % 256))
    done
}
overrun_resynced() {
    local before after mac=02:00:00:00:99:01
    before=$(counter 'd["neighbours"]["overruns"]') || return 1
    kill -STOP "$VR_PID"
    flood_neighbours | nsx "$NODE" ip -batch - || { kill -CONT "$VR_PID"; return 1; }
    nsx "$NODE" ip neigh replace 10.99.0.254 lladdr $mac dev up0 nud permanent
    kill -CONT "$VR_PID"
    within 5 grep -q "next hop resolved via=10.99.0.254 mac=$mac" "$WORK/vrouterd.log" ||
        { echo "the next hop never took $mac"; return 1; }
    sleep 1.2 # the stats file is rewritten every second
    after=$(counter 'd["neighbours"]["overruns"]') || return 1
    grep -o '"neighbours":{[^}]*}' "$WORK/stats.json"
    echo "overruns $before -> $after"
    ((after > before))
}
check "neighbours: a change lost to an overrun is found by the resync" overrun_resynced
for i in $(seq 50); do echo "neigh del 10.97.0.$i dev up0"; done | nsx "$NODE" ip -batch - || true
nsx "$NODE" ip neigh del 10.99.0.254 dev up0 || true
check "neighbours: gateway re-resolved, pod A -> host behind the uplink" \
    within 5 nsx "$A" ping -c 1 -W 1 10.99.0.254

# The node's own TCP service, through the uplink the XDP program watches.
cat >"$WORK/tcp_client.py" <<'PY'
import socket, sys, time, os
s = socket.create_connection(("10.99.0.1", 7000), timeout=5)
def echo(msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(100)
        assert chunk, "connection closed"
        got += chunk
    assert got == msg, got
echo(b"before\n")
print("echo while vrouterd runs: ok", flush=True)
open(sys.argv[1] + ".ready", "w").close()
while not os.path.exists(sys.argv[1] + ".killed"):
    time.sleep(0.05)
echo(b"after kill -9\n")
print("same connection after kill -9: ok")
s2 = socket.create_connection(("10.99.0.1", 7000), timeout=5)
s2.sendall(b"new\n"); assert s2.recv(10) == b"new\n"
print("new connection after kill -9: ok")
PY
nsx "$H" python3 "$WORK/tcp_client.py" "$WORK/sync" >"$WORK/tcp.out" 2>&1 &
TCP_PID=$!
for _ in $(seq 50); do [[ -e $WORK/sync.ready ]] && break; sleep 0.1; done
check "TCP to the node IP while vrouterd runs" test -e "$WORK/sync.ready"
check "the process killed is vrouterd" grep -q vrouterd "/proc/$VR_PID/cmdline"
# The uplink as `ip link` shows it; fails (rather than showing nothing) if it cannot be read.
uplink() { local out; out=$(nsx "$NODE" ip link show up0) && grep -q "up0" <<<"$out" && echo "$out"; }
# The positive twin of xdp_gone: the program is there to go away.
xdp_on() { local out; out=$(uplink) || return 1; echo "$out"; grep -q "prog/xdp" <<<"$out"; }
check "our XDP program is on the uplink while vrouterd runs" xdp_on
kill -9 "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=
touch "$WORK/sync.killed"
xdp_gone() { # the kernel releases the link just after the process's files are closed
    local out
    for _ in $(seq 30); do
        out=$(uplink) || { echo "cannot read up0"; return 1; }
        grep -q "prog/xdp" <<<"$out" || { echo "$out"; return 0; }
        sleep 0.1
    done
    echo "$out"
    return 1
}
check "kill -9: our XDP program is gone from the uplink (BPF link)" xdp_gone
tcp_after_kill() { wait "$TCP_PID"; local rc=$?; cat "$WORK/tcp.out"; return $rc; }
check "TCP to the node IP after kill -9 of vrouterd" tcp_after_kill

logs() { echo "vrouterd log:"; tail -20 "$WORK/vrouterd.log"; }
finish dataplane logs
