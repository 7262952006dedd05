"""Micro-batch planning and `score bench train` (trainer vs a plain loop, same update)."""
import pytest
import torch

from score_core.tools.bench_train import bench_train
from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.problems.synthetic import make_problems
from score_core.method.trainer import plan_micro_batches


def test_plan_micro_batches_respects_both_limits_and_covers_every_row():
    lengths = [10, 50, 20, 50, 5, 30, 120]
    plans = plan_micro_batches(lengths, max_episodes=3, max_tokens=100)
    assert sorted(i for mb in plans for i in mb) == list(range(len(lengths)))
    for mb in plans:
        assert len(mb) <= 3
        assert len(mb) == 1 or len(mb) * max(lengths[i] for i in mb) <= 100
    assert [6] in plans  # a row longer than the budget gets its own micro-batch
    assert plan_micro_batches([4, 4, 4], max_episodes=2, max_tokens=None) == [[0, 1], [2]]


def test_bench_train_same_update_as_plain_loop():
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok)
    res = bench_train(model, tok, make_problems("synth_linear", 3, 0, "eval"), k=2, max_new_tokens=6,
                      token_budget=64, repeats=1)
    assert res["max_param_diff"] < 1e-5  # token-budget micro-batches + accumulation = one big batch
    assert res["ratio_trainer_vs_plain"] > 0 and res["episodes"] == 6
