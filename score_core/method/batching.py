"""Episodes → padded training tensors: ids, targets, per-attempt masks, behaviour log-probs.

Pure tensor bookkeeping for the trainer (`trainer.py`), one row per episode laid out by
`rollout.episode_token_layout` as [x | y1 | B | y2 | stop2]. Position t of every (B, T−1)
tensor is the prediction of target t + 1: targets are the next input ids, except right
after y1, where the target is the stop token y1 ended with (it is not an input: turn 2
reads B right after y1, exactly as the rollout did).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from score_core.generation.rollout import Layout, episode_token_layout, pad_id
from score_core.schema import Episode, Problem

Behaviour = tuple[Sequence[float], Sequence[float]]  # (logp1, logp2) of one episode, as recorded


def collate_layouts(
    layouts: Sequence[Layout], pad: int, behaviour: Optional[Sequence[Behaviour]] = None,
) -> dict[str, torch.Tensor]:
    """Right-padded rows and, per target position: `targets`, `mask_1`/`mask_2` (the
    target is a token of attempt 1 / 2, stop tokens included), `behaviour_logp` (log μ of
    the target as the rollout sampled it) and `known` (1 where that was recorded: an
    attempt's log-probs count only when there is exactly one per target)."""
    width = max(len(lay.ids) for lay in layouts)
    n = len(layouts)
    input_ids = torch.full((n, width), pad, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((n, width), dtype=torch.long)  # (B, T)
    mask_1 = torch.zeros((n, width - 1))  # (B, T−1) target is a y1 token (or y1's stop)
    mask_2 = torch.zeros((n, width - 1))  # (B, T−1) target is a y2 token (or y2's stop)
    behaviour_logp = torch.zeros((n, width - 1))  # (B, T−1) log μ(target)
    known = torch.zeros((n, width - 1))  # (B, T−1) 1 = behaviour_logp recorded
    spans = []
    for b, lay in enumerate(layouts):
        input_ids[b, : len(lay.ids)] = torch.tensor(lay.ids)
        attention_mask[b, : len(lay.ids)] = 1
        span_1 = (lay.x_len - 1, lay.y1_end - 1 + (lay.stop1 is not None))  # logits at t−1 predict token t
        span_2 = (lay.y2_start - 1, len(lay.ids) - 1)
        mask_1[b, span_1[0]:span_1[1]] = 1
        mask_2[b, span_2[0]:span_2[1]] = 1
        spans.append((span_1, span_2))
    targets = input_ids[:, 1:].clone()  # (B, T−1)
    for b, lay in enumerate(layouts):
        if lay.stop1 is not None:
            targets[b, lay.y1_end - 1] = lay.stop1
        for (lo, hi), logp in zip(spans[b], behaviour[b] if behaviour is not None else ()):
            if len(logp) == hi - lo and hi > lo:
                behaviour_logp[b, lo:hi] = torch.tensor(list(logp), dtype=torch.float32)
                known[b, lo:hi] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "targets": targets,
            "mask_1": mask_1, "mask_2": mask_2, "behaviour_logp": behaviour_logp, "known": known}


def collate(
    tokenizer: Any, problems: dict[str, Problem], episodes: Sequence[Episode]
) -> dict[str, torch.Tensor]:
    """`collate_layouts` of episodes (their recorded behaviour log-probs included)."""
    layouts = [episode_token_layout(tokenizer, problems[ep.problem_id], ep) for ep in episodes]
    return collate_layouts(layouts, pad_id(tokenizer), [(ep.logp1, ep.logp2) for ep in episodes])


def plan_micro_batches(lengths: Sequence[int], max_episodes: int, max_tokens: Optional[int]) -> list[list[int]]:
    """Split positions 0..n−1 into micro-batches of ≤ max_episodes rows and, when
    max_tokens is set, ≤ max_tokens padded tokens (rows × longest row; a single longer
    row still gets its own micro-batch). Rows are sorted by length so padding is small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    plans: list[list[int]] = []
    for i in order:
        cur = plans[-1] if plans else None
        # rows arrive longest first, so the first row of `cur` is its longest
        fits = cur is not None and len(cur) < max_episodes and (
            max_tokens is None or (len(cur) + 1) * lengths[cur[0]] <= max_tokens)
        if fits:
            cur.append(i)  # type: ignore[union-attr]
        else:
            plans.append([i])
    return plans
