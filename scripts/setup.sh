#!/usr/bin/env bash
# Install what the tests (and, with --bench, the benchmarks) need. Idempotent; as root.
# Only packages that are missing are installed, so a ready machine does no network I/O.
set -euo pipefail

# Debian packages the test suite needs (openssl: the API's test certificates): clang, libelf-dev, m4, zlib for xsk-rs (use_cc_build)
# and our XDP program; iperf3, socat, scapy, tshark for the namespace tests.
# bird2, frr, gobgpd: real BGP peers of the control-plane tests (started by the tests
# themselves in namespaces, never as services); systemd for `systemd-analyze verify`.
# etcd-server / etcd-client: the cluster datastore tests start their own 3-member
# cluster on loopback; protobuf-compiler: the etcd-client crate compiles etcd's .proto
# with protoc at build time.
# podman, containernetworking-plugins, runc, busybox-static: the real container runtime
# of the CNI test (podman's CNI backend runs vrouter-cni; a busybox image is imported
# from a rootfs, no registry needed). nftables, conntrack: the kernel NAT baseline of
# `fwdbench --scenario nat` (masquerade) and its smoke test.
# dpkg-dev, man-db, zsh: the Debian package's test (tests/e2e/package.sh) builds the
# .deb (cargo-deb reads dpkg-shlibdeps' data), renders its man pages and checks its zsh
# completion.
# afl++: AFL++'s tools beside the fuzzer cargo-afl builds (afl-tmin, afl-whatsup, afl-plot)
# for the fuzz targets (fuzz/, scripts/fuzz.sh).
# dpdk-testpmd (fwdbench's DPDK reference) is in dpdk-dev in Debian 12's current dpdk
# packages (22.11.11), not in dpdk.
TEST_PKGS=(iproute2 dpkg-dev man-db zsh iputils-ping python3-prometheus-client util-linux dpdk dpdk-dev librte-net-af-xdp23 pkg-config clang libelf-dev m4 zlib1g-dev iperf3 ethtool socat python3-scapy tcpdump tshark bird2 frr gobgpd systemd etcd-server etcd-client protobuf-compiler podman containernetworking-plugins runc busybox-static nftables conntrack openssl afl++)
# Extra packages for benchmarking (`--bench`): valgrind (callgrind / cachegrind instruction,
# miss and branch-misprediction counts per lookup and per packet: these VMs have no perf
# counters). scripts/real-tables.sh uses the machine's npm (Node.js is on every machine).
# `fibbench --compare-dpdk` needs nothing beyond the tests' (dpdk-test lives in dpdk-dev).
BENCH_PKGS=(valgrind)

want=("${TEST_PKGS[@]}")
if [[ "${1:-}" == "--bench" ]]; then
    want+=("${BENCH_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts an etcd service on install: the tests run their own members.
    if [[ " ${missing[*]} " == *" etcd-server "* ]]; then
        systemctl disable --now etcd >/dev/null 2>&1 || pkill -x etcd || true
    fi
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (the machine's Rust toolchain is required)" >&2; exit 1; }

# The fuzz targets (fuzz/, issue 19): cargo-afl from crates.io, and the AFL++ it builds
# for this toolchain (its runtime and afl-fuzz; `cargo afl config --build` once).
if ! command -v cargo-afl >/dev/null; then
    echo "setup: installing cargo-afl"
    cargo install cargo-afl --locked --quiet
fi
afl_rt=("${XDG_DATA_HOME:-$HOME/.local/share}"/afl.rs/rustc-"$(rustc -V | awk '{print $2}')"-*/afl.rs-*/afl-llvm/afl-compiler-rt.o)
if [[ ! -f "${afl_rt[0]}" ]]; then
    echo "setup: building AFL++ for cargo-afl"
    cargo afl config --build >/dev/null
fi

# The Debian package (scripts/package.sh): cargo-deb from crates.io, at a known version
# (it warns that packaging the dev profile, as the test does, may become an error).
CARGO_DEB_VERSION=3.8.0
if [[ $(cargo-deb --version 2>/dev/null) != *" $CARGO_DEB_VERSION" ]]; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
