#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against its own /openapi.json, on one
# backend pair: `embedded` (SQLite + in-process state) or `mysql-redis`.
#
# The server runs with the service token supplied to schemathesis, so every
# authenticated route is exercised, and with the plugin components when
# CHAT_E2E_PLUGINS names them (the kv and lifecycle routes then reach real
# plugins). Nothing it does touches another test's data: a fresh data directory,
# its own MariaDB database (CHAT_FUZZ_DATABASE_URL, dropped and created anew)
# and a redis-server of its own on a free port (plugin changes travel over
# Redis pub/sub, which database numbers do not separate).
#
# Bounded: CHAT_FUZZ_MAX_TIME seconds of schemathesis per backend (default 60),
# at most CHAT_FUZZ_MAX_EXAMPLES cases per operation and phase (default 60),
# seed CHAT_FUZZ_SEED (default 1, so a finding reproduces).
# Fails on any 5xx (`not_a_server_error`) and on responses that do not match the
# document (status codes, content types, bodies, headers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CHAT_HOST_BIN:?set CHAT_HOST_BIN to the chat-host binary}"
backend=${1:-embedded}
max_time=${CHAT_FUZZ_MAX_TIME:-60}
max_examples=${CHAT_FUZZ_MAX_EXAMPLES:-60}
seed=${CHAT_FUZZ_SEED:-1}

data=$(mktemp -d)
log="$data/server.log"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$data"
}
trap cleanup EXIT

export CHAT_JWT_SECRET="fuzz-$RANDOM-$RANDOM-secret" CHAT_SERVICE_TOKEN="fuzz-$RANDOM-$RANDOM-token"
export CHAT_LISTEN=127.0.0.1:0 CHAT_DATA_DIR="$data"
# The plugins schemathesis.toml names, when built: the plugin routes then reach them.
unset CHAT_PLUGIN_DIR
if [ -d "${CHAT_E2E_PLUGINS:-}" ]; then
  mkdir "$data/plugins"
  for plugin in blocklist dispute-audit noop; do
    cp "$CHAT_E2E_PLUGINS/$plugin.wasm" "$CHAT_E2E_PLUGINS/$plugin.toml" "$data/plugins/"
  done
  export CHAT_PLUGIN_DIR="$data/plugins"
fi
case "$backend" in
  embedded) unset DATABASE_URL REDIS_URL ;;
  mysql-redis)
    db_url=${CHAT_FUZZ_DATABASE_URL:-mysql://root@127.0.0.1:3306/chat_host_fuzz}
    db=${db_url##*/}
    mysql -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$data/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    export DATABASE_URL="$db_url" REDIS_URL="redis://127.0.0.1:$redis_port"
    ;;
  *) echo "fuzz-api: unknown backend $backend (embedded | mysql-redis)" >&2; exit 2 ;;
esac

# From the data directory: no `plugins-dist/` is picked up by default.
(cd "$data" && exec "$CHAT_HOST_BIN") >"$log" 2>&1 &
pids+=($!)
server=${pids[-1]}
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^chat-host listening on //p' "$log")
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "fuzz-api: chat-host exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "fuzz-api: chat-host did not start" >&2; exit 1; }
echo "fuzz-api: $backend backend on $url, ${max_time} s, seed $seed"

# One worker: with several threads, CPython 3.11's ast module (which
# hypothesis uses to describe its filters) can fail with "AST constructor
# recursion depth mismatch", a schemathesis runtime error rather than a finding.
status=0
(cd "$data" && exec schemathesis --no-color --config-file "$here/schemathesis.toml" run "$url/openapi.json" \
  --header "Authorization: Bearer $CHAT_SERVICE_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-time "$max_time" --max-examples "$max_examples" --seed "$seed" \
  --workers 1 --request-timeout 10 --generation-database none) || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "fuzz-api: chat-host died during the run" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz-api: server errors (last 40):" >&2
  grep -E "ERROR|panicked" "$log" | tail -n 40 >&2 || true
fi
exit "$status"
