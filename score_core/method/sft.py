"""Supervised baselines built from the base model's own two-attempt traces (paper Sec. 4).

- STaR (Zelikman et al. 2022, as the SCoRe paper runs it): keep the traces whose second
  attempt is correct — D⁺ also keeps correct→correct — and fine-tune on them (both
  attempts, so the model imitates whole successful traces).
- Pair-SFT (Welleck et al. 2023): pair an incorrect base response with a correct one for
  the same problem and fine-tune only the second turn: x ⊕ y_wrong ⊕ p → y_right.

Loss: mean over examples of −Σ_t log π(y_t | ·) over the supervised tokens, divided by
the number of supervised tokens of that example (token-mean per example).
Deliberately left out: rationalisation (STaR's hint-conditioned regeneration), because
intrinsic self-correction allows no hints.
"""
from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from typing import Sequence

import torch

from score_core.schema import Episode


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−mean_b( Σ_t mask·logp / Σ_t mask ). logp, mask: (B, T−1); rows with no tokens are ignored."""
    if logp.shape != mask.shape:
        raise ValueError(f"logp {tuple(logp.shape)} != mask {tuple(mask.shape)}")
    n_tok = mask.sum(1)  # (B,) supervised tokens per example
    keep = n_tok > 0
    if not bool(keep.any()):
        return logp.sum() * 0.0
    per_example = (logp * mask).sum(1)[keep] / n_tok[keep]  # (B',) mean log-likelihood
    return -per_example.mean()


def weighted_sft_loss(logp: torch.Tensor, mask_1: torch.Tensor, mask_2: torch.Tensor,
                      w_1: torch.Tensor, w_2: torch.Tensor) -> torch.Tensor:
    """`sft_loss` over the tokens of attempt 1 (weight w_1 ∈ {0, 1} per example) and
    attempt 2 (w_2). logp, mask_i: (B, T−1); w_i: (B,)."""
    mask = w_1.unsqueeze(1) * mask_1 + w_2.unsqueeze(1) * mask_2  # (B, T−1)
    return sft_loss(logp, mask)


def star_examples(episodes: Sequence[Episode], include_correct_to_correct: bool = True) -> list[Episode]:
    """STaR's D⁺: traces whose y2 is correct (optionally only incorrect→correct ones)."""
    keep = []
    for ep in episodes:
        if ep.reward2 is None or ep.reward2 < 0.5:
            continue
        if not include_correct_to_correct and (ep.reward1 is None or ep.reward1 > 0.5):
            continue
        keep.append(ep)
    return keep


def pair_sft_examples(episodes: Sequence[Episode], seed: int = 0) -> list[Episode]:
    """Pairs (y_wrong as y1, y_right as y2) from the same problem's base samples.

    Every attempt (turn 1 or 2) with a known reward is a candidate response; each wrong
    response is paired with a randomly drawn right one of the same problem, if any.
    """
    rng = random.Random(seed)
    right: dict[str, list[tuple[tuple[int, ...], str, int | None]]] = defaultdict(list)
    wrong: dict[str, list[tuple[Episode, tuple[int, ...], str, int | None]]] = defaultdict(list)
    for ep in episodes:
        for ids, text, r, trunc, stop in ((ep.y1_ids, ep.attempt1, ep.reward1, ep.truncated1, ep.stop1_id),
                                          (ep.y2_ids, ep.attempt2, ep.reward2, ep.truncated2, ep.stop2_id)):
            if r is None or trunc:
                continue
            if r > 0.5:
                right[ep.problem_id].append((ids, text, stop))
            else:
                wrong[ep.problem_id].append((ep, ids, text, stop))
    pairs = []
    for pid, bad in wrong.items():
        if not right[pid]:
            continue
        for ep, ids, text, stop in bad:
            good_ids, good_text, good_stop = rng.choice(right[pid])
            pairs.append(dataclasses.replace(  # each response keeps the stop token it ended with
                ep, y1_ids=ids, attempt1=text, y2_ids=good_ids, attempt2=good_text, reward1=0.0, reward2=1.0,
                truncated1=False, truncated2=False, stop1_id=stop, stop2_id=good_stop, logp1=(), logp2=()))
    return pairs
