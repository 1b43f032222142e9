#!/usr/bin/env bash
# The health check of each compose service (compose.yml `healthcheck:`): does the service do
# its job for a client, not merely is its process alive. One role per call; exit 0 = healthy.
#   postgres  accepts connections (pg_isready; no login)
#   redis     answers PING
#   node      Postfix greets on SMTP, Dovecot on IMAP, the edge answers HTTPS
#   web       gunicorn serves Django (/api/v1/health answers at all: 503 names a failing part
#             elsewhere — the node, say — and must not mark the portal itself unhealthy)
set -uo pipefail
role="${1:?usage: health.sh postgres|redis|node|web}"

# The first line a server sends on a TCP port, within 5 s.
greeting() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -n1 <&3' _ "$1"
}

case "$role" in
  postgres)
    exec /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p "${MAILHOST_POSTGRES_PORT:-5432}" \
      -U mailhost -d mailhost ;;
  redis)
    [ "$(timeout 5 redis-cli -p "${MAILHOST_REDIS_PORT:-6379}" ping)" = PONG ] ;;
  node)
    greeting "${MAILHOST_SMTP_PORT:-25}" | grep -q '^220 ' || { echo "no SMTP greeting"; exit 1; }
    greeting "${MAILHOST_IMAP_PORT:-143}" | grep -q '^\* OK' || { echo "no IMAP greeting"; exit 1; }
    # Any HTTP answer: the edge is up (its certificate may still be the first self-signed one).
    code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 5 \
      "https://127.0.0.1:${MAILHOST_HTTPS_PORT:-443}/") || true
    [ "${code:-000}" != 000 ] || { echo "the edge does not answer HTTPS"; exit 1; } ;;
  web)
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
      -H "Host: ${MAILHOST_HOSTNAME:-localhost}" \
      "http://127.0.0.1:${MAILHOST_WEB_PORT:-8000}/api/v1/health") || true
    case "$code" in 200|503) ;; *) echo "the portal answered $code"; exit 1 ;; esac ;;
  *)
    echo "health.sh: unknown role $role" >&2; exit 2 ;;
esac
