#!/usr/bin/env bash
# Installs the Debian packages Mailhost needs, only those that are missing.
# Postfix is preseeded to "No configuration": the project never touches /etc/postfix;
# every daemon runs from a state directory the project renders.
set -euo pipefail

PACKAGES=(
  postfix postfix-sqlite postfix-lmdb
  dovecot-imapd dovecot-lmtpd dovecot-sieve dovecot-managesieved dovecot-sqlite
  opendkim opendkim-tools
  rspamd unbound dns-root-data ldnsutils  # inbound: filtering and the node's resolver
  postsrsd  # forwarding: SRS (mailhost/backend/forwarding.py), run by the stack runner
  libmilter-dev gcc python3-dev
  swaks libnet-ssleay-perl libio-socket-ssl-perl
  knot knot-dnsutils
  nginx  # the edge: HTTPS front door (mailhost/backend/edge.py)
  pebble  # tests: Let's Encrypt's test ACME server on loopback
  redis-server postgresql
  chromium
  php8.2-fpm php8.2-sqlite3 roundcube roundcube-sqlite3 roundcube-plugins  # webmail (mailhost/backend/webmail.py)
  sqlite3 openssl python3-venv procps iproute2
  curl  # scripts/up.sh waits for the portal with it; the README's API examples use it
  ca-certificates  # the trust store outbound TLS verifies destinations against (/etc/ssl/certs)
)
# `scripts/install-system.sh docker` (make test-docker): also what builds and runs docker/.
if [ "${1:-}" = docker ]; then
  PACKAGES+=(docker.io docker-compose debootstrap)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Run 'make up' or 'make test' as root once, or install them with apt-get." >&2
  exit 1
fi

echo "Installing Debian packages: ${missing[*]}"
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Roundcube's database is a SQLite file under the node state directory, created by the stack runner.
echo "roundcube-core roundcube/dbconfig-install boolean false" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps apt from upgrading systemd/udev alongside chromium.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
