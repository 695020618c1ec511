#!/usr/bin/env bash
# Run every test of the workspace: installs missing Debian packages first (as root),
# then unit, property, stress, fixture, benchmark-smoke and namespace end-to-end tests.
# Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step is announced with the seconds since the start: where CI's time goes (the
# whole suite should stay under ~45 minutes on a fresh machine).
trap 'echo "test.sh: [$SECONDS s] $BASH_COMMAND"' DEBUG
scripts/setup.sh
# The tree's structure: no import circle among any crate's modules, no file over 800
# lines of non-test code (and the checker's own self-test).
python3 scripts/check-structure.py --self-test
python3 scripts/check-structure.py
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
# Fuzzing (issue 19): the seed corpus and every crash found were replayed by `cargo test`
# (fuzz/tests/replay.rs); now each target runs under AFL++ for 20 s. Fails on a crash, or
# on a target whose fuzzer did not run (no stats, no executions).
scripts/fuzz.sh --all --seconds 20
# End to end in network namespaces (root): pods, tap, uplink host, kill -9.
tests/e2e/dataplane.sh
WORKERS=2 tests/e2e/dataplane.sh
# NAT outgoing: pods reach an "internet" host with no route to them (ICMP, UDP, TCP both
# ways, PMTU through a 1400 hop), a non-NAT pool does not, no translation between pods or
# toward other nodes (tshark), the node's own service, connections and BGP session keep
# working, 10,000 flows; with two workers, replies cross workers.
tests/e2e/nat.sh
WORKERS=2 tests/e2e/nat.sh
# Two vrouterd nodes and a kernel VXLAN (Calico-style) node: VXLAN, IPIP, tshark checks.
tests/e2e/overlay.sh
# The BGP speaker: two vrouterd nodes in a mesh, with BIRD, FRR and GoBGP from Debian.
tests/e2e/bgp.sh
tests/e2e/bgpbench-smoke.sh
# fwdbench --quick on l3, fullfib, nat and policy: every forwarder's figures produced (not a
# speed check).
tests/e2e/fwdbench-smoke.sh
# pktgen send / sink between two namespaces: AF_XDP (paced, stamped), XDP live frames,
# IPv6, refused options.
tests/e2e/pktgen-smoke.sh
# The systemd unit (systemd-analyze verify) and the notify / watchdog protocol.
tests/e2e/systemd.sh
# The Debian package of the dev build: contents, conffile, dpkg -i, vrouterd --check on the
# shipped config, systemd-analyze verify on the installed unit, man pages, completions,
# dpkg -r / -P leave nothing.
tests/e2e/package.sh
# The gRPC API through vrouterctl: endpoints, IPAM, pools, peers, watch, metrics, restart.
tests/e2e/api.sh
# The cluster datastore: a 3-member etcd, six vrouterd nodes with no [[nodes]], shared
# IPAM, a member killed, all members stopped and back.
tests/e2e/cluster.sh
# Network policy: 2 nodes on etcd, 3 namespaces x 3 pods, the reachability matrix
# (TCP 80/81, UDP 80, ICMP) per case against the expected one, revocation of a live
# stream within 1 s, a datastore policy, bad input, 100,000 rules.
tests/e2e/policy.sh
WORKERS=2 tests/e2e/policy.sh
# vrouter-cni run as libcni runs it: every command and version, pods ping, DEL idempotent,
# bad input, vrouterd away and restarted, 20 ADDs at once.
tests/e2e/cni.sh
# cnibench on 10 pods: our plugin and the reference bridge + host-local (figures only).
tests/e2e/cnibench-smoke.sh
# Debian's podman (CNI backend) runs vrouter-cni on two vrouterd nodes: containers get
# addresses, ping and TCP on one node and across (VXLAN), to and from their node; rm
# releases; 20 at once; vrouterd killed and restarted under running containers.
tests/e2e/podman.sh
# clusterbench on 3 nodes: join, shared-IPAM allocation, an etcd member down (figures only).
tests/e2e/clusterbench-smoke.sh
# Chaos under traffic (issue 19): 3 nodes on etcd with a BIRD reflector, sequence-numbered
# UDP probes and iperf3 between pods; SIGHUP, endpoint churn, an etcd member, BIRD killed,
# an uplink flapped, vrouterd kill -9 (peers keep its routes), restarts: loss per event.
tests/e2e/chaos.sh
# chaosbench --quick (reload, restart outage) and a 2-minute soak (RSS / fd slopes, the
# counters' balance): figures present, not a speed check.
tests/e2e/chaosbench-smoke.sh
echo "test.sh: all tests passed"
