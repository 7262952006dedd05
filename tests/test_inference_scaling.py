"""Majority voting, parallel-vs-self-correct curves and N sequential attempts at debug scale."""
import torch

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.tools.inference_scaling import (majority_correct, parallel_vs_self_correct, plot_scaling,
                                          sequential_attempts)
from score_core.schema import Problem
from score_core.problems.synthetic import make_problems

P = Problem(problem_id="p", source="synth_linear", split="eval", kind="synth", question="2*x+1=7", answer="3")


def test_majority_vote_hand_computed():
    assert majority_correct(P, ["x=3", "x=4", "x=3"]) == 1.0
    assert majority_correct(P, ["x=4", "x=3", "x=4"]) == 0.0
    assert majority_correct(P, ["x=4", "x=3"]) == 0.0  # tie → first to reach the top count
    assert majority_correct(P, ["x=3", "no answer", "?"]) == 1.0  # no-answer samples do not vote
    assert majority_correct(P, ["", "?"]) == 0.0
    assert majority_correct(P, ["4*3+1=13>7\nx=3", "x=3"]) == 1.0  # the last x= counts


def test_scaling_runs_end_to_end_and_plots(tmp_path):
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok).eval()
    problems = make_problems("synth_linear", 3, 0, "eval")
    par = parallel_vs_self_correct(model, tok, problems, budget=4, max_new_tokens=4)
    assert [r["samples"] for r in par["curve"]] == [2, 4]
    assert all(0.0 <= r["parallel_majority"] <= 1.0 for r in par["curve"])
    seq = sequential_attempts(model, tok, problems, attempts=3, max_new_tokens=4)
    assert len(seq["accuracy_at"]) == 3 and len(seq["i_to_c_at"]) == 2
    png = plot_scaling(par, seq, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000 and png.endswith("s.png")
