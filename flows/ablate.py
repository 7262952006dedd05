"""`score ablate`: every method × every base model × seeds, on the same data, as one flow.

    pre-train each debug base model once (or use `model.path`) →
    for each (base, method, seed): the `score_pipeline` flow with that method → held-out metrics →
    table (mean ± 95% interval over seeds) + plot → run directory and docs/RESULTS.md

Cells run `workers` at a time (each pipeline's steps in their own child processes with
`torch_threads` threads), all as subflows visible in the Prefect UI. Every cell resumes
from its own ledger, so re-running the command after an interruption redoes only the
unfinished cells; the table's wall time is summed over all invocations on the output
directory, killed ones included (`score_core.tools.wall_clock`, `<out>/wall.json`).
Cells share one verdict cache (`<out>/verdicts.sqlite`) and the rollouts of the frozen bases
(`<out>/shared_rollouts/`): a rollout another cell already drew exactly is copied, not redrawn.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from score_core.tools.ablation import DETERMINISTIC, results_markdown, summarise
from score_core.tools.wall_clock import WallClock
from score_core.config import load_config
from score_core.method.plan import METHODS
from score_core.schema import atomic_write_text

TABLE_KEYS = ("accuracy_t1", "accuracy_t2", "delta_t1_t2", "delta_i_to_c", "delta_c_to_i",
              "unchanged_rate", "unchanged_answer_rate", "edit_distance_ratio", "n", "n_unscored")


@task(name="pretrain-ablation-base", task_run_name="pretrain debug base · seed {base_seed}")
def pretrain_base(config_path: str, overrides: dict[str, Any], base_seed: int, out_dir: str) -> str:
    """One independently pre-trained debug base model (weights and corpus from `base_seed`)."""
    from score_core.generation.debug_model import pretrain_debug_base
    from score_core.progress import call_reporting
    from tasks.isolation import run_in_child
    from tasks.ledger import once
    from tasks.progress import ui_progress

    cfg = load_config(config_path, overrides)
    debug = cfg.model.debug_base.model_copy(update={"seed": base_seed})
    model_dir = str(Path(out_dir) / "bases" / f"debug-seed{base_seed}")

    def run() -> dict[str, Any]:
        with ui_progress() as sink:  # the UI's progress card; the terminal stays quiet
            step = {"cfg": debug, "out_dir": model_dir, "progress": False}
            return run_in_child(call_reporting, {"target": pretrain_debug_base, "kwargs": step, "path": sink},
                                threads=cfg.orchestration.torch_threads)

    once(out_dir, f"pretrain/base{base_seed}", run)
    return model_dir


@task(name="ablation-cell", task_run_name="cell · {base_name} · {method} · seed {seed}")
def run_cell(config_path: str, overrides: dict[str, Any], base_name: str, base_dir: str, method: str,
             seed: int, out_dir: str) -> dict[str, Any]:
    """One (base, method, seed) pipeline run; returns its final held-out metrics. A cell an
    earlier invocation finished (same config) is read from its run directory, not replayed:
    replaying 30 finished cells' ≈ 3,600 steps through the flow overloaded the embedded
    Prefect API (503s) when the code table was resumed."""
    from flows.pipeline import finished_run, score_pipeline

    run_dir = str(Path(out_dir) / "cells" / base_name / f"{method}-seed{seed}")
    cell = {**overrides, "model.path": base_dir, "method": method, "train.seed": seed,
            "name": f"ablate-{base_name}-{method}-s{seed}", "eval.every_iteration": False,
            "eval.base": method in DETERMINISTIC}
    done = finished_run(config_path, cell, run_dir)
    if done is not None:
        print(f"{base_name}/{method}/seed{seed}: finished by an earlier invocation, read from {run_dir}")
        return cell_record(base_name, method, seed, run_dir, done["evals"][-1], 0.0)
    t0 = time.perf_counter()
    result = score_pipeline.with_options(flow_run_name=f"{base_name}/{method}/seed{seed}")(
        config_path=config_path, overrides=cell, run_dir=run_dir)
    return cell_record(base_name, method, seed, run_dir, result["evals"][-1], time.perf_counter() - t0)


def cell_record(base: str, method: str, seed: int, run_dir: str, final: dict[str, Any], wall_s: float
                ) -> dict[str, Any]:
    """What a finished cell contributes to the table: its final held-out evaluation."""
    return {"base": base, "method": method, "seed": seed, "run_dir": run_dir, "eval_path": final["path"],
            "metrics": {k: final[k] for k in TABLE_KEYS if k in final}, "wall_s": wall_s}


# Order of a seed's cells: the headline comparison finishes first; Pair-SFT samples the base in
# every iteration exactly as STaR-base does, so it runs after it and copies its rollouts
# (`orchestration.rollout_share`) instead of racing it to sample the same tokens.
CELL_ORDER = {"score": 0, "multi_turn_rl": 1, "pair_sft": 3}


@flow(name="score_ablate", log_prints=True)
def score_ablate(config_path: str, seeds: int = 3, methods: Optional[Sequence[str]] = None,
                 base_seeds: Sequence[int] = (0, 1), out_dir: str = "runs/ablate", workers: int = 2,
                 overrides: Optional[dict[str, Any]] = None, results_md: Optional[str] = "docs/RESULTS.md",
                 command: str = "") -> dict[str, Any]:
    """Run the comparison and write table, plot and RESULTS.md (see module docstring). The wall
    time in the table is summed over every invocation on `out_dir` (`<out_dir>/wall.json`)."""
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; expected some of {METHODS}")
    config_path = str(Path(config_path).resolve())
    overrides = {"orchestration.verdict_cache": str(Path(out_dir).resolve() / "verdicts.sqlite"),  # one for all cells
                 "orchestration.rollout_share": str(Path(out_dir).resolve() / "shared_rollouts"),  # the bases' rollouts
                 **(overrides or {}), "orchestration.gpu_slots": workers,
                 "orchestration.torch_threads": max(1, (os.cpu_count() or 1) // workers)}
    cfg = load_config(config_path, overrides)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with WallClock(out_dir, legacy=_previous_meta(out_dir)) as clock:  # killed invocations count too
        results, rows, bases = _run_cells(config_path, overrides, cfg, methods, seeds, base_seeds, out_dir, workers)
        wall_s, invocations = clock.totals()
        meta = {"command": command or f"score ablate {config_path} --seeds {seeds}", "config": config_path,
                "methods": methods, "seeds": list(range(seeds)), "wall_s": wall_s, "invocations": invocations,
                "cpus": os.cpu_count(), "workers": workers, "n_eval": results[0]["metrics"].get("n"),
                "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        return _write_outputs(out_dir, results, rows, meta, results_md)


def _run_cells(config_path: str, overrides: dict[str, Any], cfg: Any, methods: list[str], seeds: int,
               base_seeds: Sequence[int], out_dir: str, workers: int) -> tuple[list, list, dict[str, str]]:
    """Bases, then every (base, method, seed) cell `workers` at a time → (cell records, table rows, bases)."""
    bases = _bases(config_path, overrides, cfg.model.path, base_seeds, out_dir, workers)
    cells = sorted(((name, path, m, s) for name, path in bases.items() for m in methods
                    for s in (range(1) if m in DETERMINISTIC else range(seeds))),
                   key=lambda c: (c[3], CELL_ORDER.get(c[2], 2)))
    with ThreadPoolTaskRunner(max_workers=workers) as runner:
        futures = [runner.submit(run_cell, {"config_path": config_path, "overrides": overrides, "base_name": name,
                                            "base_dir": path, "method": m, "seed": s, "out_dir": out_dir})
                   for name, path, m, s in cells]
        _report_progress(futures, [c[2] for c in cells], len(cfg.train.schedule), workers)
        results = [f.result() for f in futures]
    rows = sorted(summarise(results), key=lambda r: (list(bases).index(r["base"]), methods.index(r["method"])))
    return results, rows, bases


def _report_progress(futures: list[Any], methods: list[str], n_iterations: int, workers: int) -> None:
    """As each cell finishes: one line (cells done, its Acc@t1 → Acc@t2, ≈ time left) in the
    log and on the flow run's progress card in the UI. A failed cell is left to `.result()`."""
    from prefect.futures import as_completed
    from score_core.tools.ablation_progress import AblationProgress, cell_units
    from tasks.progress import ProgressCard

    units = {id(f): cell_units(n_iterations, m not in DETERMINISTIC) for f, m in zip(futures, methods)}
    tracker = AblationProgress(total_units=sum(units.values()), n_cells=len(futures), workers=workers)
    card = ProgressCard(f"**score ablate**: 0/{len(futures)} cells")
    for future in as_completed(futures):
        if future.state.is_failed():
            continue
        cell = future.result()
        label = f"{cell['base']}/{cell['method']}/seed{cell['seed']}"
        print(tracker.finish(label, units[id(future)], cell.get("wall_s", 0.0), cell["metrics"]))
        card.update(100 * tracker.fraction, tracker.markdown())


def _previous_meta(out_dir: str) -> dict[str, Any]:
    """The meta record of an earlier finished invocation on `out_dir` (the wall time of a run
    directory written before `wall.json` existed)."""
    path = Path(out_dir) / "ablation.json"
    return json.loads(path.read_text()).get("meta", {}) if path.is_file() else {}


def _bases(config_path: str, overrides: dict[str, Any], model_path: Optional[str], base_seeds: Sequence[int],
           out_dir: str, workers: int) -> dict[str, str]:
    """name → model directory: the configured model, or one pre-trained debug base per seed."""
    if model_path:
        return {Path(model_path).name: model_path}
    with ThreadPoolTaskRunner(max_workers=workers) as runner:
        futures = {f"debug-seed{s}": runner.submit(pretrain_base, {"config_path": config_path, "overrides": overrides,
                                                                   "base_seed": s, "out_dir": out_dir})
                   for s in base_seeds}
        return {name: f.result() for name, f in futures.items()}


def _write_outputs(out_dir: str, results: list[dict[str, Any]], rows: list[dict[str, Any]],
                   meta: dict[str, Any], results_md: Optional[str]) -> dict[str, Any]:
    from tasks.plots import plot_ablation, plot_reward_curves

    out = Path(out_dir)
    boot, curves = _paired_intervals(results), _reward_curves(results)
    atomic_write_text(json.dumps({"meta": meta, "cells": results, "rows": rows,
                                  "paired_bootstrap": {b: {m: {k: iv._asdict() for k, iv in ivs.items()}
                                                           for m, ivs in by.items()} for b, by in boot.items()},
                                  "reward_curves": curves},
                                 indent=2), out / "ablation.json")
    plot = plot_ablation(rows, out / "ablation.png")
    plot_reward_curves(curves, out / "reward_curves.png")
    text = results_markdown(rows, meta, plot.name, boot, curves)
    atomic_write_text(text, out / "RESULTS.md")
    if results_md:  # the repository's copy, with its own plot beside it
        md = Path(results_md)
        doc_plot = plot_ablation(rows, md.parent / f"{md.stem.lower()}_ablation.png")
        plot_reward_curves(curves, md.parent / f"{md.stem.lower()}_reward_curves.png")
        atomic_write_text(results_markdown(rows, meta, doc_plot.name, boot, curves) + _hand_written(md), md)
    print(text)
    return {"out_dir": str(out), "rows": rows, "meta": meta}


def _paired_intervals(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """base → method → paired-bootstrap intervals (score_core.tools.ablation.paired_intervals),
    from each cell's graded held-out traces."""
    from score_core.tools.ablation import paired_intervals
    from score_core.evaluation.tracefile import per_problem_rewards

    per_base: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for cell in sorted(results, key=lambda c: c["seed"]):
        per_base.setdefault(cell["base"], {}).setdefault(cell["method"], []).append(
            per_problem_rewards(cell["eval_path"]))
    return {base: paired_intervals(by_method) for base, by_method in per_base.items()}


def _reward_curves(results: list[dict[str, Any]]) -> dict[str, dict[str, list[list[float]]]]:
    """base → method → per seed, the mean r2 of each training iteration's rollouts (from the
    cell's metrics.json; methods without training rollouts have none)."""
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for cell in sorted(results, key=lambda c: c["seed"]):
        metrics = json.loads((Path(cell["run_dir"]) / "metrics.json").read_text())
        curve = [r["reward_stats"]["reward2_mean"] for r in metrics.get("rollouts", [])]
        if curve:
            curves.setdefault(cell["base"], {}).setdefault(cell["method"], []).append(curve)
    return curves


READING_MARK = "<!-- hand-written below: `score ablate` keeps everything after this line -->"


def _hand_written(md: Path) -> str:
    """The hand-written part of an existing RESULTS.md (the task's design, the reading), kept
    below the regenerated tables; a placeholder mark when there is none yet."""
    old = md.read_text() if md.is_file() else ""
    kept = old.split(READING_MARK, 1)[1] if READING_MARK in old else "\n\n(no reading written yet)\n"
    return "\n" + READING_MARK + kept
