"""`score bench pipeline`: what Prefect orchestration costs on one debug-scale iteration.

In one invocation, on the same pre-trained base model and problems, run one Stage I
iteration (evaluate base → rollout → grade → train → evaluate → report) twice:
  direct — the same `score_core.steps` calls, in this process, no Prefect;
  flow   — `score_pipeline` on the embedded Prefect API: tasks, ledger, child processes
           for rollout/training (forkserver), artifacts.
Once-per-process costs are measured and printed separately, not counted in the ratio: the
ephemeral API's start-up (a warm-up flow) and the step forkserver's start (its imports).
Goal: overhead ≤ 5% of the iteration's time.
Timings on a shared 2-core machine are noisy; `--repeats` alternates the two.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

EPILOG = """examples:
  score bench pipeline                                 # configs/demo.yaml, one Stage I iteration
  score bench pipeline --set train.prompts_per_iteration=128 --repeats 2
"""


def direct_iteration(cfg: Any, run: Path) -> None:
    """The flow's score_core calls, made directly (same order, same arguments)."""
    from score_core import steps
    from tasks.report import write_report

    data = {f"{r}_{k}": v for r, rec in steps.prepare_problems(cfg, run).items() for k, v in rec.items()}
    base = cfg.model.path
    traces = run / "traces"

    def evaluate(model: str, stage: str, it: int) -> dict:
        raw = str(traces / f"eval_{stage}_it{it:03d}_raw.parquet")
        steps.rollout_step(model, data["eval_path"], raw, run_id=cfg.name, stage=stage, iteration=it,
                           k=1, temperature=0.0, max_new_tokens=cfg.eval.max_new_tokens,
                           batch_size=cfg.eval.batch_size, seed=cfg.train.seed, dtype=cfg.model.dtype)
        out = steps.grade_step(raw, data["eval_path"], raw.replace("_raw", ""),
                               math_timeout_s=cfg.grading.math_timeout_s)
        return {"stage": stage, "iteration": it, "model": model, **out}

    evals = [evaluate(base, "base", 0)]
    raw = str(traces / "rollout_stage1_it001_raw.parquet")
    steps.rollout_step(base, data["train_path"], raw, run_id=cfg.name, stage="stage1", iteration=1,
                       k=cfg.rollout.k, temperature=cfg.rollout.temperature,
                       max_new_tokens=cfg.rollout.max_new_tokens, batch_size=cfg.rollout.batch_size,
                       seed=cfg.train.seed + 1000, limit=cfg.train.prompts_per_iteration, offset=0,
                       dtype=cfg.model.dtype)
    graded = steps.grade_step(raw, data["train_path"], raw.replace("_raw", ""),
                              math_timeout_s=cfg.grading.math_timeout_s)
    ckpt = str(run / "checkpoints" / "it001_stage1")
    step = steps.train_step(cfg, base, base, graded["path"], data["train_path"], "stage1", ckpt, 1)
    evals.append(evaluate(ckpt, "stage1", 1))
    write_report.fn(str(run), cfg.name, "bench", evals, [{"stage": "stage1", "iteration": 1, **step}],
                    data, [{"stage": "stage1", "iteration": 1, **graded}])


def run_bench(config: str, overrides: dict, out: Path, repeats: int) -> dict[str, Any]:
    from prefect import flow

    from flows.pipeline import score_pipeline
    from score_core.config import load_config
    from score_core.debug_model import pretrain_debug_base
    from tasks.isolation import warm_up

    out.mkdir(parents=True, exist_ok=True)
    cfg0 = load_config(config, overrides)
    base = out / "base"
    if not (base / "config.json").is_file():
        print(f"pre-training the debug base model once ({cfg0.model.debug_base.steps} steps, not timed)")
        pretrain_debug_base(cfg0.model.debug_base, base)
    overrides = {**overrides, "model.path": str(base), "train.schedule": ["stage1"],
                 "eval.every_iteration": True}
    cfg = load_config(config, overrides)
    t0 = time.perf_counter()
    flow(name="bench-warmup")(lambda: None)()
    api_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm_up()
    forkserver_start_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {"direct": [], "flow": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        direct_iteration(cfg, out / f"direct-{r}")
        times["direct"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_pipeline(config_path=str(Path(config).resolve()), overrides=overrides, run_dir=str(out / f"flow-{r}"))
        times["flow"].append(time.perf_counter() - t0)
        print(f"repeat {r}: direct {times['direct'][-1]:.1f} s, flow {times['flow'][-1]:.1f} s")
    direct, flowed = sum(times["direct"]), sum(times["flow"])
    return {"config": config, "overrides": overrides, "repeats": repeats, "api_start_s": api_start_s,
            "forkserver_start_s": forkserver_start_s,
            "direct_s": times["direct"], "flow_s": times["flow"],
            "overhead_ratio": (flowed - direct) / direct, "cpu_count": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0]}


def bench_pipeline(args: argparse.Namespace) -> int:
    from score.cli import _parse_set, _quiet_prefect

    _quiet_prefect()
    os.environ.setdefault("SCORE_PROGRESS", "0")
    r = run_bench(args.config, _parse_set(args.set), Path(args.out), args.repeats)
    print(json.dumps(r, indent=2))
    print(f"\nPrefect overhead: {100 * r['overhead_ratio']:+.1f}% of one iteration's wall time "
          f"(direct {sum(r['direct_s']):.1f} s vs flow {sum(r['flow_s']):.1f} s over {r['repeats']} "
          f"repeat(s); goal ≤ 5%).\nOnce per process, not in the ratio: ephemeral API start "
          f"{r['api_start_s']:.1f} s, step forkserver start (imports) {r['forkserver_start_s']:.1f} s.")
    return 0


def add_bench_command(bench_subparsers: Any) -> argparse.ArgumentParser:
    p = bench_subparsers.add_parser(
        "pipeline", help="Prefect overhead: one debug-scale iteration as the flow vs direct calls",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo.yaml", help="config (default configs/demo.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--out", default="runs/bench-pipeline", help="scratch directory (default runs/bench-pipeline)")
    p.add_argument("--repeats", type=int, default=1, help="alternate direct/flow this many times")
    p.set_defaults(func=bench_pipeline)
    return p
