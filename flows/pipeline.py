"""The SCoRe pipeline as a Prefect flow — it reads like the paper (Kumar et al. 2024, Fig. 6):

    prepare data → (pre-train debug base) → evaluate base →
    for each stage iteration (Stage I, Stage II, optionally interleaved):
        rollout (two attempts, k samples) → grade (r1, r2) → train → evaluate
    → report

Runs on Prefect's embedded ephemeral API with no server, or as a deployment. Re-running
the same command on the same run directory resumes after the last finished step.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from prefect import flow

from score_core.config import RunConfig, load_config
from score_core.schema import atomic_write_text
from tasks.report import write_report
from tasks.steps import grade, prepare_data, pretrain_debug_base, rollout, train


def _evaluate(cfg: RunConfig, run_dir: str, model_dir: str, data: dict, stage: str, it: int) -> dict:
    traces = rollout(cfg, run_dir, model_dir, data["eval_path"], stage, it, evaluation=True)
    return {"stage": stage, "iteration": it, "model": model_dir,
            **grade(cfg, run_dir, traces, data["eval_path"])}


@flow(name="score_pipeline", log_prints=True)
def score_pipeline(config_path: str, overrides: Optional[dict[str, Any]] = None,
                   run_dir: Optional[str] = None) -> dict[str, Any]:
    """Train a model to self-correct with SCoRe and evaluate it after every stage iteration."""
    cfg = load_config(config_path, overrides)
    run = str(Path(run_dir) if run_dir else cfg.resolved_run_dir)
    _pin_config(cfg, run)
    data = prepare_data(cfg, run)
    base_dir = cfg.model.path or pretrain_debug_base(cfg, run)
    evals = [_evaluate(cfg, run, base_dir, data, "base", 0)]
    trains: list[dict[str, Any]] = []
    policy_dir = base_dir
    schedule = cfg.train.schedule
    for it, stage in enumerate(schedule, start=1):
        traces = rollout(cfg, run, policy_dir, data["train_path"], stage, it)
        graded = grade(cfg, run, traces, data["train_path"])
        step = train(cfg, run, policy_dir, base_dir, graded["path"], data["train_path"], stage, it)
        trains.append({"stage": stage, "iteration": it, **step})
        policy_dir = step["checkpoint"]
        if cfg.eval.every_iteration or it == len(schedule):
            evals.append(_evaluate(cfg, run, policy_dir, data, stage, it))
    report = write_report(run, cfg.name, config_path, evals, trains, data)
    return {"run_dir": run, "evals": evals, "train": trains, **report}


def _pin_config(cfg: RunConfig, run_dir: str) -> None:
    """Record the config in the run directory; refuse to resume a run made with another one."""
    path = Path(run_dir) / "config.json"
    current = cfg.model_dump(mode="json")
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != current:
            raise ValueError(
                f"{run_dir} holds a run made with a different config; pass --run-dir for a new "
                f"directory or delete {run_dir} to start over")
        return
    atomic_write_text(json.dumps(current, indent=2), path)
