#!/usr/bin/env bash
# carelake against its peers, side by side in one run:
#   ./scripts/bench-compare.sh --patients 1000000 [--runs 5]    KPI queries vs DuckDB, same Parquet files
#   ./scripts/bench-compare.sh load --rows 10000000 [--runs 3]  CSV → Delta vs pyarrow's CSV → Parquet
# Installs DuckDB and pyarrow from PyPI into a virtual environment ($CARELAKE_BENCH_VENV, or
# .venv-bench in the project) and runs `carelake bench compare` (or `bench load`) with it: from
# $CARELAKE_BIN, else a release build of this project.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CARELAKE_BENCH_VENV:-$PWD/.venv-bench}"
if ! "$venv/bin/python" -c "import duckdb, pyarrow" >/dev/null 2>&1; then
  echo "Installing DuckDB and pyarrow into $venv ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==2.0.1" "pyarrow==26.0.1"
fi
bench=(bench compare)
if [ "${1:-}" = load ]; then
  shift
  bench=(bench load)
fi
if [ -n "${CARELAKE_BIN:-}" ]; then
  exec "$CARELAKE_BIN" "${bench[@]}" --python "$venv/bin/python" "$@"
fi
exec cargo run --release --locked --bin carelake -- "${bench[@]}" --python "$venv/bin/python" "$@"
