#!/usr/bin/env bash
# The image's entry point; compose.yml runs one role per service (all on the host's network):
#   redis   Redis on 127.0.0.1:$MAILHOST_REDIS_PORT, its data in the volume
#   node    migrations, the first staff account, the mail stack and the edge, then the Celery
#           worker with beat in the foreground (it reconciles the stack in this container)
#   web     the portal (gunicorn on 127.0.0.1:$MAILHOST_WEB_PORT) once the node has migrated
set -euo pipefail
cd /opt/mailhost
VAR="$MAILHOST_VAR_DIR"
mkdir -p "$VAR/log" "$VAR/run"
role="${1:-}"; shift || true

case "$role" in
  redis)
    mkdir -p "$VAR/redis"
    exec redis-server --bind 127.0.0.1 --port "${MAILHOST_REDIS_PORT:-6379}" \
      --dir "$VAR/redis" --appendonly yes --save ""
    ;;
  node)
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
    trap 'kill -TERM $worker 2>/dev/null; wait $worker; python manage.py stack stop' TERM INT
    wait $worker
    ;;
  web)
    # The node service migrates; serving an old schema would fail requests.
    until python manage.py migrate --check >/dev/null 2>&1; do sleep 1; done
    exec scripts/web.sh
    ;;
  *)
    echo "usage: run.sh redis|node|web" >&2; exit 2
    ;;
esac
