#!/usr/bin/env bash
# Starts, stops and reports the local services tierlog runs against, on 127.0.0.1 only:
#   kafka  the tansu Kafka-protocol broker, durable sqlite storage under the state folder
#   s3     moto_server, an S3-protocol server (in memory: a restart empties it), with the
#          bucket created
#
# Usage: services.sh start|stop|restart|status [kafka|s3|all]   (default: all)
#        services.sh env          print `export …` lines for the running services
#
# Settings (environment):
#   TIERLOG_SERVICES_DIR  state folder: data, logs, PID and port files
#                         (default: <repo>/data/services)
#   TIERLOG_KAFKA_PORT    broker port (default 9092; "free" picks a free one)
#   TIERLOG_S3_PORT       S3 port (default 9000; "free" picks a free one)
#   TIERLOG_S3_BUCKET     bucket to create (default tierlog)
# A service keeps its port across stop/start (it is remembered in the state folder), so
# tests can stop and restart the broker under running clients.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

STATE=${TIERLOG_SERVICES_DIR:-$here/../../data/services}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
BUCKET=${TIERLOG_S3_BUCKET:-tierlog}

# The port of service $1: remembered, else from the environment, else the default.
port_of() {
  local name=$1 default=$2 var=$3
  if [[ -f $STATE/$name.port ]]; then cat "$STATE/$name.port"; return; fi
  local port=${!var:-$default}
  [[ $port == free ]] && port=$(free_port)
  echo "$port" > "$STATE/$name.port"
  echo "$port"
}

running() { pid_alive "$(cat "$STATE/$1.pid" 2>/dev/null)"; }

start_kafka() {
  if running kafka; then log "kafka already running on 127.0.0.1:$(cat "$STATE/kafka.port")"; return; fi
  [[ -x $TANSU_BIN ]] || "$here/install.sh" tansu
  local port; port=$(port_of kafka 9092 TIERLOG_KAFKA_PORT)
  wait_port "$port" 0 && die "port $port is taken by another program; set TIERLOG_KAFKA_PORT"
  mkdir -p "$STATE/kafka"
  # tansu reads .env and one env var per flag from its working directory: run it from
  # its own folder with those cleared. The sqlite path is relative to that folder.
  (
    cd "$STATE/kafka"
    exec env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE \
      "$TANSU_BIN" broker --cluster-id tierlog-local \
      --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine sqlite://tansu.db
  ) >>"$STATE/kafka.log" 2>&1 &
  echo $! > "$STATE/kafka.pid"
  wait_port "$port" 60 || { tail -20 "$STATE/kafka.log" >&2; die "kafka did not start; log: $STATE/kafka.log"; }
  log "kafka (tansu $TANSU_VERSION) listening on 127.0.0.1:$port, pid $(cat "$STATE/kafka.pid"), log $STATE/kafka.log"
}

start_s3() {
  if running s3; then log "s3 already running on 127.0.0.1:$(cat "$STATE/s3.port")"; return; fi
  [[ -x $MOTO_VENV/bin/moto_server ]] || "$here/install.sh" moto
  local port; port=$(port_of s3 9000 TIERLOG_S3_PORT)
  wait_port "$port" 0 && die "port $port is taken by another program; set TIERLOG_S3_PORT"
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$STATE/s3.log" 2>&1 &
  echo $! > "$STATE/s3.pid"
  wait_port "$port" 60 || { tail -20 "$STATE/s3.log" >&2; die "s3 did not start; log: $STATE/s3.log"; }
  # moto checks no signatures: an empty PUT creates the bucket.
  python3 - "$port" "$BUCKET" <<'PY'
import sys, urllib.request
port, bucket = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT", data=b"")
urllib.request.urlopen(req, timeout=30).read()
PY
  log "s3 (moto $MOTO_VERSION) listening on 127.0.0.1:$port, bucket '$BUCKET', pid $(cat "$STATE/s3.pid"), log $STATE/s3.log"
}

stop_one() {
  if running "$1"; then
    stop_pidfile "$STATE/$1.pid" 15
    log "$1 stopped"
  else
    rm -f "$STATE/$1.pid"
    log "$1 not running"
  fi
}

status_one() {
  if running "$1"; then
    echo "$1: running on 127.0.0.1:$(cat "$STATE/$1.port"), pid $(cat "$STATE/$1.pid")"
  else
    echo "$1: stopped"
  fi
}

print_env() {
  running kafka && echo "export TIERLOG_KAFKA_BROKERS=127.0.0.1:$(cat "$STATE/kafka.port")"
  running s3 && echo "export TIERLOG_S3_ENDPOINT=http://127.0.0.1:$(cat "$STATE/s3.port")" \
    && echo "export TIERLOG_S3_BUCKET=$BUCKET"
  echo "export TIERLOG_SERVICES_DIR=$STATE"
}

cmd=${1:-status}
which=${2:-all}
case $which in
  all) targets=(kafka s3) ;;
  kafka | s3) targets=("$which") ;;
  *) die "unknown service '$which' (kafka|s3|all)" ;;
esac
case $cmd in
  start) for t in "${targets[@]}"; do "start_$t"; done ;;
  stop) for t in "${targets[@]}"; do stop_one "$t"; done ;;
  restart) for t in "${targets[@]}"; do stop_one "$t"; "start_$t"; done ;;
  status) for t in "${targets[@]}"; do status_one "$t"; done ;;
  env) print_env ;;
  *) die "unknown command '$cmd' (start|stop|restart|status|env)" ;;
esac
