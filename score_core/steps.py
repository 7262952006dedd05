"""Pipeline steps as plain functions: paths and small records in, paths and metrics out.

Each step does its I/O and one piece of score_core. Prefect tasks (`tasks/`) are thin
adapters over these, and `score bench pipeline` calls them directly to measure the
orchestration overhead. Every output is written atomically.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import torch

from .config import RunConfig
from .metrics import self_correction_metrics
from .models import add_lora, is_adapter_dir, load_model, load_tokenizer, save_checkpoint
from .rewards import CodeRunner, grade_episodes
from .rollout import rollout_two_attempts
from .schema import atomic_write_text, read_episodes, read_problems, write_episodes, write_problems
from .trainer import Hyper, load_optimizer_state, train_on_episodes
from .progress import bar
from .timing import phase


def prepare_problems(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Load and normalise train and eval problems into Parquet files."""
    from .problems import load_problems

    out: dict[str, Any] = {}
    for role, ds in (("train", cfg.data.train), ("eval", cfg.data.eval)):
        with phase("prepare"):
            result = load_problems(ds)
        if not result.problems:
            raise ValueError(f"data.{role}: no problems loaded from {ds.path or ds.hub_name or ds.source}")
        with phase("parquet_io"):
            path = write_problems(result.problems, run_dir / f"problems_{role}.parquet")
        out[role] = {"path": str(path), "n": len(result.problems), "n_skipped": result.n_skipped}
    return out


def rollout_step(
    model_dir: str, problems_path: str, out_path: str, *, run_id: str, stage: str, iteration: int,
    k: int, temperature: float, max_new_tokens: int, batch_size: int, seed: int,
    dtype: str = "float32", limit: Optional[int] = None, offset: int = 0, engine: str = "hf",
    vllm_gpu_memory_utilization: float = 0.4, vllm_tensor_parallel_size: int = 1, turn2_style: str = "score",
    vllm_server: Optional[dict[str, str]] = None, vllm_max_lora_rank: Optional[int] = None,
) -> dict[str, Any]:
    """Sample k two-attempt episodes per problem with the model at `model_dir`.

    engine "hf": `decode.decode_turns` on the HF model. "vllm": the run's long-lived vLLM
    engine (`vllm_server`: the address of the flow run's rollout server,
    `score_core/vllm_server.py`) is given `model_dir` — the newest checkpoint is loaded in
    place, a LoRA adapter becomes a new adapter request: this is the per-iteration weight
    sync — and decodes; no engine is built unless the server has none that fits (its first
    rollout, or a restart after it died). Without `vllm_server` a private server is started
    and closed here (an engine start per call). Traces are written only after both attempts
    came back, atomically: a died engine (`EngineDied`, retried) leaves nothing behind."""
    with phase("parquet_io"):
        problems = read_problems(problems_path)
    if limit is not None:
        start = (offset * limit) % max(len(problems), 1)
        problems = (problems[start:] + problems[:start])[:limit]
    with phase("model_load"):
        tokenizer = load_tokenizer(model_dir)
    model, gen_engine, extra = None, None, {}
    if engine == "vllm":
        from .vllm_engine import build_engine

        eos = {tokenizer.eos_token_id} | _generation_eos(model_dir)
        gen_engine = build_engine(engine, model_dir, eos, dtype=dtype, seed=seed, max_model_len=None,
                                  gpu_memory_utilization=vllm_gpu_memory_utilization,
                                  tensor_parallel_size=vllm_tensor_parallel_size, server=vllm_server,
                                  max_lora_rank=vllm_max_lora_rank)
        extra = {"vllm_engine_built": gen_engine.built, "vllm_engine_start_s": gen_engine.start_s,
                 "vllm_sync_s": gen_engine.sync_s}
    else:
        with phase("model_load"):
            model = load_model(model_dir, dtype=dtype)
    t0 = time.perf_counter()
    try:
        with phase("rollout"), bar(total=2 * k * len(problems), desc=f"rollout {stage} it{iteration}") as pb:
            episodes = rollout_two_attempts(
                model, tokenizer, problems, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                batch_size=batch_size, run_id=run_id, stage=stage, iteration=iteration, seed=seed,
                progress=pb.update, engine=gen_engine, turn2_style=turn2_style)
    finally:
        if gen_engine is not None:
            gen_engine.close()  # the connection (and a private server); the run's server stays up
    dt = time.perf_counter() - t0
    with phase("parquet_io"):
        write_episodes(episodes, out_path)
    n_tok = sum(e.tokens1 + e.tokens2 for e in episodes)
    return {"path": out_path, "episodes": len(episodes), "gen_tokens": n_tok,
            "gen_tokens_per_s": n_tok / dt if dt else 0.0, "rollout_s": dt, **extra}


def grade_step(
    traces_path: str, problems_path: str, out_path: str, *, math_timeout_s: float = 5.0,
    code_runner: Optional[CodeRunner] = None, code_timeout_s: float = 10.0, code_memory_mb: int = 512,
) -> dict[str, Any]:
    """Fill r1/r2 of every episode; unknown rewards stay null and are counted."""
    with phase("parquet_io"):
        episodes = read_episodes(traces_path)
        problems = {p.problem_id: p for p in read_problems(problems_path)}
    with phase("grading"), bar(total=2 * len(episodes), desc="grade") as pb:
        graded = grade_episodes(episodes, problems, code_runner=code_runner, math_timeout_s=math_timeout_s,
                                code_timeout_s=code_timeout_s, code_memory_mb=code_memory_mb,
                                progress=pb.update)
    with phase("parquet_io"):
        write_episodes(graded, out_path)
    with phase("grading"):
        metrics = episode_metrics(graded, problems)
    return {"path": out_path, **metrics}


def episode_metrics(eps: Any, problems: Optional[dict[str, Any]] = None) -> dict[str, float]:
    """Paper metrics + collapse detector of graded episodes (`problems`: id → Problem,
    needed for the unchanged-answer rate)."""
    from .rewards import final_answer

    answers = None
    if problems is not None:
        answers = [(final_answer(problems[e.problem_id], e.attempt1), final_answer(problems[e.problem_id], e.attempt2))
                   for e in eps]
    return self_correction_metrics([e.reward1 for e in eps], [e.reward2 for e in eps],
                                   [e.attempt1 for e in eps], [e.attempt2 for e in eps], answers=answers)


def sft_examples_step(traces_path: str, out_path: str, data: str, seed: int) -> dict[str, Any]:
    """Filter graded rollouts into SFT examples: STaR's D⁺ ("star") or Pair-SFT pairs ("pair")."""
    from .sft import pair_sft_examples, star_examples

    episodes = read_episodes(traces_path)
    if data == "star":
        examples = star_examples(episodes, include_correct_to_correct=True)
    elif data == "pair":
        examples = pair_sft_examples(episodes, seed=seed)
    else:
        raise ValueError(f"unknown SFT data {data!r}; expected 'star' or 'pair'")
    write_episodes(examples, out_path)
    return {"path": out_path, "examples": len(examples), "from_episodes": len(episodes)}


def train_step(
    cfg: RunConfig, policy_dir: str, base_dir: str, traces_path: str, problems_path: str,
    stage: str, out_dir: str, iteration: int, alpha: Optional[float] = None,
) -> dict[str, Any]:
    """One iteration of training (`stage` is a `methods.Kind`; `alpha` overrides
    train.alpha, e.g. 0 for the no-shaping ablations); saves a checkpoint (+ optimizer
    state) atomically.

    Precision (`model.dtype: bfloat16` = bf16 compute, fp32 master weights; built by
    `build_training`, also under `accelerate launch`): the trainable parameters (all weights,
    or the LoRA adapter) are float32 and so is Adam's state; the Accelerator's
    `mixed_precision="bf16"` autocasts the forward of policy and reference (the trainer runs
    both under `accelerator.autocast()`). The frozen reference of full fine-tuning is float32
    too, so at the first step π_θ and π_ref run the very same computation and the KL is
    exactly 0 (a bf16 reference would differ from the fp32-residual policy by rounding alone;
    the cost is 2 extra bytes per parameter). Under LoRA the base weights stay in `dtype`,
    frozen, and π_ref is the same model with the adapter off. The checkpoint (weights or
    adapter, and optimizer.pt) is saved in float32; the rollout step loads it in `dtype`."""
    torch.manual_seed(cfg.train.seed + iteration)
    with phase("model_load"):
        built = build_training(cfg, policy_dir, base_dir)
    accelerator, tokenizer, policy, ref_model, optimizer = (
        built.accelerator, built.tokenizer, built.policy, built.ref_model, built.optimizer)
    resumed_optimizer = built.resumed_optimizer
    with phase("parquet_io"):
        episodes = read_episodes(traces_path)
        problems = {p.problem_id: p for p in read_problems(problems_path)}
    hp = _hyper(cfg, iteration, alpha)
    with phase("training"), bar(total=cfg.steps_per_iteration, desc=f"train {stage} it{iteration}") as pb:
        history = train_on_episodes(policy, ref_model, tokenizer, optimizer, accelerator, episodes,
                                    problems, stage, hp, progress=pb.update)  # type: ignore[arg-type]
    if history and all(h["nan_skipped"] for h in history):
        raise FloatingPointError(f"{stage} iteration {iteration}: every step had a non-finite loss")
    state = {"stage": stage, "iteration": iteration, "history": history,
             "resumed_optimizer": resumed_optimizer}
    if accelerator.is_main_process:  # one writer under `accelerate launch`
        with phase("model_save"):
            save_checkpoint(accelerator.unwrap_model(policy), tokenizer, out_dir, optimizer, state)
            atomic_write_text(json.dumps(history), Path(out_dir).with_suffix(".history.json"))
    accelerator.wait_for_everyone()
    return {"checkpoint": out_dir, "engine": cfg.rollout.engine, **_summarise(history)}


def _hyper(cfg: RunConfig, iteration: int, alpha: Optional[float] = None) -> Hyper:
    t = cfg.train
    return Hyper(lr=t.lr, alpha=t.alpha if alpha is None else alpha, beta1=t.beta1, beta2=t.beta2,
                 minibatch_prompts=cfg.minibatch_prompts, micro_batch_episodes=t.micro_batch_episodes,
                 epochs=cfg.epochs_per_iteration, max_grad_norm=t.max_grad_norm,
                 kl_estimator=t.kl_estimator, seed=t.seed + iteration, micro_batch_tokens=t.micro_batch_tokens,
                 sft_steps=cfg.steps_per_iteration, sft_batch=cfg.minibatch_prompts * cfg.rollout.k,
                 temperature=cfg.rollout.temperature, correction=t.pg_correction, clip_eps=t.clip_eps,
                 truncate_at=t.truncate_at, mismatch_warn=t.mismatch_warn, engine=cfg.rollout.engine)


def _generation_eos(model_dir: str) -> set[int]:
    """Extra stop ids from generation_config.json (chat models often list several); a LoRA
    adapter directory has none of its own: its base model's."""
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file() and is_adapter_dir(model_dir):
        base = json.loads((Path(model_dir) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        path = Path(base or model_dir) / "generation_config.json"
    if not path.is_file():
        return set()
    eos = json.loads(path.read_text()).get("eos_token_id")
    return set(eos) if isinstance(eos, list) else ({eos} if isinstance(eos, int) else set())


def build_training(cfg: RunConfig, policy_dir: str, base_dir: str) -> Any:
    """`train_step`'s construction (see its docstring for the precision rule): a namespace
    with `accelerator`, `tokenizer`, `policy` and `optimizer` (both `accelerator.prepare`d),
    `ref_model` (None under LoRA) and `resumed_optimizer` (Adam's moments were loaded)."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    # An explicit mixed_precision wins over `accelerate launch --mixed_precision` / its config file.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              mixed_precision="bf16" if cfg.model.dtype == "bfloat16" else "no")
    tokenizer = load_tokenizer(policy_dir)
    policy, ref_model = _policy_and_reference(cfg, policy_dir, base_dir)
    params = [p for p in policy.parameters() if p.requires_grad]
    low = sorted({str(p.dtype) for p in params if p.dtype != torch.float32})
    if low:  # never pure-bf16 Adam: its updates at lr ~1e-5 round away
        raise TypeError(f"trainable parameters must be float32 master weights, found {low}")
    optimizer = torch.optim.Adam(params, lr=cfg.train.lr)
    resumed_optimizer = load_optimizer_state(optimizer, policy_dir)  # cast to the params' float32
    policy, optimizer = accelerator.prepare(policy, optimizer)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    return SimpleNamespace(accelerator=accelerator, tokenizer=tokenizer, policy=policy, ref_model=ref_model,
                           optimizer=optimizer, resumed_optimizer=resumed_optimizer)


def _policy_and_reference(cfg: RunConfig, policy_dir: str, base_dir: str) -> tuple[Any, Optional[Any]]:
    """Full fine-tuning: trainable float32 policy + frozen float32 copy of the base as π_ref.
    LoRA: the float32 adapter is trained on the frozen base (in `model.dtype`), and π_ref is
    the same model with the adapter disabled."""
    if cfg.model.lora:
        if is_adapter_dir(policy_dir):
            return load_model(policy_dir, cfg.model.dtype, trainable=True), None
        base = load_model(policy_dir, cfg.model.dtype, trainable=False)
        return add_lora(base, cfg.model.lora_rank, cfg.model.lora_alpha), None
    policy = load_model(policy_dir, cfg.model.dtype, trainable=True)
    return policy, load_model(base_dir, "float32", trainable=False)


def _summarise(history: list[dict[str, float]]) -> dict[str, float]:
    """Means over the iteration's steps; `train/mismatch_*` is the first step's rollout/trainer
    |Δ log p| (θ = the sampling policy there), `train/ratio_*` and `train/clip_frac` are means
    over the later, off-policy steps (NaN when the iteration took one step)."""
    if not history:
        return {"steps": 0}
    keys = ("loss", "pg_loss", "kl_t1", "kl_t2", "reward1", "reward2", "grad_norm", "tokens_per_s")
    ok = [h for h in history if not h.get("nan_skipped")]
    out = {f"train/{k}": sum(h.get(k, 0.0) for h in ok) / max(len(ok), 1) for k in keys}
    first, later = history[0], [h for h in ok[1:] if h.get("behaviour_tokens")]
    out["train/mismatch_mean_abs_logp"] = first.get("logp_absdiff_mean", math.nan)
    out["train/mismatch_max_abs_logp"] = first.get("logp_absdiff_max", math.nan)
    for k in ("ratio_mean", "ratio_max", "clip_frac", "seq_ratio_out_frac"):
        out[f"train/{k}"] = sum(h[k] for h in later) / len(later) if later else math.nan
    out["steps"] = len(history)
    out["nan_skipped"] = len(history) - len(ok)
    return out
