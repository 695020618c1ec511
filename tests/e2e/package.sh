#!/usr/bin/env bash
# The Debian package: scripts/package.sh packages the dev build (--profile dev --no-build:
# the suite has built it; a release build would cost minutes), then the .deb's contents
# and control data are checked, it is installed on this machine with dpkg -i, the
# installed files are checked (vrouterd --check on the shipped config, systemd-analyze
# verify on the installed unit, man pages rendered, bash / zsh completions loaded), the
# conffile survives an edit, a reinstall and a remove, and purge leaves nothing behind.
# Needs root; refuses to run over an installed vrouter. Purges on any exit. Fails loudly.
# PACKAGE_PROFILE=release checks the release build's package instead (built beforehand).
set -uo pipefail
cd "$(dirname "$0")/../.."
die() { echo "package: FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in cargo-deb dpkg-deb man zsh systemd-analyze; do
    command -v $tool >/dev/null || die "$tool is not installed (run scripts/setup.sh)"
done
if dpkg-query -W -f='${Status}' vrouter 2>/dev/null | grep -qv "not-installed"; then
    die "a vrouter package is already on this machine: this test installs and purges its own"
fi
for f in /usr/bin/vrouterd /usr/bin/vrouterctl /etc/vrouter/vrouter.toml; do
    [[ ! -e $f ]] || die "$f exists outside the package: it would be overwritten, then purged"
done
PROFILE=${PACKAGE_PROFILE:-dev}
BIN=target/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
WORK=$(mktemp -d)
. tests/e2e/lib.sh # strict
cleanup() {
    unstrict
    dpkg-query -W vrouter >/dev/null 2>&1 && dpkg -P vrouter >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
strict package # every setup step below must succeed, or the run stops naming it
start=$SECONDS

# 1. Build the .deb from the dev binaries (the figure the decision quotes).
t0=$SECONDS
deb=$(scripts/package.sh --profile "$PROFILE" --no-build 2>"$WORK/package.log" | tail -1) ||
    { cat "$WORK/package.log"; die "scripts/package.sh failed"; }
echo "package.sh --profile $PROFILE --no-build: $((SECONDS - t0)) s, $(stat -c %s "$deb") bytes: $deb"
version=$(dpkg-deb -f "$deb" Version)
# Path (and "-> target" for a link) of each entry: the fields after the date and time.
dpkg-deb -c "$deb" | awk '{$1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print}' | sed 's|^\./|/|' >"$WORK/contents"
dpkg-deb -I "$deb" >"$WORK/info"
dpkg-deb -e "$deb" "$WORK/control"

# 2. What the .deb holds, before anything is installed.
want=(/usr/bin/vrouterd /usr/bin/vrouterctl /usr/lib/cni/vrouter-cni
    /usr/lib/systemd/system/vrouterd.service /etc/vrouter/vrouter.toml
    /usr/share/man/man8/vrouterd.8.gz /usr/share/man/man1/vrouterctl.1.gz
    /usr/share/man/man1/vrouterctl-node-status.1.gz
    /usr/share/bash-completion/completions/vrouterctl
    /usr/share/bash-completion/completions/vrouterd
    /usr/share/zsh/vendor-completions/_vrouterctl /usr/share/zsh/vendor-completions/_vrouterd
    /usr/share/doc/vrouter/examples/vrouter.toml /usr/share/doc/vrouter/copyright)
has_all() { local f rc=0; for f in "${want[@]}"; do grep -qx "$f" "$WORK/contents" || { echo "missing: $f"; rc=1; }; done; return $rc; }
check "dpkg-deb -c: binaries, unit, config, man pages, completions (${#want[@]} paths)" has_all
check "dpkg-deb -c: /usr/lib/cni/vrouter-ipam -> vrouter-cni" grep -qx "/usr/lib/cni/vrouter-ipam -> vrouter-cni" "$WORK/contents"
# One page per vrouterctl subcommand at every depth: as many as the binary itself makes.
"$BIN/vrouterctl" generate-man "$WORK/man" >/dev/null
pages_match() {
    local made shipped
    made=$(find "$WORK/man" -name 'vrouterctl*.1' | wc -l)
    shipped=$(grep -c '^/usr/share/man/man1/vrouterctl.*\.1\.gz$' "$WORK/contents")
    echo "vrouterctl pages: $shipped shipped, $made made by generate-man"; ((made > 30 && shipped == made))
}
check "dpkg-deb -c: a man page per vrouterctl subcommand" pages_match
check "dpkg-deb -I: /etc/vrouter/vrouter.toml is a conffile" grep -qx /etc/vrouter/vrouter.toml "$WORK/control/conffiles"
depends_ok() { grep '^ Depends:' "$WORK/info" && grep -q '^ Depends:.*libc6.*libelf1.*zlib1g' "$WORK/info"; }
check "dpkg-deb -I: Depends: libc6, libelf1, zlib1g (\$auto)" depends_ok
unit_scripts_ok() { # stop on remove; enable only if the operator had (was-enabled); no start
    grep -q 'deb-systemd-invoke stop vrouterd.service' "$WORK/control/prerm" &&
        grep -B2 'deb-systemd-helper enable vrouterd.service' "$WORK/control/postinst" | grep -q 'was-enabled' &&
        ! grep -q 'deb-systemd-invoke start' "$WORK/control/postinst"
}
check "dpkg-deb -I: unit stopped on remove, never enabled or started by the package" unit_scripts_ok

# 3. Install. Directories the package adds must be gone again after purge.
grep '/$' "$WORK/contents" | sed 's|/$||' | grep . |
    while read -r d; do [[ -d $d ]] || echo "$d"; done >"$WORK/new-dirs"
dpkg -i "$deb" >"$WORK/dpkg-i.log" 2>&1 || { cat "$WORK/dpkg-i.log"; die "dpkg -i $deb"; }
dpkg -L vrouter >"$WORK/owned"
installed_ok() { dpkg-query -W -f='${Status} ${Version}\n' vrouter | tee /dev/stderr | grep -qx "install ok installed $version"; }
check "dpkg -i: vrouter $version installed" installed_ok
all_there() { local f rc=0; for f in "${want[@]}" /usr/lib/cni/vrouter-ipam; do [[ -e $f ]] || { echo "missing: $f"; rc=1; }; done; grep -c . "$WORK/owned"; return $rc; }
check "installed files present (dpkg -L lists $(grep -c . "$WORK/owned") paths)" all_there
version_ok() { /usr/bin/vrouterd --version | tee /dev/stderr | grep -q "^vrouterd ${version%-*}$"; }
check "vrouterd --version: vrouterd ${version%-*}" version_ok
check "vrouterctl --version" bash -c "/usr/bin/vrouterctl --version | grep -qx 'vrouterctl ${version%-*}'"
check_ok() { /usr/bin/vrouterd --check --config /etc/vrouter/vrouter.toml | tee /dev/stderr | grep -q '^/etc/vrouter/vrouter.toml: ok '; }
check "vrouterd --check --config /etc/vrouter/vrouter.toml" check_ok
verify_ok() { local out; out=$(systemd-analyze verify /usr/lib/systemd/system/vrouterd.service 2>&1) || { echo "$out"; return 1; }; echo "$out"; [[ -z $out ]]; }
check "systemd-analyze verify /usr/lib/systemd/system/vrouterd.service (no warning)" verify_ok
check "the installed unit starts /usr/bin/vrouterd" grep -q '^ExecStart=/usr/bin/vrouterd --config /etc/vrouter/vrouter.toml ' /usr/lib/systemd/system/vrouterd.service
check "systemctl is-enabled vrouterd: disabled (the operator enables it)" bash -c '[[ $(systemctl is-enabled vrouterd 2>&1) == disabled ]]'
cni_version() { # name: the plugin answers VERSION under this name
    CNI_COMMAND=VERSION "/usr/lib/cni/$1" </dev/null | tee /dev/stderr | python3 -c 'import json, sys; v = json.load(sys.stdin); assert "1.1.0" in v["supportedVersions"], v'
}
check "/usr/lib/cni/vrouter-cni answers CNI VERSION" cni_version vrouter-cni
check "/usr/lib/cni/vrouter-ipam (the link) answers CNI VERSION" cni_version vrouter-ipam

# 4. Documentation: every page renders without a groff warning; man finds them by name.
render_all() {
    local p n=0 out
    while read -r p; do
        out=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >"$WORK/page.txt") || { echo "$p: man failed: $out"; return 1; }
        [[ -z $out ]] || { echo "$p: $out"; return 1; }
        grep -q SYNOPSIS "$WORK/page.txt" || { echo "$p: no SYNOPSIS"; return 1; }
        n=$((n + 1))
    done < <(grep '^/usr/share/man/.*\.gz$' "$WORK/owned")
    echo "$n pages rendered"; ((n > 30))
}
check "man -l renders every page, no warning" render_all
check "man -w vrouterctl / vrouterd find the installed pages" bash -c \
    "[[ \$(man -w vrouterctl) == /usr/share/man/man1/vrouterctl.1.gz && \$(man -w 8 vrouterd) == /usr/share/man/man8/vrouterd.8.gz ]]"
check "man vrouterctl-node-status names the command" bash -c "MANWIDTH=80 man vrouterctl-node-status 2>/dev/null | grep -q 'vrouterctl-node-status'"
bash_completes() { # command words...: the completion function offers the last word
    bash -c '
        source /usr/share/bash-completion/completions/$1
        spec=$(complete -p "$1") && echo "$spec"
        fn=$(sed -n "s/.* -F \([^ ]*\) .*/\1/p" <<<"$spec")
        [[ -n $fn ]] || { echo "no completion function"; exit 1; }
        want=${@: -1}
        COMP_WORDS=("${@:1:$#-1}" "${want:0:3}") COMP_CWORD=$(($# - 1))
        COMP_LINE="${COMP_WORDS[*]}" COMP_POINT=${#COMP_LINE}
        "$fn" "$1" "${want:0:3}" "${COMP_WORDS[COMP_CWORD-1]}"
        echo "completions of ${want:0:3}: ${COMPREPLY[*]}"
        printf "%s\n" "${COMPREPLY[@]}" | grep -qx -- "$want"
    ' _ "$@"
}
check "bash: complete -p vrouterctl; 'vrouterctl nod' completes to node" bash_completes vrouterctl node
check "bash: 'vrouterctl node sta' completes to status" bash_completes vrouterctl node status
check "bash: 'vrouterd --con' completes to --config" bash_completes vrouterd --config
check "zsh -n on _vrouterctl and _vrouterd" zsh -n /usr/share/zsh/vendor-completions/_vrouterctl /usr/share/zsh/vendor-completions/_vrouterd
check "zsh's fpath has /usr/share/zsh/vendor-completions" bash -c "zsh -fc 'print -l \$fpath' | grep -qx /usr/share/zsh/vendor-completions"
# compinit reads the #compdef lines: both commands get their functions.
zsh_registers() {
    zsh -fc 'autoload -Uz compinit; compinit -u -d "$1/zcompdump"; print -r -- "$_comps[vrouterctl] $_comps[vrouterd]"' _ "$WORK" |
        tee /dev/stderr | grep -qx "_vrouterctl _vrouterd"
}
check "zsh compinit: vrouterctl and vrouterd complete with _vrouterctl, _vrouterd" zsh_registers

# 5. The conffile: an edit survives a reinstall and a remove; purge removes it.
echo "# edited by tests/e2e/package.sh" >>/etc/vrouter/vrouter.toml
dpkg -i "$deb" >"$WORK/dpkg-i2.log" 2>&1 || { cat "$WORK/dpkg-i2.log"; die "dpkg -i (again) $deb"; }
check "reinstall keeps the edited conffile" grep -q "edited by tests/e2e/package.sh" /etc/vrouter/vrouter.toml
dpkg -r vrouter >"$WORK/dpkg-r.log" 2>&1 || { cat "$WORK/dpkg-r.log"; die "dpkg -r vrouter"; }
check "dpkg -r: status config-files" bash -c "dpkg-query -W -f='\${Status}' vrouter | grep -qx 'deinstall ok config-files'"
check "dpkg -r keeps the edited conffile" grep -q "edited by tests/e2e/package.sh" /etc/vrouter/vrouter.toml
gone_but_conffile() {
    local f rc=0
    while read -r f; do
        [[ $f == /etc/vrouter/vrouter.toml || -d $f ]] && continue
        [[ -e $f || -L $f ]] && { echo "left after remove: $f"; rc=1; }
    done <"$WORK/owned"
    return $rc
}
check "dpkg -r removes every file but the conffile" gone_but_conffile
dpkg -P vrouter >"$WORK/dpkg-p.log" 2>&1 || { cat "$WORK/dpkg-p.log"; die "dpkg -P vrouter"; }
check "dpkg -P: the package is unknown to dpkg" bash -c '! dpkg-query -W vrouter 2>/dev/null'
all_gone() {
    local f rc=0 n=0
    while read -r f; do
        n=$((n + 1))
        [[ -d $f && ! -L $f ]] && ! grep -qx "$f" "$WORK/new-dirs" && continue # shared (/usr/bin)
        [[ -e $f || -L $f ]] && { echo "left after purge: $f"; rc=1; }
    done <"$WORK/owned"
    echo "$n paths checked, $(grep -c . "$WORK/new-dirs") of them directories the package made"
    ((n > 50)) && return $rc
}
check "dpkg -P leaves none of its files or directories (conffile included)" all_gone
check "no /etc/vrouter, no unit mask or enablement state left" bash -c \
    '! ls -d /etc/vrouter /etc/systemd/system/vrouterd.service /var/lib/systemd/deb-systemd-helper-*/vrouterd.service* 2>/dev/null'

echo "package: wall time $((SECONDS - start)) s"
finish package cat "$WORK/package.log"
