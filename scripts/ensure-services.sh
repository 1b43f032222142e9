#!/usr/bin/env bash
# Makes sure a PostgreSQL and a Redis answer on loopback, starting throwaway ones under var/
# where none does, and prints the environment that points at them (for `source <(…)`).
#   scripts/ensure-services.sh postgres redis   # both (tests)
#   scripts/ensure-services.sh redis            # Redis only (make up, on SQLite)
set -euo pipefail
cd "$(dirname "$0")/.."
VAR="$PWD/var"
mkdir -p "$VAR/run" "$VAR/log"

pg_url_default="postgres://postgres@127.0.0.1:5432/postgres"

pg_answers() { psql "$1" -Atqc "select 1" >/dev/null 2>&1; }

ensure_postgres() {
  if [ -n "${TEST_DATABASE_URL:-}" ]; then echo "export DATABASE_URL=$TEST_DATABASE_URL"; return; fi
  if pg_answers "$pg_url_default"; then
    echo "export DATABASE_URL=postgres://postgres@127.0.0.1:5432/mailhost"; return
  fi
  # A throwaway cluster of our own, trust auth on loopback, port 55432.
  local dir="$VAR/postgres" port=55432 bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  local url="postgres://postgres@127.0.0.1:$port/mailhost"
  if ! pg_answers "postgres://postgres@127.0.0.1:$port/postgres"; then
    if [ ! -s "$dir/PG_VERSION" ]; then
      mkdir -p "$dir" && chown postgres:postgres "$dir"
      su postgres -s /bin/sh -c "$bindir/initdb -D '$dir' --auth=trust -U postgres" >/dev/null
    fi
    chown postgres:postgres "$VAR/log"
    su postgres -s /bin/sh -c "$bindir/pg_ctl -D '$dir' -l '$VAR/log/postgres.log' -w \
      -o '-p $port -k $dir -c listen_addresses=127.0.0.1' start" >/dev/null
  fi
  echo "export DATABASE_URL=$url"
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    echo "export CELERY_BROKER_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/${REDIS_DB:-0}}"
    return
  fi
  local port=56379
  if ! redis-cli -h 127.0.0.1 -p $port ping 2>/dev/null | grep -q PONG; then
    mkdir -p "$VAR/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port $port --save "" --appendonly no \
      --dir "$VAR/redis" --logfile "$VAR/log/redis.log" --pidfile "$VAR/run/redis.pid" >/dev/null
    for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export CELERY_BROKER_URL=redis://127.0.0.1:$port/${REDIS_DB:-0}"
}

for service in "$@"; do
  case "$service" in
    postgres) ensure_postgres ;;
    redis) ensure_redis ;;
    *) echo "unknown service $service" >&2; exit 2 ;;
  esac
done
