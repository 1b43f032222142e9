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
export MAILHOST_HTTPS=false  # the test client and live server speak plain HTTP; tests of
                             # production mode turn it on themselves
mkdir -p "$MAILHOST_VAR_DIR"
ruff check .
python manage.py collectstatic --noinput -v0  # whitenoise serves from STATIC_ROOT, as in production
python -m pytest "$@"
