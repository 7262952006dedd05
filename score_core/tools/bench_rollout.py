"""`score bench rollout`: the pipeline's two-attempt engine versus naive per-sample `generate`.

Same prompts, same model, same process, greedy decoding, alternating repeats (the machine
is shared and noisy, so only ratios measured side by side mean anything). Three ways to
produce y1 and y2 for every prompt:
- `naive`: one `model.generate` call per sample and turn (batch 1; turn 2 re-reads x ⊕ y1 ⊕ p);
- `hf_batched`: batched `generate` per turn with left padding and length bucketing
  (the engine this project had before `decode.py`);
- `engine`: `decode.decode_turns` — both turns in one pass, turn 2 continues each row's
  cache, finished rows leave the batch.
- `vllm` (with `vllm_model_dir`): the vLLM rollout engine (`vllm_engine.VLLMEngine`, its own
  server and environment) on the same checkpoint. Its engine start, an in-place weight sync
  (the same weights from a copy of the directory) and a rebuild (a second engine) are timed
  once, outside the tokens/s.
The engine's (and vLLM's) greedy outputs must equal the naive ones token for token, stop
token included (`identical`; the recorded log-probs are not part of the comparison).
Tokens/s counts generated tokens of y1 and y2 (EOS excluded) over wall time.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Optional, Sequence

import torch

from score_core.generation.decode import Generation, decode_turns
from score_core.generation.rollout import eos_ids, pad_id, two_turn_prompts


def _strip(row: Sequence[int], eos: set[int], max_new_tokens: int) -> Generation:
    for i, tok in enumerate(row):
        if tok in eos:
            return Generation(tuple(row[:i]), False, tok)
    return Generation(tuple(row), len(row) >= max_new_tokens)


def sampled(gens: Sequence[Generation]) -> tuple[tuple[tuple[int, ...], bool, Optional[int]], ...]:
    """What a rollout sampled, per attempt: (ids, truncated, stop_id) — the greedy comparison key."""
    return tuple((g.ids, g.truncated, g.stop_id) for g in gens)


def _generate(model: Any, batch: list[list[int]], max_new: int, eos: set[int], pad: int) -> list[Generation]:
    """Greedy HF `generate` on a left-padded batch."""
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
    for r, p in enumerate(batch):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                         pad_token_id=pad, eos_token_id=sorted(eos), use_cache=True)
    return [_strip(row, eos, max_new) for row in out[:, width:].tolist()]


def hf_two_turns(model: Any, prompts: list[list[int]], suffixes: list[list[int]], max_new: int,
                 eos: set[int], pad: int, batch_size: int) -> list[tuple[Generation, Generation]]:
    """Turn 1 then turn 2 with `generate`, `batch_size` rows per call, sorted by length."""
    def run(ps: list[list[int]]) -> list[Generation]:
        order = sorted(range(len(ps)), key=lambda i: len(ps[i]))
        res: list[Optional[Generation]] = [None] * len(ps)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            for i, g in zip(idx, _generate(model, [ps[i] for i in idx], max_new, eos, pad)):
                res[i] = g
        return res  # type: ignore[return-value]

    y1 = run(prompts)
    y2 = run([p + list(g.ids) + s for p, g, s in zip(prompts, y1, suffixes)])
    return list(zip(y1, y2))


@torch.no_grad()
def bench_rollout(model: Any, tokenizer: Any, problems: Sequence[Any], *, batch_size: int = 32,
                  max_new_tokens: int = 32, repeats: int = 2, with_hf_batched: bool = True,
                  vllm_model_dir: Optional[str] = None) -> dict[str, Any]:
    """Time naive, hf_batched and engine (and vLLM) two-turn greedy rollouts on the same prompts."""
    model.eval()
    _, prompts, suffixes = two_turn_prompts(tokenizer, problems, 1)
    eos, pad = eos_ids(tokenizer, model), pad_id(tokenizer)
    vllm = _vllm_engine(vllm_model_dir, eos) if vllm_model_dir else None
    try:
        result = _run(model, prompts, suffixes, eos, pad, batch_size, max_new_tokens, repeats, with_hf_batched,
                      vllm[0] if vllm else None)
        if vllm:
            result["vllm_timing"] = {**vllm[1], **_vllm_sync_and_rebuild(vllm[0], vllm_model_dir, eos)}
    finally:
        if vllm:
            vllm[0].close()
    return result


def _vllm_engine(model_dir: str, eos: set[int]) -> tuple[Any, dict[str, float]]:
    from score_core.generation.vllm_engine import VLLMEngine

    t0 = time.perf_counter()
    engine = VLLMEngine(model_dir, eos, dtype="float32", seed=0)
    return engine, {"engine_start_s": engine.start_s, "server_and_engine_start_s": time.perf_counter() - t0}


def _vllm_sync_and_rebuild(engine: Any, model_dir: str, eos: set[int]) -> dict[str, float]:
    """An iteration's weight sync (in place, from another directory) vs a rebuilt engine."""
    import shutil
    import tempfile

    from score_core.generation.vllm_engine import VLLMEngine

    copy = tempfile.mkdtemp(prefix="score-bench-vllm-")
    try:
        shutil.copytree(model_dir, copy, dirs_exist_ok=True)
        t0 = time.perf_counter()
        engine.load(copy)
        sync_s = time.perf_counter() - t0
        engine.load(model_dir)
        t0 = time.perf_counter()
        with VLLMEngine(copy, eos, dtype="float32", seed=0) as rebuilt:  # what a per-iteration rebuild costs
            rebuild_engine_s = rebuilt.start_s
        rebuild_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return {"weight_sync_s": sync_s, "rebuild_s": rebuild_s, "rebuild_engine_start_s": rebuild_engine_s,
            "saving_per_iteration_s": rebuild_s - sync_s}


def _run(model: Any, prompts: list[list[int]], suffixes: list[list[int]], eos: set[int], pad: int,
         batch_size: int, max_new_tokens: int, repeats: int, with_hf_batched: bool,
         vllm: Optional[Any]) -> dict[str, Any]:
    methods = {
        "naive": lambda: hf_two_turns(model, prompts, suffixes, max_new_tokens, eos, pad, batch_size=1),
        "engine": lambda: decode_turns(model, prompts, suffixes, max_new_tokens=max_new_tokens, temperature=0.0,
                                       batch_size=batch_size, eos_ids=eos, pad_id=pad),
    }
    if with_hf_batched:
        methods["hf_batched"] = lambda: hf_two_turns(model, prompts, suffixes, max_new_tokens, eos, pad, batch_size)
    if vllm is not None:
        methods["vllm"] = lambda: vllm.two_turns(prompts, suffixes, max_new_tokens=max_new_tokens, temperature=0.0)
        vllm.two_turns(prompts[:2], suffixes[:2], max_new_tokens=2, temperature=0.0)  # warm-up
    decode_turns(model, prompts[:2], suffixes[:2], max_new_tokens=2, temperature=0.0, batch_size=2,
                 eos_ids=eos, pad_id=pad)  # warm-up
    hf_two_turns(model, prompts[:2], suffixes[:2], 2, eos, pad, batch_size=2)
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    outputs: dict[str, list] = {}
    for _ in range(repeats):  # alternate methods so load changes hit all of them alike
        for name, fn in methods.items():
            t0 = time.perf_counter()
            outputs[name] = [sampled(g) for g in fn()]
            seconds[name].append(time.perf_counter() - t0)
    result: dict[str, Any] = {"prompts": len(prompts), "batch_size": batch_size,
                              "max_new_tokens": max_new_tokens, "repeats": repeats}
    for name in methods:
        tokens = sum(len(ids) for gens in outputs[name] for ids, _, _ in gens)
        sec = statistics.median(seconds[name])
        result[name] = {"tokens": tokens, "seconds": sec, "tokens_per_s": tokens / sec}
    for name in methods:
        if name != "naive":
            result[f"ratio_{name}_vs_naive"] = result[name]["tokens_per_s"] / result["naive"]["tokens_per_s"]
            result[f"mismatched_rows_{name}"] = sum(a != b for a, b in zip(outputs[name], outputs["naive"]))
    result["identical"] = result["mismatched_rows_engine"] == 0 and result.get("mismatched_rows_vllm", 0) == 0
    return result
