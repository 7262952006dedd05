"""SCoRe and the paper's baselines and ablations as one plan of training iterations.

`config.method` picks what each iteration does (Kumar et al. 2024, Tables 3–5, Sec. 6):

| method          | iterations (n = len(train.schedule))                     | trains on |
|-----------------|----------------------------------------------------------|-----------|
| base            | none (the base model, evaluated)                         | —         |
| self_refine     | none (prompting only: critique, then refine)             | —         |
| star            | n × (sample with the current policy, keep D⁺, SFT)       | y1 and y2 |
| pair_sft        | n × (sample with the *base*, pair wrong→right, SFT)      | y2 only   |
| single_turn_rl  | n × REINFORCE on r1 only (attempt 2 is not trained)      | y1        |
| multi_turn_rl   | n × Stage II with α = 0 (no Stage I, no shaping)         | y1, y2    |
| no_stage1       | n × Stage II with shaping α                              | y1, y2    |
| no_shaping      | the schedule, Stage II with α = 0                        | y1, y2    |
| score           | the schedule (Stage I, Stage II, optionally interleaved) | y1, y2    |

Equal budgets: every trained method runs n iterations, each rolling out
`train.prompts_per_iteration` prompts × k two-attempt samples and taking
`steps_per_iteration` optimizer steps of `minibatch_prompts × k` episodes (SFT methods
cycle through their filtered examples to take the same number of steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

METHODS = ("base", "self_refine", "star", "pair_sft", "single_turn_rl", "multi_turn_rl",
           "no_stage1", "no_shaping", "score")
Method = Literal["base", "self_refine", "star", "pair_sft", "single_turn_rl", "multi_turn_rl",
                 "no_stage1", "no_shaping", "score"]
UNTRAINED = ("base", "self_refine")  # evaluated only (greedy): deterministic given the base model
Kind = Literal["stage1", "stage2", "single_turn", "sft_both", "sft_turn2"]


@dataclass(frozen=True)
class Iteration:
    """One training iteration: which objective (`kind`), which data, which shaping."""

    name: str  # label in file names and reports: stage1, stage2, single_turn, star, pair_sft
    kind: Kind  # the trainer's objective
    alpha: float = 0.0  # Stage II shaping (only read when kind == "stage2")
    sft_data: Literal["", "star", "pair"] = ""  # which SFT examples the rollouts are filtered to
    rollout_from_base: bool = False  # sample with the base model (offline data) instead of the policy


def method_plan(method: str, schedule: Sequence[str], alpha: float) -> list[Iteration]:
    """The iterations `method` trains for, with the same count as `schedule`."""
    n = len(schedule)
    stage2 = Iteration("stage2", "stage2", alpha)
    stage2_plain = Iteration("stage2", "stage2", 0.0)
    stage1 = Iteration("stage1", "stage1")
    if method in UNTRAINED:
        return []
    if method == "score":
        return [stage1 if s == "stage1" else stage2 for s in schedule]
    if method == "no_shaping":
        return [stage1 if s == "stage1" else stage2_plain for s in schedule]
    if method == "no_stage1":
        return [stage2] * n
    if method == "multi_turn_rl":
        return [stage2_plain] * n
    if method == "single_turn_rl":
        return [Iteration("single_turn", "single_turn")] * n
    if method == "star":
        return [Iteration("star", "sft_both", sft_data="star")] * n
    if method == "pair_sft":
        return [Iteration("pair_sft", "sft_turn2", sft_data="pair", rollout_from_base=True)] * n
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")

