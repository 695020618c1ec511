#!/usr/bin/env bash
# Smoke run of the pktgen tool between two namespaces joined by a veth pair (sender in
# ${P}-a, sink in ${P}-b): a paced AF_XDP stream of stamped 1500 B frames reaches the
# probe sink whole (count, size, one-way latency); 64 B XDP live frames at full rate are
# all counted by the sink; IPv6 frames arrive with their size; bad options are refused.
# Not a speed check. Needs root and the build (`cargo build -p bench --bin pktgen`; the
# debug build paces 100,000 pps fine); PKTGEN=path overrides it. Fails loudly
# (exit 1) when a prerequisite is missing or any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
PKTGEN=${PKTGEN:-target/debug/pktgen}
PY=/usr/bin/python3 # Debian's, not a pyenv shim
P=${P:-pgs$$}
A=$P-a B=$P-b        # sender and sink namespaces
IFA=pgs-a IFB=pgs-b  # the veth pair, one end in each (created there: no clash in the host)

die() { echo "pktgen-smoke: FAIL: $*" >&2; exit 1; }
trap 'echo "pktgen-smoke: FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR
[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, XDP programs, AF_XDP sockets)"
for c in ip ethtool; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $PY ]] || die "$PY is missing (Debian's python3; run scripts/setup.sh)"
[[ -x $PKTGEN ]] || die "$PKTGEN not built (cargo build -p bench --bin pktgen)"

WORK=$(mktemp -d)
SINKS=()
cleanup() {
    for p in "${SINKS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for ns in "$A" "$B"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$A" || die "ip netns add $A"
ip netns add "$B" || die "ip netns add $B"
ip link add "$IFA" netns "$A" type veth peer name "$IFB" netns "$B" || die "creating the veth pair"
for x in "$A $IFA" "$B $IFB"; do
    set -- $x
    ip -n "$1" link set lo up && ip -n "$1" link set "$2" up || die "bringing $2 up in $1"
done
# veth delivers XDP frames (live frames) only to a receiver with NAPI: GRO on (the sink's
# XDP program gives it one as well).
ip netns exec "$B" ethtool -K "$IFB" gro on >/dev/null || die "ethtool -K $IFB gro on"
MAC_B=$(ip -n "$B" -o link show dev "$IFB" |
    awk '{for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1)}')
[[ $MAC_B =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "no MAC address read for $IFB in $B: '$MAC_B'"
echo "pktgen-smoke: $A/$IFA -> $B/$IFB ($MAC_B), $PKTGEN"

failures=0
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
show() { sed 's/^/      /' "$1" | tail -15; }

# run NAME SINK_SECONDS "SINK_FLAGS" SEND_ARGS...: the sink in $B in the background (its
# counting starts once its XDP program is on $IFB), the sender in $A, then both reports
# in $WORK/NAME.{send,sink} and the sender veth's `ethtool -S` before and after in
# $WORK/NAME.stats{0,1}. Returns non-zero (after saying why) if either failed.
run() {
    local name=$1 sink_s=$2 sink_flags=$3
    shift 3
    ip netns exec "$A" ethtool -S "$IFA" >"$WORK/$name.stats0" || die "ethtool -S $IFA"
    # shellcheck disable=SC2086
    "$PKTGEN" sink --netns "$B" --interface "$IFB" --seconds "$sink_s" $sink_flags --json \
        >"$WORK/$name.sink" 2>"$WORK/$name.sink.err" &
    local sp=$!
    SINKS+=("$sp")
    local t
    for t in $(seq 50); do
        ip -n "$B" link show dev "$IFB" | grep -q 'prog/xdp' && break
        kill -0 "$sp" 2>/dev/null || break
        sleep 0.1
    done
    if ! ip -n "$B" link show dev "$IFB" | grep -q 'prog/xdp'; then
        fail "$name: the sink attached no XDP program to $IFB"; show "$WORK/$name.sink.err"
        kill -9 "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
        return 1
    fi
    sleep 0.2 # the sink's first counter read follows the attach
    local rc=0 src=0 sink_done=0
    "$PKTGEN" send --netns "$A" --interface "$IFA" --dst-mac "$MAC_B" "$@" --json \
        >"$WORK/$name.send" 2>"$WORK/$name.send.err" || rc=$?
    kill -0 "$sp" 2>/dev/null || sink_done=1
    wait "$sp" || src=$?
    ip netns exec "$A" ethtool -S "$IFA" >"$WORK/$name.stats1" || die "ethtool -S $IFA"
    if ((rc != 0)); then
        fail "$name: pktgen send $* exited $rc"; show "$WORK/$name.send.err"; return 1
    fi
    if ((src != 0)); then
        fail "$name: pktgen sink exited $src"; show "$WORK/$name.sink.err"; return 1
    fi
    if ((sink_done)); then
        fail "$name: the sink's ${sink_s} s window ended before the sender did (counts would be short)"
        return 1
    fi
    local f
    for f in send sink; do # the report on one line (or as it is, if it is not JSON)
        echo "      $name $f: $("$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
            "$WORK/$name.$f" 2>/dev/null || tr -d '\n' <"$WORK/$name.$f")"
    done
}

# verify NAME: the case's comparisons on its two reports, one PASS / FAIL line each.
verify() {
    local rc=0
    "$PY" - "$1" "$WORK/$1".{send,sink,stats0,stats1} <<'PY' || rc=$?
import json, re, sys
case, send_file, sink_file, stats0, stats1 = sys.argv[1:6]
try:
    s, k = json.load(open(send_file)), json.load(open(sink_file))
except ValueError as e:
    print(f"FAIL  {case}: reports are not JSON: {e}")
    sys.exit(1)
failed = 0
def check(what, ok):
    global failed
    print(f"{'PASS' if ok else 'FAIL'}  {case}: {what}")
    failed += not ok
def num(d, key):  # None when missing or not a number
    v = d.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
sent, received = num(s, "sent"), num(k, "received")
mean, rx_pps = num(k, "mean_frame_bytes"), num(k, "rx_pps")
if sent is None or received is None:
    check(f"reports have 'sent' ({sent}) and 'received' ({received})", False)
    sys.exit(1)
if case == "afxdp-1500-stamped":
    stamped, p50, p99 = num(k, "stamped"), num(k, "latency_p50_us"), num(k, "latency_p99_us")
    check(f"sender engine {s.get('engine')!r} == 'afxdp'", s.get("engine") == "afxdp")
    check(f"sender sent {sent} in [180000, 220000] (100000 pps for 2 s)", 180000 <= sent <= 220000)
    check(f"sink received {received} >= 0.95 x sent = {0.95 * sent:.0f}", received >= 0.95 * sent)
    check(f"sink mean_frame_bytes {mean} > 1400", mean is not None and mean > 1400)
    check(f"sink stamped {stamped} >= 0.95 x sent = {0.95 * sent:.0f}",
          stamped is not None and stamped >= 0.95 * sent)
    check(f"sink latency_p50_us {p50} > 0", p50 is not None and p50 > 0)
    check(f"sink latency_p99_us {p99} >= latency_p50_us {p50}",
          p50 is not None and p99 is not None and p99 >= p50)
elif case == "live-64-full-rate":
    # The live engine counts the frames its program ran on (XDP_TX). veth hands them to
    # the sink's ring (ethtool -S tx_queue_N_xdp_xmit on the sender's veth) or, when that
    # ring is full, drops them (tx_queue_N_xdp_xmit_errors, also the link's TX dropped):
    # at full rate on this 2-core VM 2-4 % go that way. The sink must count every frame
    # that was not dropped there; a few stray frames of the sender's kernel (IPv6 router
    # solicitations, MLD) may add to its count.
    def ethtool(path):
        return {m[1]: int(m[2]) for m in re.finditer(r"^\s*(\S+): (\d+)$", open(path).read(), re.M)}
    e0, e1 = ethtool(stats0), ethtool(stats1)
    def delta(pattern):
        keys = [key for key in e1 if re.fullmatch(pattern, key)]
        return sum(e1[key] - e0.get(key, 0) for key in keys) if keys else None
    xmit, xmit_err = delta(r"tx_queue_\d+_xdp_xmit"), delta(r"tx_queue_\d+_xdp_xmit_errors")
    check(f"sender engine {s.get('engine')!r} == 'xdp-live'", s.get("engine") == "xdp-live")
    check(f"sink received {received} > 0", received > 0)
    if xmit is None or xmit_err is None:
        check(f"sender veth's ethtool -S has tx_queue_N_xdp_xmit ({xmit}) and _errors ({xmit_err})", False)
    else:
        handed = xmit + xmit_err
        check(f"sender sent {sent} == veth xdp_xmit {xmit} + xdp_xmit_errors {xmit_err} = {handed} (within 1 %)",
              abs(sent - handed) <= 0.01 * sent)
        delivered = sent - xmit_err
        print(f"      {case}: veth dropped {xmit_err} of {sent} ({100 * xmit_err / max(sent, 1):.2f} %) at a full ring")
        check(f"sink received {received} in [0.99 x (sent - ring drops) = {0.99 * delivered:.0f}, "
              f"sent - ring drops + 100 = {delivered + 100}]", 0.99 * delivered <= received <= delivered + 100)
    check(f"sink rx_pps {rx_pps} > 0", rx_pps is not None and rx_pps > 0)
elif case == "afxdp-v6-512":
    # veth counts an skb's bytes after the Ethernet header (AF_XDP copy mode sends skbs:
    # 498 for 512 B frames) but XDP frames whole: either way within the range.
    check(f"sender engine {s.get('engine')!r} == 'afxdp'", s.get("engine") == "afxdp")
    check(f"sink received {received} > 0", received > 0)
    check(f"sink received {received} >= 0.95 x sent = {0.95 * sent:.0f}", received >= 0.95 * sent)
    check(f"sink mean_frame_bytes {mean} in [490, 520] (512 B frames, a few small strays)",
          mean is not None and 490 <= mean <= 520)
else:
    check("known case", False)
sys.exit(1 if failed else 0)
PY
    ((rc == 0)) || failures=$((failures + 1))
}

# refuse NAME EXPECTED-TEXT SEND_ARGS...: pktgen send exits non-zero and says why.
refuse() {
    local name=$1 want=$2 rc=0
    shift 2
    timeout 10 "$PKTGEN" send --netns "$A" --interface "$IFA" --dst-mac "$MAC_B" \
        --src 10.0.0.1 --dst 10.0.0.2 --seconds 0.5 "$@" >"$WORK/refuse.out" 2>&1 || rc=$?
    local msg
    msg=$(tr '\n' ' ' <"$WORK/refuse.out")
    if ((rc != 0 && rc != 124)) && grep -qF -- "$want" "$WORK/refuse.out"; then
        echo "PASS  refuse $name: exit $rc (non-zero), message has '$want': $msg"
    else
        fail "refuse $name: exit $rc (want non-zero, not a timeout), message '$msg' (want '$want')"
    fi
}

echo "--- case 1: AF_XDP, 100000 pps of stamped 1500 B frames for 2 s -> probe sink (3.5 s)"
run afxdp-1500-stamped 3.5 --probe --src 10.0.0.1 --dst 10.0.0.2 \
    --rate 100000 --size 1500 --stamp --seconds 2 && verify afxdp-1500-stamped

echo "--- case 2: XDP live frames (the default engine), 64 B at full rate for 1.5 s -> sink (3 s)"
run live-64-full-rate 3 "" --src 10.0.0.1 --dst 10.0.0.2 --seconds 1.5 &&
    verify live-64-full-rate

echo "--- case 3: AF_XDP, IPv6 512 B frames at full rate for 1.5 s -> probe sink (3.5 s)"
run afxdp-v6-512 3.5 --probe --src fd00::1 --dst fd00::2 --size 512 --engine afxdp \
    --seconds 1.5 && verify afxdp-v6-512

echo "--- case 4: refusals"
refuse "--size 40" "--size 40" --size 40
refuse "--size 2000" "--size 2000" --size 2000
refuse "--engine xdp-live --rate 1000" "--rate" --engine xdp-live --rate 1000

if ((failures > 0)); then
    echo "pktgen-smoke: FAIL: $failures check(s) or case(s) failed" >&2
    exit 1
fi
echo "pktgen-smoke: ok"
