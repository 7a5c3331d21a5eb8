#!/usr/bin/env bash
# The whole test suite: services, then the static checks (rustfmt, clippy,
# cargo-deny) of both cargo workspaces, unit and conformance tests, then the
# end-to-end Socket.IO tests (node socket.io-client, python-socketio) on both
# backend pairs, and schemathesis against the HTTP API on both.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}

step() { printf '\n=== %s\n' "$*"; }

step "services (MariaDB, Redis)"
bash scripts/services.sh
# The Rust tests use exactly what services.sh brought up, and with
# CHAT_TEST_REQUIRE_SERVICES=1 a MariaDB or Redis that does not answer fails
# them instead of skipping them.
export CHAT_TEST_REQUIRE_SERVICES=1
export CHAT_TEST_DATABASE_URL=mysql://root@127.0.0.1:3306/chat_host_test
export CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379

step "tooling (node, chromium, sqlite3, haproxy, python-socketio, schemathesis, rustfmt, clippy, cargo-deny)"
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
# The console's browser tests drive Debian's Chromium (no browser download) and
# edit a row through the database's own client (sqlite3; mysql comes with MariaDB).
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
# The load-balancer tests run deploy/haproxy.cfg with Debian's HAProxy (2.6).
command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1 \
  || { echo "chromium (/usr/bin/chromium) does not start headless: the console tests need it" >&2; exit 1; }
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
# cargo-deny: the 0.20 series reads deny.toml as written; built from crates.io
# into ~/.cargo/bin when missing (about 4 minutes on 2 cores, once).
DENY_VERSION=0.20.2
case "$(cargo deny --version 2>/dev/null)" in
  "cargo-deny 0.20."*) ;;
  *) cargo install --locked "cargo-deny@$DENY_VERSION" ;;
esac
cargo deny --version

# The RustSec advisory database is a git repository on GitHub, which some
# machines (this project's CI among them) cannot reach. Then git is pointed,
# for cargo-deny alone, at a local copy of that repository (a snapshot of
# github.com/rustsec/advisory-db; CHAT_ADVISORY_DB_MIRROR names another one).
# The URL is the db-urls entry of deny.toml and plugins/deny.toml.
ADVISORY_DB_URL=https://github.com/RustSec/advisory-db
ADVISORY_DB_MIRROR=${CHAT_ADVISORY_DB_MIRROR:-/work/.mirror/rustsec+advisory-db/repo}
DENY_CHECKS=(advisories bans licenses sources)
DENY_GIT_ENV=()
loud() { local bar; bar=$(printf '!%.0s' {1..78}); printf '\n%s\n' "$bar" >&2; printf '!! %s\n' "$@" >&2; printf '%s\n\n' "$bar" >&2; }
if GIT_TERMINAL_PROMPT=0 timeout 20 git ls-remote --exit-code "$ADVISORY_DB_URL" refs/heads/main >/dev/null 2>&1; then
  echo "advisory database: $ADVISORY_DB_URL (live)"
elif git -C "$ADVISORY_DB_MIRROR" rev-parse --verify -q refs/heads/main >/dev/null 2>&1; then
  n=${GIT_CONFIG_COUNT:-0}
  DENY_GIT_ENV=(GIT_CONFIG_COUNT=$((n + 1)) "GIT_CONFIG_KEY_$n=url.file://$ADVISORY_DB_MIRROR.insteadOf" "GIT_CONFIG_VALUE_$n=$ADVISORY_DB_URL")
  db_time=$(git -C "$ADVISORY_DB_MIRROR" log -1 --format=%ct refs/heads/main)
  db_age=$(( ($(date +%s) - db_time) / 86400 ))
  echo "advisory database: $ADVISORY_DB_URL is out of reach; using the local copy $ADVISORY_DB_MIRROR"
  echo "advisory database: newest advisory commit $(git -C "$ADVISORY_DB_MIRROR" log -1 --format='%h of %cd' --date=short refs/heads/main) ($db_age days old)"
  [ "$db_age" -le 30 ] || loud "WARNING: the local RustSec advisory database is $db_age days old:" \
    "advisories published since then are NOT checked. Refresh $ADVISORY_DB_MIRROR."
else
  DENY_CHECKS=(bans licenses sources)
  loud "WARNING: cargo deny check advisories CANNOT RUN on this machine:" \
    "$ADVISORY_DB_URL is out of reach and there is no local copy of it" \
    "at $ADVISORY_DB_MIRROR (set CHAT_ADVISORY_DB_MIRROR to a clone)." \
    "Dependencies are NOT checked against security advisories in this run;" \
    "only bans, licenses and sources are."
fi
cargo_deny() { env "${DENY_GIT_ENV[@]}" cargo deny "$@"; }

step "format: cargo fmt --check (root and plugin workspaces)"
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check

step "lint: cargo clippy -D warnings (root and plugin workspaces, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Natively, like the plugins' own unit tests (their wasm build is build-plugins.sh's).
cargo clippy --manifest-path plugins/Cargo.toml --workspace --all-targets --locked -- -D warnings

step "dependencies: cargo deny check ${DENY_CHECKS[*]} (root and plugin workspaces)"
cargo_deny --locked check "${DENY_CHECKS[@]}"
cargo_deny --locked --manifest-path plugins/Cargo.toml --config plugins/deny.toml check "${DENY_CHECKS[@]}"

step "plugins: build every plugin into a component"
bash scripts/build-plugins.sh
export CHAT_TEST_PLUGINS="$CARGO_TARGET_DIR/plugins" CHAT_E2E_PLUGINS="$CARGO_TARGET_DIR/plugins"

step "plugins: SDK and plugin unit tests (native)"
cargo test --manifest-path plugins/Cargo.toml --locked

step "build"
cargo build -p chat-host --locked
export CHAT_HOST_BIN="$CARGO_TARGET_DIR/debug/chat-host"

# The state store's conformance suite runs on a Redis Cluster too: one of this
# run's own (3 masters, 3 replicas on free ports), unless one is given.
if [ -z "${CHAT_TEST_REDIS_CLUSTER_URLS:-}" ]; then
  step "Redis Cluster for the unit tests (scripts/redis-cluster.sh)"
  cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-test-cluster.XXXXXX")
  trap 'bash scripts/redis-cluster.sh stop "$cluster_dir"; rm -rf "$cluster_dir"' EXIT
  CHAT_TEST_REDIS_CLUSTER_URLS=$(bash scripts/redis-cluster.sh start "$cluster_dir")
  export CHAT_TEST_REDIS_CLUSTER_URLS
fi

step "unit, conformance and plugin runtime tests (SQLite, MariaDB, memory, Redis, Redis Cluster)"
cargo test --workspace --locked

for backend in embedded mysql-redis; do
  step "end-to-end tests: $backend"
  (cd tests/e2e && CHAT_E2E_BACKEND=$backend npm test --silent)
done

step "python-socketio smoke test"
bash tests/python/run.sh

for backend in embedded mysql-redis; do
  step "HTTP API fuzzing: schemathesis against /openapi.json, $backend (no 5xx, responses as documented)"
  bash tests/python/fuzz-api.sh "$backend"
done

step "load generator self-test (counts lost and duplicated messages)"
bash tests/loadgen.sh

echo
echo "all tests passed"
