#!/usr/bin/env bash
# End to end, overlay: vrouterd nodes, a kernel VXLAN node configured as Calico configures
# one (vxlan.calico: VNI 4096, static neighbour + FDB, onlink route) and a userspace IPIP
# node share an underlay bridge; a third vrouterd node sits in another subnet behind a
# router. Pods exchange ICMP (IPv4, IPv6) and TCP with the pools in VXLAN Always, IPIP
# Always, Never and CrossSubnet modes; path MTU through the tunnels; captures on the
# underlay are checked with tshark (VNI, UDP port, protocol 4, good checksums, plain vs
# tunnelled). Needs root; fails loudly.
set -uo pipefail
cd "$(dirname "$0")/../.."
VROUTERD=${VROUTERD:-target/debug/vrouterd}
P=${P:-vro$$}
die() { echo "overlay: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for c in ip ping iperf3 ethtool tshark tcpdump python3; do
    command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"
done
[[ -x $VROUTERD ]] || die "$VROUTERD not built"

WORK=$(mktemp -d)
. tests/e2e/lib.sh
strict overlay
PIDS=()
cleanup() {
    unstrict
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in hub hub2 r r2 n1 n2 n3 a b c k kp i; do
        ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$P$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
vtep() { python3 -c "import hashlib,sys; h=hashlib.sha1(sys.argv[1].encode()).digest(); print(':'.join('%02x'%b for b in [0x66]+list(h[:5])))" "$1"; }

# --- underlay: a bridge in ns hub; node n1 .1, node n2 .2, kernel node k .20
hub
underlay ${P}n1 10.98.0.1 fd98::1
underlay ${P}n2 10.98.0.2 fd98::2
underlay ${P}k 10.98.0.20 fd98::20
underlay ${P}i 10.98.0.30 fd98::30

pod ${P}a ${P}n1 ${P}a0 10.244.1.2 fd10::1:2
pod ${P}b ${P}n2 ${P}b0 10.244.2.2 fd10::2:2
# A second subnet behind a router, for CrossSubnet: node n3 (10.97.0.3) with pod C.
ip netns add ${P}hub2
nsx ${P}hub2 ip link add br0 type bridge
nsx ${P}hub2 ip link set br0 up
ip netns add ${P}r
nsx ${P}r ip link set lo up
ip link add r0 netns ${P}r type veth peer name "p-r0" netns ${P}hub
ip link add r1 netns ${P}r type veth peer name "p-r1" netns ${P}hub2
nsx ${P}hub ip link set p-r0 master br0 up
nsx ${P}hub2 ip link set p-r1 master br0 up
nsx ${P}r ip addr add 10.98.0.254/24 dev r0
nsx ${P}r ip addr add 10.97.0.254/24 dev r1
nsx ${P}r ip -6 addr add fd98::fe/64 dev r0 nodad
nsx ${P}r ip -6 addr add fd97::fe/64 dev r1 nodad
nsx ${P}r ip link set r0 up
nsx ${P}r ip link set r1 up
nsx ${P}r sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# A second router between the same subnets, for ECMP.
ip netns add ${P}r2
ip link add r0 netns ${P}r2 type veth peer name "p-r2a" netns ${P}hub
ip link add r1 netns ${P}r2 type veth peer name "p-r2b" netns ${P}hub2
nsx ${P}hub ip link set p-r2a master br0 up
nsx ${P}hub2 ip link set p-r2b master br0 up
nsx ${P}r2 ip addr add 10.98.0.253/24 dev r0
nsx ${P}r2 ip addr add 10.97.0.253/24 dev r1
nsx ${P}r2 ip link set r0 up
nsx ${P}r2 ip link set r1 up
nsx ${P}r2 sysctl -qw net.ipv4.ip_forward=1
ip netns add ${P}n3
nsx ${P}n3 ip link set lo up
ip link add up0 netns ${P}n3 type veth peer name "p-n3" netns ${P}hub2
nsx ${P}hub2 ip link set p-n3 master br0 up
nsx ${P}n3 ip link set up0 up
nsx ${P}n3 ip addr add 10.97.0.3/24 dev up0
nsx ${P}n3 ip -6 addr add fd97::3/64 dev up0 nodad
off ${P}n3 up0
pod ${P}c ${P}n3 ${P}c0 10.244.3.2 fd10::3:2

# --- the kernel VXLAN node, as Calico's felix programs one (see shared recipes/kvxlan.sh)
K=${P}k
nsx $K sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
nsx $K ip link add vxlan.calico type vxlan id 4096 local 10.98.0.20 dev up0 dstport 4789 nolearning
nsx $K ip link set vxlan.calico address 66:00:00:00:00:20 mtu 1450 up
off $K vxlan.calico
nsx $K ip addr add 10.244.20.0/32 dev vxlan.calico
kernel_peer() { # node-name underlay-ip tunnel-ip block
    local mac; mac=$(vtep "$1")
    nsx $K ip neigh add "$3" lladdr "$mac" dev vxlan.calico nud permanent
    nsx $K bridge fdb add "$mac" dev vxlan.calico dst "$2"
    nsx $K ip route add "$4" via "$3" dev vxlan.calico onlink
}
kernel_peer node-a 10.98.0.1 10.244.1.0 10.244.1.0/26
kernel_peer node-b 10.98.0.2 10.244.2.0 10.244.2.0/26
ip netns add ${P}kp
nsx ${P}kp ip link set lo up
ip link add kpod netns ${P}kp type veth peer name kpodh netns $K
nsx $K ip link set kpodh up
nsx $K sysctl -qw net.ipv4.conf.kpodh.proxy_arp=1 net.ipv4.conf.kpodh.rp_filter=0 net.ipv4.neigh.kpodh.proxy_delay=0
nsx $K ip route add 169.254.1.1/32 dev lo
nsx $K ip route add 10.244.20.2/32 dev kpodh scope link
nsx ${P}kp ip link set kpod up
nsx ${P}kp ip addr add 10.244.20.2/32 dev kpod
nsx ${P}kp ip route add 169.254.1.1 dev kpod scope link
nsx ${P}kp ip route add default via 169.254.1.1 dev kpod
off ${P}kp kpod
off $K kpodh

config() { # file node-name node-ip4 node-ip6 core pod-if pod-ip4 pod-ip6 mode other-name other-ip4 other-ip6 other-block4 other-block6
    local v6mode=${V6MODE:-'vxlan_mode = "Always"'}
    cat >"$1" <<CFG
node_name = "$2"
state_dir = "$WORK/state-$2"
api = { socket = "$WORK/api-$2.sock" }
node_ips = ["$3/24", "$4/64"]
[[uplinks]]
name = "up0"
[[pools]]
cidr = "10.244.0.0/16"
${9}
[[pools]]
cidr = "fd10::/48"
${v6mode}
[workers]
cores = [$5]
[[endpoints]]
name = "pod"
kind = "veth"
interface = "$6"
ips = ["$7/32", "$8/128"]
[[nodes]]
name = "${10}"
ips = ["${11}/24", "${12}/64"]
[[nodes]]
name = "kernel"
ips = ["10.98.0.20/24"]
vtep_mac = "66:00:00:00:00:20"
[[routes]]
dst = "${13}"
node = "${10}"
[[routes]]
dst = "${14}"
node = "${10}"
[[routes]]
dst = "10.244.20.0/26"
node = "kernel"
[[nodes]]
name = "ipip-peer"
ips = ["10.98.0.30/24"]
[[routes]]
dst = "10.244.30.0/26"
node = "ipip-peer"
${EXTRA:-}
CFG
}

start() { # mode: vxlan | ipip | never | crosssubnet
    local line nodes="n1 n2"
    V6MODE=""
    case $1 in
        vxlan) line='vxlan_mode = "Always"' ;;
        # Calico refuses IPv6 IPIP pools; we carry IPv6 in IPv6 (next header 41).
        ipip) line='ipip_mode = "Always"'; V6MODE='ipip_mode = "Always"' ;;
        never) line='vxlan_mode = "Never"' ;;
        crosssubnet) line='vxlan_mode = "CrossSubnet"'; nodes="n1 n2 n3" ;;
    esac
    local to_c="" to_ab=""
    if [[ $1 == crosssubnet ]]; then
        to_c=$(printf '[[nodes]]\nname = "node-c"\nips = ["10.97.0.3/24", "fd97::3/64"]\n[[routes]]\ndst = "10.244.3.0/26"\nnode = "node-c"\n[[routes]]\ndst = "fd10::3:0/122"\nnode = "node-c"\n[[routes]]\ndst = "10.97.0.0/24"\nvia = ["10.98.0.254", "10.98.0.253"]\n[[routes]]\ndst = "fd97::/64"\nvia = "fd98::fe"\n')
        to_ab=$(printf '[[nodes]]\nname = "node-b"\nips = ["10.98.0.2/24", "fd98::2/64"]\n[[routes]]\ndst = "10.244.2.0/26"\nnode = "node-b"\n[[routes]]\ndst = "fd10::2:0/122"\nnode = "node-b"\n[[routes]]\ndst = "10.98.0.0/24"\nvia = "10.97.0.254"\n[[routes]]\ndst = "fd98::/64"\nvia = "fd97::fe"\n')
    fi
    EXTRA=$to_c config "$WORK/n1.toml" node-a 10.98.0.1 fd98::1 1 ${P}a0 10.244.1.2 fd10::1:2 "$line" node-b 10.98.0.2 fd98::2 10.244.2.0/26 fd10::2:0/122
    EXTRA=$to_c config "$WORK/n2.toml" node-b 10.98.0.2 fd98::2 0 ${P}b0 10.244.2.2 fd10::2:2 "$line" node-a 10.98.0.1 fd98::1 10.244.1.0/26 fd10::1:0/122
    EXTRA=$to_ab config "$WORK/n3.toml" node-c 10.97.0.3 fd97::3 1 ${P}c0 10.244.3.2 fd10::3:2 "$line" node-a 10.98.0.1 fd98::1 10.244.1.0/26 fd10::1:0/122
    PIDS=()
    for n in $nodes; do
        rm -f "$WORK/$n.json"
        ip netns exec ${P}$n "$VROUTERD" --config "$WORK/$n.toml" --stats-file "$WORK/$n.json" >"$WORK/$n-$1.log" 2>&1 &
        PIDS+=($!)
    done
    for n in $nodes; do
        for _ in $(seq 50); do [[ -s $WORK/$n.json ]] && break; sleep 0.2; done
        [[ -s $WORK/$n.json ]] || { cat "$WORK/$n-$1.log"; die "vrouterd $n did not start ($1)"; }
    done
}
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); sleep 0.5; }

capture() { # file: capture the underlay at the hub, from node n1's port
    # Bounded in time too: a quiet phase must not leave the check waiting for packets.
    CAPFILE=$1
    nsx ${P}hub timeout 10 tcpdump -i "p-${P}n1" -w "$1" -U -c 40 >/dev/null 2>"$1.err" &
    CAP=$!
    # Traffic starts only once tcpdump listens (a capture that missed it would be empty).
    for _ in $(seq 50); do grep -q "listening on" "$1.err" && break; sleep 0.1; done
    grep -q "listening on" "$1.err" || { cat "$1.err"; die "tcpdump did not start on p-${P}n1"; }
}
# The capture ended well (its 40 packets, or its 10 s bound) and tshark reads packets
# in it: an empty or unreadable capture is no evidence of anything.
captured() {
    local rc=0 n; wait "$CAP" || rc=$?
    ((rc == 0 || rc == 124)) || { echo "tcpdump exited $rc:"; cat "$CAPFILE.err"; return 1; }
    n=$(pcount "$CAPFILE" frame) || return 1
    echo "capture ${CAPFILE##*/}: $n packets"
    ((n > 0))
}
pcount() { # pcap display-filter: how many packets match; fails when tshark cannot read it
    local out
    out=$(tshark -r "$1" -Y "$2" -T fields -e frame.number 2>"$WORK/tshark.err") ||
        { echo "tshark -r $1 -Y '$2' failed:" >&2; cat "$WORK/tshark.err" >&2; return 1; }
    grep -c . <<<"$out" || true
}
fields() { # pcap tshark-args...: tshark's field rows into $WORK/t.txt (first lines shown); fails when tshark does
    local f=$1; shift
    tshark -r "$f" "$@" >"$WORK/t.txt" 2>"$WORK/tshark.err" || { cat "$WORK/tshark.err"; return 1; }
    head -5 "$WORK/t.txt"
}
tshark_vxlan() {
    captured || return 1
    fields "$WORK/vxlan.pcap" -o ip.check_checksum:TRUE -Y vxlan -T fields \
        -e udp.dstport -e vxlan.vni -e ip.checksum.status -e ip.src -e ip.dst || return 1
    # Every VXLAN packet to UDP 4789 with VNI 4096; no IPv4 checksum bad (0), and the
    # IPv4-outer packets verified good (1) outside and in: checked, not just not-bad.
    [[ -s $WORK/t.txt ]] && ! grep -qv "^4789	4096	" "$WORK/t.txt" && ! grep -qE "	0,|,0	" "$WORK/t.txt" &&
        grep -qE "^4789	4096	1,1	" "$WORK/t.txt"
}
tshark_ipip() {
    captured || return 1
    fields "$WORK/ipip.pcap" -o ip.check_checksum:TRUE -Y "ip.proto == 4" -T fields \
        -e ip.proto -e ip.checksum.status -e ip.src -e ip.dst || return 1
    # Outer and inner headers: protocol 4 outside, checksum good (1) on both, on every row.
    [[ -s $WORK/t.txt ]] && grep -q "^4," "$WORK/t.txt" && ! grep -qvE "^[0-9]+,[0-9]+	1,1	" "$WORK/t.txt"
}

start vxlan
capture "$WORK/vxlan.pcap"
check "VXLAN  ICMP v4 pod A (node-a) -> pod B (node-b)"  ping4 ${P}a 10.244.2.2
check "VXLAN  ICMP v4 pod B -> pod A"                    ping4 ${P}b 10.244.1.2
check "VXLAN  ICMP v6 pod A -> pod B (VXLAN over IPv6)"  ping6 ${P}a fd10::2:2
check "VXLAN  tshark: UDP 4789, VNI 4096, good outer checksums" tshark_vxlan
frag_needed() { # pod dst mtu
    local out; out=$(nsx "$1" ping -c 1 -W 2 -s 1472 -M do "$2"); echo "$out"
    grep -q "Frag needed and DF set (mtu = $3)" <<<"$out"
}
frag_tunnel() { # pod dst stats: 1500-byte packets without DF cross, node counts fragments
    nsx "$1" ping -c 2 -i 0.2 -W 2 -s 1472 -M dont "$2" || return 1
    sleep 1.2
    local n; n=$(jnum "$3" 'd["fragmented"]') || return 1
    echo "fragmented: $n"; ((n >= 2))
}
check "VXLAN  1500-byte packets without DF: fragmented, then each piece wrapped" frag_tunnel ${P}b 10.244.1.2 "$WORK/n2.json"
check "VXLAN  PMTU: 1500-byte DF packet gets frag-needed, mtu 1450" frag_needed ${P}a 10.244.2.2 1450
check "VXLAN  TCP pod A -> pod B (iperf3, 1500-byte pods: PMTU discovery)" tcp ${P}b ${P}a 10.244.2.2
check "kernel VXLAN node: ICMP pod A -> its pod"         ping4 ${P}a 10.244.20.2
check "kernel VXLAN node: ICMP its pod -> pod B"         ping4 ${P}kp 10.244.2.2
check "kernel VXLAN node: TCP its pod -> pod A"          tcp ${P}a ${P}kp 10.244.1.2
check "kernel VXLAN node: TCP pod B -> its pod"          tcp ${P}kp ${P}b 10.244.20.2
stop

start ipip
# The userspace IPIP node (no ipip module here): tunnel address 10.244.30.0 on its TUN.
nsx ${P}i python3 tests/e2e/ipip_peer.py tunl0 10.98.0.30 10.98.0.1 120 >"$WORK/ipip-peer.log" 2>&1 &
PEER=$!
for _ in $(seq 50); do grep -q ready "$WORK/ipip-peer.log" && break; sleep 0.1; done
nsx ${P}i ip link set tunl0 mtu 1480 up
nsx ${P}i ip addr add 10.244.30.0/32 dev tunl0
nsx ${P}i ip route add 10.244.1.0/26 dev tunl0
capture "$WORK/ipip.pcap"
check "IPIP   ICMP v4 pod A -> pod B"                    ping4 ${P}a 10.244.2.2
check "IPIP   ICMP v4 pod B -> pod A"                    ping4 ${P}b 10.244.1.2
check "IPIP   tshark: protocol 4, good outer and inner checksums" tshark_ipip
check "IPIP   PMTU: 1500-byte DF packet gets frag-needed, mtu 1480" frag_needed ${P}b 10.244.1.2 1480
check "IPIP   TCP pod B -> pod A (iperf3)"               tcp ${P}a ${P}b 10.244.1.2
tshark_ipip6() {
    captured || return 1
    fields "$WORK/ipip6.pcap" -Y "ipv6.nxt == 41 and icmpv6.type == 128" -T fields \
        -e ipv6.src -e ipv6.dst || return 1
    # Outer then inner addresses: node B -> node A around pod B -> pod A.
    grep -q "^fd98::2,fd10::2:2	fd98::1,fd10::1:2$" "$WORK/t.txt"
}
capture "$WORK/ipip6.pcap"
check "IPIP   ICMP v6 pod B -> pod A (IPv6 in IPv6)"      ping6 ${P}b fd10::1:2
check "IPIP   ICMP v6 pod A -> pod B"                    ping6 ${P}a fd10::2:2
check "IPIP   tshark: IPv6 outer header, next header 41, inner echo request" tshark_ipip6
check "IPIP   userspace IPIP node (TUN + raw socket): pod A <-> its tunnel address" ping4 ${P}a 10.244.30.0
kill $PEER 2>/dev/null || true
stop

start never
capture "$WORK/never.pcap"
check "Never  ICMP v4 pod A -> pod B (plain routing)"    ping4 ${P}a 10.244.2.2
check "Never  ICMP v6 pod B -> pod A"                    ping6 ${P}b fd10::1:2
check "Never  TCP pod A -> pod B (iperf3)"               tcp ${P}b ${P}a 10.244.2.2
# The IPv6 pool stays VXLAN Always: only IPv4-underlay tunnel packets would be wrong.
# Positive twins in the same capture: pod A's echo requests to pod B, plain, and the
# IPv6 pool's VXLAN (over IPv6) packets, which show tshark finds VXLAN in this capture.
no_tunnel() {
    captured || return 1
    local plain vx6 n
    plain=$(pcount "$WORK/never.pcap" "icmp.type == 8 and ip.src == 10.244.1.2 and ip.dst == 10.244.2.2 and not vxlan") || return 1
    vx6=$(pcount "$WORK/never.pcap" "vxlan and ipv6.src == fd98::2 and ipv6.dst == fd98::1") || return 1
    n=$(pcount "$WORK/never.pcap" "(vxlan or ip.proto == 4) and not ipv6") || return 1
    echo "plain echo requests pod A -> pod B: $plain, IPv6-underlay VXLAN: $vx6, IPv4 tunnel packets: $n"
    ((plain >= 3 && vx6 >= 3 && n == 0))
}
check "Never  tshark: pod A -> pod B plain, no IPv4 tunnel packets on the underlay" no_tunnel
stop

start crosssubnet
capture "$WORK/cross.pcap"
check "CrossSubnet  ICMP v4 pod A -> pod B (same subnet: plain)"   ping4 ${P}a 10.244.2.2
check "CrossSubnet  ICMP v4 pod A -> pod C (other subnet: VXLAN)"  ping4 ${P}a 10.244.3.2
check "CrossSubnet  ICMP v6 pod C -> pod B (other subnet: VXLAN)"  ping6 ${P}c fd10::2:2
check "CrossSubnet  TCP pod C -> pod A (iperf3)"                   tcp ${P}a ${P}c 10.244.1.2
cross_shape() {
    captured || return 1
    local plain vx
    plain=$(pcount "$WORK/cross.pcap" "icmp and not vxlan and ip.dst == 10.244.2.2") || return 1
    vx=$(pcount "$WORK/cross.pcap" "vxlan and ip.dst == 10.97.0.3") || return 1
    echo "plain to pod B: $plain, VXLAN to node-c: $vx"
    ((plain > 0 && vx > 0))
}
check "CrossSubnet  tshark: plain within the subnet, VXLAN across" cross_shape
rx() { nsx "$1" cat /sys/class/net/r0/statistics/rx_packets; }
ecmp_spread() { # 2000 UDP flows from pod A to node-c's address, over two routers
    local a0 b0 a1 b1
    a0=$(rx ${P}r); b0=$(rx ${P}r2)
    nsx ${P}a python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(20000, 22000):
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.bind(("10.244.1.2", port))
    t.sendto(b"ecmp", ("10.97.0.3", 9))
    t.close()
'
    sleep 0.5
    a1=$(rx ${P}r); b1=$(rx ${P}r2)
    local da=$((a1 - a0)) db=$((b1 - b0))
    echo "router 1: $da packets, router 2: $db packets (of 2000 flows)"
    ((da >= 800 && da <= 1200 && db >= 800 && db <= 1200))
}
check "ECMP   2000 flows over two routers, each within ±20%" ecmp_spread
stop

logs() { for f in "$WORK"/*.log; do echo "== $f"; tail -n 5 "$f"; done; }
finish overlay logs
