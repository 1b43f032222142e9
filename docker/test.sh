#!/usr/bin/env bash
# `make test-docker`: builds the image (docker/build.sh) and runs docker/compose.yml against a
# private Docker daemon, then checks what a client sees: the edge answers HTTPS with /health
# ok and redirects plain HTTP, Postfix greets on SMTP as the mail host, Dovecot speaks TLS on
# IMAPS, the portal's database is the postgres service's (what the API made is in its tables).
# Certificates: a pebble (Let's Encrypt's test CA, tests/acme_server.py) on loopback is the
# ACME CA; every TLS port (443, 25 and 587 STARTTLS, 465, 993) must present its certificate
# for the mail host name, and after a forced renewal (`manage.py certificates renew`) a new
# one to a new client, nothing restarted.
# The compose file is the production one; only the ports are moved to free high ones
# (network_mode: host, so they must not clash with anything on this box), POSTGRES_PASSWORD
# is a random one, and a small override file hands pebble's API CA to the node container.
#
# The private daemon: docker/dockerd.sh (its data root, the image cache, is kept between runs).
# Needs root, dockerd, docker-compose and debootstrap (`scripts/install-system.sh docker`),
# and pebble (the suite's).
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/dockerd.sh
RUNDIR=$(mktemp -d /tmp/mailhost-docker.XXXXXX)
export DOCKER_HOST="unix://$RUNDIR/docker.sock"  # dockerd_start listens there
PROJECT="mailhost-test-$$"
# pebble's API is HTTPS from a throwaway CA (the ACME client must trust it: MAILHOST_ACME_CA_BUNDLE).
PEBBLE="$RUNDIR/pebble"
cat >"$RUNDIR/compose.acme.yml" <<YML
version: "2.4"
services:
  node:
    volumes:
      - $PEBBLE/api-ca.pem:/etc/mailhost/acme-api-ca.pem:ro
YML
compose() { docker-compose -p "$PROJECT" -f docker/compose.yml -f "$RUNDIR/compose.acme.yml" "$@"; }

cleanup() {
  set +e
  if [ "${KEEP:-}" != 1 ]; then
    compose logs --no-color --tail 40 >"$RUNDIR/compose.log" 2>&1
    # What ran in the node container, and the node's own logs' tails (the daemons log to files).
    compose exec -T node sh -c 'ps -eo pid,user,args; for f in /var/lib/mailhost/node/log/*.log;
      do echo "== $f"; tail -n 15 "$f"; done' >>"$RUNDIR/compose.log" 2>&1
    compose down -v --timeout 30 >/dev/null 2>&1
  fi
  [ -n "${pebble_pid:-}" ] && kill "$pebble_pid" 2>/dev/null && wait "$pebble_pid" 2>/dev/null
  dockerd_stop
  [ "${FAILED:-0}" = 1 ] && { echo "--- compose logs:"; cat "$RUNDIR/compose.log"; }
  rm -rf "$RUNDIR"
}
trap cleanup EXIT
fail() { FAILED=1; echo "test-docker: FAIL: $*" >&2; exit 1; }

dockerd_start "$RUNDIR" || fail "dockerd did not start"

start=$SECONDS
IMAGE=$(docker/build.sh)
echo "test-docker: image $IMAGE built in $((SECONDS - start)) s;" \
  "$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')," \
  "base $(docker image inspect -f '{{.Size}}' mailhost/base:bookworm | awk '{printf "%.0f MB", $1 / 1e6}')"

read -r SMTP SUB SUBS IMAP IMAPS SIEVE INTERNAL POLICY RESOLVER HTTP HTTPS WEB REDIS DAV \
  FORWARD SRS SRS_REVERSE STATS POSTGRES DOVEADM < <(
  python3 -c 'import socket
socks = [socket.socket() for _ in range(20)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
HOST=mail.docker-test.example
# The ACME CA: pebble fetches HTTP-01 challenges from the edge's (moved) HTTP port; its DNS
# answers 127.0.0.1 for every name.
.venv/bin/python -m tests.acme_server --http-port "$HTTP" --state "$PEBBLE" \
  >"$RUNDIR/pebble.out" 2>&1 9>&- &
pebble_pid=$!
for _ in $(seq 300); do [ -s "$PEBBLE/pebble.env" ] && break; sleep 0.1; done
[ -s "$PEBBLE/pebble.env" ] || { cat "$RUNDIR/pebble.out" >&2; fail "pebble did not start"; }
# shellcheck disable=SC1091
source "$PEBBLE/pebble.env"
cat >"$RUNDIR/test.env" <<ENV
MAILHOST_HOSTNAME=$HOST
MAILHOST_PORTAL_URL=https://$HOST:$HTTPS
ALLOWED_HOSTS=$HOST
MAILHOST_BIND_ADDRESS=127.0.0.1
MAILHOST_NODE_NAME=local
MAILHOST_SMTP_PORT=$SMTP
MAILHOST_SUBMISSION_PORT=$SUB
MAILHOST_SUBMISSIONS_PORT=$SUBS
MAILHOST_IMAP_PORT=$IMAP
MAILHOST_IMAPS_PORT=$IMAPS
MAILHOST_MANAGESIEVE_PORT=$SIEVE
MAILHOST_INTERNAL_SMTP_PORT=$INTERNAL
MAILHOST_AUTHPOLICY_PORT=$POLICY
MAILHOST_RESOLVER_PORT=$RESOLVER
MAILHOST_HTTP_PORT=$HTTP
MAILHOST_HTTPS_PORT=$HTTPS
MAILHOST_WEB_PORT=$WEB
MAILHOST_REDIS_PORT=$REDIS
MAILHOST_POSTGRES_PORT=$POSTGRES
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
MAILHOST_DAV_PORT=$DAV
MAILHOST_FORWARD_PORT=$FORWARD
MAILHOST_SRS_PORT=$SRS
MAILHOST_SRS_REVERSE_PORT=$SRS_REVERSE
MAILHOST_DOVECOT_STATS_PORT=$STATS
MAILHOST_DOVEADM_PORT=$DOVEADM
DEBUG=false
MAILHOST_HTTPS=true
# No internet here: the resolver answers for hosted domains only, and greylisting's window is short.
MAILHOST_RESOLVER_MODE=local
MAILHOST_GREYLIST_DELAY_SECONDS=2
# Certificates from pebble; the watcher looks every second (new certificates show at once).
MAILHOST_ACME_DIRECTORY_URL=$PEBBLE_DIRECTORY_URL
MAILHOST_ACME_CA_BUNDLE=/etc/mailhost/acme-api-ca.pem
MAILHOST_ACME_EMAIL=hostmaster@docker-test.example
MAILHOST_CERT_WATCH_SECONDS=1
ENV
# The ports also go to the compose file's own substitutions (its defaults are the standard ones).
set -a; source "$RUNDIR/test.env"; set +a
export MAILHOST_ENV_FILE="$RUNDIR/test.env" MAILHOST_IMAGE="$IMAGE"
start=$SECONDS
compose up -d >/dev/null 2>&1 || fail "compose up"

health() {
  curl -ksS --max-time 5 --resolve "$HOST:$HTTPS:127.0.0.1" "https://$HOST:$HTTPS/api/v1/health"
}
# A cold start (migrations, Rspamd compiling its regex cache) takes minutes on a loaded box.
for _ in $(seq 420); do health 2>/dev/null | grep -q '"ok": *true' && break; sleep 1; done
body=$(health 2>&1) || true
echo "$body" | grep -q '"ok": *true' || fail "/health through the edge: $body"
echo "test-docker: HTTPS /health ok through the edge $((SECONDS - start)) s after compose up"

# The portal runs on the postgres service's database, not on a SQLite file in the volume.
vendor=$(compose exec -T node python manage.py shell -c \
  "from django.db import connection; print(connection.vendor, connection.settings_dict['HOST'])") ||
  fail "manage.py shell in the node container: $vendor"
vendor=$(tr -d '\r' <<<"$vendor" | tail -n1)
[ "$vendor" = "postgresql 127.0.0.1" ] || fail "the node's database: '$vendor' (want postgresql)"
compose exec -T node test ! -e /var/lib/mailhost/mailhost.sqlite3 ||
  fail "a SQLite database appeared in the mailhost volume"

# Every service's own health check (docker/health.sh, compose.yml) passes, and the node's
# fails when what it checks does not answer (a check that cannot fail proves nothing).
for service in postgres redis node web; do
  container=$(compose ps -q "$service")
  for _ in $(seq 120); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && break; sleep 1
  done
  status=$(docker inspect -f '{{.State.Health.Status}}' "$container")
  [ "$status" = healthy ] || fail "$service's health check: $status:" \
    "$(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$container" | tail -n 5)"
done
if compose exec -T -e MAILHOST_SMTP_PORT=1 node /opt/mailhost/docker/health.sh node >/dev/null; then
  fail "the node's health check passed with nothing on its SMTP port"
fi
echo "test-docker: every service's health check passes (postgres, redis, node, web)"

location=$(curl -sS -o /dev/null -w '%{redirect_url}' --resolve "$HOST:$HTTP:127.0.0.1" \
  "http://$HOST:$HTTP/accounts/login/")
case "$location" in https://$HOST*/accounts/login/) ;; *) fail "HTTP redirect: '$location'" ;; esac

webmail=$(curl -ksS --max-time 10 --resolve "$HOST:$HTTPS:127.0.0.1" "https://$HOST:$HTTPS/webmail/")
echo "$webmail" | grep -q 'name="_pass"' || fail "/webmail/ through the edge: ${webmail:0:300}"

banner=$(python3 -c "import socket; s = socket.create_connection(('127.0.0.1', $SMTP), 10)
print(s.recv(512).decode().strip())")
case "$banner" in "220 $HOST"*) ;; *) fail "SMTP banner: '$banner'" ;; esac

imaps=$(python3 -c "import socket, ssl
context = ssl.create_default_context(); context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the certificate: e2e.py certificates, below
raw = socket.create_connection(('127.0.0.1', $IMAPS), 10)
print(context.wrap_socket(raw, server_hostname='$HOST').recv(512).decode().strip())" || true)
case "$imaps" in "* OK"*) ;; *) imaps= ;; esac
[ -n "$imaps" ] || fail "no IMAP greeting over TLS on IMAPS"
# Calendars: the well-known URI redirects to /dav/, where Radicale asks for a login.
location=$(curl -ksS -o /dev/null -w '%{redirect_url}' --resolve "$HOST:$HTTPS:127.0.0.1" \
  "https://$HOST:$HTTPS/.well-known/caldav")
[ "$location" = "https://$HOST:$HTTPS/dav/" ] || fail "/.well-known/caldav redirect: '$location'"
dav=$(curl -ksS -o /dev/null -w '%{http_code}' -X PROPFIND --resolve "$HOST:$HTTPS:127.0.0.1" \
  "https://$HOST:$HTTPS/dav/")
[ "$dav" = 401 ] || fail "PROPFIND /dav/ without a login: $dav (want 401 from Radicale)"
echo "test-docker: SMTP '$banner', IMAPS '$imaps', HTTP redirects to HTTPS, /dav/ asks for a login"

# The node obtains the mail host's certificate from pebble at its start (run.sh, while the
# checks above ran), and the watcher reloads Postfix, Dovecot and the edge: every TLS port
# presents it.
start=$SECONDS
.venv/bin/python docker/e2e.py certificates --ca "$PEBBLE_ROOTS_FILE" \
  --write-serials "$RUNDIR/serials" || fail "pebble's certificate on the TLS ports"
echo "test-docker: waited $((SECONDS - start)) s more for the certificate from the ACME CA"
# A renewal, forced (every certificate due), by the project's command: new TLS clients on each
# port get the new certificate, nothing restarted by hand.
start=$SECONDS
renew=$(compose exec -T -e MAILHOST_ACME_RENEW_BEFORE_DAYS=100000 node \
  python manage.py certificates renew 2>&1) || fail "certificates renew: $renew"
grep -q "issued: mail-host" <<<"$renew" || fail "certificates renew issued nothing: $renew"
.venv/bin/python docker/e2e.py certificates --ca "$PEBBLE_ROOTS_FILE" \
  --not-serials "$RUNDIR/serials" || fail "the renewed certificate on the TLS ports"
echo "test-docker: renewed; new clients got the new certificate $((SECONDS - start)) s later"

# A client's whole path: an organisation's API token (made on the node, as an operator would),
# then docker/e2e.py from the host: API over the edge, SMTP in, IMAPS, submission with DKIM.
compose exec -T node python manage.py createorg e2e --name "Docker e2e" >/dev/null ||
  fail "createorg in the node container"
token=$(compose exec -T node python manage.py createapitoken --org e2e | tr -d '\r' | tail -n1)
case "$token" in mh_*) ;; *) fail "createapitoken gave '$token'" ;; esac
E2E_TOKEN="$token" .venv/bin/python docker/e2e.py || fail "the end-to-end mail path (docker/e2e.py)"
# The mailboxes e2e.py made through the API (the web service) are rows in the postgres
# service's cluster (asked as its superuser, over the socket, as the operator would).
rows=$(compose exec -T -u postgres postgres /usr/lib/postgresql/15/bin/psql -X -tA \
  -h /run/postgresql -p "$POSTGRES" -d mailhost -c \
  "SELECT count(*) FROM mailboxes_mailbox m JOIN mailboxes_domain d ON d.id = m.domain_id
   WHERE d.name LIKE 'e2e-%.example'") || fail "psql in the postgres container: $rows"
rows=$(tr -d '\r' <<<"$rows")
[ "$rows" = 2 ] || fail "e2e's mailboxes in PostgreSQL: '$rows' rows (want 2)"
echo "test-docker: the portal runs on PostgreSQL (e2e's 2 mailboxes are rows in the postgres service)"

# A restart of the database: the second start finds its cluster in the volume (no initdb, the
# role's password set again), the rows are still there, and the portal reconnects.
start=$SECONDS
compose restart postgres >/dev/null 2>&1 || fail "compose restart postgres"
container=$(compose ps -q postgres)
for _ in $(seq 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && break; sleep 1
done
for _ in $(seq 30); do health 2>/dev/null | grep -q '"ok": *true' && break; sleep 1; done
body=$(health 2>&1) || true
echo "$body" | grep -q '"ok": *true' || fail "/health after the database restarted: $body"
again=$(compose exec -T -u postgres postgres /usr/lib/postgresql/15/bin/psql -X -tA \
  -h /run/postgresql -p "$POSTGRES" -d mailhost -c "SELECT count(*) FROM mailboxes_mailbox") ||
  fail "psql after the restart: $again"
[ "$(tr -d '\r' <<<"$again")" -ge 2 ] || fail "mailboxes after the database restarted: '$again'"
echo "test-docker: postgres restarted (its cluster kept in pgdata), /health ok again" \
  "$((SECONDS - start)) s later"
echo "test-docker: ok"
