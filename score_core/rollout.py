"""Two-attempt rollouts with batched HF `generate`.

For each problem x: sample y1 ~ π(·|x), then y2 ~ π(·|x2) with x2 = x ⊕ y1 ⊕ p built from
the *sampled token ids* of y1 (see `prompts.turn2_suffix`). Training uses k samples per
prompt at temperature 1.0; evaluation uses greedy decoding (temperature 0, k = 1).

Engine details: left padding + attention mask + KV cache; prompts are sorted by length
before batching (length bucketing) so padding is small; generation stops at EOS and each
row records whether it hit `max_new_tokens` (truncated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from .prompts import render_turn1, turn2_suffix
from .schema import Episode, Problem


@dataclass(frozen=True)
class Generation:
    ids: tuple[int, ...]  # generated token ids, EOS and padding removed
    truncated: bool  # no EOS within max_new_tokens


def _strip(row: list[int], eos_ids: set[int]) -> Generation:
    for i, tok in enumerate(row):
        if tok in eos_ids:
            return Generation(tuple(row[:i]), False)
    return Generation(tuple(row), True)


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
    return {i for i in ids if i is not None}


@torch.no_grad()
def generate_ids(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float,
    batch_size: int,
    progress: Optional[Callable[[int], None]] = None,
) -> list[Generation]:
    """Generate one continuation per prompt (token ids in, token ids out), order kept."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(tokenizer, model)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # length bucketing
    out: list[Optional[Generation]] = [None] * len(prompts)
    sample = temperature > 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)  # (B, T) left-padded x
        attention_mask = torch.zeros((len(idx), width), dtype=torch.long)  # (B, T) 1 = real token
        for row, i in enumerate(idx):
            p = prompts[i]
            input_ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attention_mask[row, width - len(p):] = 1
        gen = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens, do_sample=sample,
            temperature=temperature if sample else None, top_p=1.0 if sample else None,
            top_k=0 if sample else None, pad_token_id=pad_id, eos_token_id=sorted(eos),
            use_cache=True,
        )
        new_tokens = gen[:, width:].tolist()  # (B, ≤ max_new_tokens)
        for row, i in enumerate(idx):
            out[i] = _strip(new_tokens[row], eos)
        if progress:
            progress(len(idx))
    return out  # type: ignore[return-value]


def rollout_two_attempts(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    run_id: str,
    stage: str,
    iteration: int,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
) -> list[Episode]:
    """k two-attempt episodes per problem; rewards are left ungraded."""
    torch.manual_seed(seed)
    x_ids = [tokenizer(render_turn1(p, tokenizer), add_special_tokens=False)["input_ids"] for p in problems]
    suffix_ids = [tokenizer(turn2_suffix(p, tokenizer), add_special_tokens=False)["input_ids"] for p in problems]
    bos = [tokenizer.bos_token_id] if _wants_bos(tokenizer) else []
    rows = [(j, s) for j in range(len(problems)) for s in range(k)]
    turn1_prompts = [bos + x_ids[j] for j, _ in rows]
    y1 = generate_ids(model, tokenizer, turn1_prompts, max_new_tokens, temperature, batch_size, progress)
    turn2_prompts = [turn1_prompts[r] + list(y1[r].ids) + suffix_ids[j] for r, (j, _) in enumerate(rows)]
    y2 = generate_ids(model, tokenizer, turn2_prompts, max_new_tokens, temperature, batch_size, progress)
    decode = lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)  # noqa: E731
    return [
        Episode(
            run_id=run_id, stage=stage, iteration=iteration, problem_id=problems[j].problem_id,
            sample_index=s, attempt1=decode(y1[r].ids), attempt2=decode(y2[r].ids),
            prompt_tokens1=len(turn1_prompts[r]), prompt_tokens2=len(turn2_prompts[r]),
            tokens1=len(y1[r].ids), tokens2=len(y2[r].ids),
            truncated1=y1[r].truncated, truncated2=y2[r].truncated,
            y1_ids=y1[r].ids, y2_ids=y2[r].ids,
        )
        for r, (j, s) in enumerate(rows)
    ]


def _wants_bos(tokenizer: Any) -> bool:
    """Prepend BOS when the tokenizer defines one and templates do not already add it."""
    if tokenizer.bos_token_id is None:
        return False
    if getattr(tokenizer, "chat_template", None):
        return False  # chat templates render their own BOS where the model wants one
    return bool(getattr(tokenizer, "add_bos_token", True))


def episode_token_layout(
    tokenizer: Any, problem: Problem, episode: Episode
) -> tuple[list[int], int, int, int]:
    """Token ids [x | y1 | B | y2] of one episode and the spans of y1 and y2.

    Returns (ids, x_len, y1_end, y2_start): y1 occupies ids[x_len:y1_end], y2 occupies
    ids[y2_start:]. EOS after y2 is appended when y2 stopped by itself, so the stop
    decision is trained too.
    """
    bos = [tokenizer.bos_token_id] if _wants_bos(tokenizer) else []
    x = bos + tokenizer(render_turn1(problem, tokenizer), add_special_tokens=False)["input_ids"]
    suffix = tokenizer(turn2_suffix(problem, tokenizer), add_special_tokens=False)["input_ids"]
    y2 = list(episode.y2_ids) + ([] if episode.truncated2 else [tokenizer.eos_token_id])
    ids = x + list(episode.y1_ids) + suffix + y2
    y1_end = len(x) + len(episode.y1_ids)
    return ids, len(x), y1_end, y1_end + len(suffix)
