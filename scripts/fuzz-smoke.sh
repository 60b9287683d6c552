#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target (crates/*/fuzz) and runs each for a short time
# (CARELAKE_FUZZ_SECONDS, default 10). A crash fails the run and leaves the input under
# crates/<crate>/fuzz/artifacts/. For a real campaign run a target for hours:
#   cd crates/hl7 && RUSTC_BOOTSTRAP=1 cargo fuzz run parse_hl7
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/fuzz-env.sh
seconds="${CARELAKE_FUZZ_SECONDS:-10}"

for dir in crates/*/fuzz; do
    crate_dir="$(dirname "$dir")"
    # Targets that build the whole engine instrumented are for campaigns (scripts/fuzz.sh);
    # their parsers run under proptest in the test suite.
    if grep -q '^carelake-campaign-only = true' "$dir/Cargo.toml"; then
        echo "== fuzz $crate_dir: campaign only (scripts/fuzz.sh), skipped in the smoke"
        continue
    fi
    for target in $(cd "$crate_dir" && cargo fuzz list); do
        echo "== fuzz $crate_dir $target (${seconds}s)"
        # pipefail: a crash fails the pipe, the subshell and the script.
        (cd "$crate_dir" && cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 4)
    done
done
echo "fuzz smoke: every target ran without a crash"
