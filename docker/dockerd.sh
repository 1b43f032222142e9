# Sourced by docker/test.sh and docker/freshbox.sh: a private Docker daemon, one at a time.
#   dockerd_start RUNDIR   takes the lock (MAILHOST_DOCKER_CACHE/docker.lock, on fd 9), starts
#                          dockerd and exports DOCKER_HOST; waits until it answers
#   dockerd_stop           stops it and what it left (shims, network namespaces)
# The daemon (as shared/notes: no bridge, no iptables; nothing left on the host): its data root
# is kept under MAILHOST_DOCKER_CACHE (/var/cache/mailhost/docker), so the debootstrap base and
# the image layers survive between runs; the socket and exec root are under RUNDIR, which the
# caller makes (mktemp -d) and removes. Needs root and dockerd (`scripts/install-system.sh docker`).
DOCKERD_CACHE="${MAILHOST_DOCKER_CACHE:-/var/cache/mailhost}"
DOCKERD_RUNDIR=

dockerd_start() {
  DOCKERD_RUNDIR=$1
  mkdir -p "$DOCKERD_CACHE/docker"
  export DOCKER_HOST="unix://$DOCKERD_RUNDIR/docker.sock"
  # A lock: one private daemon per data root at a time.
  exec 9>"$DOCKERD_CACHE/docker.lock"
  flock 9
  dockerd --data-root "$DOCKERD_CACHE/docker" --exec-root "$DOCKERD_RUNDIR/exec" \
    --pidfile "$DOCKERD_RUNDIR/dockerd.pid" -H "$DOCKER_HOST" --iptables=false --bridge=none \
    >"$DOCKERD_RUNDIR/dockerd.log" 2>&1 9>&- &
  for _ in $(seq 300); do docker version >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$DOCKERD_RUNDIR/dockerd.log" >&2
  echo "dockerd did not start" >&2
  return 1
}

dockerd_stop() {
  [ -n "$DOCKERD_RUNDIR" ] || return 0
  local run=$DOCKERD_RUNDIR
  [ -f "$run/dockerd.pid" ] && kill "$(cat "$run/dockerd.pid")" 2>/dev/null
  for _ in $(seq 100); do [ -f "$run/dockerd.pid" ] || break; sleep 0.1; done
  pkill -f -- "-address $run/exec/" 2>/dev/null  # a container shim dockerd left behind
  # containerd holds its database until it has exited: the next run's dockerd waits for it.
  for _ in $(seq 100); do pgrep -f -- "$run/exec" >/dev/null || break; sleep 0.1; done
  for ns in "$run"/exec/netns/*; do [ -e "$ns" ] && umount "$ns"; done 2>/dev/null
  return 0
}
