#!/usr/bin/env bash
# The image's entry point; compose.yml runs one role per service (all on the host's network):
#   postgres  PostgreSQL 15 on 127.0.0.1:$MAILHOST_POSTGRES_PORT, its cluster in the pgdata
#           volume (made on the first start); the role and database `mailhost` with the
#           password POSTGRES_PASSWORD (required)
#   redis   Redis on 127.0.0.1:$MAILHOST_REDIS_PORT, its data in the volume
#   node    migrations, the first staff account, the mail stack and the edge, then the Celery
#           worker with beat in the foreground (it reconciles the stack in this container);
#           with ACME on, the due certificates are obtained once the worker runs (beat renews
#           them every MAILHOST_ACME_RUN_SECONDS; the certificate watcher reloads the daemons)
#   web     the portal (gunicorn on 127.0.0.1:$MAILHOST_WEB_PORT) once the node has migrated
set -euo pipefail
cd /opt/mailhost
VAR="$MAILHOST_VAR_DIR"
mkdir -p "$VAR/log" "$VAR/run"
role="${1:-}"; shift || true

PG_BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
PG_SOCKETS=/run/postgresql
# setpriv execs in place (runuser stays as a parent that would have to pass signals on).
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# The role `mailhost` and its database, with the password from the env file: created on the
# first start, the password set again on every start (changing it in docker/.env and
# restarting is how it is rotated). A server on the socket only, so nobody else connects
# while it is done; the password goes in as a psql variable, quoted by psql.
postgres_ensure_role() {
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -w -s -l /var/log/postgresql/setup.log \
    -o "-c listen_addresses='' -k $PG_SOCKETS" start
  as_postgres "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h "$PG_SOCKETS" -d postgres \
    -v pw="$POSTGRES_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE mailhost LOGIN' WHERE NOT EXISTS
  (SELECT FROM pg_roles WHERE rolname = 'mailhost') \gexec
ALTER ROLE mailhost PASSWORD :'pw';
SELECT 'CREATE DATABASE mailhost OWNER mailhost' WHERE NOT EXISTS
  (SELECT FROM pg_database WHERE datname = 'mailhost') \gexec
SQL
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -w -s -m fast stop
}

run_postgres() {
  # No default password: the server listens on the host's network (loopback, but every local
  # user and process could log in with a well-known one). It goes into DATABASE_URL as is,
  # so only URL-safe characters (e.g. `openssl rand -hex 24`).
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "run.sh postgres: POSTGRES_PASSWORD is not set (docker/.env); refusing to start" >&2
    exit 1
  fi
  if [[ ! "$POSTGRES_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "run.sh postgres: POSTGRES_PASSWORD may hold only A-Z a-z 0-9 . _ ~ - (it is part" \
      "of DATABASE_URL)" >&2
    exit 1
  fi
  cd /
  mkdir -p "$PGDATA" "$PG_SOCKETS"
  chown postgres:postgres "$PGDATA" "$PG_SOCKETS"
  chmod 0700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # Peer on the socket (only the postgres user, which root becomes, gets in as the superuser), SCRAM
    # passwords over TCP; the superuser has no password at all.
    as_postgres "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 \
      --locale C.UTF-8 --auth-local peer --auth-host scram-sha-256 >/dev/null
  fi
  postgres_ensure_role
  # SIGTERM is a smart shutdown (waits for every client to leave): compose.yml stops this
  # service with SIGINT, a fast one.
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PG_BIN/postgres" -D "$PGDATA" -k "$PG_SOCKETS" \
    -c listen_addresses=127.0.0.1 -c port="${MAILHOST_POSTGRES_PORT:-5432}"
}

# compose.yml starts node and web once postgres is healthy; a restarted container (restart:
# unless-stopped) may still come up first. pg_isready does not log in: the URL without its
# password (which would show in `ps`).
wait_for_database() {
  case "${DATABASE_URL:-}" in
    postgres://*|postgresql://*)
      local url
      url=$(sed -E 's|//([^:@/]*):[^@/]*@|//\1@|' <<<"$DATABASE_URL")
      until "$PG_BIN/pg_isready" -q -d "$url"; do sleep 1; done ;;
  esac
}

case "$role" in
  postgres)
    run_postgres
    ;;
  redis)
    mkdir -p "$VAR/redis"
    exec redis-server --bind 127.0.0.1 --port "${MAILHOST_REDIS_PORT:-6379}" \
      --dir "$VAR/redis" --appendonly yes --save ""
    ;;
  node)
    wait_for_database
    python manage.py migrate --noinput -v0
    python manage.py collectstatic --noinput -v0
    python manage.py ensurestaff --email "${MAILHOST_ADMIN_EMAIL:-admin@localhost}" \
      --password-file "$VAR/admin-password"
    python manage.py rotatesrs --ensure >/dev/null  # SRS secret and ARC key, if missing
    python manage.py stack start
    python manage.py reconcile --full >/dev/null
    celery -A mailhost worker --beat --concurrency 2 \
      -Q "celery,node.${MAILHOST_NODE_NAME:-local}" --loglevel INFO \
      --schedule "$VAR/celerybeat-schedule" &
    worker=$!
    # The first certificates now, not at beat's first run (an hour away): the edge answers
    # HTTP-01 already. A failure is logged and retried by beat within the back-off.
    if [ -n "${MAILHOST_ACME_DIRECTORY_URL:-}" ]; then
      python manage.py certificates renew 2>&1 | sed 's/^/certificates: /' &
    fi
    trap 'kill -TERM $worker 2>/dev/null; wait $worker; python manage.py stack stop' TERM INT
    wait $worker
    ;;
  web)
    wait_for_database
    # The node service migrates; serving an old schema would fail requests.
    until python manage.py migrate --check >/dev/null 2>&1; do sleep 1; done
    exec scripts/web.sh
    ;;
  *)
    echo "usage: run.sh postgres|redis|node|web" >&2; exit 2
    ;;
esac
