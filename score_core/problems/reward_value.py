"""The value every grader returns: r ∈ {0, 1}, or None when the answer could not be scored.

Its own module so the graders (`grading` for maths, `synthetic` for the debug family) and the
dispatcher over them (`rewards`) import it without importing each other (no cycle)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Reward:
    value: Optional[float]  # 1.0 correct, 0.0 wrong, None = could not be scored
    status: str  # ok | empty | no_answer | timeout | sandbox_error | ...
