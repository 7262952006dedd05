"""The SCoRe pipeline as a Prefect flow — it reads like the paper (Kumar et al. 2024, Fig. 6):

    prepare data → (pre-train debug base) → evaluate base →
    for each stage iteration (Stage I, Stage II, optionally interleaved):
        rollout (two attempts, k samples) → grade (r1, r2) → train → evaluate
    → report

Runs on Prefect's embedded ephemeral API with no server, or as a deployment (`score deploy`,
`prefect.yaml`). Re-running the same command on the same run directory resumes after the
last finished step; one process at a time owns a run directory.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from prefect import flow

from score_core.config import RunConfig, load_config
from score_core.method.plan import method_plan
from score_core.schema import atomic_write_text
from tasks.concurrency import ensure_limits
from tasks.ledger import run_dir_lock
from tasks.report import write_report
import tasks.pipeline_tasks as pt
from tasks.pipeline_tasks import close_vllm_rollout_server, retry_policy


@flow(name="score_pipeline", log_prints=True)
def score_pipeline(config_path: str, overrides: list[str] | dict[str, Any] | None = None,
                   run_dir: Optional[str] = None) -> dict[str, Any]:
    """Train a model to self-correct with SCoRe (or the baseline/ablation `method` of the
    config: score_core/method/plan.py) and evaluate it after every training iteration.

    Args:
        config_path: YAML config file, e.g. configs/demo.yaml (relative paths are relative to
            the run's working directory: the repository root for its deployments).
        overrides: config fields to change, one KEY=VALUE per entry as with `score run --set`,
            e.g. train.lr=3e-4 or train.schedule=[stage1] (values are read as YAML); a
            {key: value} mapping works too.
        run_dir: output directory (empty: runs/NAME, NAME from the config); may contain
            {scheduled} (the run's scheduled start, UTC, YYYYmmdd-HHMMSS) or {flow_run_name},
            so each scheduled run gets its own directory. The same directory resumes.
    """
    cfg = load_config(config_path, parse_overrides(overrides))
    run = resolve_run_dir(run_dir or str(cfg.resolved_run_dir))
    with run_dir_lock(run):
        _pin_config(cfg, run)
        ensure_limits(cfg)
        try:
            return _stages(cfg, run, config_path)
        finally:
            close_vllm_rollout_server(run)  # rollout.engine: vllm — the run's one engine


def _stages(cfg: RunConfig, run: str, config_path: str) -> dict[str, Any]:
    o = cfg.orchestration  # retries on infrastructure errors only (tasks/pipeline_tasks.py)
    step_retries = retry_policy(o.step_retries, o.retry_backoff_s)  # GPU-bound: redone from the last checkpoint
    io_retries = retry_policy(o.io_retries, o.retry_backoff_s)
    prepare_data, sft_data = pt.prepare_data.with_options(**io_retries), pt.sft_data.with_options(**io_retries)
    grade = pt.grade.with_options(**io_retries)
    pretrain = pt.pretrain_debug_base.with_options(**step_retries)
    rollout, train = pt.rollout.with_options(**step_retries), pt.train.with_options(**step_retries)

    def evaluate(model_dir: str, stage: str, it: int) -> dict[str, Any]:
        traces = rollout(cfg, run, model_dir, data["eval_path"], stage, it, evaluation=True)
        return {"stage": stage, "iteration": it, "model": model_dir,
                **grade(cfg, run, traces, data["eval_path"])}

    data = prepare_data(cfg, run)
    base_dir = cfg.model.path or pretrain(cfg, run)
    plan = method_plan(cfg.method, cfg.train)  # Stage I / Stage II / a baseline's iterations, α β1 β2 included
    evals = [evaluate(base_dir, "base", 0)] if cfg.eval.base or not plan else []
    trains: list[dict[str, Any]] = []
    rollouts: list[dict[str, Any]] = []
    policy_dir = base_dir
    for it, step_plan in enumerate(plan, start=1):
        stage = step_plan.name
        sampler = base_dir if step_plan.sample_from == "base" else policy_dir
        traces = rollout(cfg, run, sampler, data["train_path"], stage, it, frozen=sampler == base_dir)
        graded = grade(cfg, run, traces, data["train_path"])
        rollouts.append({"stage": stage, "iteration": it, **graded})
        examples = graded["path"]
        if step_plan.sft_data:
            examples = sft_data(cfg, run, graded["path"], step_plan.sft_data, it)["path"]
        step = train(cfg, run, policy_dir, base_dir, examples, data["train_path"], step_plan, it)
        trains.append({"stage": stage, "iteration": it, **step})
        policy_dir = step["checkpoint"]
        if cfg.eval.every_iteration or it == len(plan):
            evals.append(evaluate(policy_dir, stage, it))
    report = write_report.with_options(task_run_name="report")(run, cfg.name, config_path, evals, trains,
                                                                data, rollouts)
    return {"run_dir": run, "evals": evals, "train": trains, "rollouts": rollouts, **report}


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> Optional[dict[str, Any]]:
    """`["train.lr=3e-4", ...]` (values YAML, as `--set`) or a mapping → a mapping (or None)."""
    if not overrides:
        return None
    if isinstance(overrides, dict):
        return dict(overrides)
    import yaml

    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"overrides: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def resolve_run_dir(template: str) -> str:
    """Fill `{flow_run_name}` / `{scheduled}` from the current flow run (if any)."""
    if "{" not in template:
        return str(Path(template))
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time or datetime.now(timezone.utc)
    return str(Path(template.format(flow_run_name=flow_run.name or "local",
                                    scheduled=scheduled.strftime("%Y%m%d-%H%M%S"))))


def _identity(cfg: RunConfig) -> dict[str, Any]:
    """What makes two runs the same run: everything but how Prefect orchestrates it."""
    return cfg.model_dump(mode="json", exclude={"orchestration"})


def finished_run(config_path: str, overrides: list[str] | dict[str, Any] | None,
                 run_dir: str) -> Optional[dict[str, Any]]:
    """The report (metrics.json) of a run that already finished in `run_dir` with this config,
    else None. Running the flow there again would only replay its ledger, one task run per
    step; `score ablate` reads a finished cell instead. A run made with another config is not
    finished for this one: the flow then refuses the directory (`_pin_config`)."""
    cfg = load_config(config_path, parse_overrides(overrides))
    run = Path(resolve_run_dir(run_dir))
    report = run / "metrics.json"
    if not report.is_file() or _pinned_identity(run) != _identity(cfg):
        return None
    return json.loads(report.read_text())


def _pinned_identity(run_dir: str | Path) -> Optional[dict[str, Any]]:
    """The identity recorded in `run_dir`'s config.json (None: no run pinned there yet)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    previous = json.loads(path.read_text())
    previous.pop("orchestration", None)
    return previous


def _pin_config(cfg: RunConfig, run_dir: str) -> None:
    """Record the config in the run directory; refuse to resume a run made with another one."""
    current, previous = _identity(cfg), _pinned_identity(run_dir)
    if previous is not None:
        if previous != current:
            raise ValueError(
                f"{run_dir} holds a run made with a different config; pass --run-dir for a new "
                f"directory or delete {run_dir} to start over")
        return
    atomic_write_text(json.dumps(current, indent=2), Path(run_dir) / "config.json")
