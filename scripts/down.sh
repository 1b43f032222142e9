#!/usr/bin/env bash
# Stops what `make up` started, by pid: web server, worker, mail stack, and our own Redis.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
RUN="$PWD/var/run"

stop_pid() {
  local name=$1 file="$RUN/$1.pid" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name"
  fi
  rm -f "$file"
}

stop_pid worker
stop_pid web
[ -x .venv/bin/python ] && python manage.py stack stop
stop_pid redis
