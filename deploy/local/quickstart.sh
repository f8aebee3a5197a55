#!/usr/bin/env bash
# One command to see tierlog work on this machine:
#   installs what is missing (first run: ~15-30 min, mostly building the tansu broker),
#   builds tierlog, starts the Kafka broker and the S3 server on 127.0.0.1, publishes real
#   sample logs, and starts a tierlog node with deploy/local/tierlog.toml that ingests them.
# Ctrl-C stops the node and the services it started.
#
# Settings: TIERLOG_KAFKA_PORT (9092), TIERLOG_S3_PORT (9000), TIERLOG_HTTP_ADDR
# (127.0.0.1:7280), TIERLOG_PROFILE (dev; "release" for an optimized build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
datasets=${TIERLOG_DATASETS:-$repo/../shared/datasets}

"$here/install.sh" all
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TIERLOG_CACHE/target}
profile=${TIERLOG_PROFILE:-dev}
log "building tierlog ($profile profile)"
(cd "$repo" && cargo build --locked --profile "$profile" --bin tierlog)
bin_dir=$([[ $profile == dev ]] && echo debug || echo "$profile")
tierlog=$CARGO_TARGET_DIR/$bin_dir/tierlog

export TIERLOG_SERVICES_DIR=${TIERLOG_SERVICES_DIR:-$repo/data/services}
"$here/services.sh" start all
eval "$("$here/services.sh" env)"
export TIERLOG_COLD_ENDPOINT=$TIERLOG_S3_ENDPOINT
http_addr=${TIERLOG_HTTP_ADDR:-127.0.0.1:7280}
export TIERLOG_HTTP_ADDR=$http_addr

node_pid=""
cleanup() {
  [[ -n $node_pid ]] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  "$here/services.sh" stop all || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Publish first, so the topics exist when the node subscribes (the broker does not
# auto-create topics).
log "publishing sample logs from $datasets"
"$tierlog" produce --topic apache-errors "$datasets/loghub/Apache_2k.log"
"$tierlog" produce --topic zeek-dns "$datasets/zeek/dns.json.gz"
# The OTLP sample is pretty-printed JSON: one request, so one message.
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$datasets/otlp/logs.json" \
  | "$tierlog" produce --topic otlp-logs -

mkdir -p "$repo/data"
"$tierlog" serve --config "$here/tierlog.toml" 2> >(tee -a "$repo/data/tierlog.log" >&2) &
node_pid=$!
for _ in $(seq 1 300); do
  curl -fs "http://$http_addr/ready" >/dev/null 2>&1 && break
  kill -0 "$node_pid" 2>/dev/null || die "tierlog exited; see $repo/data/tierlog.log"
  sleep 0.2
done
curl -fs "http://$http_addr/ready" >/dev/null || die "tierlog is not ready: $(curl -s "http://$http_addr/ready")"
sleep 10
log "ingested so far (from /metrics):"
curl -s "http://$http_addr/metrics" | grep -E '^tierlog_ingest_(messages|rows)_total' >&2 || true

cat <<MSG

tierlog is running (pid $node_pid), with the broker at $TIERLOG_KAFKA_BROKERS and S3 at $TIERLOG_S3_ENDPOINT.
  readiness:  curl http://$http_addr/ready
  metrics:    curl http://$http_addr/metrics
  SQL:        $tierlog sql "SELECT rcode_name, count(*) FROM zeek_dns GROUP BY 1 ORDER BY 2 DESC"
  search:     curl 'http://$http_addr/api/v1/search?stream=apache_errors&q=error%20AND%20jk2_init&limit=5'
  psql:       psql -h 127.0.0.1 -p 5433 -c "SELECT count(*) FROM apache_errors"
  node log:   $repo/data/tierlog.log      services: $TIERLOG_SERVICES_DIR
  config:     $here/tierlog.toml
  publish:    $tierlog produce --topic apache-errors FILE
Press Ctrl-C to stop the node and the services.
MSG
wait "$node_pid"
