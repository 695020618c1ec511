#!/usr/bin/env bash
# End to end, control plane: vrouterd's embedded BGP speaker against itself and against
# real daemons from Debian, in namespaces on one underlay bridge (10.98.0.0/24):
#   mesh    three vrouterd nodes in Calico's node-to-node mesh learn each other's blocks
#           (no static routes) and forward pod traffic over VXLAN, IPv4 and IPv6; a node
#           restarted with kill -9 keeps its peer's routes (graceful restart helper); in
#           pool mode Never the learnt blocks are routed plainly.
#   rr      BIRD 2 as route reflector for both nodes (reflected routes keep their next
#           hop; one session signed with TCP MD5), FRR over eBGP and GoBGP over iBGP; routes learnt, installed
#           and forwarded over; a withdrawal removes one; BIRD killed and restarted with
#           graceful restart keeps traffic flowing.
#   gobgp   GoBGP as the route reflector of both nodes.
#   vrr     vrouterd as the route reflector of two other vrouterd nodes.
# Needs root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
P=${P:-vrb$$}
die() { echo "bgp: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping iperf3 ethtool python3 bird birdc gobgpd gobgp vtysh /usr/lib/frr/bgpd; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD ]] || die "$VROUTERD not built"

# PHASES="mesh rr gobgp vrr" (the default) picks what runs; a name not among them is an
# error (a typo would otherwise run nothing and report success).
PHASES=${PHASES:-mesh rr gobgp vrr}
for ph in $PHASES; do
    [[ " mesh rr gobgp vrr " == *" $ph "* ]] || die "unknown phase '$ph' in PHASES (mesh rr gobgp vrr)"
done
[[ -n ${PHASES// /} ]] || die "PHASES is empty"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
strict bgp
chmod 755 "$WORK"
PIDS=()
cleanup() {
    unstrict
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in hub n1 n2 n3 a b c rr frr gb; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# Retry a check's command for up to $1 seconds (sessions and routes take a moment).

# --- underlay bridge; nodes n1 .1 and n2 .2; BIRD .10, FRR .11, GoBGP .12
hub
underlay ${P}n1 10.98.0.1 fd98::1
underlay ${P}n2 10.98.0.2 fd98::2
underlay ${P}n3 10.98.0.3 fd98::3
underlay ${P}rr 10.98.0.10 fd98::10
underlay ${P}frr 10.98.0.11 fd98::11
underlay ${P}gb 10.98.0.12 fd98::12
pod ${P}a ${P}n1 ${P}a0 10.244.1.2 fd10::1:2
pod ${P}b ${P}n2 ${P}b0 10.244.2.2 fd10::2:2
pod ${P}c ${P}n3 ${P}c0 10.244.3.2 fd10::3:2
# Networks the routers originate, on their loopbacks; replies find the pods through the
# routes they learnt (BIRD, via its kernel protocol) or a static route (FRR, GoBGP).
nsx ${P}rr ip addr add 10.200.0.1/24 dev lo
nsx ${P}frr ip addr add 10.201.0.1/24 dev lo
nsx ${P}frr ip route add 10.244.0.0/16 via 10.98.0.1
nsx ${P}gb ip route add 10.244.0.0/16 via 10.98.0.1

# The nodes: name, underlay address, core, pod.
declare -A NAME=([n1]=node-a [n2]=node-b [n3]=node-c)
declare -A NUM=([n1]=1 [n2]=2 [n3]=3)
declare -A CORE=([n1]=1 [n2]=0 [n3]=1)
declare -A PODIF=([n1]=${P}a0 [n2]=${P}b0 [n3]=${P}c0)
# config n bgp-section: the IPv4 pool's mode from $POOL_MODE, the cluster's other nodes
# (from $CLUSTER) as [[nodes]].
config() {
    local n=$1 i=${NUM[$1]} mode=${POOL_MODE:-'vxlan_mode = "Always"'} o
    {
        cat <<CFG
node_name = "${NAME[$n]}"
state_dir = "$WORK/state-${NAME[$n]}"
api = { socket = "$WORK/api-${NAME[$n]}.sock" }
node_ips = ["10.98.0.$i/24", "fd98::$i/64"]
[[uplinks]]
name = "up0"
[[pools]]
cidr = "10.244.0.0/16"
$mode
[[pools]]
cidr = "fd10::/48"
vxlan_mode = "Always"
# Calico's disableBGPExport: the pod's block in it is routed here, never announced.
[[pools]]
cidr = "10.245.0.0/16"
disable_bgp_export = true
[workers]
cores = [${CORE[$n]}]
[[endpoints]]
name = "pod"
kind = "veth"
interface = "${PODIF[$n]}"
ips = ["10.244.$i.2/32", "fd10::$i:2/128", "10.245.$i.2/32"]
CFG
        for o in ${CLUSTER:-n1 n2}; do
            [[ $o == "$n" ]] && continue
            printf '[[nodes]]\nname = "%s"\nips = ["10.98.0.%s/24", "fd98::%s/64"]\n' "${NAME[$o]}" "${NUM[$o]}" "${NUM[$o]}"
        done
        # Each node's own restart marker (not the host's /run/vrouter).
        echo "${2/"[bgp]"/"[bgp]"$'\n'"restart_marker = \"$WORK/$n.restart\""}"
    } >"$WORK/$n.toml"
}
start_node() { # n bgp-section
    local n=$1
    config "$n" "$2"
    rm -f "$WORK/$n.json"
    ip netns exec ${P}$n "$VROUTERD" --config "$WORK/$n.toml" --stats-file "$WORK/$n.json" >>"$WORK/$n.log" 2>&1 &
    eval "PID_$n=$!"
    PIDS+=($!)
    for _ in $(seq 50); do [[ -s $WORK/$n.json ]] && break; sleep 0.2; done
    [[ -s $WORK/$n.json ]] || { tail -20 "$WORK/$n.log"; die "vrouterd $n did not start"; }
}
stop_node() { local v="PID_$1"; kill "${!v}" 2>/dev/null || true; wait "${!v}" 2>/dev/null || true; }

# What a node's stats file says of BGP.
bgp_q() { # n python-expression over j (the "bgp" object)
    python3 -c "import json,sys; j=json.load(open('$WORK/$1.json'))['bgp']; sys.exit(0 if ($2) else 1)" 2>/dev/null
}
established() { # n count
    bgp_q "$1" "sum(p['state'] == 'Established' for p in j['peers']) >= $2"
}
routes_at_least() { bgp_q "$1" "j['routes_installed'] >= $2"; }
# peer_down n address: node n lists the peer and its session is not Established (the
# evidence that a "kept while the peer is away" check ran with the peer away).
peer_down() { bgp_q "$1" "any(p['address'] == '$2' and p['state'] != 'Established' for p in j['peers'])"; }
show_bgp() { python3 -c "import json; print(json.dumps(json.load(open('$WORK/$1.json'))['bgp'], indent=1))"; }


wait_mesh() { # every node Established with the other two and holding their v4 + v6 blocks
    local n; for n in n1 n2 n3; do within 30 established $n 2 && within 10 routes_at_least $n 4 || return 1; done
}
export -f within established bgp_q routes_at_least peer_down show_bgp wait_mesh nsx ping4 ping6
export WORK P

want() { [[ " $PHASES " == *" $1 "* ]]; }
# A counter of a node's stats file (a whole number, or a failure saying what was there).
counter() { jnum "$WORK/$1.json" "$2"; }
# vrouterctl on node n's API socket.
ctl_on() { local n=$1; shift; "${VROUTERCTL:-target/debug/vrouterctl}" --socket "$WORK/api-${NAME[$n]}.sock" "$@"; }
# route_is n prefix python-condition-over-r: the node's route to prefix, read back from
# its API (exactly one route with that prefix), satisfies the condition.
route_is() {
    local out
    out=$(ctl_on "$1" route list --filter "$2" --json) || return 1
    python3 -c '
import json, sys
prefix, cond = sys.argv[1:3]
rs = [r for r in json.load(sys.stdin)["routes"] if r["prefix"] == prefix]
print(rs)
assert len(rs) == 1, f"{len(rs)} routes to {prefix}"
r = rs[0]
assert eval(cond), cond
' "$2" "$3" <<<"$out"
}
# The positive twin of every "nothing decapsulated" / "traffic stops": traffic crossed
# n1 -> n2 and n2 decapsulated it (VXLAN). pod-ns dst node-that-decapsulates
wrapped() {
    local before after
    before=$(counter "$3" 'd["decapsulated"]') || return 1
    nsx "$1" ping -c 3 -i 0.2 -W 2 "$2" || return 1
    sleep 1.2 # the stats file is rewritten every second
    after=$(counter "$3" 'd["decapsulated"]') || return 1
    echo "decapsulated at $3: $before -> $after"
    ((after >= before + 3))
}
# kept n prefix reflector next-hop pod dst decap-node: node n learnt prefix from the
# reflector with the originator's next hop kept, over VXLAN (read back from its API),
# and the pod's ping arrives wrapped at the originating node.
kept() {
    route_is "$1" "$2" "r['source'] == 'bgp' and r['peer'] == '$3' and r['next_hops'] == ['$4'] and r['encapsulation'] == 'vxlan'" &&
        wrapped "$5" "$6" "$7"
}

if want mesh; then
# ---------------------------------------------------------------- mesh
MESH='[bgp]
graceful_restart = 30'
export CLUSTER="n1 n2 n3"
start_node n1 "$MESH"
start_node n2 "$MESH"
start_node n3 "$MESH"
check "mesh   three nodes: sessions Established, each installs the others' v4 and v6 blocks" bash -c "wait_mesh || { show_bgp n1; show_bgp n3; exit 1; }"
check "mesh   ICMP v4 pod A -> pod B over learnt routes"   ping4 ${P}a 10.244.2.2
check "mesh   ICMP v6 pod B -> pod A"                      ping6 ${P}b fd10::1:2
check "mesh   TCP pod A -> pod B (iperf3)"                 tcp ${P}b ${P}a 10.244.2.2
check "mesh   ICMP v4 pod C (third node) -> pod A"         ping4 ${P}c 10.244.1.2
check "mesh   ICMP v6 pod B -> pod C"                      ping6 ${P}b fd10::3:2
check "mesh   learnt route read back: pod B's block via node B (10.98.0.2), VXLAN" \
    route_is n1 10.244.2.0/26 'r["source"] == "bgp" and r["next_hops"] == ["10.98.0.2"] and r["encapsulation"] == "vxlan"'
check "mesh   ICMP v4 pod A -> pod B arrives wrapped: n2 decapsulates it" wrapped ${P}a 10.244.2.2 n2
blackholed() { # an unused address of node A's block, from pod B: dropped and counted at n1
    local before rc=0
    # The positive twin: pod B reaches a used address of the same block.
    nsx ${P}b ping -c 1 -W 2 10.244.1.2 || { echo "pod B -> pod A fails"; return 1; }
    before=$(counter n1 'd["drops"]["blackhole"]') || return 1
    nsx ${P}b ping -c 1 -W 1 10.244.1.50 || rc=$?
    ((rc == 1)) || { echo "ping 10.244.1.50: exit $rc, want 1 (sent, no reply)"; return 1; }
    echo "blackhole drops at n1 before: $before"
    within 3 bgp_q_drops n1 "$((before + 1))"
}
bgp_q_drops() { local n; n=$(counter "$1" 'd["drops"]["blackhole"]') && ((n >= $2)); }
check "mesh   an unused address of our own block is dropped (blackhole), not sent back" blackholed
# kill -9 n2: n1 keeps n2's routes while n2 is away (graceful restart helper), then n2
# comes back and traffic flows again.
kill -9 "$PID_n2"; wait "$PID_n2" 2>/dev/null || true
sleep 2.5
check "mesh   n2 killed: n1 keeps n2's routes (graceful restart, stale)" \
    bash -c "within 5 peer_down n1 10.98.0.2 && routes_at_least n1 4 || { show_bgp n1; exit 1; }"
start_node n2 "$MESH"
check "mesh   n2 back: session re-established, traffic flows" bash -c "within 30 established n1 2 && within 10 ping4 ${P}a 10.244.2.2"
stop_node n1; stop_node n2; stop_node n3
export CLUSTER="n1 n2"

# Pool mode Never: the learnt block is routed plainly to the node (no tunnel).
export POOL_MODE='vxlan_mode = "Never"'
start_node n1 "$MESH"
start_node n2 "$MESH"
plain() { # traffic crosses and node B decapsulated nothing (its twin: "arrives wrapped" above)
    within 30 routes_at_least n1 2 && within 10 ping4 ${P}a 10.244.2.2 || return 1
    route_is n1 10.244.2.0/26 'r["source"] == "bgp" and r["next_hops"] == ["10.98.0.2"] and r["encapsulation"] == "none"' || return 1
    sleep 1.2
    local n; n=$(counter n2 'd["decapsulated"]') || return 1
    echo "decapsulated at B: $n"; ((n == 0))
}
check "mesh   pool Never: learnt block routed plainly (read back; nothing decapsulated)" plain
stop_node n1; stop_node n2
unset POOL_MODE

fi

if want rr; then
# ---------------------------------------------------------------- BIRD RR, FRR, GoBGP
cat >"$WORK/bird.conf" <<EOF
log "$WORK/bird.log" all;
router id 10.98.0.10;
protocol device { scan time 2; }
protocol direct { ipv4; ipv6; interface "*"; }   # resolves the clients' next hops
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
template bgp node {
  local 10.98.0.10 as 64512;
  hold time 9; keepalive time 3; connect retry time 2; error wait time 1, 5;
  graceful restart on;
  rr client; rr cluster id 10.98.0.10;
  # Reflect what clients sent; of our own routes only the network on lo (never the
  # underlay subnet, which would pull node-to-node traffic through us).
  ipv4 { import all; export where source = RTS_BGP || net = 10.200.0.0/24; next hop keep; };
  ipv6 { import all; export where source = RTS_BGP; next hop keep; };
}
protocol bgp n1 from node { neighbor 10.98.0.1 as 64512; }
protocol bgp n2 from node { neighbor 10.98.0.2 as 64512; password "vrouter-md5"; }  # TCP MD5
EOF
start_bird() {
    nsx ${P}rr bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"
}
start_bird || die "bird did not start"
mkdir -p "$WORK/frr"
cat >"$WORK/frr/bgpd.conf" <<EOF
frr defaults datacenter
hostname frr
router bgp 65011
 bgp router-id 10.98.0.11
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 3 9
 neighbor 10.98.0.1 remote-as 64512
 neighbor 10.98.0.1 timers connect 2
 address-family ipv4 unicast
  network 10.201.0.0/24
 exit-address-family
exit
EOF
chown -R frr:frr "$WORK/frr"
nsx ${P}frr /usr/lib/frr/bgpd -d -Z -S -l 10.98.0.11 -f "$WORK/frr/bgpd.conf" -i "$WORK/frr/bgpd.pid" --vty_socket "$WORK/frr" -P 0 \
    || die "FRR bgpd did not start"
cat >"$WORK/gobgpd.toml" <<EOF
[global.config]
  as = 64512
  router-id = "10.98.0.12"
  port = 179
  local-address-list = ["10.98.0.12"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.98.0.2"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 2
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
EOF
nsx ${P}gb gobgpd -f "$WORK/gobgpd.toml" -p --pprof-disable --api-hosts "unix://$WORK/gobgp.sock" >"$WORK/gobgpd.log" 2>&1 &
disown
PIDS+=($!)

RR1='[bgp]
mesh = false
graceful_restart = 30
[[bgp.peers]]
address = "10.98.0.10"
hold_time = 9
[[bgp.peers]]
address = "10.98.0.11"
asn = 65011
hold_time = 9'
RR2='[bgp]
mesh = false
graceful_restart = 30
[[bgp.peers]]
address = "10.98.0.10"
hold_time = 9
password = "vrouter-md5"
[[bgp.peers]]
address = "10.98.0.12"
hold_time = 9'
start_node n1 "$RR1"
start_node n2 "$RR2"
# The next hop as a whole word: 10.98.0.1 must not match 10.98.0.10 (BIRD itself).
bird_has() { nsx ${P}rr birdc -s "$WORK/bird.ctl" show route for "$1" | grep -qw -- "via $2"; }
frr_has() { nsx ${P}frr vtysh --vty_socket "$WORK/frr" -c "show bgp ipv4 unicast $1 json" | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin).get('paths') else 1)"; }
gobgp_has() { gobgp --target "unix://$WORK/gobgp.sock" global rib -j | python3 -c "import json,sys; sys.exit(0 if '$1' in json.load(sys.stdin) else 1)"; }
export -f bird_has frr_has gobgp_has
check "rr     n1: BIRD (RR) and FRR (eBGP) Established; n2: BIRD (TCP MD5) and GoBGP" bash -c "within 30 established n1 2 && within 20 established n2 2 || { cat $WORK/n1.json $WORK/n2.json; exit 1; }"
check "rr     BIRD learnt both blocks (v4 and v6) from its clients"  bash -c "within 10 bird_has 10.244.1.2 10.98.0.1 && within 10 bird_has 10.244.2.2 10.98.0.2 && within 10 bird_has fd10::2:2 fd98::2"
# disableBGPExport: node A's block of 10.245/16 is not announced (its 10.244/16 one is).
not_exported() {
    within 10 bird_has 10.244.1.2 10.98.0.1 || return 1
    nsx ${P}rr birdc -s "$WORK/bird.ctl" show route for 10.245.1.2
    ! nsx ${P}rr birdc -s "$WORK/bird.ctl" show route for 10.245.1.2 | grep -q "via"
}
check "rr     BIRD has no route into a disableBGPExport pool, the other pool's it has" not_exported
check "rr     FRR (eBGP) learnt node A's block"                     bash -c "within 10 frr_has 10.244.1.0/26"
check "rr     GoBGP (iBGP) learnt node B's block"                   bash -c "within 10 gobgp_has 10.244.2.0/26"
# BIRD reflects node B's block with its next hop kept (node B, not BIRD): read back from
# node A's API, then the ping must arrive VXLAN-wrapped at node B.
reflected_vxlan() {
    within 10 routes_at_least n1 3 || { show_bgp n1; return 1; }
    kept n1 10.244.2.0/26 10.98.0.10 10.98.0.2 ${P}a 10.244.2.2 n2
}
check "rr     ICMP v4 pod A -> pod B over reflected routes (next hop kept: VXLAN)" reflected_vxlan
check "rr     ICMP v6 pod B -> pod A over reflected routes"          ping6 ${P}b fd10::1:2
check "rr     ICMP pod A -> BIRD's network (learnt, plain routing)"  ping4 ${P}a 10.200.0.1
check "rr     ICMP pod A -> FRR's network (eBGP)"                    ping4 ${P}a 10.201.0.1
CTL="${VROUTERCTL:-target/debug/vrouterctl} --socket $WORK/api-node-a.sock"
check "rr     vrouterctl node status: BIRD and FRR up, Established, in calicoctl's table" \
    bash -c "$CTL node status | tee /dev/stderr | grep -E '^\| 10\.98\.0\.10 +\| global +\| up +\|.*Established' &&
             $CTL node status | grep -E '^\| 10\.98\.0\.11 +\| global +\| up +\|.*Established'"
check "rr     vrouterctl route list: BIRD's and FRR's networks come from their peers" \
    bash -c "$CTL route list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); r={x[\"prefix\"]:(x[\"source\"],x[\"peer\"]) for x in d[\"routes\"]}; assert r[\"10.200.0.0/24\"]==(\"bgp\",\"10.98.0.10\") and r[\"10.201.0.0/24\"]==(\"bgp\",\"10.98.0.11\"), r'"
# What an operator reads of the BIRD session (issue 21): peer show, route list --detail,
# -o yaml; each output is kept in the log (tee) and judged on its content.
peer_show() {
    local t
    t=$($CTL peer show 10.98.0.10) || return 1
    echo "$t" | tee "$WORK/peer-show.txt" >&2
    grep -q '^BGP neighbor is 10.98.0.10, remote AS 64512 (iBGP, global)$' <<<"$t" &&
        grep -qE '^  BGP state: Established, up for [0-9]' <<<"$t" &&
        grep -q 'Peer router id: 10.98.0.10' <<<"$t" &&
        grep -q 'Hold time: 9 s configured, 9 s negotiated, keepalive every 3 s' <<<"$t" &&
        grep -E '^    received +ipv4-unicast, ipv6-unicast, 4-octet-as, route-refresh, graceful-restart' <<<"$t" &&
        grep -E '^    Updates +[1-9][0-9]* +[1-9]' <<<"$t" &&
        grep -E '^  Prefixes: [1-9][0-9]* announced .* [1-9][0-9]* accepted \(in the RIB\); [1-9][0-9]* advertised$' <<<"$t"
}
check "rr     peer show: BIRD's session, timers, capabilities, counts" peer_show
detail() {
    local t j
    t=$($CTL route list --detail) || return 1
    echo "$t" | tee "$WORK/route-detail.txt" >&2
    grep -E '^\| \* +\| 10\.200\.0\.0/24 +\| bgp 10\.98\.0\.10 +\| 10\.98\.0\.10 ' <<<"$t" || return 1
    j=$($CTL route list --detail -o json) || return 1
    python3 -c '
import json, sys
rs = {r["prefix"]: r for r in json.load(sys.stdin)["routes"]}
p = rs["10.200.0.0/24"]["paths"]
assert len(p) == 1 and p[0]["best"] and p[0]["peer"] == "10.98.0.10", p
assert p[0]["local_pref"] == 100 and p[0]["origin"] in ("IGP", "incomplete"), p
assert p[0]["age_seconds"] >= 0 and p[0]["as_path"] == [], p
# Reflected by BIRD: node B'"'"'s block, its next hop kept.
q = rs["10.244.2.0/26"]["paths"]
assert any(x["best"] and x["next_hop"] == "10.98.0.2" for x in q), q
print("paths ok")
' <<<"$j"
}
check "rr     route list --detail: every path with next hop, AS path, origin, local pref" detail
as_yaml() {
    $CTL -o yaml peer show 10.98.0.10 | tee "$WORK/peer-show.yaml" >&2 &&
        python3 -c '
import sys, yaml
p = yaml.safe_load(sys.stdin)
assert p["state"] == "Established" and p["session"]["hold_time"] == 9, p
assert p["session"]["messages_received"]["update"] > 0, p
' <"$WORK/peer-show.yaml"
}
check "rr     -o yaml: peer show parses as YAML with the session's figures" as_yaml
# What an operator sees against a real BIRD, kept in the log (the checks above read it).
for f in peer-show.txt route-detail.txt peer-show.yaml; do
    echo "----- vrouterctl output against BIRD: $f"; cat "$WORK/$f" 2>/dev/null || echo "(missing)"
done
# peer reset --soft: route refresh both ways, the session stays; a hard reset ends it
# (BIRD hears Cease / Administrative Reset) and a new one comes up.
peer_num() { $CTL peer show 10.98.0.10 -o json | python3 -c "import json,sys; p=json.load(sys.stdin); print($1)"; }
soft() {
    local rr0 up0 rr1 up1 out
    rr0=$(peer_num 'p["session"]["messages_sent"].get("route_refresh", 0)') || return 1
    up0=$(peer_num 'p["since"]') || return 1
    out=$($CTL peer reset 10.98.0.10 --soft) || return 1
    echo "$out"
    grep -q 'route refresh asked for ipv4-unicast, ipv6-unicast' <<<"$out" || return 1
    sleep 1
    rr1=$(peer_num 'p["session"]["messages_sent"].get("route_refresh", 0)') || return 1
    up1=$(peer_num 'p["since"]') || return 1
    echo "route refresh sent: $rr0 -> $rr1; established since $up0 -> $up1"
    ((rr1 == rr0 + 2 && up1 == up0)) && established n1 2
}
check "rr     peer reset --soft: route refresh sent, the session stays up" soft
hard() {
    local r0 # every route back, not only BIRD's: the withdrawal check counts them
    r0=$(counter n1 'd["bgp"]["routes_installed"]') || return 1
    $CTL peer reset 10.98.0.10 || return 1
    within 20 bash -c "$CTL peer show 10.98.0.10 | grep -q 'Last error: reset by the operator: .*Administrative Reset'" || return 1
    grep -q 'Administrative reset' "$WORK/bird.log" || { tail -n 5 "$WORK/bird.log"; return 1; }
    within 30 established n1 2 && within 15 route_is n1 10.200.0.0/24 'r["peer"] == "10.98.0.10"' &&
        within 15 routes_at_least n1 "$r0"
}
check "rr     peer reset: BIRD hears Cease / Administrative Reset, the session comes back" hard
before=$(counter n1 'd["bgp"]["routes_installed"]')
# The positive twin, just before: the route is there (from BIRD) and traffic flows.
from_bird() { route_is n1 10.200.0.0/24 'r["source"] == "bgp" and r["peer"] == "10.98.0.10"' && ping4 ${P}a 10.200.0.1; }
check "rr     before the withdrawal: n1 routes BIRD's network, traffic flows" from_bird
nsx ${P}rr ip addr del 10.200.0.1/24 dev lo
withdrawn() { # n1 has one route fewer, none to BIRD's network; the ping gets no reply
    local rc=0 out
    within 15 bgp_q n1 "j['routes_installed'] < $before" || { show_bgp n1; return 1; }
    out=$(ctl_on n1 route list --filter 10.200.0.0/24 --json) || return 1
    echo "$out"
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["total"] == 0 else 1)' <<<"$out" || return 1
    nsx ${P}a ping -c 1 -W 1 10.200.0.1 || rc=$?
    ((rc == 1)) || { echo "ping 10.200.0.1: exit $rc, want 1 (sent, no reply)"; return 1; }
}
check "rr     BIRD withdraws its network: n1 removes it, traffic stops" withdrawn
nsx ${P}rr ip addr add 10.200.0.1/24 dev lo
check "rr     BIRD announces it again: traffic resumes" bash -c "within 15 bgp_q n1 \"j['routes_installed'] >= $before\" && ip netns exec ${P}a ping -c 2 -i 0.2 -W 2 10.200.0.1"
# BIRD dies: its clients keep the reflected routes (graceful restart) and pods keep talking.
kill -9 "$(cat "$WORK/bird.pid")"
sleep 1
check "rr     BIRD killed: pods still talk over its (stale) reflected routes" bash -c "within 5 peer_down n1 10.98.0.10 || { show_bgp n1; exit 1; }; for i in 1 2 3 4; do ip netns exec ${P}a ping -c 1 -W 1 10.244.2.2 >/dev/null || exit 1; sleep 1; done; routes_at_least n1 3"
rm -f "$WORK/bird.ctl"
start_bird || die "bird did not restart"
check "rr     BIRD back: sessions re-established, routes refreshed" bash -c "within 30 established n1 2 && within 10 bird_has 10.244.1.2 10.98.0.1 && ip netns exec ${P}a ping -c 2 -i 0.2 -W 2 10.200.0.1"
# vrouterd n1 dies: BIRD keeps its routes (graceful restart helper), so node B still
# routes pod A's block toward it; n1 comes back and traffic resumes.
kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
sleep 2
check "rr     vrouterd n1 killed: BIRD keeps its block (stale), n2 still has it" bash -c "bird_has 10.244.1.2 10.98.0.1 && routes_at_least n2 3"
start_node n1 "$RR1"
check "rr     vrouterd n1 back: Established again, pod B -> pod A flows" bash -c "within 30 established n1 2 && within 10 ping4 ${P}b 10.244.1.2"
stop_node n1; stop_node n2
kill "$(cat "$WORK/bird.pid")" 2>/dev/null || true
kill "$(cat "$WORK/frr/bgpd.pid")" 2>/dev/null || true

fi

if want gobgp; then
# ---------------------------------------------------------------- GoBGP as route reflector
pkill -f "gobgpd -f $WORK" 2>/dev/null || true; sleep 0.5 # rr's GoBGP, if that phase ran
cat >"$WORK/gobgpd.toml" <<EOF
[global.config]
  as = 64512
  router-id = "10.98.0.12"
  port = 179
  local-address-list = ["10.98.0.12"]
[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "nodes"
    peer-as = 64512
  [peer-groups.timers.config]
    hold-time = 9
    keepalive-interval = 3
  [peer-groups.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = "10.98.0.12"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "10.98.0.0/29"
    peer-group = "nodes"
EOF
nsx ${P}gb gobgpd -f "$WORK/gobgpd.toml" -p --pprof-disable --api-hosts "unix://$WORK/gobgp.sock" >"$WORK/gobgpd2.log" 2>&1 &
disown
PIDS+=($!)
GB='[bgp]
mesh = false
[[bgp.peers]]
address = "10.98.0.12"
hold_time = 9'
start_node n1 "$GB"
start_node n2 "$GB"
check "gobgp  both nodes Established with GoBGP (route reflector)" bash -c "within 30 established n1 1 && within 10 established n2 1 || { show_bgp n1; tail -n 5 $WORK/gobgpd2.log; exit 1; }"
check "gobgp  reflected blocks installed; ICMP v4 pod A -> pod B" bash -c "within 10 routes_at_least n1 1 && ip netns exec ${P}a ping -c 3 -i 0.2 -W 2 10.244.2.2"
check "gobgp  ICMP v6 pod B -> pod A"                              bash -c "within 10 routes_at_least n2 2 && ip netns exec ${P}b ping -6 -c 3 -i 0.2 -W 2 fd10::1:2"
check "gobgp  reflected route read back: next hop node B kept, VXLAN; traffic arrives wrapped" \
    kept n1 10.244.2.0/26 10.98.0.12 10.98.0.2 ${P}a 10.244.2.2 n2
stop_node n1; stop_node n2

fi

if want vrr; then
# ---------------------------------------------------------------- vrouterd as route reflector
# n1 reflects for clients n2 and n3 (no mesh): pods B and C talk over reflected routes.
export CLUSTER="n1 n2 n3"
start_node n1 '[bgp]
mesh = false
cluster_id = "10.98.0.1"
[[bgp.peers]]
address = "10.98.0.2"
rr_client = true
hold_time = 9
[[bgp.peers]]
address = "10.98.0.3"
rr_client = true
hold_time = 9'
CLIENT='[bgp]
mesh = false
[[bgp.peers]]
address = "10.98.0.1"
hold_time = 9'
start_node n2 "$CLIENT"
start_node n3 "$CLIENT"
check "vrr    n1 reflects: n2 and n3 learn each other's blocks from it" bash -c "within 30 established n1 2 && within 10 routes_at_least n2 4 && within 10 routes_at_least n3 4 || { show_bgp n2; exit 1; }"
check "vrr    ICMP v4 pod B -> pod C over reflected routes"           bash -c "within 10 ping4 ${P}b 10.244.3.2"
check "vrr    ICMP v6 pod C -> pod B"                                 ping6 ${P}c fd10::2:2
check "vrr    reflected route read back: next hop node C kept, VXLAN; traffic arrives wrapped" \
    kept n2 10.244.3.0/26 10.98.0.1 10.98.0.3 ${P}b 10.244.3.2 n3
stop_node n1; stop_node n2; stop_node n3
export CLUSTER="n1 n2"
fi

logs() { echo "logs:"; tail -n 5 "$WORK/n1.log" "$WORK/n2.log" || true; }
finish bgp logs
