"""Prefect tasks of the SCoRe pipeline. Each one: one score_core step, run at most once per
run directory (see `ledger`), inputs and outputs are paths and small records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from prefect import get_run_logger, task

from score_core import steps
from score_core.config import RunConfig

from .ledger import once


def _log(msg: str) -> None:
    try:
        get_run_logger().info(msg)
    except Exception:  # called outside a run (tests via .fn())
        print(msg)


@task(name="prepare-data", tags=["io"], retries=2, retry_delay_seconds=[2, 10])
def prepare_data(cfg: RunConfig, run_dir: str) -> dict[str, Any]:
    """MATH / GSM8K / MBPP / HumanEval / synthetic problems → problems_{train,eval}.parquet."""
    out = once(run_dir, "prepare_data", lambda: _flat(steps.prepare_problems(cfg, Path(run_dir))))
    _log(f"problems: train {out['train_n']} (skipped {out['train_n_skipped']}), "
         f"eval {out['eval_n']} (skipped {out['eval_n_skipped']})")
    return out


def _flat(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    flat = {f"{role}_{k}": v for role, rec in nested.items() for k, v in rec.items()}
    flat["path"] = flat["train_path"]
    return flat


@task(name="pretrain-debug-base", tags=["gpu"])
def pretrain_debug_base(cfg: RunConfig, run_dir: str) -> str:
    """Debug scale only: build and pre-train the tiny from-scratch base model."""
    from score_core.debug_model import pretrain_debug_base as pretrain

    model_dir = str(Path(run_dir) / "checkpoints" / "base")
    out = once(run_dir, "pretrain_debug_base",
               lambda: {"model_dir": model_dir, **pretrain(cfg.model.debug_base, model_dir)})
    _log(f"debug base model at {out['model_dir']}")
    return out["model_dir"]


@task(name="rollout", tags=["gpu"])
def rollout(cfg: RunConfig, run_dir: str, model_dir: str, problems_path: str, stage: str,
            iteration: int, evaluation: bool = False) -> str:
    """Two attempts per problem: k samples at T=1.0 for training, greedy for evaluation."""
    key = f"{'eval' if evaluation else 'rollout'}/{stage}/it{iteration:03d}"
    out_path = str(Path(run_dir) / "traces" / f"{key.replace('/', '_')}_raw.parquet")
    if evaluation:
        kwargs = dict(k=1, temperature=0.0, max_new_tokens=cfg.eval.max_new_tokens,
                      batch_size=cfg.eval.batch_size, seed=cfg.train.seed)
    else:
        kwargs = dict(k=cfg.rollout.k, temperature=cfg.rollout.temperature,
                      max_new_tokens=cfg.rollout.max_new_tokens, batch_size=cfg.rollout.batch_size,
                      seed=cfg.train.seed + 1000 * iteration, limit=cfg.train.prompts_per_iteration,
                      offset=iteration - 1)
    out = once(run_dir, key, lambda: steps.rollout_step(
        model_dir, problems_path, out_path, run_id=cfg.name, stage=stage, iteration=iteration,
        dtype=cfg.model.dtype, **kwargs))
    _log(f"{key}: {out['episodes']} episodes, {out['gen_tokens_per_s']:.0f} tok/s")
    return out["path"]


@task(name="grade", tags=["sandbox"], retries=2, retry_delay_seconds=[5, 30])
def grade(cfg: RunConfig, run_dir: str, traces_path: str, problems_path: str) -> dict[str, Any]:
    """Rewards r1, r2: Math-Verify for answers, the Docker sandbox for code."""
    out_path = traces_path.replace("_raw.parquet", ".parquet")
    key = "grade/" + Path(out_path).stem

    def run() -> dict[str, Any]:
        runner = _code_runner(cfg, problems_path)
        try:
            return steps.grade_step(traces_path, problems_path, out_path,
                                    math_timeout_s=cfg.grading.math_timeout_s, code_runner=runner,
                                    code_timeout_s=cfg.grading.code_timeout_s,
                                    code_memory_mb=cfg.grading.code_memory_mb)
        finally:
            if runner is not None:
                runner.close()

    out = once(run_dir, key, run)
    _log(f"{key}: acc@t1 {out['accuracy_t1']:.3f} acc@t2 {out['accuracy_t2']:.3f} "
         f"unscored {out['n_unscored']}")
    return out


def _code_runner(cfg: RunConfig, problems_path: str) -> Optional[Any]:
    from score_core.schema import read_problems

    if not any(p.kind == "code" for p in read_problems(problems_path)):
        return None
    from sandbox import SandboxPool

    return SandboxPool(slots=cfg.grading.sandbox_slots)


@task(name="train", tags=["gpu"])
def train(cfg: RunConfig, run_dir: str, policy_dir: str, base_dir: str, traces_path: str,
          problems_path: str, stage: str, iteration: int) -> dict[str, Any]:
    """One SCoRe stage iteration (Stage I or Stage II) → a save_pretrained checkpoint."""
    out_dir = str(Path(run_dir) / "checkpoints" / f"it{iteration:03d}_{stage}")
    out = once(run_dir, f"train/{stage}/it{iteration:03d}", lambda: steps.train_step(
        cfg, policy_dir, base_dir, traces_path, problems_path, stage, out_dir, iteration))
    _log(f"train {stage} it{iteration}: loss {out.get('train/loss', float('nan')):.4f} "
         f"reward2 {out.get('train/reward2', float('nan')):.3f}")
    return out
