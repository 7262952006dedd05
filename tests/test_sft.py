import pytest
import torch

from score_core.schema import Episode
from score_core.method.sft import pair_sft_examples, sft_loss, star_examples


def _ep(pid, s, y1, y2, r1, r2):
    return Episode("r", "base", 0, pid, s, f"x={y1}", f"x={y2}", r1, r2, y1_ids=(y1,), y2_ids=(y2,))


def test_sft_loss_hand_computed():
    logp = torch.tensor([[-1.0, -3.0, -5.0], [-2.0, -2.0, -2.0], [-9.0, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # example 0: mean(−1, −3) = −2; example 1: −2; example 2 has no tokens → ignored
    assert sft_loss(logp, mask).item() == pytest.approx(2.0)


def test_star_keeps_traces_with_correct_second_attempt():
    eps = [_ep("a", 0, 1, 2, 0.0, 1.0), _ep("a", 1, 2, 2, 1.0, 1.0), _ep("a", 2, 2, 1, 1.0, 0.0),
           _ep("b", 0, 3, 3, 0.0, None)]
    assert [e.sample_index for e in star_examples(eps)] == [0, 1]
    assert [e.sample_index for e in star_examples(eps, include_correct_to_correct=False)] == [0]


def test_pair_sft_pairs_wrong_with_right_of_same_problem():
    eps = [_ep("a", 0, 1, 1, 0.0, 0.0), _ep("a", 1, 7, 7, 1.0, 1.0), _ep("b", 0, 4, 5, 0.0, 0.0)]
    pairs = pair_sft_examples(eps, seed=0)
    assert len(pairs) == 2  # both wrong attempts of "a"; "b" has no right answer
    for p in pairs:
        assert p.problem_id == "a" and p.y1_ids == (1,) and p.y2_ids == (7,)
        assert p.reward1 == 0.0 and p.reward2 == 1.0 and p.attempt2 == "x=7"
