"""synth_linear: deterministic generation, disjoint splits, grading, the flawed corpus."""
import pytest

from score_core.problems.rewards import Reward
from score_core.problems.synthetic import (
    check_line, extract_answer, flawed_solve, grade_synth, make_problems, parse_question,
    sample_corpus_traces, split_of)


def test_make_problems_is_deterministic_by_seed():
    a = make_problems("synth_linear", 50, seed=3, split="train")
    assert a == make_problems("synth_linear", 50, seed=3, split="train")
    assert a != make_problems("synth_linear", 50, seed=4, split="train")


def test_problem_fields_and_answer_solves_question():
    for p in make_problems("synth_linear", 200, seed=0, split="eval"):
        assert p.kind == "synth" and p.source == "synth_linear" and p.split == "eval"
        assert p.problem_id.startswith("synth_linear/eval/")
        a, b, c = parse_question(p.question)
        assert a * int(p.answer) + b == c


def test_splits_are_disjoint_by_construction():
    qs = {s: {p.question for p in make_problems("synth_linear", 800, seed=s == "train", split=s)}
          for s in ("train", "dev", "eval")}
    assert not qs["train"] & qs["eval"] and not qs["train"] & qs["dev"] and not qs["dev"] & qs["eval"]
    # another seed draws from the same fixed partition
    other = {p.question for p in make_problems("synth_linear", 800, seed=99, split="eval")}
    assert not other & qs["train"]


def test_problem_ids_unique_within_a_set():
    ps = make_problems("synth_linear", 300, seed=1, split="dev")
    assert len({p.problem_id for p in ps}) == 300 and len({p.question for p in ps}) == 300


def test_unknown_source_or_split_or_too_many():
    with pytest.raises(ValueError):
        make_problems("synth_code_typo", 5, 0, "train")
    with pytest.raises(ValueError):
        make_problems("synth_linear", 5, 0, "test")
    with pytest.raises(ValueError):
        make_problems("synth_linear", 10**6, 0, "eval")


@pytest.mark.parametrize("response,answer,expected", [
    ("x=13", "13", Reward(1.0, "ok")),
    ("x=12", "13", Reward(0.0, "ok")),
    ("7*12+5=89>88\nx=12", "12", Reward(1.0, "ok")),
    ("7*13+5=96>89\nx=12", "12", Reward(1.0, "ok")),  # the last x= counts
    ("x=12\nx=13", "12", Reward(0.0, "ok")),
    ("7*13+5=96>89", "13", Reward(0.0, "no_answer")),  # a check line is not an answer
    ("", "3", Reward(0.0, "no_answer")),
    ("x=-1", "1", Reward(0.0, "ok")),
    ("x=013", "13", Reward(1.0, "ok")),
])
def test_grade_synth(response, answer, expected):
    assert grade_synth(response, answer) == expected


def test_extract_answer():
    assert extract_answer("x=4 then x=7") == 7 and extract_answer("nothing") is None


def test_check_line_compares_with_c():
    assert check_line(7, 12, 102, 13) == "7*13=91,91+12=103>102"
    assert check_line(7, 12, 103, 13) == "7*13=91,91+12=103=103"
    assert check_line(7, 12, 104, 13) == "7*13=91,91+12=103<104"


def test_flawed_solver_is_systematic():
    assert all(flawed_solve(a, x, b) == x for a in range(1, 6) for x in range(50) for b in range(0, 50, 7))
    slips = [flawed_solve(a, x, b) - x for a in range(6, 10) for x in range(50) for b in range(0, 50, 7)]
    assert set(slips) == {-1, 1} and 0.4 < slips.count(1) / len(slips) < 0.6


def test_corpus_traces_use_train_problems_and_correct_checks():
    traces = sample_corpus_traces(500, seed=0)
    assert traces == sample_corpus_traces(500, seed=0)
    copies = 0
    for p, y1, y2 in traces:
        a, b, c = parse_question(p.question)
        assert split_of(a, int(p.answer), b) == "train"
        v1 = extract_answer(y1)
        assert y2.split("\n")[0] == check_line(a, b, c, v1)
        copies += extract_answer(y2) == v1
    assert 0.65 < copies / len(traces) < 0.85
