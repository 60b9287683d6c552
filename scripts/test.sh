#!/usr/bin/env bash
# Runs carelake's whole test suite.
#
# The interoperability tests use real peers, which this script installs first:
# - Python packages in a virtual environment ($CARELAKE_VENV, or .venv-interop in the project
#   folder): the independent Delta reader `deltalake`, the S3 test server `moto`, and the
#   Postgres driver `psycopg`;
# - Debian packages (when missing, and when this runs as root or with sudo): psql
#   (postgresql-client), Java with the PostgreSQL JDBC driver, openssl for test certificates,
#   and Chromium for the web UI test.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CARELAKE_VENV:-$PWD/.venv-interop}"
if ! "$venv/bin/python" -c "import deltalake, pyarrow, moto.server, boto3, psycopg, schemathesis" >/dev/null 2>&1; then
  echo "Installing the Python Delta reader, the S3 test server and psycopg into $venv ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "deltalake==1.6.6" "pyarrow==26.0.1" "moto[server]>=5,<6" "psycopg[binary]>=3.2,<4" "schemathesis==4.32.5"
fi

missing=()
command -v psql >/dev/null || missing+=(postgresql-client)
command -v javac >/dev/null || missing+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v openssl >/dev/null || missing+=(openssl)
command -v chromium >/dev/null || missing+=(chromium)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages for the interoperability tests: ${missing[*]} ..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# playwright-core drives Debian's Chromium in the web UI test (it downloads no browser).
node_dir="${CARELAKE_NODE_DIR:-$PWD/.node-interop}"
if ! NODE_PATH="$node_dir/node_modules" node -e "require('playwright-core')" >/dev/null 2>&1; then
  echo "Installing playwright-core into $node_dir ..."
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent "playwright-core@1.64.1"
fi
export NODE_PATH="$node_dir/node_modules"

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
