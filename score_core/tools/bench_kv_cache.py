"""`score bench decode-cache`: the rollout engine's in-place KV cache vs transformers' `DynamicCache`.

The same `decode.decode_turns` call (sampled two-attempt rollouts of k samples per prompt,
the debug tables' batch and length) with each cache, alternating, torch's RNG re-seeded
before every run: both caches hold the same keys and values, so the two runs must sample
the same tokens (`identical`) and record the same log-probabilities up to float rounding
(`max_logp_diff`) — the speed is not bought with other samples. Tokens/s counts generated
tokens of y1 and y2 (stop tokens excluded) over wall time; only the ratio is meaningful
on a shared CPU.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch
from transformers import DynamicCache

from score_core.generation.decode import decode_turns
from score_core.generation.kv_cache import growing_cache
from score_core.generation.rollout import eos_ids, pad_id, two_turn_prompts

CACHES = {"dynamic": lambda config: DynamicCache(config=config), "growing": growing_cache}


@torch.no_grad()
def bench_kv_cache(model: Any, tokenizer: Any, problems: Sequence[Any], *, k: int = 4, batch_size: int = 512,
                   max_new_tokens: int = 36, temperature: float = 1.0, repeats: int = 2, seed: int = 0
                   ) -> dict[str, Any]:
    """Time `decode_turns` with each cache of `CACHES` on the same prompts and RNG seed."""
    model.eval()
    _, prompts, suffixes = two_turn_prompts(tokenizer, problems, k)
    eos, pad = eos_ids(tokenizer, model), pad_id(tokenizer)

    def run(name: str) -> list[Any]:
        torch.manual_seed(seed)
        return decode_turns(model, prompts, suffixes, max_new_tokens=max_new_tokens, temperature=temperature,
                            batch_size=batch_size, eos_ids=eos, pad_id=pad, new_cache=CACHES[name])

    for name in CACHES:  # warm-up
        decode_turns(model, prompts[:2], suffixes[:2], max_new_tokens=2, temperature=temperature, batch_size=2,
                     eos_ids=eos, pad_id=pad, new_cache=CACHES[name])
    seconds: dict[str, list[float]] = {name: [] for name in CACHES}
    outputs: dict[str, list[Any]] = {}
    for _ in range(repeats):  # alternate, so load changes hit both alike
        for name in CACHES:
            t0 = time.perf_counter()
            outputs[name] = run(name)
            seconds[name].append(time.perf_counter() - t0)
    result: dict[str, Any] = {"episodes": len(prompts), "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                              "temperature": temperature, "repeats": repeats}
    for name in CACHES:
        tokens = sum(len(g.ids) for gens in outputs[name] for g in gens)
        sec = statistics.median(seconds[name])
        result[name] = {"tokens": tokens, "seconds": sec, "tokens_per_s": tokens / sec}
    result["ratio_growing_vs_dynamic"] = result["growing"]["tokens_per_s"] / result["dynamic"]["tokens_per_s"]
    pairs = list(zip(outputs["dynamic"], outputs["growing"]))
    result["mismatched_rows"] = sum(tuple((g.ids, g.stop_id) for g in a) != tuple((g.ids, g.stop_id) for g in b)
                                    for a, b in pairs)
    result["max_logp_diff"] = max((abs(x - y) for a, b in pairs for ga, gb in zip(a, b)
                                   for x, y in zip(ga.logprobs, gb.logprobs)), default=0.0)
    result["identical"] = result["mismatched_rows"] == 0
    return result
