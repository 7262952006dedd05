"""Method switch, baseline objectives and ablation statistics (hand-computed)."""
import dataclasses
import math
import random

import pytest
import torch

from score_core.tools.ablation import goal_checks, markdown_table, mean_ci, summarise, t_critical
from score_core.config import TrainConfig
from score_core.method.plan import METHODS, Iteration, method_plan
from score_core.schema import Episode
from score_core.method.sft import weighted_sft_loss
from score_core.method.trainer import episode_advantages, rl_minibatches, sft_minibatches, sft_weights

SCHEDULE = ["stage1", "stage2", "stage1", "stage2"]
TRAIN = TrainConfig(schedule=SCHEDULE, alpha=10.0, beta1=0.05, beta2=0.5)


def test_every_trained_method_gets_the_same_number_of_iterations():
    for m in METHODS:
        plan = method_plan(m, TRAIN)
        assert len(plan) == (0 if m in ("base", "self_refine") else len(SCHEDULE)), m


def test_plans_match_the_paper_ablations():
    def shape(m):
        return [(p.objective, p.alpha) for p in method_plan(m, TRAIN)]

    assert shape("score") == [("stage1", 0.0), ("stage2", 10.0), ("stage1", 0.0), ("stage2", 10.0)]
    assert set(shape("no_shaping")) == {("stage1", 0.0), ("stage2", 0.0)}
    assert set(shape("no_stage1")) == {("stage2", 10.0)}
    assert set(shape("multi_turn_rl")) == {("stage2", 0.0)}
    assert {p.objective for p in method_plan("single_turn_rl", TRAIN)} == {"single_turn"}
    star, pair = method_plan("star", TRAIN)[0], method_plan("pair_sft", TRAIN)[0]
    assert (star.objective, star.sft_data, star.sample_from) == ("sft_both", "star", "policy")
    assert (pair.objective, pair.sft_data, pair.sample_from) == ("sft_turn2", "pair", "base")
    star_base = method_plan("star_base", TRAIN)[0]  # the paper's STaR: D⁺ from the base's traces
    assert (star_base.objective, star_base.sft_data, star_base.sample_from) == ("sft_both", "star", "base")
    with pytest.raises(ValueError, match="unknown method"):
        method_plan("ppo", TRAIN)


def test_the_plan_carries_beta1_everywhere_and_beta2_only_in_stage1():
    """β1 = 0.05 and β2 = 0.5 of the config reach exactly the objectives that read them."""
    for m in METHODS:
        for p in method_plan(m, TRAIN):
            assert p.beta1 == (0.0 if p.is_sft else 0.05), (m, p)
            assert p.beta2 == (0.5 if p.objective == "stage1" else 0.0), (m, p)
    assert [p.rewarded_turns for p in method_plan("score", TRAIN)] == [(2,), (1, 2), (2,), (1, 2)]
    with pytest.raises(ValueError, match="Stage I only"):
        Iteration("stage2", "stage2", beta2=0.1)
    with pytest.raises(ValueError, match="Stage II only"):
        Iteration("stage1", "stage1", alpha=10.0)


def _ep(pid, s, r1, r2):
    return Episode("r", "x", 1, pid, s, "a", "b", r1, r2, y1_ids=(5,), y2_ids=(6,))


def test_single_turn_advantages_are_rloo_on_r1_and_zero_on_attempt_2():
    eps = [_ep("p", 0, 1.0, 0.0), _ep("p", 1, 0.0, 1.0), _ep("p", 2, 0.0, 1.0)]
    _, adv_1, adv_2 = episode_advantages(eps, _it("single_turn", 10.0))
    # r1 = (1, 0, 0): A_0 = 1 − 0 = 1, A_1 = 0 − 0.5 = −0.5, A_2 = −0.5
    assert adv_1.tolist() == pytest.approx([1.0, -0.5, -0.5])
    assert adv_2.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        episode_advantages(eps, _it("sft_both", 10.0))


def test_stage2_alpha_zero_is_plain_multi_turn_rloo():
    eps = [_ep("p", 0, 0.0, 1.0), _ep("p", 1, 1.0, 0.0)]
    _, a1, a2 = episode_advantages(eps, _it("stage2", 0.0))
    assert a1.tolist() == pytest.approx([-1.0, 1.0]) and a2.tolist() == pytest.approx([1.0, -1.0])
    _, _, a2_shaped = episode_advantages(eps, _it("stage2", 10.0))
    # shaped r̂2 = (1 + 10·1, 0 + 10·(−1)) = (11, −10): A = (21, −21)
    assert a2_shaped.tolist() == pytest.approx([21.0, -21.0])


def test_weighted_sft_loss_hand_computed():
    logp = torch.tensor([[-1.0, -3.0, -2.0], [-4.0, -2.0, -6.0]])
    m1 = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    m2 = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    both = weighted_sft_loss(logp, m1, m2, torch.ones(2), torch.ones(2))
    # row 0: mean(−1, −3, −2) = −2; row 1: mean(−4, −2, −6) = −4 → loss 3
    assert both.item() == pytest.approx(3.0)
    turn2 = weighted_sft_loss(logp, m1, m2, *sft_weights(2, "sft_turn2"))
    # row 0: −2; row 1: mean(−2, −6) = −4 → loss 3
    assert turn2.item() == pytest.approx(3.0)
    w1, _ = sft_weights(2, "sft_turn2")
    assert w1.tolist() == [0.0, 0.0] and sft_weights(2, "sft_both")[0].tolist() == [1.0, 1.0]


def test_sft_takes_the_rl_step_count_whatever_the_data_size():
    batches = sft_minibatches(5, steps=4, batch=3, rng=random.Random(0))
    assert len(batches) == 4 and all(len(b) == 3 for b in batches)
    seen = [i for b in batches for i in b]
    assert sorted(seen[:5]) == [0, 1, 2, 3, 4]  # the first pass covers every example once
    assert sft_minibatches(0, steps=4, batch=3, rng=random.Random(0)) == []
    assert [len(b) for b in sft_minibatches(2, steps=3, batch=8, rng=random.Random(0))] == [2, 2, 2]
    groups = [[0, 1], [2, 3], [4, 5]]
    rl = rl_minibatches(groups, minibatch_prompts=2, epochs=2, rng=random.Random(0))
    assert [len(b) for b in rl] == [4, 2, 4, 2]


def test_mean_ci_hand_computed():
    m, h = mean_ci([0.1, 0.2, 0.3])
    # s = 0.1, t_{0.975,2} = 4.303 → h = 4.303·0.1/√3 = 0.24844
    assert m == pytest.approx(0.2) and h == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert math.isnan(mean_ci([0.5])[1]) and t_critical(100) == 1.96


def _cell(method, seed, d, acc2):
    return {"base": "b0", "method": method, "seed": seed,
            "metrics": {"accuracy_t1": acc2 - d, "accuracy_t2": acc2, "delta_t1_t2": d,
                        "delta_i_to_c": max(d, 0), "delta_c_to_i": max(-d, 0),
                        "unchanged_answer_rate": 0.9, "edit_distance_ratio": 0.1}}


def test_summary_table_and_goal_checks_are_computed_not_asserted():
    cells = [_cell("base", 0, -0.01, 0.30)]
    cells += [_cell("score", s, d, 0.5) for s, d in enumerate((0.10, 0.12, 0.11))]
    cells += [_cell("multi_turn_rl", s, d, 0.55) for s, d in enumerate((0.0, 0.01, -0.01))]
    rows = summarise(cells)
    assert [r["n"] for r in rows] == [1, 3, 3]
    table = markdown_table(rows, "b0")
    assert "| score | 3 | 39.0 ± 2.5 | 50.0 ± 0.0 | 11.0 ± 2.5 |" in table
    checks = dict(goal_checks(rows, "b0"))
    assert checks["SCoRe has the highest Acc@t2 (highest: multi_turn_rl)"] is False
    assert checks["SCoRe's Δ(t1,t2) interval excludes 0 (lies above it)"] is True
    assert checks["SCoRe's Δ interval lies above multi_turn_rl's"] is True
    assert checks["SCoRe's Δ interval lies above star's"] is None
    assert checks["the base model's Δ ≤ 0"] is True


def _it(objective, alpha):
    """The plan entry of `objective` (α only where Stage II reads it)."""
    from score_core.method.plan import Iteration

    return Iteration(objective, objective, alpha=alpha if objective == "stage2" else 0.0)
