#!/usr/bin/env bash
# Builds the Mailhost image without any registry: a Debian bookworm base made with debootstrap
# from the Debian mirror apt already uses, imported into the local Docker, then docker/Dockerfile
# on top of it: Debian's packages from the same mirror, the Python dependencies as wheels that
# this host's pip downloaded (hash-checked against requirements.lock) and built (pymilter), so
# the image needs neither PyPI nor a compiler. Host and image are both bookworm (Python 3.11).
#
# The base and the wheels are cached outside the checkout, so a rebuild (and a CI rerun)
# reuses them:
#   MAILHOST_DOCKER_CACHE   where they are kept (/var/cache/mailhost)
#   DEBIAN_MIRROR           the mirror debootstrap uses (default: the first one in apt's sources)
#   DOCKER_HOST             the Docker daemon to talk to (tests: a private one)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MAILHOST_DOCKER_CACHE:-/var/cache/mailhost}"
BASE_TAR="$CACHE/bookworm-minbase.tar"
BASE_IMAGE=mailhost/base:bookworm
IMAGE="${MAILHOST_IMAGE:-mailhost/mailhost:latest}"

mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  local found
  found=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* |
          grep -v -e security -e '\[' | grep -oE 'https?://[^ ]*/debian/?' | head -n1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}

[ "${1:-}" = --mirror ] && { mirror; exit 0; }  # the mirror it uses (make test-freshbox's too)
if [ ! -s "$BASE_TAR" ]; then
  command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is not installed" >&2; exit 1; }
  mkdir -p "$CACHE"
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm (minbase) from $(mirror) ..." >&2
  debootstrap --variant=minbase bookworm "$root" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
fi
import_base() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || docker import "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}
# `docker/build.sh --base`: only the bare base (make test-freshbox starts from it).
if [ "${1:-}" = --base ]; then import_base; echo "$BASE_IMAGE"; exit 0; fi
# The wheels, for exactly requirements.lock (redone when it changes).
WHEELS="$CACHE/wheels"
if ! cmp -s requirements.lock "$WHEELS/requirements.lock"; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  pip=.venv/bin/pip  # the checkout's, or (a host that only runs Docker) a venv of the cache's
  if [ ! -x "$pip" ]; then
    [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
    pip="$CACHE/venv/bin/pip"
  fi
  "$pip" wheel -q --require-hashes -r requirements.lock -w "$WHEELS" >&2
  cp requirements.lock "$WHEELS/requirements.lock"
fi
import_base
# The classic builder (BuildKit needs buildx, which Debian's docker.io lacks), on the host's
# network (a daemon may run without a bridge: --bridge=none).
# The context: the checkout as src/ (without .git, .venv, var) and the wheels as wheels/.
tar -c --exclude-vcs --exclude=./.venv --exclude=./var --exclude='__pycache__' \
    --exclude=./.pytest_cache --exclude=./.ruff_cache --transform 's,^\./,src/,' \
    . -C "$CACHE" wheels |
  DOCKER_BUILDKIT=0 docker build -q --network host -f src/docker/Dockerfile \
    --build-arg "DEBIAN_MIRROR=$(mirror)" -t "$IMAGE" - >/dev/null
echo "$IMAGE"
