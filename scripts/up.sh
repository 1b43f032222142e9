#!/usr/bin/env bash
# Starts Mailhost on the embedded defaults: SQLite under var/, a Redis (ours if none answers),
# the web server, a Celery worker with beat, and the bundled mail stack. Prints where to log in.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
scripts/check-checkout.sh
VAR="$PWD/var"; RUN="$VAR/run"; LOG="$VAR/log"
mkdir -p "$RUN" "$LOG"
[ -f "$VAR/up.env" ] && source "$VAR/up.env"
# Written to a file and sourced only once it succeeded (`source <(…)` hides a failure).
scripts/ensure-services.sh redis >"$RUN/services.env"
source "$RUN/services.env"
: "${CELERY_BROKER_URL:?ensure-services.sh gave no broker}"
export CELERY_BROKER_URL
# A dev install on plain http://127.0.0.1: no https redirect, HSTS or Secure-only cookies.
export MAILHOST_HTTPS="${MAILHOST_HTTPS:-false}"
# The edge (nginx) in front of the portal is on 127.0.0.1: believe its forwarded headers.
export MAILHOST_TRUSTED_PROXIES="${MAILHOST_TRUSTED_PROXIES:-127.0.0.1}"
# A trial install behaves as if its DNS were published: the node's resolver answers for the
# hosted domains with the records the portal generates (MAILHOST_RESOLVER_MODE=recursive for
# a real MX on the internet).
export MAILHOST_RESOLVER_MODE="${MAILHOST_RESOLVER_MODE:-local}"
WEB_PORT="${MAILHOST_WEB_PORT:-8000}"
EDGE_URL="https://${MAILHOST_HOSTNAME:-mail.localhost}:${MAILHOST_HTTPS_PORT:-2443}"
# Webmail is served by the edge; "Open webmail" in /mailbox/ (on :$WEB_PORT here) goes there.
export MAILHOST_WEBMAIL_URL="${MAILHOST_WEBMAIL_URL:-$EDGE_URL/webmail/}"

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
python manage.py ensurestaff --email "${MAILHOST_ADMIN_EMAIL:-admin@localhost}" \
  --password-file "$VAR/admin-password"
python manage.py rotatesrs --ensure >/dev/null  # SRS secret and ARC key, if missing
python manage.py stack start

if ! running web; then
  MAILHOST_LOG_DIR="$LOG" MAILHOST_WEB_PORT="$WEB_PORT" scripts/web.sh --daemon --pid "$RUN/web.pid"
fi
if ! running worker; then
  queues="celery,node.${MAILHOST_NODE_NAME:-local}"
  nohup celery -A mailhost worker --beat --concurrency 2 -Q "$queues" --loglevel INFO \
    --schedule "$VAR/celerybeat-schedule" >"$LOG/worker.log" 2>&1 &
  echo $! >"$RUN/worker.pid"
fi
web_answers() { curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$WEB_PORT/accounts/login/"; }
for _ in $(seq 100); do web_answers 2>/dev/null && break; sleep 0.1; done
web_answers || { echo "The portal does not answer on :$WEB_PORT; see var/log/web.log:" >&2
                 tail -n 20 "$LOG/web.log" >&2; exit 1; }
python manage.py reconcile --full >/dev/null

if [ "${MAILHOST_STACK_DEV:-false}" = "true" ]; then
  cat <<'WARN'

  ************************************************************************************
  *  WARNING: MAILHOST_STACK_DEV=true. Failed logins are not delayed or penalised    *
  *  and 127.0.0.1 is never banned. For development and tests only: never expose     *
  *  this stack. Set MAILHOST_STACK_DEV=false (the default) for real use.            *
  ************************************************************************************
WARN
fi

cat <<MSG

Mailhost is running.
  Portal      http://127.0.0.1:$WEB_PORT/mail-admin/   (Django admin: /admin/)
  Log in as   ${MAILHOST_ADMIN_EMAIL:-admin@localhost}
  Password    $(cat "$VAR/admin-password")
  Edge        $EDGE_URL/  (self-signed until a certificate is issued)
  Webmail     $MAILHOST_WEBMAIL_URL  (or "Open webmail" at http://127.0.0.1:$WEB_PORT/mailbox/)
  Mail        SMTP 127.0.0.1:${MAILHOST_SMTP_PORT:-2525}, submission :${MAILHOST_SUBMISSION_PORT:-2587}, IMAP :${MAILHOST_IMAP_PORT:-2143}
  Calendars   https://${MAILHOST_HOSTNAME:-mail.localhost}:${MAILHOST_HTTPS_PORT:-2443}/dav/  (CalDAV/CardDAV, a mailbox's address and password)
  Logs        var/log/
Stop everything with: make down
MSG
