"""`score bench pipeline`: where a debug-scale iteration's wall time goes, and what Prefect
and child processes add to it.

In one invocation, on the same pre-trained base model and problems, one Stage I iteration
(evaluate base → rollout → grade → train → evaluate → report) runs in each mode, alternating:
  direct       — the same `score_core.steps` calls, in this process: no Prefect, no children
                 (the baseline);
  flow_inline  — `score_pipeline` on the embedded Prefect API, steps in this process
                 (`orchestration.isolate_steps=inline`);
  flow_process — the default flow: rollout and training in forkserver child processes;
  flow_notags  — (what-if, `--modes`) flow_process with the tasks' tags removed in this
                 process, i.e. without Prefect's per-task tag-concurrency lease round trips.
Each step's phases (decode, grading, optimizer loop, model load/save, Parquet I/O, child
process, ledger) are timed by `score_core.timing` in whichever process runs them; the
split is in `flows/bench_split.py`. `--prompts 32,256` repeats it at several iteration
sizes (× k episodes) to separate fixed from per-episode costs. Once-per-process costs (the
ephemeral API's start, the forkserver's imports) are printed apart, not in any ratio.
Timings on a shared 2-core machine are noisy; `--repeats` alternates the modes.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from pathlib import Path
from typing import Any

EPILOG = """examples:
  score bench pipeline                                 # configs/demo.yaml, one Stage I iteration
  score bench pipeline --prompts 32,256 --repeats 2     # 128 vs 1024 episodes per iteration
"""


def direct_iteration(cfg: Any, run: Path, windows: list) -> None:
    """The flow's score_core calls, made directly (same order, same arguments)."""
    from score_core.method.plan import method_plan
    from score_core.steps.grade import grade_step
    from score_core.steps.prepare import prepare_problems
    from tasks.pipeline_tasks import _code_runner

    def step(key: str, fn: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.time()
        try:
            return fn(*a, **kw)
        finally:
            windows.append((key, t0, time.time()))

    prep = step("prepare_data", prepare_problems, cfg, run)
    data = {f"{r}_{k}": v for r, rec in prep.items() for k, v in rec.items()}
    base = cfg.model.path
    runner = _code_runner(cfg, data["train_path"], str(run))  # the flow's sandbox + verdict cache
    grading = dict(math_timeout_s=cfg.grading.math_timeout_s, code_runner=runner,
                   code_timeout_s=cfg.grading.code_timeout_s, code_memory_mb=cfg.grading.code_memory_mb)
    try:
        _direct_steps(cfg, run, step, data, base, grading)
    finally:
        if runner is not None:
            runner.close()


def _direct_steps(cfg: Any, run: Path, step: Any, data: dict, base: str, grading: dict) -> None:
    from score_core.method.plan import method_plan
    from score_core.steps.grade import grade_step
    from score_core.steps.rollout import rollout_step
    from score_core.steps.train import train_step
    from tasks.report import write_report

    traces = run / "traces"

    def evaluate(model: str, stage: str, it: int) -> dict:
        raw = str(traces / f"eval_{stage}_it{it:03d}_raw.parquet")
        step(f"eval/{stage}/it{it:03d}", rollout_step, model, data["eval_path"], raw, run_id=cfg.name,
             stage=stage, iteration=it, k=1, temperature=0.0, max_new_tokens=cfg.eval.max_new_tokens,
             batch_size=cfg.eval.batch_size, seed=cfg.train.seed, dtype=cfg.model.dtype)
        out = step(f"grade/eval_{stage}_it{it:03d}", grade_step, raw, data["eval_path"],
                   raw.replace("_raw", ""), **grading)
        return {"stage": stage, "iteration": it, "model": model, **out}

    evals = [evaluate(base, "base", 0)]
    raw = str(traces / "rollout_stage1_it001_raw.parquet")
    step("rollout/stage1/it001", rollout_step, base, data["train_path"], raw, run_id=cfg.name,
         stage="stage1", iteration=1, k=cfg.rollout.k, temperature=cfg.rollout.temperature,
         max_new_tokens=cfg.rollout.max_new_tokens, batch_size=cfg.rollout.batch_size,
         seed=cfg.train.seed + 1000, limit=cfg.train.prompts_per_iteration, offset=0, dtype=cfg.model.dtype)
    graded = step("grade/rollout_stage1_it001", grade_step, raw, data["train_path"],
                  raw.replace("_raw", ""), **grading)
    ckpt = str(run / "checkpoints" / "it001_stage1")
    stage1 = method_plan("score", cfg.train.model_copy(update={"schedule": ["stage1"]}))[0]
    tr = step("train/stage1/it001", train_step, cfg, base, base, graded["path"], data["train_path"],
              stage1, ckpt, 1)
    evals.append(evaluate(ckpt, "stage1", 1))
    write_report.fn(str(run), cfg.name, "bench", evals, [{"stage": "stage1", "iteration": 1, **tr}],
                    data, [{"stage": "stage1", "iteration": 1, **graded}])  # timed: _instrument


_WINDOWS: list = []  # the current flow run's step windows (filled by the wrapped `once`)


def _instrument() -> None:
    """Time the flow's step bodies (windows) and ledger look-ups in this process, by wrapping
    the module functions the tasks call (measurement only; the flow's code is unchanged)."""
    import tasks.ledger as ledger
    import tasks.pipeline_tasks as tsteps
    from score_core.timing import phase
    from tasks.report import write_report

    if getattr(tsteps.once, "_bench", False):
        return
    windows = _WINDOWS
    orig_once, orig_finished, orig_record, orig_report = tsteps.once, ledger.finished, ledger.record, write_report.fn

    def once(run_dir: Any, key: str, fn: Any) -> Any:
        def body() -> Any:
            t0 = time.time()
            try:
                return fn()
            finally:
                windows.append((key, t0, time.time()))
        return orig_once(run_dir, key, body)

    def timed(f: Any, name: str) -> Any:
        @functools.wraps(f)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with phase(name):
                return f(*a, **kw)
        return wrapper

    once._bench = True  # type: ignore[attr-defined]
    tsteps.once = once
    ledger.finished, ledger.record = timed(orig_finished, "ledger"), timed(orig_record, "ledger")
    write_report.fn = timed(orig_report, "report")


@contextlib.contextmanager
def _untagged(on: bool) -> Any:
    """flow_notags: the default flow with its tasks' tags removed for this run, in this process
    only — what dropping `tags=[...]` from the @task decorators of tasks/pipeline_tasks.py would save
    (each tagged task run makes a blocking tag-concurrency lease round trip to the API before
    it starts). Measurement only: the tags are restored afterwards."""
    import tasks.pipeline_tasks as tsteps

    names = ("prepare_data", "pretrain_debug_base", "rollout", "grade", "train", "sft_data")
    saved = {n: set(getattr(tsteps, n).tags) for n in names}
    if on:
        for n in names:
            getattr(tsteps, n).tags = set()
    try:
        yield
    finally:
        for n, tags in saved.items():
            getattr(tsteps, n).tags = tags


def _timed_run(mode: str, config: str, overrides: dict, run: Path, sink: str) -> dict[str, float]:
    from flows.bench_split import split
    from flows.pipeline import score_pipeline
    from score_core.config import load_config
    from score_core.timing import read_lines

    windows = _WINDOWS
    windows.clear()
    shutil.rmtree(run, ignore_errors=True)  # a fresh run directory: nothing resumes
    _instrument()
    t0 = time.time()
    if mode == "direct":
        direct_iteration(load_config(config, overrides), run, windows)
    else:
        iso = {"orchestration.isolate_steps": "inline" if mode == "flow_inline" else "process"}
        with _untagged(mode == "flow_notags"):
            score_pipeline(config_path=str(Path(config).resolve()), overrides={**overrides, **iso},
                           run_dir=str(run))
    t1 = time.time()
    return split(read_lines(sink), windows, t0, t1)


def debug_base_once(cfg: Any, out: Path) -> Path:
    """`out/base`: the config's debug base, pre-trained on the first call only (not timed)."""
    from score_core.generation.debug_model import pretrain_debug_base

    base = out / "base"
    if not (base / "config.json").is_file():
        print(f"pre-training the debug base model once ({cfg.model.debug_base.steps} steps, not timed)")
        pretrain_debug_base(cfg.model.debug_base, base)
    return base


def run_bench(config: str, overrides: dict, out: Path, repeats: int, prompts: list[int],
              modes: list[str]) -> dict[str, Any]:
    from prefect import flow

    from flows.bench_split import mean_splits, with_prefect
    from score_core import timing
    from score_core.config import load_config
    from tasks.isolation import warm_up

    out.mkdir(parents=True, exist_ok=True)
    sink = str(out / "timing.jsonl")
    Path(sink).unlink(missing_ok=True)
    os.environ[timing.ENV] = sink  # before the forkserver starts: its children inherit it
    cfg0 = load_config(config, overrides)
    base = debug_base_once(cfg0, out)
    overrides = {**overrides, "model.path": str(base), "train.schedule": ["stage1"], "eval.every_iteration": True}
    t0 = time.perf_counter()
    flow(name="bench-warmup")(lambda: None)()
    api_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm_up()
    forkserver_start_s = time.perf_counter() - t0
    results: dict[str, Any] = {}
    for p in prompts:
        ov = {**overrides, "train.prompts_per_iteration": p}
        k = load_config(config, ov).rollout.k
        runs: dict[str, list] = {m: [] for m in modes}
        for r in range(repeats):
            for m in (modes if r % 2 == 0 else modes[::-1]):
                runs[m].append(_timed_run(m, config, ov, out / f"p{p}-{m}-{r}", sink))
                print(f"{p * k} episodes, repeat {r}, {m}: {runs[m][-1]['wall']:.1f} s", flush=True)
        per = {"direct": mean_splits(runs["direct"])} if "direct" in runs else {}
        for m in modes:
            if m != "direct":
                per[m] = mean_splits([with_prefect(d, f) for d, f in zip(runs["direct"], runs[m])])
        if "direct" in per:
            per["direct"] = with_prefect(per["direct"], per["direct"])
        results[str(p * k)] = {"prompts": p, "k": k, "mean": per, "runs": runs}
    return {"config": config, "overrides": overrides, "repeats": repeats, "modes": modes,
            "api_start_s": api_start_s, "forkserver_start_s": forkserver_start_s, "results": results,
            "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}
