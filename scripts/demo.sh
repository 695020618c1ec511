#!/usr/bin/env bash
# The demo. Today: the FIB on a full-size IPv4 and IPv6 table, beside DPDK when installed.
# It grows with the dataplane: a namespace topology, vrouterd, traffic, `vrouterctl node status`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
cargo build --release --locked -q -p bench
echo "== IPv4: 1,076,806 prefixes (DPDK's distribution), with rte_lpm / rte_fib beside =="
./target/release/fibbench --family v4 --compare-dpdk
echo
echo "== IPv6: 200,000 prefixes =="
./target/release/fibbench --family v6
