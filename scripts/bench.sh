#!/usr/bin/env bash
# `make bench [SIZE=small|full]`: the benchmark suite against a real stack — PostgreSQL, Redis,
# a Celery worker, gunicorn, Postfix, Dovecot, OpenDKIM — all its own, all stopped afterwards.
# Prints a table; raw results go to var/bench/results.json. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
size="${1:-${SIZE:-full}}"
# The bench uses its own database (mailhost_bench) on this server and Redis database 9.
source <(REDIS_DB=9 scripts/ensure-services.sh postgres redis)
exec python -m bench.run --size "$size"
