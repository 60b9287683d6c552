#!/usr/bin/env bash
# carelake against DuckDB on the same Parquet files, side by side in one run:
#   ./scripts/bench-compare.sh --patients 1000000 [--runs 5]
# Installs DuckDB from PyPI into a virtual environment ($CARELAKE_BENCH_VENV, or .venv-bench in
# the project) and runs `carelake bench compare` with it: from $CARELAKE_BIN, else a release
# build of this project.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CARELAKE_BENCH_VENV:-$PWD/.venv-bench}"
if ! "$venv/bin/python" -c "import duckdb" >/dev/null 2>&1; then
  echo "Installing DuckDB into $venv ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==2.0.1"
fi
if [ -n "${CARELAKE_BIN:-}" ]; then
  exec "$CARELAKE_BIN" bench compare --python "$venv/bin/python" "$@"
fi
exec cargo run --release --locked --bin carelake -- bench compare --python "$venv/bin/python" "$@"
