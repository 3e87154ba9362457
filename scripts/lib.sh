# shellcheck shell=bash
# What the load scripts (bench, bench-scale, soak) share; sourced, never run:
#
#   source "$ROOT/scripts/lib.sh" NAME     # NAME prefixes every log line
#
# It gives: log/die; default_configuration (nothing from the caller's environment reconfigures
# the service); release_build_and_tools (the release binary, wrk installed when missing);
# free_port; run_child/stop_child (a foreground command that signals do not wait for);
# start_service/stop_service (the service in the background, up when it answers ping);
# random_password; machine_info; the PostgreSQL phase through scripts/with-postgres
# (run_postgres_phase, stop_postgres_phase, test_cluster).

LIB_NAME=${1:?usage: source scripts/lib.sh NAME}
LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$LIB_ROOT/target}/release/asyncstatus-api

log() { printf '%s: %s\n' "$LIB_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Default configuration: only what the script sets itself (ASYNCSTATUS__… on the command line).
default_configuration() {
  unset RUST_LOG ASYNCSTATUS_ENV ASYNCSTATUS_CONFIG_DIR
  local var
  while read -r var; do unset "$var"; done < <(compgen -e | grep '^ASYNCSTATUS__' || true)
}

# release_build_and_tools TOOL...: the release binary; wrk (apt-get, as root) when missing;
# then every TOOL must be on the PATH.
release_build_and_tools() {
  log "cargo build --release -p asyncstatus-api"
  cargo build --release -p asyncstatus-api
  "$LIB_ROOT/scripts/need-debian-package" wrk wrk || die "wrk is needed"
  local tool
  for tool in wrk "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

random_password() {
  python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(24)))'
}

# machine_info PREFIX: "PREFIX<key>\t<value>" lines describing this run's machine and code.
machine_info() {
  local p=$1 # printf escapes (\t) in it are expanded
  printf "${p}started\t%s\n" "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  printf "${p}git\t%s\n" "$(git -C "$LIB_ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
  printf "${p}nproc\t%s\n" "$(nproc)"
  printf "${p}cpu\t%s\n" "$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf "${p}kernel\t%s\n" "$(uname -sr)"
  printf "${p}memory_kb\t%s\n" "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  printf "${p}wrk\t%s\n" "$(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
}

# run_child CMD...: runs CMD in the background and waits for it, so that a signal reaches the
# script's trap at once (bash defers traps while a foreground child runs); the trap stops it.
CHILD=""
run_child() {
  local rc=0
  "$@" </dev/null &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

stop_child() {
  [[ -n $CHILD ]] || return 0
  kill -TERM "$CHILD" 2>/dev/null || true
  wait "$CHILD" 2>/dev/null || true
  CHILD=""
}

SERVICE_PID=""
SERVICE_LOG=""
BASE=""

# start_service DATABASE_URL PREFIX: the service in the background (stdout and stderr in
# PREFIX.stdout and PREFIX.stderr, the bootstrap admin's password $ADMIN_PASSWORD), waited for
# until it answers ping on BASE.
# SERVICE_ENV (an array of NAME=VALUE) adds to its environment.
SERVICE_ENV=()
start_service() {
  local url=$1 prefix=$2 port waited=0
  port=$(free_port)
  SERVICE_LOG=$prefix.stderr
  env ${SERVICE_ENV[@]+"${SERVICE_ENV[@]}"} "ASYNCSTATUS__DATABASE__URL=$url" \
    "ASYNCSTATUS__SERVER__PORT=$port" \
    "ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD=$ADMIN_PASSWORD" \
    "$BIN" serve </dev/null >"$prefix.stdout" 2>"$SERVICE_LOG" &
  SERVICE_PID=$!
  BASE=http://127.0.0.1:$port
  until curl -fsS -o /dev/null "$BASE/api/4.0/ping" 2>/dev/null; do
    if ! kill -0 "$SERVICE_PID" 2>/dev/null; then
      tail -n 20 "$SERVICE_LOG" >&2 || true
      SERVICE_PID=""
      die "the service exited during start-up (its log is above)"
    fi
    ((waited++ < 600)) || { tail -n 20 "$SERVICE_LOG" >&2; die "no answer to ping within 60 s"; }
    sleep 0.1
  done
  log "service (pid $SERVICE_PID) is up on $BASE"
}

# stop_service: SIGTERM (graceful), then SIGKILL after 15 s. How it went, in STOPPED: "SIGTERM:
# exited with status 0 after 0.31 s", or that it had exited already; empty when none ran.
STOPPED=""
stop_service() {
  local pid=$SERVICE_PID rc=0 start end how="SIGTERM"
  STOPPED=""
  [[ -n $pid ]] || return 0
  SERVICE_PID=""
  start=$(date +%s.%N)
  if ! kill -TERM "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    STOPPED="the service had already exited, with status $rc"
    ((rc > 128)) && STOPPED+=" (signal $(kill -l "$((rc - 128))" 2>/dev/null))"
    STOPPED+=" (see its log)"
    return 0
  fi
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    how="SIGTERM, then SIGKILL after 15 s"
  fi
  wait "$pid" 2>/dev/null || rc=$?
  end=$(date +%s.%N)
  STOPPED="$how: exited with status $rc after $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s"
}

# run_postgres_phase ARG...: runs this script again as `SCRIPT --postgres-phase ARG...` inside
# scripts/with-postgres, on a throwaway cluster (never whatever ASYNCSTATUS_TEST_DATABASE_URL
# names), in its own process group and in the background, so that Ctrl-C or SIGTERM reaches the
# caller's trap at once, which then stops the whole group (stop_postgres_phase). Its exit status.
PG_PHASE=""
run_postgres_phase() {
  local status=0
  setsid env -u ASYNCSTATUS_TEST_DATABASE_URL ASYNCSTATUS_TEST_REQUIRE_PG=1 \
    "$LIB_ROOT/scripts/with-postgres" "$0" --postgres-phase "$@" </dev/null &
  PG_PHASE=$!
  wait "$PG_PHASE" || status=$?
  PG_PHASE=""
  return "$status"
}

# stop_postgres_phase: for the caller's cleanup. scripts/with-postgres, the phase, its service
# and load generators stop theirs and the cluster, then exit.
stop_postgres_phase() {
  [[ -n $PG_PHASE ]] || return 0
  kill -TERM -- "-$PG_PHASE" 2>/dev/null || kill -TERM "$PG_PHASE" 2>/dev/null || true
  wait "$PG_PHASE" 2>/dev/null || true
  PG_PHASE=""
}

# test_cluster: inside the PostgreSQL phase, the throwaway cluster: PG_BINDIR, PG_USER, PG_HOST,
# PG_PORT, and PSQL (psql on it, failing on the first error; add -d DATABASE).
test_cluster() {
  [[ -n ${ASYNCSTATUS_TEST_PG_BINDIR:-} && -n ${ASYNCSTATUS_TEST_DATABASE_URL:-} ]] ||
    die "scripts/with-postgres gave no throwaway cluster"
  PG_BINDIR=$ASYNCSTATUS_TEST_PG_BINDIR
  # postgres://USER@HOST:PORT/postgres, as scripts/with-postgres makes it.
  [[ $ASYNCSTATUS_TEST_DATABASE_URL =~ ^postgres://([^@/:]+)@([^/:]+):([0-9]+)/ ]] ||
    die "unexpected ASYNCSTATUS_TEST_DATABASE_URL: $ASYNCSTATUS_TEST_DATABASE_URL"
  PG_USER=${BASH_REMATCH[1]} PG_HOST=${BASH_REMATCH[2]} PG_PORT=${BASH_REMATCH[3]}
  PSQL=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")
}
