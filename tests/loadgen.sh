#!/usr/bin/env bash
# Self-test of chat-load against the real server (embedded backend): small
# pairs and room runs must deliver every message exactly once, injected faults
# must be counted as lost and duplicated, a small connect storm must connect
# every socket, and a wrong secret must be refused.
#   CHAT_HOST_BIN  server binary (default $CARGO_TARGET_DIR/debug/chat-host)
#   CHAT_LOAD_BIN  load generator (default: built with cargo into $CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}"
CHAT_HOST_BIN="${CHAT_HOST_BIN:-$CARGO_TARGET_DIR/debug/chat-host}"
if [ -z "${CHAT_LOAD_BIN:-}" ]; then
  cargo build -q -p chat-load
  CHAT_LOAD_BIN="$CARGO_TARGET_DIR/debug/chat-load"
fi
[ -x "$CHAT_HOST_BIN" ] || { echo "loadgen: no server binary at $CHAT_HOST_BIN (cargo build -p chat-host)" >&2; exit 1; }

data=$(mktemp -d)
log="$data/server.log"
export CHAT_JWT_SECRET="lg-$RANDOM-$RANDOM-secret" CHAT_SERVICE_TOKEN="lg-$RANDOM-$RANDOM-token"
CHAT_HOST_BIN=$(realpath "$CHAT_HOST_BIN")
# Started from the data directory, so no plugins-dist/ is picked up: the core alone is measured.
(cd "$data" && CHAT_LISTEN=127.0.0.1:0 CHAT_DATA_DIR="$data" CHAT_RATE_LIMIT_PER_MINUTE=100000 CHAT_MAX_CONNECTIONS_PER_ADDRESS=0 \
  RUST_LOG="${RUST_LOG:-warn}" exec "$CHAT_HOST_BIN") >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
url=
for _ in $(seq 1 100); do
  url=$(sed -n 's/^chat-host listening on //p' "$log")
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "loadgen: chat-host exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "loadgen: chat-host did not start" >&2; exit 1; }

passed=0 failed=0
# check NAME FILE PYTHON-EXPRESSION: the expression sees the JSON result as `r`.
check() {
  if python3 - "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"r": r})
print(("ok  " if ok else "FAIL"), sys.argv[2])
sys.exit(0 if ok else 1)
PY
  then passed=$((passed + 1)); else failed=$((failed + 1)); echo "loadgen: $1 failed" >&2; fi
}

run() {
  local name=$1; shift
  echo "== $name: chat-load $*"
  if "$CHAT_LOAD_BIN" --url "$url" --server-pid "$pid" --quiet --json "$data/$name.json" "$@"; then
    return 0
  fi
  failed=$((failed + 1)); echo "loadgen: $name: chat-load exited non-zero" >&2; return 1
}

if run pairs pairs --pairs 10 --rate 50 --duration 3 --grace 5; then
  m='r["messages"]'
  check pairs "$data/pairs.json" "r['connected'] == 20 and r['connectFailed'] == 0"
  check pairs "$data/pairs.json" "$m['sent'] >= 140 and $m['acked'] == $m['sent'] and not r['errors']"
  check pairs "$data/pairs.json" "$m['expected'] == $m['sent'] and $m['received'] == $m['expected'] > 0"
  check pairs "$data/pairs.json" "$m['lost'] == 0 and $m['duplicated'] == 0 and $m['unexpected'] == 0"
  check pairs "$data/pairs.json" "r['latencyMs']['receive']['count'] == $m['received']"
fi

if run room room --members 5 --senders 2 --rate 20 --duration 1; then
  m='r["messages"]'
  check room "$data/room.json" "$m['expected'] == 4 * $m['sent'] > 0 and $m['received'] == $m['expected']"
  check room "$data/room.json" "$m['lost'] == 0 and $m['duplicated'] == 0 and $m['unexpected'] == 0"
fi

# Fault injection on the receiving side: hidden arrivals must count as lost, doubled ones as
# duplicated, and --strict must fail the run.
echo "== faults: chat-load --strict --fault-drop-every 3 --fault-dup-every 4 pairs"
set +e
"$CHAT_LOAD_BIN" --url "$url" --quiet --strict --grace 0.5 --fault-drop-every 3 --fault-dup-every 4 \
  --json "$data/faults.json" pairs --pairs 5 --rate 50 --duration 1 >/dev/null
status=$?
set -e
if [ "$status" -eq 2 ]; then
  m='r["messages"]'; i='r["messages"]["injected"]'
  check faults "$data/faults.json" "$m['lost'] == $i['dropped'] > 0 and $m['duplicated'] == $i['duplicated'] > 0"
  check faults "$data/faults.json" "$m['received'] + $m['lost'] == $m['expected'] == $m['sent'] and $m['unexpected'] == 0"
else
  failed=$((failed + 1)); echo "loadgen: faults: expected exit status 2 from --strict, got $status" >&2
fi

if run connect-storm connect-storm --sockets 100 --rate 200 --hold 0.5; then
  check connect-storm "$data/connect-storm.json" "r['connected'] == 100 and r['connectFailed'] == 0 and not r['errors']"
  check connect-storm "$data/connect-storm.json" "r['latencyMs']['connect']['count'] == 100 and r['server']['rssAfterKib'] > 0"
fi

# A wrong secret must show up as failed sockets, not as a clean run.
if "$CHAT_LOAD_BIN" --url "$url" --quiet --jwt-secret wrong --json "$data/refused.json" \
    connect-storm --sockets 3 --rate 100 --hold 0 >/dev/null; then
  check refused "$data/refused.json" "r['connected'] == 0 and r['errors'].get('connect:refused:unauthorized') == 3"
else
  failed=$((failed + 1)); echo "loadgen: refused: chat-load exited non-zero" >&2
fi

echo "loadgen: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
