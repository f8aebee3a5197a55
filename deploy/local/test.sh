#!/usr/bin/env bash
# Runs tierlog's whole test suite against real services:
#   1. installs what is missing (Debian packages, tansu, moto; cached under ~/.cache/tierlog)
#   2. builds the workspace and its tests
#   3. starts the Kafka broker and the S3 server on free 127.0.0.1 ports
#   4. runs every test (unit, config, integration) against them
#   5. stops the services; exits non-zero on any failure
# Extra arguments go to the test runner, e.g. `test.sh -E 'test(produce)'` (nextest filter).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
started=$SECONDS

"$here/install.sh" all

# CI clones afresh, so an in-tree target/ is always cold; a target dir in the cache lets
# a warm machine rebuild only what changed.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TIERLOG_CACHE/target}
cd "$repo"
log "building (target dir $CARGO_TARGET_DIR)"
cargo build --locked --workspace --all-targets

services_dir=$(mktemp -d "${TMPDIR:-/tmp}/tierlog-test-services.XXXXXX")
export TIERLOG_SERVICES_DIR=$services_dir
cleanup() {
  "$here/services.sh" stop all || true
  rm -rf "$services_dir"
}
trap cleanup EXIT
TIERLOG_KAFKA_PORT=free TIERLOG_S3_PORT=free "$here/services.sh" start all
eval "$("$here/services.sh" env)"
# The Python with the tests' independent clients (psycopg).
export TIERLOG_TEST_PYTHON=$TEST_PY_VENV/bin/python

log "running tests"
status=0
if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doc tests; run them first so its summary closes the output.
  cargo test --locked --workspace --doc || status=$?
  cargo nextest run --locked --workspace --no-fail-fast --failure-output final "$@" || status=$?
else
  cargo test --locked --workspace --no-fail-fast "$@" || status=$?
fi
log "tests finished in $((SECONDS - started)) s with status $status"
exit $status
