#!/usr/bin/env bash
# Delivery soak (bench/soak.mjs): two release chat-host instances on MariaDB
# (database chat_host_soak, dropped and recreated here) and a redis-server of
# their own, steady traffic from ChatClient sockets for DURATION seconds, faults
# on a schedule (client drops, instance SIGKILL + restart, Redis SIGKILL + empty
# restart, plugin upload/disable/enable), then a ledger check: lost, duplicated,
# receipt mismatches, latency inside and outside the fault windows. Not CI.
#
#   bash bench/soak.sh                                  # 30 min at 50 msg/s
#   DURATION=240 RATE=30 TAG=short bash bench/soak.sh   # a short run, every fault kind once
#
# Env: DURATION (1800), RATE (50), PAIRS (50), ROOM (20), ROOM_SHARE (0.2),
# FAULT_EVERY (min(150, DURATION/5) s, at least 20), FAULTS (drop,instance,redis,plugin),
# DROP_FRACTION (0.1), GRACE (30), SWEEP (1), SEND_DEADLINE_MS (30000), TAG (a timestamp),
# SOAK_RUST_LOG (info), CHAT_HOST_BIN, CARGO_TARGET_DIR (~/.cache/chat-host/target),
# SOAK_DATABASE (chat_host_soak), MARIADB_HOST/MARIADB_PORT (127.0.0.1/3306, user root).
# Result: bench/results/soak/soak-<DURATION>s-<TAG>.json. Exit 1 when the ledger is not clean.
#
# This script prepares (binary, database, run dir) and cleans up; the harness
# (soak.mjs) starts, kills and restarts redis-server and the instances itself,
# because the faults need it. Their logs stay in the run dir printed at the start
# (a.stderr.log, b.stderr.log, redis.*.log); their pids are kept in <run dir>/pids/,
# and whatever is still alive there when this script exits is killed (only
# processes this run started, checked by their command line).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}"
BIN="${CHAT_HOST_BIN:-$CARGO_TARGET_DIR/release/chat-host}"
DB="${SOAK_DATABASE:-chat_host_soak}"
DB_HOST="${MARIADB_HOST:-127.0.0.1}" DB_PORT="${MARIADB_PORT:-3306}"
PLUGINS="$CARGO_TARGET_DIR/plugins"

die() { echo "soak: $*" >&2; exit 2; }

if [ ! -x "$BIN" ]; then
  [ -n "${CHAT_HOST_BIN:-}" ] && die "CHAT_HOST_BIN=$BIN is not an executable"
  echo "soak: building $BIN" >&2
  cargo build --release -p chat-host
fi
[ -d tests/e2e/node_modules/socket.io-client ] || die "tests/e2e/node_modules has no socket.io-client: run (cd tests/e2e && npm ci)"
command -v redis-server >/dev/null || die "redis-server is not installed"
command -v node >/dev/null || die "node is not installed"
if [[ ",${FAULTS:-plugin}," == *",plugin,"* ]]; then
  [ -f "$PLUGINS/contact-filter.wasm" ] && [ -f "$PLUGINS/contact-filter.toml" ] ||
    die "$PLUGINS/contact-filter.{wasm,toml} missing: run scripts/build-plugins.sh"
fi
SQL=mariadb
command -v mariadb >/dev/null || SQL=mysql
[[ "$DB" =~ ^[A-Za-z0-9_]+$ ]] || die "SOAK_DATABASE must be a plain name"
# A database of its own on the shared MariaDB: nothing else is touched.
"$SQL" -uroot -h"$DB_HOST" -P"$DB_PORT" -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB" ||
  die "MariaDB at $DB_HOST:$DB_PORT not reachable as root"

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/chat-soak.XXXXXX")"
echo "soak: run dir $RUN_DIR" >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

node_pid=
cleanup() {
  local rc=$?
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    # The harness stops its servers itself (SIGTERM, then SIGKILL after 15 s).
    for _ in $(seq 1 40); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$node_pid" 2>/dev/null || true
  fi
  # Safety net: anything of this run still alive (the harness was killed outright).
  local f pid
  for f in "$RUN_DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e "$BIN" -e 'redis-server'; then
      echo "soak: killing leftover $(basename "$f" .pid) (pid $pid)" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  echo "soak: server logs kept in $RUN_DIR" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

SOAK_RUN_DIR="$RUN_DIR" SOAK_BIN="$BIN" SOAK_PLUGINS="$PLUGINS" \
  SOAK_DATABASE_URL="mysql://root@$DB_HOST:$DB_PORT/$DB" \
  node bench/soak.mjs &
node_pid=$!
wait "$node_pid"
