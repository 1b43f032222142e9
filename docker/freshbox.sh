#!/usr/bin/env bash
# `make test-freshbox`: the README's two commands on a machine that has nothing. A container
# from the bare debootstrap base (docker/build.sh --base: Debian 12 minbase, no make, no git,
# no Python) on a private dockerd (docker/dockerd.sh) runs, as root, docker/freshbox-box.sh:
# `apt-get install make git`, `git clone` of the commit under test, `make up` (checks the
# printed login, the portal, SMTP and IMAP), `make down` (checks nothing is left running),
# then `make test` on a selection: the `embedded` suites on SQLite, and on PostgreSQL one
# stack test and one browser test (FRESHBOX_TESTS_PG), without make test-docker (TEST_DOCKER=no).
#
# What is tested is the committed HEAD (a bare clone of it is mounted read-only); uncommitted
# changes are not in the box. The box shares the host's network (apt and PyPI; no bridge on
# the private daemon), so make up's ports and the PostgreSQL/Redis it looks for are moved to
# free ports: the box starts its own, never uses the host's.
# Caches (a cold machine works without them; they only save downloads):
#   APT_ARCHIVES   the host's .deb cache, mounted as the box's (/var/cache/apt/archives)
#   PIP_CACHE      the host's pip cache dir, mounted as the box's (default: `pip cache dir`)
#   CA_BUNDLE      the certificates pip in the box trusts (the host's: /etc/ssl/certs/ca-certificates.crt)
#   FRESHBOX_COLD=1  run with empty temporary caches instead (measures a cold machine)
#   KEEP=1         leave the box (container) for a look; `docker rm -f` it after
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/dockerd.sh
RUNDIR=$(mktemp -d /tmp/mailhost-freshbox.XXXXXX)
BOX="mailhost-freshbox-$$"
default_pg="tests/reconcile/test_mail_flow.py::test_it_makes_a_new_mailbox_live"
default_pg+=" tests/browser/test_pages_browser.py::test_it_keeps_tenants_apart_and_viewers_read_only"
FRESHBOX_TESTS_PG="${FRESHBOX_TESTS_PG:-$default_pg}"
FRESHBOX_TESTS_PG=$(tr -s '\n' ' ' <<<"$FRESHBOX_TESTS_PG")  # one line: it goes into make's command line

cleanup() {
  set +e
  [ "${KEEP:-}" = 1 ] || docker rm -f "$BOX" >/dev/null 2>&1
  dockerd_stop
  rm -rf "$RUNDIR"
}
trap cleanup EXIT
fail() { echo "test-freshbox: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (a private dockerd)"
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  echo "test-freshbox: uncommitted changes are not tested: the box clones $commit" >&2
git clone -q --bare . "$RUNDIR/mailhost.git"
git -C "$RUNDIR/mailhost.git" update-ref --no-deref HEAD "$commit"  # HEAD itself, even detached

if [ "${FRESHBOX_COLD:-}" = 1 ]; then
  APT_ARCHIVES="$RUNDIR/cold-apt" PIP_CACHE="$RUNDIR/cold-pip"
fi
APT_ARCHIVES="${APT_ARCHIVES:-/var/cache/apt/archives}"
PIP_CACHE="${PIP_CACHE:-$( (.venv/bin/python -m pip cache dir || python3 -m pip cache dir) 2>/dev/null ||
  echo /root/.cache/pip)}"
mkdir -p "$APT_ARCHIVES/partial" "$PIP_CACHE"
# pip in the box trusts what the host trusts (a network whose proxy inspects TLS has its own CA).
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mirror=$(docker/build.sh --mirror)

dockerd_start "$RUNDIR" || fail "dockerd did not start"
base=$(docker/build.sh --base) || fail "the debootstrap base (docker/build.sh --base)"

# Free ports for make up (and closed ones where it looks for a running PostgreSQL and Redis).
read -r SMTP SUB SUBS IMAP IMAPS SIEVE INTERNAL POLICY RESOLVER HTTP HTTPS WEB DAV FORWARD SRS \
  SRS_REVERSE STATS DOVEADM REDIS_OWN PG_CLOSED REDIS_CLOSED PG_OWN < <(
  python3 -c 'import socket
socks = [socket.socket() for _ in range(22)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
cat >"$RUNDIR/up.env" <<ENV
export MAILHOST_SMTP_PORT=$SMTP MAILHOST_SUBMISSION_PORT=$SUB MAILHOST_SUBMISSIONS_PORT=$SUBS
export MAILHOST_IMAP_PORT=$IMAP MAILHOST_IMAPS_PORT=$IMAPS MAILHOST_MANAGESIEVE_PORT=$SIEVE
export MAILHOST_INTERNAL_SMTP_PORT=$INTERNAL MAILHOST_AUTHPOLICY_PORT=$POLICY
export MAILHOST_RESOLVER_PORT=$RESOLVER MAILHOST_HTTP_PORT=$HTTP MAILHOST_HTTPS_PORT=$HTTPS
export MAILHOST_WEB_PORT=$WEB MAILHOST_DAV_PORT=$DAV MAILHOST_FORWARD_PORT=$FORWARD
export MAILHOST_SRS_PORT=$SRS MAILHOST_SRS_REVERSE_PORT=$SRS_REVERSE MAILHOST_DOVECOT_STATS_PORT=$STATS
export MAILHOST_DOVEADM_PORT=$DOVEADM
ENV

echo "test-freshbox: $base, commit $commit; apt cache $APT_ARCHIVES, pip cache $PIP_CACHE"
start=$SECONDS
status=0
# shellcheck disable=SC2086
docker run --name "$BOX" --network host --shm-size 1g ${FRESHBOX_DOCKER_OPTS:-} \
  -v "$RUNDIR/mailhost.git:/freshbox/mailhost.git:ro" -v "$RUNDIR/up.env:/freshbox/up.env:ro" \
  -v "$PWD/docker/freshbox-box.sh:/freshbox/box.sh:ro" \
  -v "$APT_ARCHIVES:/var/cache/apt/archives" -v "$PIP_CACHE:/root/.cache/pip" \
  -v "$CA_BUNDLE:/freshbox/ca-certificates.crt:ro" -e PIP_CERT=/freshbox/ca-certificates.crt \
  -e FRESHBOX_COMMIT="$commit" -e FRESHBOX_MIRROR="$mirror" -e FRESHBOX_TESTS_PG="$FRESHBOX_TESTS_PG" \
  -e MAILHOST_PG_URL="postgres://postgres@127.0.0.1:$PG_CLOSED" -e MAILHOST_PG_FALLBACK_PORT="$PG_OWN" \
  -e MAILHOST_REDIS_PORT="$REDIS_CLOSED" -e MAILHOST_REDIS_FALLBACK_PORT="$REDIS_OWN" \
  "$base" bash /freshbox/box.sh || status=$?
echo "test-freshbox: the box ran $((SECONDS - start)) s"
[ "$status" = 0 ] || fail "in the box (exit $status; its output above)"
echo "test-freshbox: ok"
