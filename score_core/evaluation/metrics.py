"""Self-correction metrics (paper Sec. 5, "Evaluation protocol and metrics").

Over rows where both rewards are known (r1, r2 not None):
  Accuracy@t1 = mean r1, Accuracy@t2 = mean r2, Δ(t1,t2) = Acc@t2 − Acc@t1,
  Δi→c = frac(r1 = 0, r2 = 1), Δc→i = frac(r1 = 1, r2 = 0), so Δ = Δi→c − Δc→i.
Rows with an unknown reward are counted in `n_unscored`, never as wrong.
Collapse detector: `unchanged_rate` (y2 == y1 after whitespace normalisation), the
`unchanged_answer_rate` (y2 commits to the same final answer as y1, when answers are
given — for formats where y2 restates or checks y1 before answering) and the
edit-distance ratio between attempts (edit distance / total length of both).
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

from score_core.problems.rewards import normalise_ws


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (two-row DP, O(len(a)·len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_distance_ratio(y1: str, y2: str) -> float:
    """Edit distance / total length of both attempts (0 = identical)."""
    total = len(y1) + len(y2)
    return edit_distance(y1, y2) / total if total else 0.0


def self_correction_metrics(
    r1: Sequence[Optional[float]],
    r2: Sequence[Optional[float]],
    y1: Optional[Sequence[str]] = None,
    y2: Optional[Sequence[str]] = None,
    max_edit_chars: int = 4000,
    answers: Optional[Sequence[tuple[Optional[str], Optional[str]]]] = None,
) -> dict[str, float]:
    """The five paper metrics plus the collapse detector, as a flat dict.
    answers: per row, the final answers (a1, a2) of both attempts (None: no answer)."""
    if len(r1) != len(r2):
        raise ValueError(f"r1 has {len(r1)} rows, r2 has {len(r2)}")
    known = [i for i in range(len(r1)) if r1[i] is not None and r2[i] is not None]
    n = len(known)
    out: dict[str, float] = {"n": n, "n_unscored": len(r1) - n}

    def frac(pred) -> float:
        return sum(1 for i in known if pred(r1[i] > 0.5, r2[i] > 0.5)) / n if n else math.nan

    out["accuracy_t1"] = frac(lambda a, b: a)
    out["accuracy_t2"] = frac(lambda a, b: b)
    out["delta_t1_t2"] = out["accuracy_t2"] - out["accuracy_t1"]
    out["delta_i_to_c"] = frac(lambda a, b: (not a) and b)
    out["delta_c_to_i"] = frac(lambda a, b: a and not b)
    if y1 is not None and y2 is not None:
        rows = known
        out["unchanged_rate"] = (
            sum(normalise_ws(y1[i]) == normalise_ws(y2[i]) for i in rows) / len(rows) if rows else math.nan)
        ratios = [edit_distance_ratio(y1[i][:max_edit_chars], y2[i][:max_edit_chars]) for i in rows]
        out["edit_distance_ratio"] = sum(ratios) / len(ratios) if ratios else math.nan
    if answers is not None:
        out["unchanged_answer_rate"] = (
            sum(answers[i][0] is not None and answers[i][0] == answers[i][1] for i in known) / n if n else math.nan)
    return out


def edit_ratios(y1: Iterable[str], y2: Iterable[str], max_chars: int = 4000) -> list[float]:
    return [edit_distance_ratio(a[:max_chars], b[:max_chars]) for a, b in zip(y1, y2)]
