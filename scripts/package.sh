#!/usr/bin/env bash
# The Debian package: vrouterd, vrouterctl, vrouter-cni (and vrouter-ipam, a link to it)
# in /usr/lib/cni, the systemd unit, /etc/vrouter/vrouter.toml as a conffile, man pages
# and bash / zsh completions made by the binaries from their own clap definitions.
# Prints the .deb's path on its last line (release: a vrouter-dbgsym .ddeb beside it).
#
#   scripts/package.sh [--profile release|dev|NAME] [--no-build]
#
# release (the default) is what to ship. The test (tests/e2e/package.sh) packages the
# dev build the suite has already made (--profile dev --no-build): same files, no ~6 min
# release build. Needs cargo-deb (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release build=1
while (($#)); do
    case $1 in
        --profile) profile=${2:?--profile needs a name}; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "package.sh: unknown argument $1 (see the script's header)" >&2; exit 2 ;;
    esac
done
command -v cargo-deb >/dev/null || { echo "package.sh: cargo-deb is missing (run scripts/setup.sh)" >&2; exit 1; }

target=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/$([[ $profile == dev ]] && echo debug || echo "$profile")
if ((build)); then
    cargo build --locked --profile "$profile" -p vrouter -p control -p cni --bins >&2
fi
for b in vrouterd vrouterctl vrouter-cni; do
    [[ -x $bin/$b ]] || { echo "package.sh: $bin/$b is not built (drop --no-build)" >&2; exit 1; }
done

# Man pages and completions, from the binaries about to be packaged (never stale ones).
assets=$bin/package-assets
rm -rf "$assets"
mkdir -p "$assets"/{man1,man8,bash,zsh}
"$bin/vrouterctl" generate-man "$assets/man1" >&2
"$bin/vrouterd" --generate-man "$assets/man8" >&2
gzip -9n "$assets"/man1/* "$assets"/man8/*
"$bin/vrouterctl" completion bash >"$assets/bash/vrouterctl"
"$bin/vrouterctl" completion zsh >"$assets/zsh/_vrouterctl"
"$bin/vrouterd" --completion bash >"$assets/bash/vrouterd"
"$bin/vrouterd" --completion zsh >"$assets/zsh/_vrouterd"
# vrouter-cni is also the IPAM plugin when run as vrouter-ipam (it reads its argv[0]).
ln -s vrouter-cni "$assets/vrouter-ipam"

out=$target/debian/$profile
mkdir -p "$out"
rm -f "$out"/vrouter_*.deb "$out"/vrouter-dbgsym_*.ddeb
# A test package is compressed lightly (10 s instead of 65 s for xz's default, 20% larger;
# docs/decisions.md, "The Debian package"), with no debug symbols package.
fast=()
[[ $profile == release ]] || fast=(--fast --no-dbgsym)
cargo deb -p vrouter --no-build --profile "$profile" --output "$out" "${fast[@]}" >&2
debs=("$out"/vrouter_*.deb)
[[ -f ${debs[0]} && ${#debs[@]} -eq 1 ]] || { echo "package.sh: expected one .deb in $out, found: ${debs[*]}" >&2; exit 1; }
echo "${debs[0]}"
