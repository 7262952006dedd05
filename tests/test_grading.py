"""Math grading: answer extraction, Math-Verify comparison, a timeout that works in threads.

Checked against real data (../shared/data/math500_test.jsonl): every MATH500 reference
solution graded against its own answer, and against another problem's answer.
"""
from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from score_core.problems import math_grading as grading
from score_core.problems.math_grading import extract_answer, grade_math, last_boxed, normalize_answer
from score_core.problems.rewards import Reward

MATH500 = Path(__file__).resolve().parents[1] / "../shared/data/math500_test.jsonl"
SLOW_ANSWER = "9^{9^{9^{9}}}"  # sympy tries to evaluate this tower: never finishes


@pytest.fixture(scope="module")
def math500() -> list[dict]:
    if not MATH500.is_file():
        pytest.fail(f"real data missing: {MATH500} (see ../shared/data/PROVENANCE.md)")
    return [json.loads(line) for line in MATH500.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So x=3.\nFinal Answer: The final answer is $3$. I hope it is correct.", "3"),
        ("Final Answer: The final answer is 3.5. I hope it is correct.", "3.5"),
        ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
        ("Final Answer: The final answer is $\\boxed{7}$. I hope it is correct.", "7"),
        ("The final answer is 1. Wait.\nFinal Answer: The final answer is $2$. I hope it is correct.", "2"),
        ("Final Answer: The final answer is $(1,2)$.", "(1,2)"),  # no "I hope…": rest of line
        ("thus $\\boxed{\\frac{a}{b^{2}}}$ and", "\\frac{a}{b^{2}}"),
        ("first \\boxed{1} then \\boxed{\\{1, 2\\}}.", "\\{1, 2\\}"),  # last box, escaped braces
        ("the answer is $\\boxed 5$.", "5"),
        ("the answer is \\fbox{12}", "12"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 1,072", "1072"),
        ("no answer here", None),
        ("truncated \\boxed{\\frac{1}{2", None),
        ("empty \\boxed{}", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_last_boxed_and_normalize():
    assert last_boxed("\\boxed{a}{b}") == "a"
    assert last_boxed("nothing") is None
    assert normalize_answer("$\\dfrac{1}{2}$") == "\\frac{1}{2}"
    assert normalize_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("30^\\circ") == "30"
    assert normalize_answer("\\text{(C)}") == "(C)"


def test_grade_math_statuses():
    assert grade_math("Final Answer: The final answer is $4$. I hope it is correct.", "4") == Reward(1.0, "ok")
    assert grade_math("\\boxed{5}", "4") == Reward(0.0, "ok")
    assert grade_math("I give up.", "4") == Reward(0.0, "no_answer")
    # equal in value, different in form: needs Math-Verify, not the string fast path
    assert grade_math("\\boxed{0.5}", "\\frac{1}{2}") == Reward(1.0, "ok")
    assert grade_math("\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}") == Reward(1.0, "ok")
    assert grade_math("\\boxed{x+1}", "1+x", fast_path=False) == Reward(1.0, "ok")
    assert grade_math("\\boxed{(1,2)}", "(2,1)") == Reward(0.0, "ok")


def test_math500_reference_solutions_grade_correct(math500):
    """Each MATH500 solution vs its own answer, all through Math-Verify (no fast path)."""
    start = time.perf_counter()
    misses = []
    for row in math500:
        reward = grade_math(row["solution"], row["answer"], timeout_s=10.0, fast_path=False)
        if reward.value != 1.0:
            misses.append((row["unique_id"], row["answer"], extract_answer(row["solution"]), reward))
    elapsed = time.perf_counter() - start
    score = 1 - len(misses) / len(math500)
    print(f"\nMATH500 self-grade: {score:.2%} in {elapsed:.1f}s "
          f"({1000 * elapsed / len(math500):.1f} ms/grade); misses: {misses}")
    assert score >= 0.99, misses


def test_math500_shuffled_answers_grade_wrong(math500):
    """A derangement of the answers (no problem keeps an equal answer string) scores ≈ 0."""
    rng = random.Random(0)
    order = list(range(len(math500)))
    while True:
        rng.shuffle(order)
        if all(normalize_answer(math500[i]["answer"]) != normalize_answer(math500[j]["answer"])
               for i, j in enumerate(order)):
            break
    def grade(pair):  # two threads: also exercises concurrent workers
        i, j = pair
        return math500[i]["answer"], math500[j]["answer"], grade_math(
            math500[i]["solution"], math500[j]["answer"], timeout_s=10.0)

    with ThreadPoolExecutor(2) as pool:
        hits = [hit for hit in pool.map(grade, enumerate(order)) if hit[2].value != 0.0]
    print(f"\nshuffled answers graded correct: {len(hits)}/{len(math500)}: {hits}")
    assert len(hits) / len(math500) <= 0.02, hits


def test_grading_works_outside_the_main_thread(math500):
    rows = math500[:20]
    expected = [grade_math(r["solution"], r["answer"], fast_path=False) for r in rows]
    result: list = []
    thread = threading.Thread(
        target=lambda: result.extend(grade_math(r["solution"], r["answer"], fast_path=False) for r in rows))
    thread.start()
    thread.join()
    assert result == expected and all(r == Reward(1.0, "ok") for r in result)
    with ThreadPoolExecutor(4) as pool:  # concurrent threads each get their own worker
        wrong = list(pool.map(lambda r: grade_math(r["solution"], r["answer"] + "+1"), rows))
    assert all(r == Reward(0.0, "ok") for r in wrong)


def test_timeout_is_unknown_not_wrong_and_recovers():
    def slow():
        start = time.perf_counter()
        reward = grade_math(f"\\boxed{{{SLOW_ANSWER}}}", "1", timeout_s=1.0)
        return reward, time.perf_counter() - start

    for reward, elapsed in (slow(), ThreadPoolExecutor(1).submit(slow).result()):
        assert reward == Reward(None, "timeout")
        assert elapsed < 5.0
    assert grade_math("\\boxed{2}", "2.0") == Reward(1.0, "ok")  # a fresh worker took over


def test_dead_worker_is_an_error_not_wrong(monkeypatch):
    grade_math("\\boxed{3}", "3.0")  # make sure an idle worker exists
    for worker in list(grading._IDLE):  # workers that died while idle are replaced silently
        worker.proc.kill()
        worker.proc.wait()
    assert grade_math("\\boxed{3}", "3.0") == Reward(1.0, "ok")
    ask = grading._Worker.ask

    def dying_ask(self, *args):
        self.proc.kill()  # the worker dies in the middle of a request
        return ask(self, *args)

    monkeypatch.setattr(grading._Worker, "ask", dying_ask)
    assert grade_math("\\boxed{3}", "4") == Reward(None, "error")
    monkeypatch.undo()
    assert grade_math("\\boxed{3}", "3.0") == Reward(1.0, "ok")


def test_per_grade_overhead_is_small():
    grade_math("\\boxed{1}", "1.0")  # warm a worker
    start = time.perf_counter()
    for i in range(200):
        assert grade_math(f"\\boxed{{{i}}}", f"{i}.0").value == 1.0
    per_grade_ms = 1000 * (time.perf_counter() - start) / 200
    print(f"\nMath-Verify grade through the worker: {per_grade_ms:.2f} ms")
    assert per_grade_ms < 100  # a process per call would cost ≥ 500 ms
