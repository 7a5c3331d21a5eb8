#!/usr/bin/env bash
# Starts chat-host on the embedded backend and runs the python-socketio smoke test against it.
set -euo pipefail
cd "$(dirname "$0")"
: "${CHAT_HOST_BIN:?set CHAT_HOST_BIN to the chat-host binary}"

data=$(mktemp -d)
log="$data/server.log"
export CHAT_JWT_SECRET="py-$RANDOM-$RANDOM-secret" CHAT_SERVICE_TOKEN="py-$RANDOM-$RANDOM-token"
CHAT_LISTEN=127.0.0.1:0 CHAT_DATA_DIR="$data" "$CHAT_HOST_BIN" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  url=$(sed -n 's/^chat-host listening on //p' "$log")
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "chat-host exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$log"; echo "chat-host did not start" >&2; exit 1; }
CHAT_URL="$url" python3 smoke.py
