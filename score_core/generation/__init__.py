"""Sampling two attempts: prompts, the rollout engines, model loading.

- `prompts`      — the paper's prompts verbatim; how x, x ⊕ y1 ⊕ p are rendered.
- `decode`       — the HF engine: batched two-turn decoding, one KV-cache row per sample.
- `rollout`      — k two-attempt samples per problem (HF engine or vLLM) → `Episode`s.
- `vllm_engine`, `vllm_server` — `rollout.engine: vllm`: one engine per run, weights synced in place.
- `models`       — loading and saving models (hub names or local dirs, LoRA).
- `debug_model`  — the tiny from-scratch base model and its pre-training (debug scale).

Imports `score_core.base` and `problems` (the synthetic corpus) only.
"""
