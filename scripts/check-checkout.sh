#!/usr/bin/env bash
# The mail daemons run as their own users (postfix, dovecot, _rspamd, …) from state directories
# under the checkout (var/node), so every directory above it must let others through
# (o+x). A clone under /root (mode 700 on Debian) does not: Postfix would stop with "open lock
# file … Permission denied". `make up` says so before anything starts (the test suite runs its
# stacks under /tmp, MAILHOST_TEST_STACK_BASE, and does not need it).
set -euo pipefail
dir=$(cd "$(dirname "$0")/.." && pwd -P)
checkout=$dir
while [ "$dir" != / ]; do
  if [ $((0$(stat -c %a "$dir") & 1)) -eq 0 ]; then
    echo "The mail daemons' users cannot reach $checkout: $dir is mode $(stat -c %a "$dir")." >&2
    echo "Clone Mailhost elsewhere (e.g. /srv/mailhost) or run: chmod o+x $dir" >&2
    exit 1
  fi
  dir=$(dirname "$dir")
done
