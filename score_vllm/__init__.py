"""The vLLM rollout server: code that runs inside the vLLM environment (`scripts/ensure_vllm.sh`).

Nothing here imports the rest of the project (its pins — transformers, Prefect — conflict with
vLLM's); the project talks to it through `score_core/generation/vllm_engine.py` with token ids, sampling
arguments and checkpoint paths only.
"""
