"""The rollout step: k two-attempt episodes per problem from one checkpoint → a trace file.

The HF engine (`generation/decode.py`) or the run's long-lived vLLM engine
(`generation/vllm_engine.py`); traces are written atomically, after both attempts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from score_core.generation.models import is_adapter_dir, load_model, load_tokenizer
from score_core.generation.rollout import rollout_two_attempts
from score_core.progress import bar
from score_core.schema import read_problems, write_episodes
from score_core.steps import rollout_share
from score_core.timing import phase


def rollout_step(
    model_dir: str, problems_path: str, out_path: str, *, run_id: str, stage: str, iteration: int,
    k: int, temperature: float, max_new_tokens: int, batch_size: int, seed: int,
    dtype: str = "float32", limit: Optional[int] = None, offset: int = 0, engine: str = "hf",
    vllm_gpu_memory_utilization: float = 0.4, vllm_tensor_parallel_size: int = 1, turn2_style: str = "score",
    vllm_server: Optional[dict[str, str]] = None, vllm_max_lora_rank: Optional[int] = None,
    share_dir: Optional[str] = None,
) -> dict[str, Any]:
    """Sample k two-attempt episodes per problem with the model at `model_dir`.

    engine "hf": `decode.decode_turns` on the HF model. "vllm": the run's long-lived vLLM
    engine (`vllm_server`: the address of the flow run's rollout server,
    `score_core/generation/vllm_server.py`) is given `model_dir` — the newest checkpoint is loaded in
    place, a LoRA adapter becomes a new adapter request: this is the per-iteration weight
    sync — and decodes; no engine is built unless the server has none that fits (its first
    rollout, or a restart after it died). Without `vllm_server` a private server is started
    and closed here (an engine start per call). Traces are written only after both attempts
    came back, atomically: a died engine (`EngineDied`, retried) leaves nothing behind.

    `share_dir` (HF engine, a frozen model only): when another run already sampled exactly
    this rollout (`rollout_share`), its traces are copied under this run's labels instead."""
    with phase("parquet_io"):
        problems = read_problems(problems_path)
    if limit is not None:
        start = (offset * limit) % max(len(problems), 1)
        problems = (problems[start:] + problems[:start])[:limit]
    key = _share_key(share_dir if engine == "hf" else None, model_dir, problems, dict(
        k=k, temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
        dtype=dtype, turn2_style=turn2_style))
    if key is not None:
        with phase("parquet_io"):
            shared = rollout_share.reuse(share_dir, key, out_path, run_id, stage, iteration)
        if shared is not None:
            return shared
    with phase("model_load"):
        tokenizer = load_tokenizer(model_dir)
    model, gen_engine, extra = None, None, {}
    if engine == "vllm":
        from score_core.generation.vllm_engine import build_engine

        eos = {tokenizer.eos_token_id} | _generation_eos(model_dir)
        gen_engine = build_engine(engine, model_dir, eos, dtype=dtype, seed=seed, max_model_len=None,
                                  gpu_memory_utilization=vllm_gpu_memory_utilization,
                                  tensor_parallel_size=vllm_tensor_parallel_size, server=vllm_server,
                                  max_lora_rank=vllm_max_lora_rank)
        extra = {"vllm_engine_built": gen_engine.built, "vllm_engine_start_s": gen_engine.start_s,
                 "vllm_sync_s": gen_engine.sync_s}
    else:
        with phase("model_load"):
            model = load_model(model_dir, dtype=dtype)
    t0 = time.perf_counter()
    try:
        with phase("rollout"), bar(total=2 * k * len(problems), desc=f"rollout {stage} it{iteration}") as pb:
            episodes = rollout_two_attempts(
                model, tokenizer, problems, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                batch_size=batch_size, run_id=run_id, stage=stage, iteration=iteration, seed=seed,
                progress=pb.update, engine=gen_engine, turn2_style=turn2_style)
    finally:
        if gen_engine is not None:
            gen_engine.close()  # the connection (and a private server); the run's server stays up
    dt = time.perf_counter() - t0
    with phase("parquet_io"):
        write_episodes(episodes, out_path)
    n_tok = sum(e.tokens1 + e.tokens2 for e in episodes)
    record = {"path": out_path, "episodes": len(episodes), "gen_tokens": n_tok,
              "gen_tokens_per_s": n_tok / dt if dt else 0.0, "rollout_s": dt, **extra}
    if key is not None:
        with phase("parquet_io"):
            rollout_share.publish(share_dir, key, episodes, record)
        record["shared"] = False
    return record


def _share_key(share_dir: Optional[str], model_dir: str, problems: list, params: dict[str, Any]) -> Optional[str]:
    """The rollout's key in `share_dir` (None: not shared). Only a local model folder is
    shared: a hub name says nothing about which weights the hub cache holds."""
    if not share_dir or not Path(model_dir).is_dir():
        return None
    return rollout_share.share_key(model_dir, problems, params)


def _generation_eos(model_dir: str) -> set[int]:
    """Extra stop ids from generation_config.json (chat models often list several); a LoRA
    adapter directory has none of its own: its base model's."""
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file() and is_adapter_dir(model_dir):
        base = json.loads((Path(model_dir) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        path = Path(base or model_dir) / "generation_config.json"
    if not path.is_file():
        return set()
    eos = json.loads(path.read_text()).get("eos_token_id")
    return set(eos) if isinstance(eos, list) else ({eos} if isinstance(eos, int) else set())
