"""`score ablate … --partial`: the table of the cells an ablation has finished so far — while
it runs, or after it was stopped — read from their run directories. Nothing is run and
nothing outside `--out` is written (docs/ is only ever written by a finished ablation).

A cell is finished when its pipeline wrote `metrics.json` (the run report, written once,
after the final held-out evaluation). The tables, paired-bootstrap intervals, reward curves
and goal checks are the ones `score ablate` writes at the end, computed over the finished
cells only; a banner says how many of the planned cells that is, which are missing, and
that intervals over fewer seeds are wider. Output: `<out>/RESULTS.partial.md` and its plots.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from score_core.config import load_config
from score_core.schema import atomic_write_text
from score_core.tools.ablation import DETERMINISTIC, results_markdown, summarise
from score_core.tools.wall_clock import read_invocations, totals


def planned_cells(bases: Sequence[str], methods: Sequence[str], seeds: int) -> list[tuple[str, str, int]]:
    """(base, method, seed) of every cell `score ablate` plans, in table order."""
    return [(b, m, s) for b in bases for m in methods for s in (range(1) if m in DETERMINISTIC else range(seeds))]


def finished_cells(out_dir: str, cells: Sequence[tuple[str, str, int]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The cell records (as `flows.ablate.run_cell` returns them) of the finished cells, and
    the labels of the others."""
    from flows.ablate import cell_record

    results, missing = [], []
    for base, method, seed in cells:
        run_dir = Path(out_dir) / "cells" / base / f"{method}-seed{seed}"
        report = run_dir / "metrics.json"
        if not report.is_file():
            missing.append(f"{base}/{method}/seed{seed}")
            continue
        final = json.loads(report.read_text())["evals"][-1]
        results.append(cell_record(base, method, seed, str(run_dir), final, wall_s=0.0))
    return results, missing


def write_partial(config_path: str, seeds: int, methods: Sequence[str], base_seeds: Sequence[int], out_dir: str,
                  overrides: Optional[dict[str, Any]] = None, command: str = "", workers: int = 2) -> Path:
    """Write `<out_dir>/RESULTS.partial.md` from the finished cells; returns its path."""
    from flows.ablate import _paired_intervals, _reward_curves
    from tasks.plots import plot_ablation, plot_reward_curves

    cfg = load_config(config_path, overrides or {})
    bases = [Path(cfg.model.path).name] if cfg.model.path else [f"debug-seed{s}" for s in base_seeds]
    cells = planned_cells(bases, methods, seeds)
    results, missing = finished_cells(out_dir, cells)
    if not results:
        raise ValueError(f"no finished cell under {out_dir}/cells yet ({len(cells)} planned)")
    out = Path(out_dir)
    rows = sorted(summarise(results), key=lambda r: (bases.index(r["base"]), list(methods).index(r["method"])))
    reports = [Path(c["run_dir"]) / "metrics.json" for c in results]
    records = read_invocations(out)
    if records:  # the ablation's own clock: every invocation so far, the running one up to its last beat
        wall_s, invocations = totals(records)
        wall_note = "Wall time here is the ablation's own, summed over its invocations so far (`wall.json`)."
    else:
        first = min(os.path.getmtime(Path(c["run_dir"]) / "config.json") for c in results)
        wall_s, invocations = max(os.path.getmtime(p) for p in reports) - first, 1
        wall_note = "Wall time here runs from the first finished cell's start to the last one's end."
    meta = {"command": command, "config": config_path, "methods": list(methods), "seeds": list(range(seeds)),
            "wall_s": wall_s, "invocations": invocations,
            "cpus": os.cpu_count(), "workers": workers, "n_eval": results[0]["metrics"].get("n"),
            "finished": "— PARTIAL (see the banner)"}
    boot, curves = _paired_intervals(results), _reward_curves(results)
    plot = plot_ablation(rows, out / "partial_ablation.png")
    plot_reward_curves(curves, out / "partial_reward_curves.png")
    banner = (f"> **Partial table**: {len(results)} of {len(cells)} planned cells finished; "
              f"missing: {', '.join(missing) or 'none'}. {wall_note} Rows with fewer seeds have wider "
              f"intervals; a goal check over "
              f"a missing method says 'not run'.\n\n")
    text = results_markdown(rows, meta, plot.name, boot, curves)
    head, rest = text.split("\n", 1)
    path = out / "RESULTS.partial.md"
    atomic_write_text(head + "\n\n" + banner + rest, path)
    return path
