#!/usr/bin/env bash
# Make sure the Docker engine runs and the sandbox image exists (builds it when missing:
# sandbox/Dockerfile where a registry answers, else offline debootstrap + docker import).
# Idempotent; well under a second when both are already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SCORE_SANDBOX_IMAGE:-score-sandbox:latest}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3

bash "$ROOT/scripts/ensure_docker.sh"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi
cd "$ROOT"
exec "$PY" -m sandbox.cli sandbox build --image "$IMAGE"
