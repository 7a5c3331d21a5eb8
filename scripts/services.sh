#!/usr/bin/env bash
# Makes sure MariaDB and Redis answer on 127.0.0.1, installing (apt) and starting
# them when missing, and creates the test databases. Fails loudly if it cannot.
set -euo pipefail

MYSQL_HOST=127.0.0.1
DATABASES=(chat_host_test chat_host_e2e chat_host_e2e_2)

say() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* yourself"
  say "installing $* (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$name did not come up"
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
mysql_up() { mysqladmin -h "$MYSQL_HOST" -uroot ping >/dev/null 2>&1; }

# --- Redis
command -v redis-server >/dev/null || apt_install redis-server redis-tools
if ! redis_up; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi
say "Redis is up"

# --- MariaDB
command -v mariadbd >/dev/null || command -v mysqld >/dev/null || apt_install mariadb-server mariadb-client
if ! mysql_up; then
  say "starting MariaDB"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  daemon=$(command -v mariadbd || command -v mysqld)
  as_root start-stop-daemon --start --oknodo --background --exec "$daemon" -- --user=mysql
  wait_for MariaDB mysql_up
fi
mysql -h "$MYSQL_HOST" -uroot -e "SELECT 1" >/dev/null 2>&1 \
  || die "MariaDB answers but root@127.0.0.1 without a password cannot log in"
for db in "${DATABASES[@]}"; do
  mysql -h "$MYSQL_HOST" -uroot -e "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
done
say "MariaDB is up (databases: ${DATABASES[*]})"
