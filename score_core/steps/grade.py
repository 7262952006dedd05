"""The grading step: fill r1/r2 of every episode (Math-Verify, the synthetic checkers, the
Docker sandbox through a `CodeRunner`) and compute the paper's metrics of the graded traces.
"""
from __future__ import annotations

from typing import Any, Optional

from score_core.evaluation.metrics import self_correction_metrics
from score_core.problems.rewards import CodeRunner, grade_episodes
from score_core.progress import bar
from score_core.schema import read_episodes, read_problems, write_episodes
from score_core.timing import phase


def grade_step(
    traces_path: str, problems_path: str, out_path: str, *, math_timeout_s: float = 5.0,
    code_runner: Optional[CodeRunner] = None, code_timeout_s: float = 10.0, code_memory_mb: int = 512,
) -> dict[str, Any]:
    """Fill r1/r2 of every episode; unknown rewards stay null and are counted."""
    with phase("parquet_io"):
        episodes = read_episodes(traces_path)
        problems = {p.problem_id: p for p in read_problems(problems_path)}
    with phase("grading"), bar(total=2 * len(episodes), desc="grade") as pb:
        graded = grade_episodes(episodes, problems, code_runner=code_runner, math_timeout_s=math_timeout_s,
                                code_timeout_s=code_timeout_s, code_memory_mb=code_memory_mb,
                                progress=pb.update)
    with phase("parquet_io"):
        write_episodes(graded, out_path)
    with phase("grading"):
        metrics = episode_metrics(graded, problems)
    return {"path": out_path, **metrics}


def episode_metrics(eps: Any, problems: Optional[dict[str, Any]] = None) -> dict[str, float]:
    """Paper metrics + collapse detector of graded episodes (`problems`: id → Problem,
    needed for the unchanged-answer rate)."""
    from score_core.problems.rewards import final_answer

    answers = None
    if problems is not None:
        answers = [(final_answer(problems[e.problem_id], e.attempt1), final_answer(problems[e.problem_id], e.attempt2))
                   for e in eps]
    return self_correction_metrics([e.reward1 for e in eps], [e.reward2 for e in eps],
                                   [e.attempt1 for e in eps], [e.attempt2 for e in eps], answers=answers)
