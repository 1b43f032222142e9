#!/usr/bin/env bash
# Runs inside the fresh box (make test-freshbox, docker/freshbox.sh): a Debian 12 minbase with
# nothing installed, as root. Does what README "The two commands" tells a newcomer, and checks
# what they would see. Given by docker/freshbox.sh:
#   /freshbox/mailhost.git   the commit under test (a bare clone, read-only); FRESHBOX_COMMIT
#   /freshbox/up.env         make up's ports (free ones: the box shares the host's network)
#   FRESHBOX_MIRROR          the Debian mirror; FRESHBOX_TESTS_PG: the PostgreSQL selection
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SRC=/srv/mailhost
step() { echo "freshbox: [$(date -u +%T) +${SECONDS}s] $*"; }
tails() {
  for f in "$SRC"/var/log/*.log "$SRC"/var/node/log/*.log; do
    [ -f "$f" ] && { echo "== ${f#"$SRC"/}"; tail -n 15 "$f"; }
  done
}
fail() { echo "freshbox: FAIL: $*" >&2; tails >&2 || true; exit 1; }
# A command's output goes to a log; on failure its tail is shown.
logged() {
  local log=/root/freshbox-$1.log; shift
  "$@" >"$log" 2>&1 || { tail -n 60 "$log" >&2; fail "$* (log above)"; }
}

# The sources a Debian 12 installer writes (debootstrap leaves only "bookworm main").
rm -f /etc/apt/sources.list
cat >/etc/apt/sources.list.d/debian.sources <<SOURCES
Types: deb
URIs: $FRESHBOX_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${FRESHBOX_MIRROR%/debian*}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# The .debs apt downloads stay in its cache (shared with the host's: the next box reuses them).
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >/etc/apt/apt.conf.d/01keep-debs
# dpkg without an fsync per file (as Debian's own container images): the box is thrown away.
echo force-unsafe-io >/etc/dpkg/dpkg.cfg.d/unsafe-io

step "apt-get update && apt-get install -y make git  (README)"
logged apt sh -c 'apt-get update && apt-get install -y make git'
step "git clone"
logged clone git clone /freshbox/mailhost.git "$SRC"  # where README says
cd "$SRC"
[ "$(git rev-parse HEAD)" = "$FRESHBOX_COMMIT" ] || fail "the clone is at $(git rev-parse HEAD)"
cp /freshbox/up.env var/up.env 2>/dev/null || { mkdir -p var; cp /freshbox/up.env var/up.env; }
source var/up.env

step "make up"
make up >/root/freshbox-up.log 2>&1 || { tail -n 60 /root/freshbox-up.log >&2; fail "make up"; }
grep -q "^Mailhost is running." /root/freshbox-up.log || fail "make up printed no 'Mailhost is running.'"
grep -qE "^  Log in as +admin@localhost$" /root/freshbox-up.log || fail "make up printed no login"
grep -qE "^  Password +[^ ]{12,}$" /root/freshbox-up.log || fail "make up printed no password"
step "make up printed the login; checking what answers"
portal=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' \
  "http://127.0.0.1:$MAILHOST_WEB_PORT/mail-admin/") || fail "the portal does not answer"
case "$portal" in "302 http://127.0.0.1:$MAILHOST_WEB_PORT/accounts/login/?next="*) ;;
  *) fail "/mail-admin/ answered '$portal' (want 302 to the login)" ;; esac
health=$(curl -sS "http://127.0.0.1:$MAILHOST_WEB_PORT/api/v1/health") || fail "/api/v1/health"
echo "$health" | grep -q '"ok": *true' || fail "/api/v1/health: $health"
greet() {  # the first line a server says on connect
  .venv/bin/python -c "import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10)
print(s.recv(512).decode().splitlines()[0])" "$1"
}
smtp=$(greet "$MAILHOST_SMTP_PORT") || fail "no SMTP greeting on $MAILHOST_SMTP_PORT"
case "$smtp" in "220 "*) ;; *) fail "SMTP greeting: '$smtp'" ;; esac
imap=$(greet "$MAILHOST_IMAP_PORT") || fail "no IMAP greeting on $MAILHOST_IMAP_PORT"
case "$imap" in "* OK"*) ;; *) fail "IMAP greeting: '$imap'" ;; esac
step "ok: /mail-admin/ 302 to the login, /api/v1/health ok, SMTP '$smtp', IMAP '${imap:0:40}'"

step "make down"
logged down make down
# Nothing `make up` started is left: in the box's own process namespace only this script
# (pid 1) and the subshell listing the processes remain (zombies, already exited, aside).
left=$(lister=$BASHPID; ps -eo pid=,ppid=,stat=,args= |
  awk -v self=$$ -v lister="$lister" '$1 != self && $1 != lister && $2 != lister && $3 !~ /^Z/')
[ -z "$left" ] || fail "still running after make down:"$'\n'"$left"
for port in "$MAILHOST_WEB_PORT" "$MAILHOST_SMTP_PORT" "$MAILHOST_IMAP_PORT" "$MAILHOST_HTTPS_PORT"; do
  ! greet "$port" >/dev/null 2>&1 || fail "port $port still answers after make down"
done
step "ok: nothing left running, the ports are closed"

step "make test: the embedded selection on SQLite"
make test PYTEST_ARGS="--sqlite -m embedded -q -p no:randomly" TEST_DOCKER=no \
  >/root/freshbox-test-sqlite.log 2>&1 ||
  { tail -n 80 /root/freshbox-test-sqlite.log >&2; fail "make test (embedded, SQLite)"; }
grep -E "^=* ?[0-9]+ passed" /root/freshbox-test-sqlite.log | tail -n 1 || true
step "make test: a stack test and a browser test on PostgreSQL"
# shellcheck disable=SC2086
make test PYTEST_ARGS="$FRESHBOX_TESTS_PG -q -p no:randomly" TEST_DOCKER=no \
  >/root/freshbox-test-pg.log 2>&1 ||
  { tail -n 80 /root/freshbox-test-pg.log >&2; fail "make test (PostgreSQL selection)"; }
# The PostgreSQL the tests used: the box's own (the host's standard port is pointed at a closed one).
grep -q "DATABASE_URL=postgres://postgres@127.0.0.1:$MAILHOST_PG_FALLBACK_PORT/" \
  var/run/test-services.env || fail "the tests did not run on the box's own PostgreSQL:
$(cat var/run/test-services.env)"
grep -E "^=* ?[0-9]+ passed" /root/freshbox-test-pg.log | tail -n 1 || true
step "ok"
