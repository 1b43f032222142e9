#!/usr/bin/env bash
# The whole suite: ruff, then pytest against real PostgreSQL and Redis (and, per test, the real
# mail stack, Knot and Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
source <(REDIS_DB=15 scripts/ensure-services.sh postgres redis)
export MAILHOST_VAR_DIR="$PWD/var/test"
export MAILHOST_BCRYPT_ROUNDS="${MAILHOST_BCRYPT_ROUNDS:-5}"  # tests hash thousands of passwords
export EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
export DJANGO_ALLOW_ASYNC_UNSAFE=true  # Playwright's event loop + ORM calls in browser tests
# The suite asks for the dev relaxations: tests fail logins from 127.0.0.1 by the hundred, so
# it is never banned there. Attack tests act from other loopback addresses (127.0.0.9, …).
export MAILHOST_STACK_DEV="${MAILHOST_STACK_DEV:-true}"
mkdir -p "$MAILHOST_VAR_DIR"
ruff check .
python manage.py collectstatic --noinput -v0  # whitenoise serves from STATIC_ROOT, as in production
python -m pytest "$@"
