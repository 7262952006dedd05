"""The one home of the method: SCoRe, the paper's baselines and ablations as a plan of
training iterations, each carrying everything its objective needs.

`config.method` picks what each iteration does (Kumar et al. 2024, Tables 3–5, Sec. 6):

| method          | iterations (n = len(train.schedule))                     | trains on |
|-----------------|----------------------------------------------------------|-----------|
| base            | none (the base model, evaluated)                         | —         |
| self_refine     | none (prompting only: critique, then refine)             | —         |
| star            | n × (sample with the current policy, keep D⁺, SFT)       | y1 and y2 |
| star_base       | n × (sample with the *base*, keep D⁺, SFT): the paper's  | y1 and y2 |
|                 | Table 3 STaR row (D⁺ from the base model's traces)       |           |
| pair_sft        | n × (sample with the *base*, pair wrong→right, SFT)      | y2 only   |
| single_turn_rl  | n × REINFORCE on r1 only (attempt 2 is not trained)      | y1        |
| multi_turn_rl   | n × Stage II with α = 0 (no Stage I, no shaping)         | y1, y2    |
| no_stage1       | n × Stage II with shaping α                              | y1, y2    |
| no_shaping      | the schedule, Stage II with α = 0                        | y1, y2    |
| score           | the schedule (Stage I, Stage II, optionally interleaved) | y1, y2    |

The two stages (paper Eq. 3 and 4; the loss is `losses.score_loss`):

    Stage I:  max E[ r(y2, y*) − β2·KL(π(·|x) ‖ π_ref(·|x)) ] − β1·KL(all tokens)
    Stage II: max E[ Σ_{i=1,2} r̂_i − β1·KL(π(·|x_i) ‖ π_ref(·|x_i)) ],
              r̂1 = r1, r̂2 = r2 + α·(r2 − r1)

An `Iteration` holds the scalars of one such objective; the trainer reads them from it and
from nowhere else (α, β1, β2 come from `train.alpha/beta1/beta2` through `method_plan`
only). Equal budgets: every trained method runs n iterations, each rolling out
`train.prompts_per_iteration` prompts × k two-attempt samples and taking
`steps_per_iteration` optimizer steps of `minibatch_prompts × k` episodes (SFT methods
cycle through their filtered examples to take the same number of steps).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from score_core.config import METHODS, Method, TrainConfig

__all__ = ["METHODS", "Method", "Objective", "Iteration", "method_plan", "UNTRAINED"]

UNTRAINED = ("base", "self_refine")  # evaluated only (greedy): deterministic given the base model
Objective = Literal["stage1", "stage2", "single_turn", "sft_both", "sft_turn2"]
SFT_OBJECTIVES = ("sft_both", "sft_turn2")
_REWARDED = {"stage1": (2,), "stage2": (1, 2), "single_turn": (1,), "sft_both": (), "sft_turn2": ()}


@dataclass(frozen=True)
class Iteration:
    """One training iteration: its objective and every scalar the objective reads.

    `name` labels files, the ledger and reports (stage1, stage2, single_turn, star,
    pair_sft); `objective` is what the trainer optimises. `alpha` is Stage II's shaping
    (0: none); `beta1` weighs the KL on every trained token; `beta2` is Stage I's extra KL
    on y1 (0 in every other objective). `sft_data` says which SFT examples the graded
    rollouts are filtered to (STaR's D⁺, Pair-SFT pairs); `sample_from` which model rolls out.
    """

    name: str
    objective: Objective
    alpha: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.0
    sft_data: Literal["", "star", "pair"] = ""
    sample_from: Literal["policy", "base"] = "policy"

    def __post_init__(self) -> None:
        if self.objective not in _REWARDED:
            raise ValueError(f"unknown objective {self.objective!r}; expected one of {tuple(_REWARDED)}")
        if self.beta2 and self.objective != "stage1":
            raise ValueError(f"{self.name}: β2 (the KL holding y1 to the base) belongs to Stage I only")
        if self.alpha and self.objective != "stage2":
            raise ValueError(f"{self.name}: shaping α belongs to Stage II only")

    @property
    def rewarded_turns(self) -> tuple[int, ...]:
        """Which attempts' rewards drive the policy gradient: Stage I (2,), Stage II (1, 2),
        single-turn RL (1,), SFT ()."""
        return _REWARDED[self.objective]

    @property
    def is_sft(self) -> bool:
        return self.objective in SFT_OBJECTIVES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def method_plan(method: str, train: TrainConfig) -> list[Iteration]:
    """The iterations `method` trains for, as many as `train.schedule` has, with α, β1, β2
    from `train` (β2 only in Stage I, α only in shaped Stage II)."""
    n, b1 = len(train.schedule), train.beta1
    stage1 = Iteration("stage1", "stage1", beta1=b1, beta2=train.beta2)
    stage2 = Iteration("stage2", "stage2", alpha=train.alpha, beta1=b1)
    stage2_plain = Iteration("stage2", "stage2", alpha=0.0, beta1=b1)
    if method in UNTRAINED:
        return []
    if method == "score":
        return [stage1 if s == "stage1" else stage2 for s in train.schedule]
    if method == "no_shaping":
        return [stage1 if s == "stage1" else stage2_plain for s in train.schedule]
    if method == "no_stage1":
        return [stage2] * n
    if method == "multi_turn_rl":
        return [stage2_plain] * n
    if method == "single_turn_rl":
        return [Iteration("single_turn", "single_turn", beta1=b1)] * n
    if method == "star":
        return [Iteration("star", "sft_both", sft_data="star")] * n
    if method == "star_base":
        return [Iteration("star_base", "sft_both", sft_data="star", sample_from="base")] * n
    if method == "pair_sft":
        return [Iteration("pair_sft", "sft_turn2", sft_data="pair", sample_from="base")] * n
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
