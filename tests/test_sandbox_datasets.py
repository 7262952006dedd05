"""Real data through the real sandbox: every reference solution passes, a wrong one fails.

Programs are built the way the pipeline builds them (`score_core.problems.code_problems.build_program`
on a model-style response: solution and tests as two texts, compiled separately by the
harness, `passed` only with its completion proof), so this also proves the extraction and
assembly paths and that the harness does not break real solutions.
"""
from __future__ import annotations

import re

from sandbox_fixtures import load_humaneval, load_mbpp, pool  # noqa: F401  (fixture)

from score_core.problems.code_problems import CodeProgram, build_program, mbpp_tests
from score_core.problems.loaders import mbpp_entry_point
from score_core.problems.rewards import CodeJob
from score_core.schema import Problem

# MBPP reference solutions that do not pass their own tests, with the reason. Filled from a
# real run; must stay exact (a fixed task passing again fails the test too).
MBPP_KNOWN_BROKEN: dict[int, str] = {}
# MBPP tasks whose tests a function returning None passes, with the reason.
MBPP_NONE_PASSES: dict[int, str] = {}
# Correct but slow references: run first, with a longer limit.
MBPP_SLOW: dict[int, str] = {123: "O(n^2) divisor sums up to 9999: 5-20 s of CPU"}


def humaneval_problem(row: dict) -> Problem:
    return Problem(row["task_id"], "humaneval", "eval", "code", row["prompt"], "",
                   row["test"] + f"\ncheck({row['entry_point']})\n", row["entry_point"])


def mbpp_problem(row: dict) -> Problem:
    return Problem(f"mbpp/{row['task_id']}", "mbpp", "train", "code", row["text"], "",
                   mbpp_tests(row["test_setup_code"], row["test_list"]),
                   mbpp_entry_point(row["test_list"][0], row["code"]))


def statuses(pool, programs: list[CodeProgram], timeout_s: float, slow: frozenset = frozenset()) -> list[str]:
    """Run all programs (the indices in `slow` first, with 4x the limit); statuses in order."""
    assert all(p is not None for p in programs)
    order = sorted(range(len(programs)), key=lambda i: i not in slow)
    jobs = [CodeJob(programs[i].code, programs[i].tests, timeout_s * (4 if i in slow else 1), 512,
                    programs[i].entry_point) for i in order]
    got = [""] * len(programs)
    for i, result in zip(order, pool.run_many(jobs)):
        got[i] = result.status
    return got


def test_humaneval_canonical_solutions_pass_and_none_fails(pool):
    rows = load_humaneval()
    assert len(rows) == 164
    problems = [humaneval_problem(r) for r in rows]
    body = [build_program(p, f"```python\n{r['canonical_solution']}```") for p, r in zip(problems, rows)]
    full = [build_program(p, f"Here:\n```python\n{r['prompt']}{r['canonical_solution']}\n```\n")
            for p, r in zip(problems, rows)]  # the completion repeats the def
    wrong = [build_program(p, "```python\n    return None\n```") for p in problems]
    got = statuses(pool, body + full + wrong, timeout_s=20)
    n = len(rows)
    failing = [(rows[i % n]["task_id"], s) for i, s in enumerate(got[:2 * n]) if s != "passed"]
    assert failing == [], f"canonical HumanEval solutions not passing: {failing}"
    passing_wrong = [rows[i]["task_id"] for i, s in enumerate(got[2 * n:]) if s == "passed"]
    assert passing_wrong == [], f"`return None` passes the tests of {passing_wrong}"


def _none_override(row: dict) -> str:
    """The reference code with every tested top-level function replaced by `return None`."""
    code = row["code"].replace("\r\n", "\n")
    tests = "\n".join(row["test_list"])
    names = [n for n in re.findall(r"^def\s+(\w+)\s*\(", code, re.MULTILINE)
             if re.search(rf"\b{n}\s*\(", tests)]
    assert names, f"MBPP {row['task_id']}: no tested function found"
    stubs = "\n".join(f"def {n}(*args, **kwargs):\n    return None\n" for n in dict.fromkeys(names))
    return f"[BEGIN]\n{code}\n\n{stubs}\n[DONE]"


def test_mbpp_reference_solutions_pass_and_none_fails(pool):
    rows = load_mbpp()
    assert len(rows) == 974
    problems = [mbpp_problem(r) for r in rows]
    good = [build_program(p, f"[BEGIN]\n{r['code']}\n[DONE]") for p, r in zip(problems, rows)]
    wrong = [build_program(p, _none_override(r)) for p, r in zip(problems, rows)]
    n = len(rows)
    slow = frozenset(i for i, r in enumerate(rows) if r["task_id"] in MBPP_SLOW)
    got = statuses(pool, good + wrong, timeout_s=20, slow=slow | {i + n for i in slow})
    broken = {rows[i]["task_id"]: s for i, s in enumerate(got[:n]) if s != "passed"}
    assert set(broken) == set(MBPP_KNOWN_BROKEN), f"MBPP references not passing: {broken}"
    none_passes = {rows[i]["task_id"] for i, s in enumerate(got[n:]) if s == "passed"}
    assert none_passes == set(MBPP_NONE_PASSES), f"`return None` passes MBPP {sorted(none_passes)}"
