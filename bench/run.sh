#!/usr/bin/env bash
# Benchmarks of chat-host with chat-load. Results (JSON) go to bench/results/<scenario>/.
#   bash bench/run.sh floors                     Redis PING, MariaDB single-row commit (one connection)
#   bash bench/run.sh storm  BACKEND N RATE      connect storm (BACKEND: embedded | mariadb | echo)
#   bash bench/run.sh pairs  BACKEND PAIRS RATE... [DURATION]  1:1 pairs, one run per rate
#   bash bench/run.sh plugins BACKEND RATE       pairs (PAIRS, default 100) at RATE with 0, 1 and 3 plugins
#   bash bench/run.sh room   BACKEND MEMBERS SENDERS RATE
#   bash bench/run.sh idle   BACKEND PAIRS [SECONDS]  2*PAIRS sockets joined, nothing sent: CPU, Redis, SQL per minute
#   bash bench/run.sh cluster PAIRS RATE [ROUNDS]  pairs on MariaDB + one Redis server against MariaDB + a
#                                                Redis Cluster (3 masters + 3 replicas, started here), alternating:
#                                                Redis commands and Redis CPU per message (masters summed)
#   bash bench/run.sh verify [PREFIX]            DB check of MariaDB runs (messages once, receipts)
# The server is pinned to CPU 0 and chat-load to CPU 1 (taskset); the server's CPU time
# (utime+stime from /proc/<pid>/stat) over the chat-load run is added to each JSON as
# "serverCpu". Env: PERF (profile file), CHAT_HOST_BIN, CHAT_LOAD_BIN, SERVER_CPU (0), LOAD_CPU (1), DURATION (20).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}"
HOST_BIN="${CHAT_HOST_BIN:-$CARGO_TARGET_DIR/release/chat-host}"
LOAD_BIN="${CHAT_LOAD_BIN:-$CARGO_TARGET_DIR/release/chat-load}"
ECHO_BIN="${CHAT_ECHO_BIN:-$CARGO_TARGET_DIR/release/chat-echo}"
SERVER_CPU="${SERVER_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}"
DB_URL="${DATABASE_URL:-mysql://root@127.0.0.1:3306/chat_host_bench}"
REDIS="${REDIS_URL:-redis://127.0.0.1:6379}"
RESULTS=bench/results   # one folder per scenario (bench/README.md); OUT is set per scenario below
OUT=$RESULTS
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export CHAT_JWT_SECRET="bench-$RANDOM-$RANDOM-secret" CHAT_SERVICE_TOKEN="bench-$RANDOM-$RANDOM-token"

pid= url= data=
stop_server() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
  [ -n "$data" ] && rm -rf "$data"; data=
}
trap stop_server EXIT

# start_server BACKEND PLUGINS: PLUGINS is a comma-separated list of plugin names (or "").
start_server() {
  local backend=$1 plugins=${2:-}
  data=$(mktemp -d)
  mkdir -p "$data/plugins"
  local p
  for p in ${plugins//,/ }; do
    cp "$CARGO_TARGET_DIR/plugins/$p.wasm" "$CARGO_TARGET_DIR/plugins/$p.toml" "$data/plugins/"
  done
  if [ -f "$data/plugins/tiered-rate-limit.toml" ]; then
    # High limits, so the policy is computed on every send but never throttles the run.
    sed -i -e 's|^client = .*|client = "1000000/60s"|' -e 's|^freelancer = .*|freelancer = "1000000/60s"|' \
      -e 's|^new-account = .*|new-account = "1000000/60s"|' "$data/plugins/tiered-rate-limit.toml"
  fi
  local env=(CHAT_LISTEN=127.0.0.1:0 CHAT_DATA_DIR="$data" CHAT_RATE_LIMIT_PER_MINUTE=100000000 CHAT_MAX_CONNECTIONS_PER_ADDRESS=0
    CHAT_PLUGIN_DIR="$data/plugins" RUST_LOG="${RUST_LOG:-warn}")
  if [[ "$backend" = mariadb* ]]; then
    mysql -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS chat_host_bench'
    env+=(DATABASE_URL="$DB_URL")
  fi
  case "$backend" in
    mariadb) env+=(REDIS_URL="$REDIS") ;;
    mariadb-cluster) env+=(REDIS_CLUSTER_URLS="$CLUSTER_URLS") ;;
  esac
  local bin=$HOST_BIN
  [ "$backend" = echo ] && bin=$ECHO_BIN   # transport floor: bare socketioxide (loadgen/src/bin/chat-echo.rs)
  (cd "$data" && exec env "${env[@]}" taskset -c "$SERVER_CPU" "$bin") >"$data/server.log" 2>&1 &
  pid=$!
  url=
  for _ in $(seq 1 300); do
    url=$(sed -n 's/^chat-\(host\|echo\) listening on //p' "$data/server.log")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$data/server.log"; echo "bench: chat-host exited" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$data/server.log"; echo "bench: chat-host did not start" >&2; exit 1; }
  echo "bench: chat-host ($backend, plugins: ${plugins:-none}) pid $pid at $url, CPU $SERVER_CPU" >&2
}

db_counters() {
  mysql -uroot -h127.0.0.1 -N -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions','Com_commit','Com_insert')" |
    sort | awk '{v[$1]=$2} END {print v["Questions"]+0, v["Com_commit"]+0, v["Com_insert"]+0}'
}
# Summed over REDIS_PORTS: the server of REDIS_URL, or a cluster's masters.
REDIS_PORTS=${REDIS_PORTS:-$(echo "$REDIS" | sed -n 's|.*:\([0-9]*\)/*$|\1|p')}
redis_info() { local p; for p in $REDIS_PORTS; do redis-cli -p "$p" info "$1"; done | tr -d '\r'; }
redis_counter() { redis_info stats | awk -F: '/^total_commands_processed:/ {n += $2} END {print n + 0}'; }
redis_cpu() { redis_info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# load NAME ARGS...: one chat-load run against the running server, JSON to $OUT/NAME.json.
load() {
  local name=$1; shift
  local before after
  [ -n "${PERF:-}" ] && name="$name-perf"   # profiled runs are kept apart from the clean ones
  [ -n "${TAG:-}" ] && name="$name-$TAG"   # repeated runs
  before=$(cpu_ticks "$pid")
  # Steady-state server CPU: ticks over a window inside the send phase (from 2 s after the
  # start to 2 s before the end of DURATION; setup and connect of a few hundred sockets take < 1 s).
  local window=$(( ${DURATION:-20} - 4 )) sampler=
  rm -f "$RESULTS/.window"
  if [[ " $* " != *" connect-storm "* ]]; then
    (sleep 2; a=$(cpu_ticks "$pid"); sleep "$window"; b=$(cpu_ticks "$pid"); echo "$window $a $b" >"$RESULTS/.window") &
    sampler=$!
  fi
  local dbq0 rc0 rcpu0
  dbq0=$(db_counters) rc0=$(redis_counter) rcpu0=$(redis_cpu)
  echo "bench: $name: chat-load $*" >&2
  # PERF=FILE: also profile the server (perf record -g, PERF_SEC seconds, from 5 s into the run).
  [ -n "${PERF:-}" ] && (sleep 5; perf record -q -F 499 -g -o "$PERF" -p "$pid" -- sleep "${PERF_SEC:-8}" >/dev/null 2>&1) &
  taskset -c "$LOAD_CPU" "$LOAD_BIN" --url "$url" --server-pid "$pid" --quiet --json "$OUT/$name.json" "$@" \
    || echo "bench: $name: chat-load exited with $?" >&2
  after=$(cpu_ticks "$pid")
  [ -n "$sampler" ] && { wait "$sampler" 2>/dev/null || true; }
  python3 - "$OUT/$name.json" "$before" "$after" "$(getconf CLK_TCK)" "$BACKEND" "${PLUGINS:-}" "$(cat "$RESULTS/.window" 2>/dev/null)" \
    "$dbq0" "$(db_counters)" "$rc0" "$(redis_counter)" "$rcpu0" "$(redis_cpu)" \
    "$(git rev-parse --short HEAD)" "$(nproc) cores, $(uname -r)" <<'PY'
import json, sys
f, b, a, hz, backend, plugins, window, dq0, dq1, rc0, rc1, rcpu0, rcpu1, commit, machine = sys.argv[1:]
r = json.load(open(f))
r["commit"], r["machine"] = commit, machine
if backend.startswith("mariadb"):
    # Server-wide counters over the whole chat-load run (setup included): statements and
    # commits MariaDB executed, commands Redis processed.
    d0, d1 = (dict(zip(["questions", "commit", "insert"], map(int, x.split()))) for x in (dq0, dq1))
    r["backendCounters"] = {k: d1[k] - d0[k] for k in d0}
    r["backendCounters"]["redisCommands"] = int(rc1) - int(rc0)
    r["backendCounters"]["redisCpuSeconds"] = round(float(rcpu1) - float(rcpu0), 3)
    acked = (r.get("messages") or {}).get("acked") or 0
    if acked:
        r["backendCounters"]["redisCommandsPerMsg"] = round((int(rc1) - int(rc0)) / acked, 1)
        r["backendCounters"]["redisCpuUsPerMsg"] = round((float(rcpu1) - float(rcpu0)) * 1e6 / acked)
r["serverCpu"] = {"seconds": (int(a) - int(b)) / int(hz)}
if window and r.get("messages") and r.get("params", {}).get("rate"):
    w, wa, wb = map(int, window.split())
    sec = (wb - wa) / int(hz)
    r["serverCpu"]["window"] = {"seconds": w, "cpuSeconds": sec,
                                "cpuUsPerMsg": sec * 1e6 / (w * r["params"]["rate"])}
r["bench"] = {"backend": backend, "plugins": [p for p in plugins.split(",") if p]}
json.dump(r, open(f, "w"), indent=1)
PY
  python3 bench/summary.py "$OUT/$name.json"
}

scenario=${1:-}; shift || true
case "$scenario" in floors | storm | pairs | plugins | room | idle | cluster) OUT=$RESULTS/$scenario; mkdir -p "$OUT" ;; esac
case "$scenario" in
  floors)
    {
      echo "== redis-benchmark PING (50 clients, default) and one client (-c 1)"
      redis-benchmark -q -n 20000 -t ping 2>&1 | tr '\r' '\n' | grep -v -e 'rps=' -e '^ *$'
      redis-benchmark -q -n 20000 -c 1 -t ping 2>&1 | tr '\r' '\n' | grep -v -e 'rps=' -e '^ *$'
      echo "== MariaDB: single-row INSERT with autocommit, one connection"
      python3 bench/commit_floor.py 3000
    } | tee "$OUT/floors.txt"
    ;;
  storm)
    BACKEND=$1 n=$2 rate=$3
    start_server "$BACKEND" ""
    load "storm-$BACKEND-$n-$rate" connect-storm --sockets "$n" --rate "$rate" --hold "${HOLD:-5}"
    ;;
  pairs)
    BACKEND=$1 npairs=$2; shift 2
    start_server "$BACKEND" ""
    for rate in "$@"; do
      load "pairs-$BACKEND-$npairs-$rate" --prefix "bp${BACKEND:0:1}$rate$RANDOM" \
        pairs --pairs "$npairs" --rate "$rate" --duration "${DURATION:-20}"
    done
    ;;
  plugins)
    BACKEND=$1 rate=$2
    for PLUGINS in "" "contact-filter" "blocklist,contact-filter,tiered-rate-limit"; do
      start_server "$BACKEND" "$PLUGINS"
      n=$(echo "$PLUGINS" | awk -F, '{print ($0=="") ? 0 : NF}')
      load "plugins-$BACKEND-$n-$rate" --prefix "bx$n$RANDOM" pairs --pairs "${PAIRS:-100}" --rate "$rate" --duration "${DURATION:-20}"
      stop_server
    done
    ;;
  cluster)
    npairs=$1 rate=$2 rounds=${3:-3}
    cluster_dir=$(mktemp -d)
    trap 'stop_server; bash scripts/redis-cluster.sh stop "$cluster_dir"; rm -rf "$cluster_dir"' EXIT
    CLUSTER_URLS=$(bash scripts/redis-cluster.sh start "$cluster_dir")
    masters=$(redis-cli -p "$(echo "$CLUSTER_URLS" | sed 's|,.*||; s|.*:||')" cluster nodes |
      awk '$3 ~ /master/ {split($2, a, "[:@]"); print a[2]}' | xargs)
    standalone_ports=$REDIS_PORTS
    for round in $(seq 1 "$rounds"); do
      for BACKEND in mariadb mariadb-cluster; do
        if [ "$BACKEND" = mariadb ]; then REDIS_PORTS=$standalone_ports; else REDIS_PORTS=$masters; fi
        start_server "$BACKEND" ""
        TAG=r$round load "cluster-$BACKEND-$npairs-$rate" --prefix "bc${BACKEND: -1}$round$RANDOM" \
          pairs --pairs "$npairs" --rate "$rate" --duration "${DURATION:-20}"
        stop_server
      done
    done
    python3 - "$OUT" "$npairs" "$rate" <<'PY'
import glob, json, statistics, sys
out, npairs, rate = sys.argv[1:]
print("| backend | rounds | Redis commands / msg | Redis CPU us / msg | server CPU us / msg (steady) | lost | dup |")
print("|---|---|---|---|---|---|---|")
for backend in ("mariadb", "mariadb-cluster"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/cluster-{backend}-{npairs}-{rate}-r*.json"))]
    if not runs:
        continue
    med = lambda xs: statistics.median(xs)
    cmd = [r["backendCounters"]["redisCommandsPerMsg"] for r in runs]
    cpu = [r["backendCounters"]["redisCpuUsPerMsg"] for r in runs]
    srv = [r["serverCpu"]["window"]["cpuUsPerMsg"] for r in runs if r["serverCpu"].get("window")]
    span = lambda xs: f"{min(xs):.0f}-{max(xs):.0f} (median {med(xs):.0f})" if xs else "-"
    print(f"| {backend} | {len(runs)} | {span(cmd)} | {span(cpu)} | {span(srv)} "
          f"| {sum(r['messages']['lost'] for r in runs)} | {sum(r['messages']['duplicated'] for r in runs)} |")
PY
    ;;
  room)
    BACKEND=$1 members=$2 senders=$3 rate=$4
    start_server "$BACKEND" ""
    load "room-$BACKEND-$members-$senders-$rate" --prefix "br$RANDOM" \
      room --members "$members" --senders "$senders" --rate "$rate" --duration "${DURATION:-20}"
    ;;
  idle)
    # PAIRS 1:1 pairs connect and join (chat-load's pairs at 0.1 msg/s: one message every
    # 10 s keeps the run, and its sockets, going); 10 s after every join is answered, the
    # server's CPU and the commands Redis and MariaDB ran are counted over SECONDS.
    BACKEND=$1 npairs=$2 secs=${3:-60}
    name="idle-$BACKEND-$((2 * npairs))-$secs${TAG:+-$TAG}"
    start_server "$BACKEND" ""
    taskset -c "$LOAD_CPU" "$LOAD_BIN" --url "$url" --quiet --prefix "bi$RANDOM" \
      pairs --pairs "$npairs" --rate 0.1 --duration $((secs + 120)) >"$data/load.log" 2>&1 &
    lpid=$!
    joined() { curl -s "$url/metrics" | sed -n 's/^chat_socket_events_total{event="chat:join",outcome="ok"} //p'; }
    for _ in $(seq 1 1200); do
      [ "$(joined)" = "$((2 * npairs))" ] && break
      kill -0 "$lpid" 2>/dev/null || { echo "bench: chat-load exited before the joins" >&2; exit 1; }
      sleep 0.5
    done
    [ "$(joined)" = "$((2 * npairs))" ] || { echo "bench: not every socket joined" >&2; exit 1; }
    sleep 10   # settle: the last joins' writes and the run's one message are not counted
    t0=$(cpu_ticks "$pid") r0=$(redis_counter) d0=$(db_counters)
    sleep "$secs"
    t1=$(cpu_ticks "$pid") r1=$(redis_counter) d1=$(db_counters)
    kill -0 "$lpid" 2>/dev/null || { cat "$data/load.log"; echo "bench: chat-load ended during the window" >&2; exit 1; }
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$lpid" 2>/dev/null || true
    wait "$lpid" 2>/dev/null || true
    python3 - "$OUT/$name.json" "$BACKEND" "$((2 * npairs))" "$secs" "$(getconf CLK_TCK)" "$t0" "$t1" "$r0" "$r1" \
      "$d0" "$d1" "$rss" "$(git rev-parse --short HEAD)" "$(nproc) cores, $(uname -r)" <<'PY'
import json, sys
f, backend, users, secs, hz, t0, t1, r0, r1, d0, d1, rss, commit, machine = sys.argv[1:]
users, secs, hz = int(users), int(secs), int(hz)
per_min = lambda n: n / users / (secs / 60)
cpu = (int(t1) - int(t0)) / hz
r = {"scenario": "idle", "backend": backend, "sockets": users, "seconds": secs, "commit": commit,
     "machine": machine, "serverRssKib": int(rss),
     "serverCpu": {"seconds": cpu, "percentOfCore": 100 * cpu / secs, "usPerSocketPerMinute": cpu * 1e6 / users / (secs / 60)}}
if backend == "mariadb":
    q0, q1 = (list(map(int, x.split())) for x in (d0, d1))
    r["redisCommandsPerUserPerMinute"] = per_min(int(r1) - int(r0))
    r["sqlStatementsPerUserPerMinute"] = per_min(q1[0] - q0[0])
json.dump(r, open(f, "w"), indent=1)
print(json.dumps(r))
PY
    ;;
  verify)
    # Per run prefix (thread ids are <prefix>-t<n>): messages stored, distinct (sender, client id),
    # receipts, messages whose receipt count differs from the thread's participant count.
    # Compare "messages" with the run's acked count (bench/results/*/*.json).
    like=${1:-%}
    mysql -uroot -h127.0.0.1 chat_host_bench -t -e "
      SELECT SUBSTRING_INDEX(m.thread_id, '-t', 1) AS prefix, COUNT(*) AS messages,
             COUNT(DISTINCT m.sender_id, m.client_message_id) AS distinct_client_ids,
             SUM(COALESCE(r.receipts, 0)) AS receipts,
             SUM(COALESCE(r.receipts, 0) <> p.participants) AS wrong_receipt_count
      FROM chat_message m
      LEFT JOIN (SELECT message_id, COUNT(*) AS receipts FROM chat_message_receipt GROUP BY message_id) r
        ON r.message_id = m.id
      JOIN (SELECT thread_id, COUNT(*) AS participants FROM chat_participant GROUP BY thread_id) p
        ON p.thread_id = m.thread_id
      WHERE m.thread_id LIKE '${like}-t%'
      GROUP BY prefix ORDER BY prefix"
    ;;
  *) sed -n 2,11p "$0"; exit 1 ;;
esac
