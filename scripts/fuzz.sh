#!/usr/bin/env bash
# Run the fuzz targets (fuzz/, issue 19) under AFL++ through `cargo afl` (stable Rust).
#
#   scripts/fuzz.sh --list                    the targets
#   scripts/fuzz.sh TARGET --minutes N        one target for N minutes (long runs)
#   scripts/fuzz.sh TARGET --seconds S        ... for S seconds
#   scripts/fuzz.sh --all --seconds S         every target, one after another (test.sh)
#
# The instrumented binary is built with `cargo afl build --profile fuzz` into
# target/afl/ (never the normal build's artifacts); the seeds are fuzz/corpus/TARGET and
# fuzz/regressions/TARGET; AFL's output goes to target/afl/runs/TARGET/. At the end of
# each run the figures of AFL's fuzzer_stats (executions, execs/s, edges found, bitmap
# coverage, crashes, hangs) are printed as JSON (also in target/afl/runs/TARGET.json)
# and as a table. Fails if a target found a crash, or did not run (no stats, or no
# executions): never a silent skip. One fuzzer at a time, niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(pipeline bgp_message bgp_session config api cni_stdin datastore_json)
OUT_ROOT=target/afl
BIN=$OUT_ROOT/fuzz/afl

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

targets=()
seconds=""
while (($#)); do
    case "$1" in
        --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
        --all) targets=("${TARGETS[@]}") ;;
        --minutes) seconds=$(( ${2:?--minutes N} * 60 )); shift ;;
        --seconds) seconds=${2:?--seconds S}; shift ;;
        -h|--help) usage ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
        *)
            if [[ " ${TARGETS[*]} " != *" $1 "* ]]; then
                echo "fuzz.sh: no target $1 (scripts/fuzz.sh --list)" >&2
                exit 2
            fi
            targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || usage
[[ -n "$seconds" && "$seconds" -gt 0 ]] || { echo "fuzz.sh: --minutes N or --seconds S is required" >&2; exit 2; }

command -v cargo-afl >/dev/null || { echo "fuzz.sh: cargo-afl is missing (scripts/setup.sh installs it)" >&2; exit 1; }

# Built once per call; cargo knows when nothing changed.
echo "fuzz.sh: building the instrumented targets (cargo afl build --profile fuzz)"
CARGO_TARGET_DIR=$OUT_ROOT nice -n 10 cargo afl build --locked --profile fuzz -p vrouter-fuzz \
    --features afl --bin afl
[[ -x "$BIN" ]] || { echo "fuzz.sh: $BIN was not built" >&2; exit 1; }

# As root on a VM: no CPU frequency governor to check, a core_pattern that may pipe
# crashes elsewhere (AFL still sees them: the target aborts), any core will do.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_QUIET=1

# One key of a fuzzer_stats file.
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

failed=0
rows=()
for t in "${targets[@]}"; do
    run=$OUT_ROOT/runs/$t
    rm -rf "$run" "$run.in"
    mkdir -p "$run.in"
    cp fuzz/corpus/"$t"/* "$run.in"/
    find fuzz/regressions/"$t" -type f ! -name .gitkeep -exec cp {} "$run.in"/ \;
    echo "fuzz.sh: $t for ${seconds}s ($(ls "$run.in" | wc -l) seeds) -> $run"
    # -V: stop after that many seconds; -t: 2 s per input at most (a node made per call
    # for api / datastore_json); the state directory those make is per process.
    set +e
    nice -n 10 cargo afl fuzz -i "$run.in" -o "$run" -V "$seconds" -t 2000 -- "$BIN" "$t" \
        >"$run.log" 2>&1
    rc=$?
    set -e
    stats=$run/default/fuzzer_stats
    if [[ ! -f "$stats" ]]; then
        echo "fuzz.sh: $t: AFL++ wrote no fuzzer_stats (exit $rc); its log:" >&2
        tail -n 30 "$run.log" >&2
        failed=1
        rows+=("$t|-|-|-|-|-|-|NOT RUN")
        continue
    fi
    execs=$(stat execs_done "$stats")
    run_time=$(stat run_time "$stats")
    per_s=$(awk -v e="$execs" -v t="$run_time" 'BEGIN { printf "%.1f", (t > 0 ? e / t : 0) }')
    cvg=$(stat bitmap_cvg "$stats")
    edges=$(stat edges_found "$stats")
    total=$(stat total_edges "$stats")
    crashes=$(stat saved_crashes "$stats")
    [[ -n "$crashes" ]] || crashes=$(stat unique_crashes "$stats")
    hangs=$(stat saved_hangs "$stats")
    [[ -n "$hangs" ]] || hangs=$(stat unique_hangs "$stats")
    corpus=$(stat corpus_count "$stats")
    status=ok
    if [[ -z "$execs" || "$execs" -eq 0 ]]; then
        status="NO EXECUTIONS"
        failed=1
    elif [[ "${crashes:-0}" -gt 0 ]]; then
        status="CRASHES"
        failed=1
    fi
    json=$(printf '{"target":"%s","seconds":%s,"execs_done":%s,"execs_per_sec":%s,"edges_found":%s,"total_edges":%s,"bitmap_cvg":"%s","corpus_count":%s,"saved_crashes":%s,"saved_hangs":%s,"status":"%s"}' \
        "$t" "$run_time" "${execs:-0}" "$per_s" "${edges:-0}" "${total:-0}" "$cvg" "${corpus:-0}" \
        "${crashes:-0}" "${hangs:-0}" "$status")
    echo "$json" | tee "$run.json"
    rows+=("$t|${execs:-0}|$per_s|${edges:-0}/${total:-0}|$cvg|${crashes:-0}|${hangs:-0}|$status")
    if [[ "$status" == CRASHES ]]; then
        echo "fuzz.sh: $t crashed on:" >&2
        find "$run/default/crashes" -type f ! -name README.txt >&2
        echo "  replay one: cargo run -p vrouter-fuzz --bin replay -- $t FILE" >&2
    fi
done

printf '\n%-15s %12s %9s %13s %9s %7s %5s  %s\n' target execs execs/s edges bitmap crashes hangs status
for r in "${rows[@]}"; do
    IFS='|' read -r t e p g c k h s <<<"$r"
    printf '%-15s %12s %9s %13s %9s %7s %5s  %s\n' "$t" "$e" "$p" "$g" "$c" "$k" "$h" "$s"
done
if ((failed)); then
    echo "fuzz.sh: FAILED" >&2
    exit 1
fi
