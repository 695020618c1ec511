#!/usr/bin/env bash
# Neighbours to next hops, two vrouterd binaries side by side in the same run (issue 21):
#   - latency: from `ip neigh replace ... lladdr` on the uplink to vrouterd storing the
#     next hop (its "next hop resolved" log line, microsecond timestamps; read back with
#     vrouterctl once per round), for a MAC change and for an entry that appears after
#     the gateway was unresolved. Floor: how long the `ip` command itself takes.
#   - idle CPU of the control thread (plus the neigh-watch thread, where there is one)
#     over IDLE seconds, from /proc/PID/task/TID/schedstat, with 200 resolved next hops,
#     then with 10 more that never resolve.
# Usage: scripts/neighbench.sh OLD_VROUTERD NEW_VROUTERD [VROUTERCTL]. Needs root.
# ROUNDS (20) and IDLE (60) set the rounds per case and the idle window in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 CTL=${3:-target/debug/vrouterctl}
ROUNDS=${ROUNDS:-20} IDLE=${IDLE:-60}
die() { echo "neighbench: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for b in "$OLD" "$NEW" "$CTL"; do [[ -x $b ]] || die "$b is not executable"; done
N=nbn$$ H=nbh$$ WORK=$(mktemp -d)
cleanup() {
    [[ -n ${VR_PID:-} ]] && kill -9 "$VR_PID" 2>/dev/null || true
    ip netns del "$N" 2>/dev/null || true
    ip netns del "$H" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

ip netns add "$N"
ip netns add "$H"
nsx "$N" ip link set lo up
ip link add up0 netns "$N" type veth peer name p0 netns "$H"
nsx "$N" ip addr add 10.99.0.1/24 dev up0
nsx "$N" ip link set up0 up
nsx "$H" ip link set p0 up
# The 200 gateways answer ARP from the host side; .230-.239 and .250 never do.
for i in $(seq 10 209); do echo "addr add 10.99.0.$i/24 dev p0"; done | nsx "$H" ip -batch -
for ifc in up0; do nsx "$N" ethtool -K "$ifc" tx off tso off gso off gro off >/dev/null 2>&1 || true; done

write_config() { # file unresolved-count
    {
        cat <<CFG
node_name = "neighbench"
state_dir = "$WORK/state"
api = { socket = "$WORK/api.sock" }
node_ips = ["10.99.0.1/24"]
[[uplinks]]
name = "up0"
queues = [0]
[[pools]]
cidr = "10.244.0.0/16"
[workers]
count = 1
cores = [1]
poll_mode = "adaptive"
[[routes]]
dst = "10.202.0.0/24"
via = "10.99.0.250"
CFG
        for i in $(seq 0 199); do printf '[[routes]]\ndst = "10.200.%d.0/24"\nvia = "10.99.0.%d"\n' "$i" $((10 + i)); done
        for i in $(seq 0 $(($2 - 1))); do printf '[[routes]]\ndst = "10.201.%d.0/24"\nvia = "10.99.0.%d"\n' "$i" $((230 + i)); done
    } >"$1"
}
write_config "$WORK/resolved.toml" 0
write_config "$WORK/unresolved.toml" 10

start() { # binary config
    rm -rf "$WORK/state" "$WORK/api.sock"
    nsx "$N" ip neigh replace 10.99.0.250 lladdr 02:00:00:00:02:50 dev up0 nud permanent
    ip netns exec "$N" "$1" --config "$2" --stats-file "$WORK/stats.json" >"$WORK/vrouterd.log" 2>&1 &
    VR_PID=$!
    local resolved=0
    for _ in $(seq 150); do
        resolved=$(grep -c "next hop resolved" "$WORK/vrouterd.log" 2>/dev/null || true)
        ((resolved >= 201)) && break
        sleep 0.2
    done
    ((resolved >= 201)) || { tail -20 "$WORK/vrouterd.log"; die "$1: only $resolved of 201 next hops resolved"; }
}
stop() { kill "$VR_PID"; wait "$VR_PID" 2>/dev/null || true; VR_PID=; }

# CPU nanoseconds of the control thread (the main thread) and of neigh-watch, over IDLE s.
idle_cpu() { # label
    sleep 5
    python3 - "$VR_PID" "$IDLE" "$1" <<'PY'
import os, sys, time
pid, idle, label = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def threads():
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        if int(tid) == pid or name == "neigh-watch":
            ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            wakes = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[2])
            out["control" if int(tid) == pid else name] = (ns, wakes)
    return out
a = threads(); time.sleep(idle); b = threads()
if "control" not in a or "control" not in b:
    sys.exit(f"{label}: control thread not found")
for k in sorted(b):
    ns = b[k][0] - a.get(k, (0, 0))[0]
    wakes = b[k][1] - a.get(k, (0, 0))[1]
    print(f"{label} idle {idle:.0f}s {k}: {ns/1e6:.1f} ms CPU ({ns/idle/1e7:.3f}% of a core), {wakes} runs")
PY
}

# ROUNDS MAC changes, then ROUNDS appearances (entry deleted, the gateway seen
# unresolved, then the entry set): from the `ip` command's start to the log line.
latency() { # label
    python3 - "$N" "$WORK/vrouterd.log" "$ROUNDS" "$1" "$CTL" "$WORK/api.sock" <<'PY'
import datetime, re, statistics, subprocess, sys, time
ns, log, rounds, label, ctl, sock = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def ip(*a):
    subprocess.run(["ip", "-n", ns, *a], check=True)
def stored_at(mac, after, timeout=5.0):
    pat = re.compile(r"^(\S+)\s+INFO .*next hop resolved via=10\.99\.0\.250 mac=" + mac)
    end = time.time() + timeout
    while time.time() < end:
        for line in open(log):
            m = pat.match(line)
            if m:
                t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
                if t >= after:
                    return t
        time.sleep(0.005)
    sys.exit(f"{label}: no 'next hop resolved' for {mac} within {timeout}s")
def routed_out_uplink():
    out = subprocess.run([ctl, "--socket", sock, "route", "list", "--filter", "10.202.0.0/24"], capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if "10.202.0.0/24" in l]
    if not line or "| up0 " not in line[0]:
        sys.exit(f"{label}: vrouterctl does not show 10.202.0.0/24 out of up0: {out}")
def show(case, xs):
    xs = sorted(x * 1e3 for x in xs)
    print(f"{label} {case}: n={len(xs)} min {xs[0]:.1f} median {statistics.median(xs):.1f} "
          f"p90 {xs[int(len(xs)*0.9)-1]:.1f} max {xs[-1]:.1f} ms")
k = 0
def next_mac():
    global k
    k += 1
    return f"02:00:00:00:{k // 256:02x}:{k % 256:02x}"
changed, appeared, floor = [], [], []
for _ in range(rounds):
    mac = next_mac()
    t0 = time.time()
    ip("neigh", "replace", "10.99.0.250", "lladdr", mac, "dev", "up0", "nud", "reachable")
    floor.append(time.time() - t0)
    changed.append(stored_at(mac, t0) - t0)
    time.sleep(0.3 + (k % 7) * 0.1)  # spread over the old loop's 1 s period
routed_out_uplink()
for _ in range(rounds):
    ip("neigh", "del", "10.99.0.250", "dev", "up0")
    time.sleep(1.5 + (k % 7) * 0.1)  # the gateway is seen unresolved (and asked for)
    mac = next_mac()
    t0 = time.time()
    ip("neigh", "replace", "10.99.0.250", "lladdr", mac, "dev", "up0", "nud", "reachable")
    floor.append(time.time() - t0)
    appeared.append(stored_at(mac, t0) - t0)
routed_out_uplink()
show("MAC change -> next hop", changed)
show("entry appears -> next hop", appeared)
show("floor: the ip command alone", floor)
PY
}

for round in 1 2; do
    for which in old new; do
        bin=$OLD; [[ $which == new ]] && bin=$NEW
        start "$bin" "$WORK/resolved.toml"
        idle_cpu "$which/200-resolved/r$round"
        ((round == 1)) && latency "$which"
        grep -o '"neighbours":{[^}]*}' "$WORK/stats.json" | sed "s/^/$which stats: /" || true
        stop
        start "$bin" "$WORK/unresolved.toml"
        idle_cpu "$which/200-resolved+10-unresolved/r$round"
        stop
    done
done
