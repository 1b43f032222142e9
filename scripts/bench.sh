#!/usr/bin/env bash
# `make bench [SIZE=small|full]`: the benchmark suite against a real stack — PostgreSQL, Redis,
# a Celery worker, gunicorn, Postfix, Dovecot, OpenDKIM — all its own, all stopped afterwards.
# Prints a table; raw results go to var/bench/results.json. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
size="${1:-${SIZE:-full}}"
# The bench uses its own database (mailhost_bench) on this server and Redis database 9.
# Written to a file and sourced only once it succeeded (`source <(…)` hides a failure).
mkdir -p var/run
REDIS_DB=9 scripts/ensure-services.sh postgres redis >var/run/bench-services.env
source var/run/bench-services.env
: "${DATABASE_URL:?ensure-services.sh gave no DATABASE_URL}" "${CELERY_BROKER_URL:?no broker}"
exec python -m bench.run --size "$size"
