# Shared helpers for the deploy/local scripts. Sourced, not run.
# Everything the project installs lives under $TIERLOG_CACHE (default ~/.cache/tierlog),
# keyed by version, so a warm machine skips the slow steps.

TIERLOG_CACHE=${TIERLOG_CACHE:-$HOME/.cache/tierlog}
TANSU_VERSION=0.6.0
MOTO_VERSION=5.2.5
TANSU_ROOT="$TIERLOG_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
MOTO_VENV="$TIERLOG_CACHE/moto-$MOTO_VERSION/venv"
# Independent clients the tests drive (a PostgreSQL driver using the extended protocol).
# The venv is keyed by the package list, so changing it makes a fresh one.
TEST_PY_PACKAGES="psycopg[binary]==3.3.9 deltalake==1.6.6 polars==2.1.0 selenium==4.50.0"
TEST_PY_VENV="$TIERLOG_CACHE/test-clients-$(printf '%s' "$TEST_PY_PACKAGES" | cksum | cut -d' ' -f1)/venv"
# DuckDB is the query benchmark's baseline only; not needed to run or test tierlog.
DUCKDB_VERSION=2.0.0
PYTZ_VERSION=2025.2
DUCKDB_VENV="$TIERLOG_CACHE/duckdb-$DUCKDB_VERSION/venv"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until 127.0.0.1:$1 accepts connections, up to $2 seconds.
wait_port() {
  local port=$1 deadline=$((SECONDS + ${2:-30}))
  while (( SECONDS < deadline )); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# Stop the process whose PID is in file $1 (SIGTERM, then SIGKILL after $2 s).
stop_pidfile() {
  local file=$1 grace=${2:-10} pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while pid_alive "$pid" && (( SECONDS < deadline )); do sleep 0.1; done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Root is needed for apt-get; CI and the dev machines run as root.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  (( ${#missing[@]} == 0 )) && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
