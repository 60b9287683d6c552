#!/usr/bin/env bash
# A fuzzing campaign: every cargo-fuzz target (crates/*/fuzz) for N minutes each, one after the
# other, each seeded from the shared samples (../shared/data) and from what earlier runs kept in
# its corpus. Not run by CI (CI runs ./scripts/fuzz-smoke.sh, 15 s a target).
#
#   ./scripts/fuzz.sh --minutes 30 [--jobs 1] [TARGET...]
#
# A crash stops that target, leaves the input under crates/<crate>/fuzz/artifacts/<target>/ and
# fails the campaign at the end; turn each one into a regression test beside the parser.
# Prints executions and corpus size per target and the hours run in all.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
jobs=1
only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) only+=("$1"); shift ;;
    esac
done

. scripts/fuzz-env.sh
shared="$(cd .. && pwd)/shared/data"

# Seeds: which shared samples feed which target.
seeds_for() {
    case "$1" in
        parse_hl7|mllp_frames) echo "$shared/hl7v2" ;;
        read_fhir) echo "$shared/fhir-r4-synthea" ;;
        fhirpath) echo "$shared/sql-on-fhir-v2" ;;
        parse_837) echo "$shared/x12-837" ;;
        *) echo "" ;;
    esac
}

failed=()
total_seconds=0
for dir in crates/*/fuzz; do
    crate_dir="$(dirname "$dir")"
    for target in $(cd "$crate_dir" && cargo fuzz list); do
        if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $target " ]]; then
            continue
        fi
        corpus="$dir/corpus/$target"
        mkdir -p "$corpus"
        seeds="$(seeds_for "$target")"
        if [ -n "$seeds" ] && [ -d "$seeds" ] && [ -z "$(ls -A "$corpus")" ]; then
            # Small files only: libFuzzer's inputs stay under its -max_len.
            find "$seeds" -type f -size -64k | head -n 500 | while read -r f; do
                cp "$f" "$corpus/seed-$(sha256sum "$f" | cut -c1-16)"
            done
        elif [ -n "$seeds" ] && [ ! -d "$seeds" ]; then
            echo "note: $seeds is absent; $target starts from its own corpus"
        fi
        echo "== $crate_dir $target: $minutes min, corpus $(ls "$corpus" | wc -l) inputs"
        log="$(mktemp)"
        started=$(date +%s)
        if (cd "$crate_dir" && cargo fuzz run "$target" "fuzz/corpus/$target" -- \
                -max_total_time=$((minutes * 60)) -rss_limit_mb=2048 -max_len=65536 \
                -jobs="$jobs" -workers="$jobs" -print_final_stats=1) >"$log" 2>&1; then
            outcome="no crash"
        else
            outcome="CRASH (see $crate_dir/fuzz/artifacts/$target/)"
            failed+=("$target")
        fi
        total_seconds=$((total_seconds + $(date +%s) - started))
        execs="$(grep -h 'stat::number_of_executed_units' "$log" fuzz-*.log 2>/dev/null | awk '{s+=$2} END {print s+0}')"
        rm -f fuzz-*.log
        echo "   $outcome; $execs executions; corpus now $(ls "$corpus" | wc -l) inputs"
        grep -E 'panicked|ERROR: |SUMMARY' "$log" | head -n 5 || true
        rm -f "$log"
    done
done
hours=$(awk "BEGIN {printf \"%.2f\", $total_seconds / 3600}")
echo "fuzzed ${hours} h in all (${jobs} job(s) per target)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "targets that crashed: ${failed[*]}"
    exit 1
fi
