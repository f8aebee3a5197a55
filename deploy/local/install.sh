#!/usr/bin/env bash
# Installs everything tierlog's build, services and tests need, once; cached by version.
#   - Debian packages: cmake + curl headers (librdkafka is built from source)
#   - tansu (Kafka-protocol broker), built with cargo into $TIERLOG_CACHE/tansu-<version>
#   - moto_server (S3-protocol server) in a virtualenv under $TIERLOG_CACHE
#   - the tests' independent clients: Python psycopg, deltalake, polars and selenium in a
#     virtualenv under $TIERLOG_CACHE, Debian's pgjdbc, Debian's chromium + chromedriver
#   - the search page's front-end packages (uPlot), `npm ci` in ui/ from its lock file
#   - duckdb (Python), the query benchmark's baseline: only with the `duckdb` target
# Usage: install.sh [all|packages|tansu|moto|clients|ui|duckdb]   (default: all, without duckdb)
#        install.sh duckdb prints the venv's python on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

install_packages() {
  apt_install cmake libcurl4-openssl-dev pkg-config build-essential
}

install_tansu() {
  [[ -x $TANSU_BIN ]] && return 0
  install_packages
  log "building tansu $TANSU_VERSION (first run only; 10-25 minutes on 2 cores)"
  mkdir -p "$TANSU_ROOT"
  # The libsql feature is the storage engine; default features have none.
  cargo install --quiet --locked --root "$TANSU_ROOT.partial" tansu --version "$TANSU_VERSION" --features libsql
  rm -rf "$TANSU_ROOT" && mv "$TANSU_ROOT.partial" "$TANSU_ROOT"
  log "tansu installed at $TANSU_BIN"
}

install_moto() {
  [[ -x $MOTO_VENV/bin/moto_server ]] && return 0
  log "installing moto_server $MOTO_VERSION into $MOTO_VENV"
  rm -rf "$MOTO_VENV" && python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
}

install_clients() {
  # psql, and pgjdbc (the JDBC driver of DBeaver and most Java tools) with a Java to run it.
  # Headless Chromium and its WebDriver for the search page's browser tests.
  apt_install postgresql-client-15 openjdk-17-jre-headless libpostgresql-jdbc-java chromium chromium-driver
  if [[ ! -x $TEST_PY_VENV/bin/python ]] || ! "$TEST_PY_VENV/bin/python" -c 'import psycopg, deltalake, polars, selenium' 2>/dev/null; then
    log "installing test clients ($TEST_PY_PACKAGES) into $TEST_PY_VENV"
    rm -rf "$TEST_PY_VENV" && python3 -m venv "$TEST_PY_VENV"
    # shellcheck disable=SC2086 # the list is words
    "$TEST_PY_VENV/bin/pip" install --quiet --disable-pip-version-check $TEST_PY_PACKAGES
  fi
}

install_ui() {
  # Node.js and npm come with the machine or from Debian; the lock file pins every package.
  command -v npm >/dev/null || apt_install nodejs npm
  [[ -f $here/../../ui/node_modules/uplot/dist/uPlot.iife.min.js ]] && return 0
  log "installing the search page's npm packages (ui/package-lock.json)"
  (cd "$here/../../ui" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
}

install_duckdb() {
  # pytz: DuckDB's Python client needs it to hand out TIMESTAMPTZ values (cold Parquet's _timestamp).
  if [[ ! -x $DUCKDB_VENV/bin/python ]] || ! "$DUCKDB_VENV/bin/python" -c 'import duckdb, pytz' 2>/dev/null; then
    log "installing duckdb $DUCKDB_VERSION into $DUCKDB_VENV"
    rm -rf "$DUCKDB_VENV" && python3 -m venv "$DUCKDB_VENV"
    "$DUCKDB_VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" "pytz==$PYTZ_VERSION"
  fi
  echo "$DUCKDB_VENV/bin/python"
}

case "${1:-all}" in
  all) install_packages; install_ui; install_moto; install_clients; install_tansu ;;
  packages) install_packages ;;
  tansu) install_tansu ;;
  moto) install_moto ;;
  clients) install_clients ;;
  ui) install_ui ;;
  duckdb) install_duckdb ;;
  *) die "unknown target '$1' (all|packages|tansu|moto|clients|ui|duckdb)" ;;
esac
