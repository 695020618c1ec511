#!/usr/bin/env bash
# Real-world IPv4 and IPv6 prefix tables for fibbench, built from public routing data
# reachable here: the npm package @ip-location-db/asn (IP ranges → origin AS, merged from
# RouteViews' BGP tables, the five RIRs' delegations and DB-IP; CC BY 4.0). Each range
# is split into the CIDR prefixes that cover it exactly, which keeps the real tables'
# clustering (RIR /12s, LIR /29–/32s, end-site /48s) though not their overlapping
# more-specifics. Writes OUT/real-v4.txt and OUT/real-v6.txt (one prefix and its AS per
# line, fibbench --routes-file), OUT defaulting to target/tables.
#
#   scripts/real-tables.sh [OUT]
#   target/release/fibbench --family v6 --routes-file target/tables/real-v6.txt
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/tables}
PKG=@ip-location-db/asn@2.3.2026061719 # pinned: the figures name this version
mkdir -p "$OUT"
if [[ -s $OUT/real-v4.txt && -s $OUT/real-v6.txt && -f $OUT/.version && $(cat "$OUT/.version") == "$PKG" ]]; then
    echo "real-tables: $OUT already holds $PKG"; exit 0
fi
command -v npm >/dev/null || { echo "real-tables: npm is not installed" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
# npm pack checks the tarball against the registry's integrity hash.
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$TMP"/*.tgz -C "$TMP"
python3 - "$TMP/package" "$OUT" <<'PY'
import csv, ipaddress, sys
src, out = sys.argv[1], sys.argv[2]
for fam in ("v4", "v6"):
    n_ranges, nets = 0, []
    with open(f"{src}/asn-ip{fam}.csv", newline="") as f:
        for row in csv.reader(f):
            first, last, asn = ipaddress.ip_address(row[0]), ipaddress.ip_address(row[1]), row[2]
            n_ranges += 1
            for net in ipaddress.summarize_address_range(first, last):
                nets.append((net, asn))
    if n_ranges == 0 or not nets:
        sys.exit(f"real-tables: no {fam} ranges in {src}")
    with open(f"{out}/real-{fam}.txt", "w") as f:
        f.write(f"# {len(nets)} prefixes from {n_ranges} ranges of @ip-location-db/asn (CC BY 4.0)\n")
        for net, asn in nets:
            f.write(f"{net} {asn}\n")
    print(f"real-tables: {out}/real-{fam}.txt: {len(nets)} prefixes from {n_ranges} ranges")
PY
echo "$PKG" >"$OUT/.version"
