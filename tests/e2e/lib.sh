# Shared by the multi-node namespace tests (overlay.sh, bgp.sh); sourced after P (the
# namespace prefix) and WORK (a scratch directory) are set. A hub namespace with a
# bridge stands for the underlay; nodes and pods hang off it as Calico wires them.

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# within seconds command...: until the command succeeds, polled every 0.5 s.
within() { local t=$1; shift; local end=$((SECONDS + t)); until "$@"; do ((SECONDS < end)) || return 1; sleep 0.5; done; }
# AF_XDP in copy mode carries frames as bytes: no partial checksums or TSO frames.
off() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

failures=0 checks=0
check() { # name command...: PASS / FAIL with the command's last output lines
    # The command runs as an `if` condition: `set -e` does not apply inside it, so a
    # failing check is counted, never fatal.
    local name=$1; shift
    checks=$((checks + 1))
    if "$@" >"$WORK/out" 2>&1; then echo "PASS  $name"; else
        echo "FAIL  $name"; sed 's/^/      /' "$WORK/out" | tail -15; failures=$((failures + 1)); fi
}
# The summary line; exit 1 when a check failed or none ran (a run that checked nothing
# proves nothing). finish script-name [command to show logs on failure]
finish() {
    local name=$1; shift
    if ((checks == 0)); then echo "$name: FAIL: no check ran" >&2; exit 1; fi
    if ((failures)); then
        echo "$name: $failures of $checks check(s) failed"
        (($#)) && "$@"
        exit 1
    fi
    echo "$name: all $checks checks passed"
}

# Setup fails loudly at the step that failed: `set -e` (and pipefail) everywhere outside
# the checks, with an ERR trap (inherited by functions) naming the command. A setup step
# that failed silently could turn a negative check (`! ping`) into a pass. Commands that
# may fail on purpose outside a check say so with `|| true`; cleanup functions start
# with `unstrict`. strict script-name
strict() {
    STRICT_NAME=$1
    set -eE -o pipefail
    trap 'setup_failed $? $LINENO "$BASH_COMMAND"' ERR
}
setup_failed() { # rc line command
    # A subshell (a background job, a command substitution) only ends itself; the main
    # shell then reports the step that ran it.
    [[ $BASHPID == "$$" ]] || exit "$1"
    echo "$STRICT_NAME: FAIL: setup step failed (exit $1) at line $2${FUNCNAME[1]:+ in ${FUNCNAME[*]:1}}: $3" >&2
    exit 1
}
unstrict() { trap - ERR; set +eE; }

# A whole number read from a JSON file, printed; otherwise a failure saying what was
# found (missing key, unreadable file, not a number): never an empty string that `[[ ]]`
# or `(( ))` would take for zero. jnum file python-expression-over-d
jnum() {
    python3 - "$1" "$2" <<'PY'
import json, sys
path, expr = sys.argv[1:3]
d = json.load(open(path))
v = eval(expr)
if isinstance(v, bool) or not isinstance(v, int):
    sys.exit(f"{expr} in {path}: not a whole number: {v!r}")
print(v)
PY
}

hub() { # the underlay bridge, in namespace ${P}hub
    ip netns add ${P}hub
    nsx ${P}hub ip link add br0 type bridge
    nsx ${P}hub ip link set br0 up
}
underlay() { # ns ip4 ip6: a node's uplink up0 on the hub's bridge (UNDERLAY_QUEUES: queues)
    ip netns add "$1"
    nsx "$1" ip link set lo up
    local q=${UNDERLAY_QUEUES:-1}
    ip link add up0 netns "$1" numrxqueues "$q" numtxqueues "$q" type veth \
        peer name "p-$1" netns ${P}hub numrxqueues "$q" numtxqueues "$q"
    nsx ${P}hub ip link set "p-$1" master br0 up
    nsx "$1" ip link set up0 up
    nsx "$1" ip addr add "$2/24" dev up0
    nsx "$1" ip -6 addr add "$3/64" dev up0 nodad
    off "$1" up0
}
pod() { # pod-ns node-ns host-if ip4 [ip6]: a pod as Calico wires it (gateway 169.254.1.1)
    ip netns add "$1"
    nsx "$1" ip link set lo up
    ip link add "$3" netns "$2" type veth peer name eth0 netns "$1"
    nsx "$2" ip link set "$3" address ee:ee:ee:ee:ee:ee up
    off "$2" "$3"
    nsx "$1" ip link set eth0 up
    nsx "$1" ip addr add "$4/32" dev eth0
    [[ -n ${5:-} ]] && nsx "$1" ip -6 addr add "$5/128" dev eth0 nodad
    nsx "$1" ip route add 169.254.1.1 dev eth0 scope link
    nsx "$1" ip route add default via 169.254.1.1 dev eth0
    [[ -n ${5:-} ]] && nsx "$1" ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0
    off "$1" eth0
}

kroute() { # node-ns addr dev: the node's kernel route to a pod is vrouterd's (proto 118)
    local family=-4; [[ $2 == *:* ]] && family=-6
    local out; out=$(nsx "$1" ip "$family" route show "$2") || return 1
    echo "$out"; grep -q "^$2 dev $3 proto 118 " <<<"$out"
}
no_kroute() { # node-ns addr: the node's kernel has no route to addr of its own
    local family=-4; [[ $2 == *:* ]] && family=-6
    local out; out=$(nsx "$1" ip "$family" route show "$2") || return 1
    echo "ip route show $2: '$out'"; [[ -z $out ]]
}

ping4() { nsx "$1" ping -c 3 -i 0.2 -W 2 "$2"; }
ping6() { nsx "$1" ping -6 -c 3 -i 0.2 -W 2 "$2"; }
tcp() { # server-ns client-ns addr: an iperf3 TCP run; the receiver must count bytes
    # The server is bounded in time: a client that never connects must not hang the run.
    nsx "$1" timeout 20 iperf3 -s -1 >/dev/null 2>&1 &
    local sp=$!; sleep 0.3
    local rc=0; nsx "$2" iperf3 -c "$3" -t 2 --json >"$WORK/iperf.json" || rc=$?
    wait $sp || true
    ((rc == 0)) || { tail -5 "$WORK/iperf.json"; return 1; }
    python3 - "$WORK/iperf.json" <<'PY'
import json, sys
end = json.load(open(sys.argv[1]))["end"]
got = end["sum_received"]["bytes"]
print(f'received {got} bytes, {end["sum_received"]["bits_per_second"]/1e6:.0f} Mbit/s')
assert got > 0, "nothing received"
PY
}
