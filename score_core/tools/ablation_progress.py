"""Progress of a long `score ablate`: cells done, what the last one measured, time left.

A cell's work is counted in units: one per stage iteration it trains (its evaluation adds
one), one for an untrained method (one held-out evaluation). The time left is an estimate,
labelled as one: the remaining units × the seconds per unit of the cells this invocation
actually ran, ÷ the cells that run at once. A cell a resumed run finds already finished
(seconds instead of minutes) counts as done but not in the rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

FRESH_MIN_S = 30.0  # a cell faster than this was skipped on resume: not in the rate


def cell_units(n_iterations: int, trained: bool) -> int:
    """Work units of one cell: its training iterations + the final evaluation (1 untrained)."""
    return n_iterations + 1 if trained else 1


def hms(seconds: float) -> str:
    """12 s · 7 min · 1 h 05 min."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class AblationProgress:
    """Counts finished cells; `line` is the one-line report of the latest one."""

    total_units: int
    n_cells: int
    workers: int
    done_units: int = 0
    done_cells: int = 0
    _fresh_s: float = 0.0
    _fresh_units: int = 0
    _lines: list[str] = field(default_factory=list)

    def finish(self, label: str, units: int, wall_s: float, metrics: Optional[dict[str, Any]] = None) -> str:
        """Record one finished cell (its units and how long it ran); returns the report line."""
        self.done_units += units
        self.done_cells += 1
        if wall_s >= FRESH_MIN_S:
            self._fresh_s += wall_s
            self._fresh_units += units
        line = f"[ablate] {self.done_cells}/{self.n_cells} cells done · {label}"
        if metrics and "accuracy_t1" in metrics and "accuracy_t2" in metrics:
            t1, t2 = 100 * metrics["accuracy_t1"], 100 * metrics["accuracy_t2"]
            line += f": Acc@t1 {t1:.1f} → Acc@t2 {t2:.1f} (Δ {t2 - t1:+.1f})"
        line += f" in {hms(wall_s)}"
        left = self.seconds_left()
        if self.done_cells < self.n_cells:
            line += f" · ≈ {hms(left)} left" if left is not None else " · time left: after the first cell that runs"
        self._lines.append(line)
        return line

    def seconds_left(self) -> Optional[float]:
        """remaining units × s/unit of the cells run here ÷ workers; None before any ran."""
        if self._fresh_units == 0:
            return None
        per_unit = self._fresh_s / self._fresh_units
        return (self.total_units - self.done_units) * per_unit / max(1, self.workers)

    @property
    def fraction(self) -> float:
        return self.done_units / self.total_units if self.total_units else 1.0

    def markdown(self) -> str:
        """The UI card's description: the counts and the latest lines."""
        return "\n\n".join([f"**score ablate**: {self.done_cells}/{self.n_cells} cells"] + self._lines[-5:])
