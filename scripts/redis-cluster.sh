#!/usr/bin/env bash
# A local Redis Cluster for tests: 3 masters and 3 replicas on free loopback
# ports, with no persistence, every file under one directory.
#
#   scripts/redis-cluster.sh start DIR   starts it; prints the seed URLs
#                                        (redis://127.0.0.1:P,...), also in DIR/urls
#   scripts/redis-cluster.sh stop DIR    stops the nodes started in DIR (by pid)
#   scripts/redis-cluster.sh restart DIR PORT
#                                        starts the node of PORT again (after a
#                                        test killed it), with its cluster state
#
# A replica takes over from a dead master after --cluster-node-timeout
# (CHAT_CLUSTER_NODE_TIMEOUT_MS, default 2000) and a few seconds of election.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
usage() { echo "usage: $0 start|stop DIR, or $0 restart DIR PORT" >&2; exit 2; }
[ -n "$cmd" ] && [ -n "$dir" ] || usage

stop() {
  local pidfile pid
  for pidfile in "$dir"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

# One node, daemonized; its cluster state lives in DIR/nodes-PORT.conf.
start_node() {
  redis-server --port "$1" --bind 127.0.0.1 --protected-mode no \
    --cluster-enabled yes --cluster-config-file "$dir/nodes-$1.conf" \
    --cluster-node-timeout "${CHAT_CLUSTER_NODE_TIMEOUT_MS:-2000}" \
    --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/node-$1.pid" --logfile "$dir/node-$1.log"
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server on $1 did not start: $(tail -5 "$dir/node-$1.log")" >&2
  return 1
}

case "$cmd" in
  stop) stop; exit 0 ;;
  restart) [ -n "${3:-}" ] || usage; dir=$(cd "$dir" && pwd); start_node "$3"; exit 0 ;;
  start) ;;
  *) usage ;;
esac

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "redis-server and redis-cli are needed (apt-get install redis-server)" >&2
  exit 1
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
trap 'stop' ERR

# Six ports whose cluster bus ports (port + 10000) are free as well.
mapfile -t ports < <(python3 - <<'EOF'
import random, socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
found = []
while len(found) < 6:
    p = random.randint(20000, 55000)
    if p not in found and free(p) and free(p + 10000):
        found.append(p)
print("\n".join(map(str, found)))
EOF
)

for port in "${ports[@]}"; do start_node "$port"; done

addrs=()
for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
  cat "$dir/create.log" >&2
  exit 1
}

# Ready when every node sees all slots served and all six nodes.
for port in "${ports[@]}"; do
  ok=
  for _ in $(seq 200); do
    info=$(redis-cli -p "$port" cluster info 2>/dev/null || true)
    if grep -q '^cluster_state:ok' <<<"$info" && grep -q '^cluster_known_nodes:6' <<<"$info"; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "Redis Cluster node $port not ready: $info" >&2; exit 1; }
done

urls=()
for port in "${ports[@]}"; do urls+=("redis://127.0.0.1:$port"); done
(IFS=,; echo "${urls[*]}") | tee "$dir/urls"
