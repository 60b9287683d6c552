#!/usr/bin/env bash
# Runs carelake's whole test suite.
#
# The interoperability test reads carelake's tables with an independent Delta reader, the Python
# `deltalake` package, and the S3 test runs against a local S3-compatible server (moto); this
# script installs both into a virtual environment first: $CARELAKE_VENV, or .venv-interop in the
# project folder.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CARELAKE_VENV:-$PWD/.venv-interop}"
if ! "$venv/bin/python" -c "import deltalake, pyarrow, moto.server, boto3" >/dev/null 2>&1; then
  echo "Installing the Python Delta reader and the S3 test server into $venv ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "deltalake==1.6.6" "pyarrow==26.0.1" "moto[server]>=5,<6"
fi
export CARELAKE_PYTHON="$venv/bin/python"
export CARELAKE_REQUIRE_INTEROP=1

cargo test --workspace --no-fail-fast "$@"

# The SQL-on-FHIR v2 conformance count, printed; below the recorded floor fails.
suite="../shared/data/sql-on-fhir-v2/tests"
if [ -d "$suite" ]; then
  # The binary the tests just built (`cargo run -p` alone would resolve other features and
  # rebuild the engine).
  "${CARGO_TARGET_DIR:-target}/debug/carelake" fhir conformance "$suite" --min "$(cat crates/fhir/conformance-floor)"
else
  echo "SQL-on-FHIR v2 conformance: skipped ($suite is absent)"
fi
