#!/usr/bin/env bash
# The portal's web server as `make up` runs it (tests start it the same way): gunicorn on
# 127.0.0.1:$MAILHOST_WEB_PORT, logging to $MAILHOST_VAR_DIR/log (var/log). Extra arguments go
# to gunicorn (up.sh adds --daemon and a pid file). MAILHOST_LOG_DIR overrides the log place.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG="${MAILHOST_LOG_DIR:-${MAILHOST_VAR_DIR:-$PWD/var}/log}"
mkdir -p "$LOG"
# --capture-output: what Django logs goes to stderr, which a daemon would send to /dev/null;
# captured, every error (with its request id) lands in web.log.
# --timeout: a bulk API request of 10,000 mailboxes runs for more than a minute.
# --no-control-socket: it is stopped by its pid; one socket path in $HOME shared by every
# gunicorn on the box (a test run's, make up's) would only get in the way.
exec "$PWD/.venv/bin/gunicorn" mailhost.wsgi:application \
  --bind "127.0.0.1:${MAILHOST_WEB_PORT:-8000}" --workers 2 --timeout 300 --no-control-socket \
  --capture-output --error-logfile "$LOG/web.log" --access-logfile "$LOG/web-access.log" "$@"
