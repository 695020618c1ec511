#!/usr/bin/env bash
# Run every test of the workspace: installs missing Debian packages first (as root),
# then unit, property, stress, fixture and benchmark-smoke tests. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
echo "test.sh: all tests passed"
