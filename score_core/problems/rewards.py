"""Oracle rewards r(y, y*) ∈ {0, 1}, or None when the answer could not be scored.

None is never a wrong answer: it is excluded from the loss and counted in metrics
(STYLE.md rule 8). Math answers go through Math-Verify (`grading`), synthetic debug
answers through exact match (`synthetic`), code through a `CodeRunner` — the Docker
sandbox in production — which this module only knows as a protocol, so score_core
imports no docker.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from score_core.problems.reward_value import Reward
from score_core.schema import Episode, Problem

_WS = re.compile(r"\s+")


def normalise_ws(text: str) -> str:
    """Runs of whitespace → one space, stripped (how answers and code are compared)."""
    return _WS.sub(" ", text).strip()

__all__ = ["Reward", "CodeJob", "CodeResult", "CodeRunner", "reward_from_code_status", "grade_text",
           "final_answer", "grade_episodes"]


@dataclass(frozen=True)
class CodeJob:
    """One solution + its tests for the sandbox: compiled separately, tests run after the
    solution; `passed` iff every test ran to completion and passed (never just "exit 0")."""

    code: str  # the solution
    tests: str  # the test code (dataset's, trusted)
    timeout_s: float
    memory_mb: int
    entry_point: str = ""  # may shadow a builtin in the tests' view (MBPP 126: `sum`)


class CodeResult(Protocol):
    status: str  # passed | failed | timeout | memory_exceeded | output_exceeded | sandbox_error


class CodeRunner(Protocol):
    def run_many(self, jobs: Sequence[CodeJob]) -> Sequence[CodeResult]: ...


def reward_from_code_status(status: str) -> Reward:
    """passed → 1; any program failure → 0; infrastructure failure → None (unknown)."""
    if status == "passed":
        return Reward(1.0, "ok")
    if status == "sandbox_error":
        return Reward(None, "sandbox_error")
    return Reward(0.0, status)


def grade_text(problem: Problem, response: str, math_timeout_s: float = 5.0) -> Reward:
    """Reward for a math or synthetic answer (code goes through `grade_episodes`)."""
    if not response.strip():
        return Reward(0.0, "empty")
    if problem.kind == "synth":
        from score_core.problems.synthetic import grade_synth

        return grade_synth(response, problem.answer)
    if problem.kind == "math":
        from score_core.problems.math_grading import grade_math

        return grade_math(response, problem.answer, timeout_s=math_timeout_s)
    raise ValueError(f"grade_text cannot grade kind {problem.kind!r}")


def final_answer(problem: Problem, response: str) -> Optional[str]:
    """The answer a response commits to, for the unchanged-answer rate (collapse detector):
    the last `x=<int>` (synthetic families), the extracted maths answer, or the program
    with whitespace normalised (code). None when there is none."""
    if problem.source.startswith("synth_"):
        from score_core.problems.synthetic import extract_answer as synth_answer

        got = synth_answer(response)
        return None if got is None else str(got)
    if problem.kind == "math":
        from score_core.problems.math_grading import extract_answer as math_answer, normalize_answer

        got = math_answer(response)
        return None if got is None else normalize_answer(got)
    from score_core.problems.code_problems import solution_code

    code = solution_code(response, problem.question)
    return None if code is None else normalise_ws(code)


def grade_episodes(
    episodes: Sequence[Episode],
    problems: dict[str, Problem],
    code_runner: Optional[CodeRunner] = None,
    math_timeout_s: float = 5.0,
    code_timeout_s: float = 10.0,
    code_memory_mb: int = 512,
    progress: Optional[Callable[[int], None]] = None,
) -> list[Episode]:
    """Fill reward1/reward2 (and their statuses) of every episode.

    Identical code jobs (same program text, tests and limits) are run once and share the
    result: at debug scale most samples repeat (k samples of a sharpened policy; y2 often
    copies y1), so the sandbox runs each distinct program of the batch once. A program's
    result is a function of its text and tests; a nondeterministic program's duplicates
    share one draw (same expected reward).
    """
    graded: dict[tuple[int, int], Reward] = {}
    code_slots: dict[CodeJob, list[tuple[int, int]]] = {}
    for i, ep in enumerate(episodes):
        problem = problems[ep.problem_id]
        for turn, text in ((1, ep.attempt1), (2, ep.attempt2)):
            if problem.kind != "code":
                graded[(i, turn)] = grade_text(problem, text, math_timeout_s)
                if progress:
                    progress(1)
                continue
            from score_core.problems.code_problems import build_program

            program = build_program(problem, text)
            if program is None:
                graded[(i, turn)] = Reward(0.0, "no_code")
                if progress:
                    progress(1)
                continue
            job = CodeJob(program.code, program.tests, code_timeout_s, code_memory_mb, program.entry_point)
            code_slots.setdefault(job, []).append((i, turn))
    if code_slots:
        if code_runner is None:
            raise RuntimeError("code problems need a sandbox code runner (score sandbox build)")
        jobs = list(code_slots)
        results = code_runner.run_many(jobs)
        if len(results) != len(jobs):
            raise RuntimeError(f"code runner returned {len(results)} results for {len(jobs)} jobs")
        for job, result in zip(jobs, results):
            for slot in code_slots[job]:
                graded[slot] = reward_from_code_status(result.status)
        if progress:
            progress(sum(len(slots) for slots in code_slots.values()))
    return [
        dataclasses.replace(
            ep,
            reward1=graded[(i, 1)].value, reward_status1=graded[(i, 1)].status,
            reward2=graded[(i, 2)].value, reward_status2=graded[(i, 2)].status,
        )
        for i, ep in enumerate(episodes)
    ]
