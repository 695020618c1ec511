# Shared by the multi-node namespace tests (overlay.sh, bgp.sh); sourced after P (the
# namespace prefix) and WORK (a scratch directory) are set. A hub namespace with a
# bridge stands for the underlay; nodes and pods hang off it as Calico wires them.

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# AF_XDP in copy mode carries frames as bytes: no partial checksums or TSO frames.
off() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

failures=0
check() { # name command...: PASS / FAIL with the command's last output lines
    local name=$1; shift
    if "$@" >"$WORK/out" 2>&1; then echo "PASS  $name"; else
        echo "FAIL  $name"; sed 's/^/      /' "$WORK/out" | tail -15; failures=$((failures + 1)); fi
}

hub() { # the underlay bridge, in namespace ${P}hub
    ip netns add ${P}hub
    nsx ${P}hub ip link add br0 type bridge
    nsx ${P}hub ip link set br0 up
}
underlay() { # ns ip4 ip6: a node's uplink up0 on the hub's bridge
    ip netns add "$1"
    nsx "$1" ip link set lo up
    ip link add up0 netns "$1" type veth peer name "p-$1" netns ${P}hub
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

ping4() { nsx "$1" ping -c 3 -i 0.2 -W 2 "$2"; }
ping6() { nsx "$1" ping -6 -c 3 -i 0.2 -W 2 "$2"; }
tcp() { # server-ns client-ns addr: an iperf3 TCP run
    nsx "$1" iperf3 -s -1 >/dev/null 2>&1 &
    local sp=$!; sleep 0.3
    nsx "$2" iperf3 -c "$3" -t 2 | grep -E "sender|receiver"
    local rc=${PIPESTATUS[0]}; wait $sp; return $rc
}
