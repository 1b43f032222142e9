#!/usr/bin/env bash
# The whole suite: ruff, then pytest against real PostgreSQL and Redis (and, per test, the real
# mail stack, Knot and Chromium); then the suites marked `embedded` (load and mail flow) again
# on a SQLite file database, the default `make up` runs on. Extra arguments go to pytest and
# run on PostgreSQL only; `scripts/test.sh --sqlite ARGS` runs ARGS on SQLite only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p var/run
# Written to a file and sourced only once it succeeded: `source <(…)` would hide a failure
# and leave the tests on SQLite and Redis database 0, the one `make up` uses.
REDIS_DB=15 scripts/ensure-services.sh postgres redis >var/run/test-services.env
source var/run/test-services.env
: "${DATABASE_URL:?ensure-services.sh gave no DATABASE_URL}" "${CELERY_BROKER_URL:?no broker}"
export MAILHOST_VAR_DIR="$PWD/var/test"
export MAILHOST_BCRYPT_ROUNDS="${MAILHOST_BCRYPT_ROUNDS:-5}"  # tests hash thousands of passwords
export EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
export DJANGO_ALLOW_ASYNC_UNSAFE=true  # Playwright's event loop + ORM calls in browser tests
# The suite asks for the dev relaxations: tests fail logins from 127.0.0.1 by the hundred, so
# it is never banned there. Attack tests act from other loopback addresses (127.0.0.9, …).
export MAILHOST_STACK_DEV="${MAILHOST_STACK_DEV:-true}"
export MAILHOST_HTTPS=false  # the test client and live server speak plain HTTP; tests of
                             # production mode turn it on themselves
# Inbound (Rspamd, unbound): the resolver answers only for hosted domains and fixture zones;
# the harness presents "internet" clients with XCLIENT from 127.0.0.1; greylisting's window is
# short; Rspamd's compiled regex cache is kept between runs (a cold compile costs ~20 s).
export MAILHOST_RESOLVER_MODE=local MAILHOST_SMTP_XCLIENT_HOSTS=127.0.0.1
export MAILHOST_GREYLIST_DELAY_SECONDS="${MAILHOST_GREYLIST_DELAY_SECONDS:-2}"
export MAILHOST_RSPAMD_CACHE_DIR="${MAILHOST_RSPAMD_CACHE_DIR:-$MAILHOST_VAR_DIR/rspamd-hs}"
export MAILHOST_RSPAMD_REDIS_URL="${MAILHOST_RSPAMD_REDIS_URL:-$CELERY_BROKER_URL}"
# The certificate watcher looks every second, so a renewal is seen at once.
export MAILHOST_CERT_WATCH_SECONDS="${MAILHOST_CERT_WATCH_SECONDS:-1}"
mkdir -p "$MAILHOST_VAR_DIR"
SQLITE_URL="sqlite:///$MAILHOST_VAR_DIR/mailhost.sqlite3"
ruff check .
python manage.py collectstatic --noinput -v0  # whitenoise serves from STATIC_ROOT, as in production

# Worker processes (pytest-xdist; MAILHOST_TEST_WORKERS=0 runs in this process): most tests
# wait on daemons, so two workers on two cores nearly halve the run. tests/worker_env.py gives
# each worker its own Redis database, test database and node state dir; a test file stays on
# one worker, so its module fixtures start once.
WORKERS=(-n "${MAILHOST_TEST_WORKERS:-2}" --dist loadfile)

if [ "${1:-}" = "--sqlite" ]; then
  shift
  DATABASE_URL="$SQLITE_URL" exec python -m pytest "${WORKERS[@]}" "$@"
fi
python -m pytest "${WORKERS[@]}" "$@"
if [ $# -eq 0 ]; then
  echo "--- again on the embedded default (SQLite file database): the suites marked 'embedded'"
  DATABASE_URL="$SQLITE_URL" python -m pytest "${WORKERS[@]}" -m embedded
fi
