"""Prefect tasks of the SCoRe pipeline. Each one: one score_core step, run at most once per
run directory (see `ledger`), inputs and outputs are paths and small records.

Policy, task by task (retry counts: `orchestration.step_retries` / `io_retries`, applied by
`flows/pipeline.py` with `retry_policy`):

| task                | runs                                | where   | concurrency slot | retries |
|---------------------|-------------------------------------|---------|------------------|---------|
| prepare_data        | steps.prepare.prepare_problems      | inline  | —                | io      |
| pretrain_debug_base | generation.debug_model.pretrain_... | child   | score-gpu        | step    |
| rollout             | steps.rollout.rollout_step          | child   | score-gpu        | step    |
| grade               | steps.grade.grade_step              | inline  | score-grading    | io      |
| sft_data            | steps.prepare.sft_examples_step     | inline  | —                | io      |
| train               | steps.train.train_step              | child ¹ | score-gpu        | step    |

"child": a fresh process forked from a preloaded forkserver (`isolation`), so accelerator
memory is released when the step ends; ¹ `accelerate launch` when train.num_processes > 1.
Retries (exponential backoff with jitter) happen only on infrastructure errors — a dead
child process, I/O, the sandbox — never on bad data or a NaN loss (`retry_on_infrastructure`).
A retried or resumed training step starts again from the last complete checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from score_core.config import RunConfig
from score_core.generation.vllm_server import RolloutServer, VLLMUnavailable
from score_core.method.plan import Iteration

from .concurrency import slot
from .isolation import run_in_child
from .ledger import RunDirBusy, once
from .names import grade_name, rollout_name, train_name
from .progress import ui_progress

NOT_RETRIED = (ValueError, TypeError, KeyError, AttributeError, AssertionError, FloatingPointError,
               NotImplementedError, FileNotFoundError, RunDirBusy, VLLMUnavailable)
_VLLM_SERVERS: dict[str, RolloutServer] = {}  # run dir → the run's vLLM rollout server (this process owns it)


def vllm_rollout_server(run_dir: str) -> dict[str, str]:
    """The address of the run's vLLM rollout server: started at the run's first vLLM rollout,
    kept across iterations (one engine per run), restarted when it died (`EngineDied` is an
    infrastructure error: the rollout task is retried and lands here again). Closed by
    `close_vllm_rollout_server` when the flow ends; it also exits by itself if this process dies."""
    server = _VLLM_SERVERS.get(run_dir)
    if server is None:
        server = _VLLM_SERVERS[run_dir] = RolloutServer(log_path=str(Path(run_dir) / "logs" / "vllm_server.log"))
    restart = server.starts > 0 and not server.alive()
    address = server.ensure()
    if restart:
        _log(f"vLLM rollout server restarted (start {server.starts}); the rollout is redone")
    return address.to_dict()


def close_vllm_rollout_server(run_dir: str) -> None:
    server = _VLLM_SERVERS.pop(run_dir, None)
    if server is not None:
        server.close()


def _log(msg: str) -> None:
    try:
        get_run_logger().info(msg)
    except Exception:  # called outside a run (tests via .fn())
        print(msg)


def _call(run_cfg: RunConfig, step: Callable[..., dict[str, Any]], /, **kwargs: Any) -> dict[str, Any]:
    """Run the score_core function `step` in a child process, or inline; its progress bars
    also feed the task run's progress artifact in the UI (`progress`)."""
    from score_core.progress import call_reporting

    with ui_progress() as sink:
        args = {"target": step, "kwargs": kwargs, "path": sink}
        if run_cfg.orchestration.isolate_steps == "process":
            return run_in_child(call_reporting, args, threads=run_cfg.orchestration.torch_threads)
        return call_reporting(**args)


def retry_on_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry crashes and I/O / sandbox failures, not deterministic errors."""
    try:
        state.result()
    except NOT_RETRIED:
        return False
    except BaseException:
        return True
    return False


def retry_policy(retries: int, backoff_s: float) -> dict[str, Any]:
    """`Task.with_options` arguments: `retries` retries after 1, 2, 4, … × `backoff_s`
    seconds (±50% jitter), on infrastructure errors only."""
    return dict(retries=retries, retry_delay_seconds=exponential_backoff(backoff_s),
                retry_jitter_factor=0.5, retry_condition_fn=retry_on_infrastructure)


@task(name="prepare-data", task_run_name="prepare data")
def prepare_data(cfg: RunConfig, run_dir: str) -> dict[str, Any]:
    """MATH / GSM8K / MBPP / HumanEval / synthetic problems → problems_{train,eval}.parquet."""
    from score_core.steps.prepare import prepare_problems

    out = once(run_dir, "prepare_data", lambda: _flat(prepare_problems(cfg, Path(run_dir))))
    _log(f"problems: train {out['train_n']} (skipped {out['train_n_skipped']}), "
         f"eval {out['eval_n']} (skipped {out['eval_n_skipped']})")
    return out


def _flat(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    flat = {f"{role}_{k}": v for role, rec in nested.items() for k, v in rec.items()}
    flat["path"] = flat["train_path"]
    return flat


@task(name="pretrain-debug-base", task_run_name="pretrain debug base")
def pretrain_debug_base(cfg: RunConfig, run_dir: str) -> str:
    """Debug scale only: build and pre-train the tiny from-scratch base model."""
    model_dir = str(Path(run_dir) / "checkpoints" / "base")

    def run() -> dict[str, Any]:
        with slot("gpu", cfg):
            from score_core.generation.debug_model import pretrain_debug_base as pretrain_step

            metrics = _call(cfg, pretrain_step, cfg=cfg.model.debug_base, out_dir=model_dir)
        return {"model_dir": model_dir, **metrics}

    out = once(run_dir, "pretrain_debug_base", run)
    _log(f"debug base model at {out['model_dir']}")
    return out["model_dir"]


@task(name="rollout", task_run_name=rollout_name)
def rollout(cfg: RunConfig, run_dir: str, model_dir: str, problems_path: str, stage: str,
            iteration: int, evaluation: bool = False, frozen: bool = False) -> str:
    """Two attempts per problem: k samples at T=1.0 for training, greedy for evaluation.
    `frozen`: `model_dir` is the run's base, never trained: its rollouts may be shared with
    other runs (`orchestration.rollout_share`)."""
    key = f"{'eval' if evaluation else 'rollout'}/{stage}/it{iteration:03d}"
    out_path = str(Path(run_dir) / "traces" / f"{key.replace('/', '_')}_raw.parquet")
    if evaluation:
        kwargs = dict(k=1, temperature=0.0, max_new_tokens=cfg.eval.max_new_tokens,
                      batch_size=cfg.eval.batch_size, seed=cfg.train.seed,
                      turn2_style="self_refine" if cfg.method == "self_refine" else "score")
    else:
        kwargs = dict(k=cfg.rollout.k, temperature=cfg.rollout.temperature,
                      max_new_tokens=cfg.rollout.max_new_tokens, batch_size=cfg.rollout.batch_size,
                      seed=cfg.train.seed + 1000 * iteration, limit=cfg.train.prompts_per_iteration,
                      offset=iteration - 1)

    if cfg.rollout.engine == "vllm":
        kwargs.update(vllm_max_lora_rank=cfg.model.lora_rank if cfg.model.lora else None)
    elif frozen and cfg.orchestration.rollout_share:
        kwargs.update(share_dir=cfg.orchestration.rollout_share)

    def run() -> dict[str, Any]:
        with slot("gpu", cfg):
            if cfg.rollout.engine == "vllm":
                kwargs["vllm_server"] = vllm_rollout_server(run_dir)
            from score_core.steps.rollout import rollout_step  # (torch: imported where it runs)

            return _call(cfg, rollout_step, model_dir=model_dir,
                         problems_path=problems_path, out_path=out_path, run_id=cfg.name, stage=stage,
                         iteration=iteration, dtype=cfg.model.dtype, engine=cfg.rollout.engine,
                         vllm_gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
                         vllm_tensor_parallel_size=cfg.rollout.vllm_tensor_parallel_size, **kwargs)

    out = once(run_dir, key, run)
    _log(f"{key}: {out['episodes']} episodes, {out['gen_tokens_per_s']:.0f} tok/s"
         + (" (the same rollout of the frozen base by another run, copied)" if out.get("shared") else "")
         + (f", vLLM engine {'built' if out['vllm_engine_built'] else 'reused'} "
            f"(start {out['vllm_engine_start_s']:.1f} s, weight sync {out['vllm_sync_s']:.2f} s)"
            if "vllm_engine_built" in out else ""))
    return out["path"]


@task(name="grade", task_run_name=grade_name)
def grade(cfg: RunConfig, run_dir: str, traces_path: str, problems_path: str) -> dict[str, Any]:
    """Rewards r1, r2: Math-Verify for answers, the Docker sandbox for code."""
    from score_core.progress import reporting
    from score_core.steps.grade import grade_step

    out_path = traces_path.replace("_raw.parquet", ".parquet")
    key = "grade/" + Path(out_path).stem

    def run() -> dict[str, Any]:
        with slot("grading", cfg), ui_progress() as sink, reporting(sink):
            runner = _code_runner(cfg, problems_path, run_dir)
            try:
                out = grade_step(traces_path, problems_path, out_path,
                                 math_timeout_s=cfg.grading.math_timeout_s, code_runner=runner,
                                 code_timeout_s=cfg.grading.code_timeout_s,
                                 code_memory_mb=cfg.grading.code_memory_mb)
            finally:
                if runner is not None:
                    runner.close()
            if hasattr(runner, "hits"):  # the verdict cache
                out.update(programs_cached=runner.hits, programs_run=runner.runs)
            return out

    out = once(run_dir, key, run)
    cached = (f", programs run {out['programs_run']} (+{out['programs_cached']} verdicts from the cache)"
              if "programs_cached" in out else "")
    _log(f"{key}: acc@t1 {out['accuracy_t1']:.3f} acc@t2 {out['accuracy_t2']:.3f} "
         f"unscored {out['n_unscored']}{cached}")
    return out


def _code_runner(cfg: RunConfig, problems_path: str, run_dir: str) -> Optional[Any]:
    """The sandbox pool for code problems (None without any), behind the verdict cache
    unless `orchestration.verdict_cache` is null."""
    from score_core.schema import read_problems

    if not any(p.kind == "code" for p in read_problems(problems_path)):
        return None
    from sandbox import SandboxPool

    pool = SandboxPool(slots=cfg.grading.sandbox_slots)
    if cfg.orchestration.verdict_cache is None:
        return pool
    from score_core.problems.verdict_cache import CachedRunner

    return CachedRunner(pool, Path(run_dir) / cfg.orchestration.verdict_cache, salt=pool.identity())


@task(name="train", task_run_name=train_name)
def train(cfg: RunConfig, run_dir: str, policy_dir: str, base_dir: str, traces_path: str,
          problems_path: str, plan: Iteration, iteration: int) -> dict[str, Any]:
    """One training iteration → a save_pretrained checkpoint. `plan` (method/plan.py) is the
    objective with its α, β1, β2; `plan.name` (stage1, stage2, single_turn, star, star_base, pair_sft)
    names the checkpoint. Starts from `policy_dir`, the last complete checkpoint (weights +
    Adam state)."""
    stage = plan.name
    out_dir = str(Path(run_dir) / "checkpoints" / f"it{iteration:03d}_{stage}")

    args = dict(policy_dir=policy_dir, base_dir=base_dir, traces_path=traces_path,
                problems_path=problems_path, plan=plan, out_dir=out_dir, iteration=iteration)

    def run() -> dict[str, Any]:
        with slot("gpu", cfg):
            if cfg.train.num_processes > 1:
                return _launch_train(cfg, run_dir, f"it{iteration:03d}_{stage}", args)
            from score_core.steps.train import train_step

            return _call(cfg, train_step, cfg=cfg, **args)

    out = once(run_dir, f"train/{stage}/it{iteration:03d}", run)
    _log(f"train {stage} it{iteration}: loss {out.get('train/loss', float('nan')):.4f} "
         f"reward2 {out.get('train/reward2', float('nan')):.3f}")
    return out


@task(name="sft-data", task_run_name="sft data · {data} · it {iteration}")
def sft_data(cfg: RunConfig, run_dir: str, graded_path: str, data: str, iteration: int) -> dict[str, Any]:
    """STaR's D⁺ or Pair-SFT pairs from one iteration's graded rollouts (a Parquet file)."""
    from score_core.steps.prepare import sft_examples_step

    out_path = graded_path.replace(".parquet", f"_{data}.parquet")
    out = once(run_dir, f"sft_data/{data}/it{iteration:03d}",
               lambda: sft_examples_step(graded_path, out_path, data, cfg.train.seed + iteration))
    _log(f"sft data ({data}) it{iteration}: {out['examples']} examples from {out['from_episodes']} episodes")
    return out


def _launch_train(cfg: RunConfig, run_dir: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """`train.num_processes` > 1: the same train_step under `accelerate launch` (DDP/FSDP)."""
    import json
    import subprocess

    from score_core.steps.launch_train import launch_command, write_args

    work = Path(run_dir) / "checkpoints"
    work.mkdir(parents=True, exist_ok=True)
    args_json, result_json = str(work / f".{name}.args.json"), str(work / f".{name}.result.json")
    write_args(args_json, cfg, **args)
    cmd = launch_command(args_json, result_json, cfg.train.num_processes, cfg.train.accelerate_config)
    done = subprocess.run(cmd)
    if done.returncode != 0 or not Path(result_json).is_file():
        from .isolation import StepProcessDied

        raise StepProcessDied(f"accelerate launch of {name} exited with {done.returncode}")
    result = json.loads(Path(result_json).read_text())
    for tmp in (args_json, result_json):
        Path(tmp).unlink(missing_ok=True)
    return result
