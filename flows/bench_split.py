"""Where an iteration's wall time goes: `score bench pipeline`'s accounting (no Prefect here).

Inputs per timed run: its wall-clock window, the step windows (ledger key, start, end: the
bench records them around each step's body) and the phase lines of `score_core.timing`
(from every process). Categories:

- rollout, grading, training: the decode / reward / optimizer-loop phases of an iteration's
  training steps; evaluation: the decode and grading phases of an evaluation after training;
- model_load, model_save, parquet_io, child_process, ledger: the named fixed-cost phases;
- once_per_run: data preparation, the base model's evaluation (all its phases) and the
  report — paid once per run, not per iteration;
- unattributed: the rest. In the direct run (plain calls) that is Python glue ("other");
  the flow's unattributed time minus the direct run's is what Prefect adds (task
  submission, state round trips, result handling, flow-run start).
"""
from __future__ import annotations

from typing import Any, Iterable

ITERATION = ("rollout", "grading", "training", "evaluation", "model_load", "model_save", "parquet_io",
             "child_process", "ledger")
ONCE = ("prepare", "base_eval", "report")


def _window_of(t: float, windows: Iterable[tuple[str, float, float]]) -> str:
    for key, a, b in windows:
        if a <= t <= b:
            return key
    return ""


def split(phases: list[dict[str, Any]], windows: list[tuple[str, float, float]],
          start: float, end: float) -> dict[str, float]:
    """Seconds per category of one timed run (see the module docstring)."""
    out = {c: 0.0 for c in ITERATION + ONCE}
    for r in phases:
        if not start <= r["start"] <= end:
            continue
        dt, name = r["end"] - r["start"], r["phase"]
        key = _window_of(r["start"], windows)
        if key.startswith(("eval/base/", "grade/eval_base_")):
            out["base_eval"] += dt
        elif key.startswith(("eval/", "grade/eval_")) and name in ("rollout", "grading"):
            out["evaluation"] += dt
        elif name in out:
            out[name] += dt
        else:
            out.setdefault(name, 0.0)
            out[name] += dt
    out["unattributed"] = (end - start) - sum(out.values())
    out["wall"] = end - start
    return out


def with_prefect(direct: dict[str, float], flowed: dict[str, float]) -> dict[str, float]:
    """The flow's split with its unattributed time divided into Python glue (as measured in
    the direct run of the same repeat: "other") and what Prefect adds ("prefect")."""
    out = dict(flowed)
    other = max(direct["unattributed"], 0.0)
    out["other"] = min(other, flowed["unattributed"])
    out["prefect"] = flowed["unattributed"] - out["other"]
    del out["unattributed"]
    return out


def per_iteration(s: dict[str, float]) -> float:
    """Wall time of the run less what it pays once per run."""
    return s["wall"] - sum(s.get(c, 0.0) for c in ONCE)


def mean_splits(splits: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for s in splits for k in s}
    return {k: sum(s.get(k, 0.0) for s in splits) / len(splits) for k in keys}


ROWS = ITERATION + ("prefect", "other")


def table(prompts_k: int, res: dict[str, dict[str, float]]) -> str:
    """A text table: categories × modes, seconds and % of the per-iteration time."""
    modes = [m for m in ("direct", "flow_inline", "flow_process", "flow_notags") if m in res]
    head = f"{str(prompts_k) + ' episodes/it':<22}" + "".join(f" | {m:<20}" for m in modes)
    lines = [head, "-" * len(head)]
    totals = {m: per_iteration(res[m]) for m in modes}
    for row in ROWS:
        cells = []
        for m in modes:
            v = res[m].get(row, 0.0)
            cells.append(f" | {v:8.2f} s {100 * v / totals[m]:6.1f}%  ")
        lines.append(f"{row:<22}" + "".join(cells))
    lines.append(f"{'per iteration':<22}" + "".join(f" | {totals[m]:8.2f} s  100.0%  " for m in modes))
    for c in ONCE:
        lines.append(f"{'once: ' + c:<22}" + "".join(f" | {res[m].get(c, 0.0):8.2f} s          " for m in modes))
    lines.append(f"{'wall (whole run)':<22}" + "".join(f" | {res[m]['wall']:8.2f} s          " for m in modes))
    base = totals["direct"]
    lines.append(f"{'per iteration / direct':<22}" + "".join(f" | ×{totals[m] / base:7.3f}            " for m in modes))
    return "\n".join(lines)
