#!/usr/bin/env bash
# Backup and restore times of the demo lake: builds it with `carelake demo --no-serve`, then
# times a full backup, an incremental one with nothing new, one after a small load, a restore
# into an empty folder, and `carelake check` (plain, --full, and --backup) of the result; prints
# a table of seconds, peak resident memory and sizes.
#
#   ./scripts/backup-times.sh [--bin target/release/carelake] [--patients 20000] [--work DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${CARGO_TARGET_DIR:-target}/release/carelake"
patients=20000
work=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --patients) patients="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
[ -x "$bin" ] || { echo "no carelake binary at $bin (cargo build --release -p carelake-cli)" >&2; exit 2; }
if [ -z "$work" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
lake="$work/lake"
backups="$work/backups"
restored="$work/restored"
rm -rf "$lake" "$backups" "$restored" "$work/demo"

rows=()
# step NAME LAKE ARGS...: runs carelake under /usr/bin/time, keeping seconds and peak RSS.
step() {
    local name="$1" at="$2"
    shift 2
    local stats="$work/time.txt"
    local started
    started=$(date +%s.%N)
    if ! CARELAKE_LAKE="$at" /usr/bin/time -f '%M' -o "$stats" "$bin" "$@" > "$work/out.txt" 2>&1; then
        echo "step $name failed:" >&2
        tail -n 20 "$work/out.txt" >&2
        exit 1
    fi
    local seconds
    seconds=$(awk "BEGIN {printf \"%.2f\", $(date +%s.%N) - $started}")
    rows+=("$(printf '%-34s %9s %9s' "$name" "$seconds" "$(( $(tail -n 1 "$stats") / 1024 ))")")
}

step "demo --patients $patients (build)" "$lake" demo --patients "$patients" --data "$work/demo" --no-serve
step "backup (full)" "$lake" backup --to "$backups"
step "backup (incremental, no change)" "$lake" backup --to "$backups"
printf 'id,reading\n1,72\n2,75\n3,71\n' > "$work/small.csv"
step "load 3 rows" "$lake" load "$work/small.csv" --into raw.backup_probe
step "backup (incremental, one load)" "$lake" backup --to "$backups"
step "check (backups' hashes)" "$lake" check --backup "$backups"
mkdir -p "$restored"
step "restore (newest)" "$restored" restore --from "$backups"
step "check (restored lake)" "$restored" check
step "check --full (restored lake)" "$restored" check --full

probe=$(CARELAKE_LAKE="$restored" "$bin" sql --format csv "SELECT count(*) FROM raw.backup_probe" | tail -n 1)
[ "$probe" = "3" ] || { echo "the restored lake lacks the last load (count $probe)" >&2; exit 1; }

echo
printf '%-34s %9s %9s\n' "step" "seconds" "peak MB"
printf '%s\n' "${rows[@]}"
echo
echo "lake $(du -sh "$lake" | cut -f1), backups $(du -sh "$backups" | cut -f1) ($(ls "$backups" | wc -l) entries at the top), restored $(du -sh "$restored" | cut -f1)"
