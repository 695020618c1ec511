#!/usr/bin/env bash
# The systemd unit and the service protocol: `systemd-analyze verify` on
# configs/vrouterd.service (its ExecStart pointed at the built vrouterd), then vrouterd
# run with NOTIFY_SOCKET / WATCHDOG_USEC as systemd would: READY=1 once it forwards,
# WATCHDOG=1 keepalives while its worker runs, STOPPING=1 on SIGTERM. Needs root (a
# namespace for the uplink); fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=$(realpath "${VROUTERD:-target/debug/vrouterd}")
P=${P:-vrs$$}
die() { echo "systemd: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v systemd-analyze >/dev/null || die "systemd-analyze is not installed (run scripts/setup.sh)"
[[ -x $VROUTERD ]] || die "$VROUTERD not built"
WORK=$(mktemp -d)
. tests/e2e/lib.sh # strict
cleanup() {
    unstrict
    ip netns pids ${P}n 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del ${P}n 2>/dev/null; ip netns del ${P}h 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
strict systemd # every setup step below must succeed, or the run stops naming it

# 1. The unit as shipped, but starting the binary we built.
sed "s|=/usr/bin/vrouterd |=$VROUTERD |" configs/vrouterd.service >"$WORK/vrouterd.service"
grep -q "^ExecStart=$VROUTERD " "$WORK/vrouterd.service" || die "the unit's ExecStart is not /usr/bin/vrouterd"
out=$(systemd-analyze verify "$WORK/vrouterd.service" 2>&1) || die "systemd-analyze verify: $out"
[[ -z $out ]] || die "systemd-analyze verify warns: $out"
echo "PASS  systemd-analyze verify configs/vrouterd.service"

# 2. The notify protocol, with a namespace node (an uplink only).
ip netns add ${P}n; ip netns add ${P}h
ip link add up0 netns ${P}n type veth peer name h0 netns ${P}h
ip -n ${P}n link set lo up; ip -n ${P}n link set up0 up; ip -n ${P}h link set h0 up
ip -n ${P}n addr add 10.96.0.1/24 dev up0
cat >"$WORK/vrouter.toml" <<CFG
node_name = "svc"
state_dir = "$WORK/state"
api = { socket = "$WORK/api.sock" }
node_ips = ["10.96.0.1/24"]
[[uplinks]]
name = "up0"
[workers]
cores = [1]
CFG
python3 - "$WORK" "$VROUTERD" "$P" <<'PY' || exit 1 # it says why
import os, signal, socket, subprocess, sys, time
work, vrouterd, p = sys.argv[1:4]
path = os.path.join(work, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
proc = subprocess.Popen(["ip", "netns", "exec", p + "n", vrouterd, "--config", os.path.join(work, "vrouter.toml")],
                        env=env, stderr=open(os.path.join(work, "vrouterd.log"), "w"))
msgs = []
stored = {}  # FDNAME -> fds received with it (SCM_RIGHTS), as systemd's store keeps them
def collect(secs):
    end = time.time() + secs
    while time.time() < end:
        try:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
        except socket.timeout:
            continue
        text = data.decode()
        msgs.append(text)
        fds = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(memoryview(payload).cast("i"))
        fields = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
        if fields.get("FDSTORE") == "1":
            stored.setdefault(fields.get("FDNAME", "?"), []).extend(fds)
        for fd in fds:
            os.close(fd)
collect(4.0)
proc.send_signal(signal.SIGTERM)
collect(2.0)
proc.wait(timeout=15)
lines = [l for m in msgs for l in m.split("\n")]
ready = [i for i, l in enumerate(lines) if l == "READY=1"]
watchdogs = [i for i, l in enumerate(lines) if l == "WATCHDOG=1"]
stopping = [i for i, l in enumerate(lines) if l == "STOPPING=1"]
print("messages:", msgs[:3], "...", len(watchdogs), "watchdog keepalives")
ok = ready and len(watchdogs) >= 4 and min(watchdogs) > ready[0] and stopping and stopping[-1] > max(watchdogs)
if not ok:
    print(open(os.path.join(work, "vrouterd.log")).read()[-2000:])
    sys.exit("systemd: FAIL: expected READY=1, then WATCHDOG=1 every ~0.5 s, then STOPPING=1")
print("PASS  notify: READY=1 when forwarding, WATCHDOG=1 while the worker runs, STOPPING=1 on SIGTERM")
# The fds a restart takes over: the worker's UMEM memfd and uplink socket, the uplink's
# XDP link, program and maps (FDSTORE=1, one SCM_RIGHTS message per name).
print("stored:", {k: len(v) for k, v in stored.items()})
want = {"umem/0/": 1, "xsk/0/up0/0": 1, "xdp/up0": 6}
for name, n in want.items():
    got = [len(v) for k, v in stored.items() if k == name or (name.endswith("/") and k.startswith(name))]
    if got != [n]:
        sys.exit(f"systemd: FAIL: expected {n} fd(s) stored as {name!r}, got {got}")
print("PASS  fd store: UMEM, uplink socket and XDP program stored for the next run (FDSTORE=1)")
PY
