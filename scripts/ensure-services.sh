#!/usr/bin/env bash
# Makes sure a PostgreSQL and a Redis answer on loopback, starting throwaway ones where none
# does, and prints the environment that points at them. Callers write it to a file and source
# that only after this script succeeded, so a failure stops them instead of leaving them on
# SQLite and Redis database 0:
#   scripts/ensure-services.sh postgres redis >var/run/services.env   # tests, bench
#   scripts/ensure-services.sh redis >var/run/services.env            # make up, on SQLite
# Never prompts: psql runs with -w and a connect timeout, so a server that wants a password
# (Debian's default scram-sha-256) counts as "not usable" and the throwaway one is used.
#
# Overridable (tests point the "already running" checks at closed ports with these):
#   MAILHOST_PG_URL            server to use if it answers without a password
#                              (postgres://postgres@127.0.0.1:5432)
#   MAILHOST_PG_FALLBACK_PORT  port of the throwaway cluster (55432)
#   MAILHOST_PG_DIR            its data directory; default ~postgres/mailhost-<port>
#                              (/var/lib/postgresql/mailhost-55432): the postgres user must
#                              reach it, which a checkout under /root (mode 700) does not allow
#   MAILHOST_REDIS_PORT        Redis to use if it answers (6379)
#   MAILHOST_REDIS_FALLBACK_PORT  port of our own Redis, data under var/redis (56379)
#   TEST_DATABASE_URL          use this database and check nothing
set -euo pipefail
cd "$(dirname "$0")/.."
VAR="$PWD/var"
mkdir -p "$VAR/run" "$VAR/log"

PG_URL="${MAILHOST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_PORT="${MAILHOST_PG_FALLBACK_PORT:-55432}"
REDIS_PORT="${MAILHOST_REDIS_PORT:-6379}"
REDIS_FALLBACK_PORT="${MAILHOST_REDIS_FALLBACK_PORT:-56379}"

fail() { echo "ensure-services: $*" >&2; exit 1; }

# -w: never ask for a password (it would wait on the terminal for ever); stdin closed too.
pg_answers() { PGCONNECT_TIMEOUT=5 psql -w "$1" -Atqc "select 1" </dev/null >/dev/null 2>&1; }

as_postgres() {
  [ "$(id -u)" -eq 0 ] || fail "no PostgreSQL answers without a password at $PG_URL and" \
    "starting a throwaway one needs root; run as root, or set TEST_DATABASE_URL."
  su postgres -s /bin/sh -c "$1" </dev/null
}

ensure_postgres() {
  if [ -n "${TEST_DATABASE_URL:-}" ]; then echo "export DATABASE_URL=$TEST_DATABASE_URL"; return; fi
  if pg_answers "$PG_URL/postgres"; then echo "export DATABASE_URL=$PG_URL/mailhost"; return; fi
  local url="postgres://postgres@127.0.0.1:$PG_PORT"
  if ! pg_answers "$url/postgres"; then
    command -v psql >/dev/null || fail "psql is missing: run scripts/install-system.sh as root."
    local bindir home dir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$bindir" ] || fail "PostgreSQL is not installed: run scripts/install-system.sh."
    home=$(getent passwd postgres | cut -d: -f6) || fail "there is no postgres user."
    dir="${MAILHOST_PG_DIR:-$home/mailhost-$PG_PORT}"
    echo "ensure-services: starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT in $dir" >&2
    as_postgres "mkdir -p '$dir' && chmod 700 '$dir'" \
      || fail "the postgres user cannot create $dir; set MAILHOST_PG_DIR to a place it can reach."
    if ! as_postgres "test -s '$dir/PG_VERSION'"; then
      as_postgres "'$bindir/initdb' -D '$dir' --auth=trust -U postgres" >"$VAR/log/initdb.log" 2>&1 \
        || fail "initdb failed in $dir (see var/log/initdb.log)."
    fi
    as_postgres "'$bindir/pg_ctl' -D '$dir' -l '$dir/server.log' -w -t 60 \
      -o '-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1' start >/dev/null" \
      || fail "PostgreSQL did not start on port $PG_PORT (see $dir/server.log)."
    pg_answers "$url/postgres" || fail "the throwaway PostgreSQL on $PG_PORT does not answer."
  fi
  echo "export DATABASE_URL=$url/mailhost"
}

redis_answers() { timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if redis_answers "$REDIS_PORT"; then
    echo "export CELERY_BROKER_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:$REDIS_PORT/${REDIS_DB:-0}}"
    return
  fi
  local port=$REDIS_FALLBACK_PORT
  if ! redis_answers "$port"; then
    command -v redis-server >/dev/null || fail "redis-server is missing: run scripts/install-system.sh."
    echo "ensure-services: starting our own Redis on 127.0.0.1:$port (var/redis)" >&2
    mkdir -p "$VAR/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$VAR/redis" --logfile "$VAR/log/redis.log" --pidfile "$VAR/run/redis.pid" >/dev/null \
      || fail "redis-server did not start (see var/log/redis.log)."
    for _ in $(seq 100); do redis_answers "$port" && break; sleep 0.1; done
    redis_answers "$port" || fail "our Redis on $port does not answer (see var/log/redis.log)."
  fi
  echo "export CELERY_BROKER_URL=redis://127.0.0.1:$port/${REDIS_DB:-0}"
}

for service in "$@"; do
  case "$service" in
    postgres) ensure_postgres ;;
    redis) ensure_redis ;;
    *) fail "unknown service $service" ;;
  esac
done
