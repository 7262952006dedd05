#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`. Idempotent and fast when it already does.
#   1. a daemon answers            -> done
#   2. no `dockerd` binary, root   -> apt-get install -y docker.io (Debian engine)
#   3. start `dockerd` in the background (no systemd here), log to $DOCKERD_LOG
#   4. wait until `docker info` works, else exit non-zero with the log tail
# Never skips silently: every failure exits 1 with a message on stderr.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/score-dockerd.log}"
WAIT_S="${DOCKER_WAIT_S:-60}"

die() { echo "ensure_docker: ERROR: $*" >&2; exit 1; }
answers() { timeout 10 docker info >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 || NEED_INSTALL=1
if answers; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || [ "${NEED_INSTALL:-0}" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "no Docker daemon answers and dockerd is missing; install Docker (not root, so not installing)"
    command -v apt-get >/dev/null 2>&1 || die "dockerd missing and no apt-get to install docker.io"
    echo "ensure_docker: installing Debian docker.io ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null; } \
        || die "apt-get install docker.io failed"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "no Docker daemon answers and not root: start dockerd yourself (or join the docker group)"
    echo "ensure_docker: starting dockerd in the background (log: $DOCKERD_LOG)" >&2
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
fi

for _ in $(seq 1 "$((WAIT_S * 4))"); do
    if answers; then
        echo "ensure_docker: daemon ready" >&2
        exit 0
    fi
    sleep 0.25
done
echo "---- last lines of $DOCKERD_LOG ----" >&2
tail -n 30 "$DOCKERD_LOG" >&2 || true
die "Docker daemon did not answer within ${WAIT_S}s"
