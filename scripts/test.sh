#!/usr/bin/env bash
# The whole test suite: services, unit and conformance tests, then the end-to-end
# Socket.IO tests (node socket.io-client, python-socketio) on both backend pairs.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}

step() { printf '\n=== %s\n' "$*"; }

step "services (MariaDB, Redis)"
bash scripts/services.sh

step "tooling (node, python-socketio)"
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

step "plugins: build every plugin into a component"
bash scripts/build-plugins.sh
export CHAT_TEST_PLUGINS="$CARGO_TARGET_DIR/plugins" CHAT_E2E_PLUGINS="$CARGO_TARGET_DIR/plugins"

step "plugins: SDK and plugin unit tests (native)"
cargo test --manifest-path plugins/Cargo.toml --locked

step "build"
cargo build -p chat-host --locked
export CHAT_HOST_BIN="$CARGO_TARGET_DIR/debug/chat-host"

step "unit, conformance and plugin runtime tests (SQLite, MariaDB, memory, Redis)"
cargo test --workspace --locked

for backend in embedded mysql-redis; do
  step "end-to-end tests: $backend"
  (cd tests/e2e && CHAT_E2E_BACKEND=$backend npm test --silent)
done

step "python-socketio smoke test"
bash tests/python/run.sh

step "load generator self-test (counts lost and duplicated messages)"
bash tests/loadgen.sh

echo
echo "all tests passed"
