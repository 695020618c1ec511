#!/usr/bin/env bash
# A one-node namespace topology for the demo and the end-to-end tests (sourced).
#
#   ns ${P}h "host behind the uplink"  eth0 10.99.0.254/24 fd99::fe/64
#        │ veth
#   ns ${P}n "the node" (vrouterd runs here)  up0 10.99.0.1/24 fd99::1/64
#        ├─ ${P}a0 ══ ns ${P}a pod A eth0 10.244.1.2 fd10::2   (veth)
#        ├─ ${P}b0 ══ ns ${P}b pod B eth0 10.244.1.3 fd10::3   (veth)
#        └─ ${P}c0 ══ ns ${P}c pod C 10.244.1.4 fd10::4        (tap, moved into ${P}c
#                                                  after vrouterd attached to it)
# Pods use Calico's gateways: 169.254.1.1 and fe80::ecee:eeff:feee:eeee, host side
# ee:ee:ee:ee:ee:ee. Checksum and segmentation offloads are off on interfaces whose
# frames cross AF_XDP (copy mode carries frames as bytes: a partial checksum or a 64 KB
# TSO frame would arrive broken or be dropped).
# Everything is in namespaces named with the prefix $P: nothing touches the root ns.

P=${P:-vr$$}
NODE=${P}n
# WORKERS=2: two vrouterd workers on cores 0 and 1, the uplink with one queue each.
WORKERS=${WORKERS:-1}
# UPLINK_MTU=1400: a smaller uplink than pods (fragmentation, frag-needed, PMTUD).
UPLINK_MTU=${UPLINK_MTU:-1500}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

offloads_off() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

pod_ns() { # name ip4 ip6
    local ns=${P}$1
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
}

pod_addrs() { # ns ifname ip4 ip6
    local ns=$1 ifc=$2
    nsx "$ns" ip link set "$ifc" up
    nsx "$ns" ip addr add "$3/32" dev "$ifc"
    nsx "$ns" ip -6 addr add "$4/128" dev "$ifc" nodad
    nsx "$ns" ip route add 169.254.1.1 dev "$ifc" scope link
    nsx "$ns" ip route add default via 169.254.1.1 dev "$ifc"
    nsx "$ns" ip -6 route add default via fe80::ecee:eeff:feee:eeee dev "$ifc"
    offloads_off "$ns" "$ifc"
}

veth_pod() { # letter ip4 ip6
    local l=$1 ns=${P}$1
    pod_ns "$l"
    ip link add "${P}${l}0" netns "$NODE" type veth peer name eth0 netns "$ns"
    nsx "$NODE" ip link set "${P}${l}0" address ee:ee:ee:ee:ee:ee up
    offloads_off "$NODE" "${P}${l}0"
    pod_addrs "$ns" eth0 "$2" "$3"
}

topology_up() {
    ip netns add "$NODE"
    ip netns add "${P}h"
    nsx "$NODE" ip link set lo up
    nsx "${P}h" ip link set lo up
    ip link add up0 netns "$NODE" numrxqueues "$WORKERS" numtxqueues "$WORKERS" type veth \
        peer name eth0 netns "${P}h" numrxqueues "$WORKERS" numtxqueues "$WORKERS"
    nsx "$NODE" ip link set up0 mtu "$UPLINK_MTU" up
    nsx "$NODE" ip addr add 10.99.0.1/24 dev up0
    nsx "$NODE" ip -6 addr add fd99::1/64 dev up0 nodad
    nsx "${P}h" ip link set eth0 mtu "$UPLINK_MTU" up
    nsx "${P}h" ip addr add 10.99.0.254/24 dev eth0
    nsx "${P}h" ip -6 addr add fd99::fe/64 dev eth0 nodad
    nsx "${P}h" ip route add 10.244.0.0/16 via 10.99.0.1
    nsx "${P}h" ip -6 route add fd10::/48 via fd99::1
    offloads_off "$NODE" up0
    offloads_off "${P}h" eth0
    veth_pod a 10.244.1.2 fd10::2
    veth_pod b 10.244.1.3 fd10::3
    pod_ns c
    nsx "$NODE" ip tuntap add dev "${P}c0" mode tap
    nsx "$NODE" ip link set "${P}c0" up
}

# After vrouterd attached to the tap: move it into pod C and configure it there.
tap_pod_up() {
    nsx "$NODE" ip link set "${P}c0" netns "${P}c"
    pod_addrs "${P}c" "${P}c0" 10.244.1.4 fd10::4
}

write_config() { # file [poll_mode]
    cat >"$1" <<CFG
node_name = "${P}-node"
state_dir = "${1%/*}/state"
api = { socket = "${1%/*}/api.sock" }
node_ips = ["10.99.0.1/24", "fd99::1/64"]
[[uplinks]]
name = "up0"
queues = [$(seq -s, 0 $((WORKERS - 1)))]
[[pools]]
cidr = "10.244.0.0/16"
[[pools]]
cidr = "fd10::/48"
[workers]
count = $WORKERS
cores = [$( ((WORKERS == 1)) && echo "${CORE:-1}" || seq -s, 0 $((WORKERS - 1)))]
poll_mode = "${2:-adaptive}"
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
kind = "tap"
interface = "${P}c0"
ips = ["10.244.1.4/32", "fd10::4/128"]
[[routes]]
dst = "0.0.0.0/0"
via = "10.99.0.254"
[[routes]]
dst = "::/0"
via = "fd99::fe"
CFG
}

topology_down() {
    for ns in "$NODE" "${P}h" "${P}a" "${P}b" "${P}c"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
