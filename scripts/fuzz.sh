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

# Seeds made here: the heads of the shared CSV files, NDJSON lines from the FHIR samples, a
# small write-ahead log segment, and the SQL of the test suite.
seeds_dir="$(mktemp -d)"
trap 'rm -rf "$seeds_dir"' EXIT
mkdir -p "$seeds_dir/rows" "$seeds_dir/wal" "$seeds_dir/sql"
if [ -d "$shared/febrl" ]; then
    for f in "$shared"/febrl/*.csv; do
        # The first byte picks the reader (even: CSV, odd: NDJSON).
        { printf '\x00'; head -n 40 "$f"; } > "$seeds_dir/rows/$(basename "$f")"
    done
fi
find crates -path '*/tests/*' -name '*.csv' -size -16k | head -n 50 | while read -r f; do
    { printf '\x00'; cat "$f"; } > "$seeds_dir/rows/csv-$(sha256sum "$f" | cut -c1-16)"
done
if [ -d "$shared/fhir-r4-synthea" ]; then
    for f in $(ls "$shared"/fhir-r4-synthea/*.json | head -n 5); do
        { printf '\x01'; python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); [print(json.dumps(e["resource"])) for e in b.get("entry",[])[:8]]' "$f"; } \
            > "$seeds_dir/rows/ndjson-$(basename "$f")" 2>/dev/null || true
    done
fi
python3 -c '
import struct, sys, zlib
out = b""
for seq, payload in enumerate([b"{\"event_id\":\"e1\",\"hr\":72}", b"", b"{\"spo2\":97.5}"], start=1):
    body = struct.pack("<Q", seq) + payload
    out += struct.pack("<II", len(payload), zlib.crc32(body)) + body
open(sys.argv[1], "wb").write(out)
' "$seeds_dir/wal/segment"
find crates -name '*.slt' | while read -r f; do
    grep -v '^\(statement\|query\|----\|#\)' "$f" | awk -v base="$seeds_dir/sql/$(basename "$f")" 'BEGIN { RS = "" } { print > (base "-" NR) }'
done

# Seeds: which shared samples feed which target.
seeds_for() {
    case "$1" in
        parse_hl7|mllp_frames) echo "$shared/hl7v2" ;;
        read_fhir) echo "$shared/fhir-r4-synthea" ;;
        fhirpath) echo "$shared/sql-on-fhir-v2" ;;
        parse_837) echo "$shared/x12-837" ;;
        read_rows) echo "$seeds_dir/rows" ;;
        read_wal) echo "$seeds_dir/wal" ;;
        parse_sql) echo "$seeds_dir/sql" ;;
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
        # fuzz-*.log exist only with --jobs above 1.
        execs="$( (grep -h 'stat::number_of_executed_units' "$log" fuzz-*.log 2>/dev/null || true) | awk '{s+=$2} END {print s+0}')"
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
