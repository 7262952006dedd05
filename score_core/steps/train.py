"""The training step: one `Iteration` of the method plan on one iteration's graded rollouts →
a checkpoint (weights + Adam state), saved atomically. Also run by `launch_train` in N
processes under `accelerate launch`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import torch

from score_core.config import RunConfig
from score_core.generation.models import add_lora, is_adapter_dir, load_model, load_tokenizer, save_checkpoint
from score_core.method.plan import Iteration
from score_core.method.trainer import Hyper, load_optimizer_state, train_on_episodes
from score_core.progress import bar
from score_core.schema import atomic_write_text, read_episodes, read_problems
from score_core.timing import phase


def train_step(
    cfg: RunConfig, policy_dir: str, base_dir: str, traces_path: str, problems_path: str,
    plan: Iteration, out_dir: str, iteration: int,
) -> dict[str, Any]:
    """One iteration of training: `plan` (an `Iteration` of `method_plan`) is the objective
    and its α, β1, β2; `cfg` says how to
    optimise. Saves a checkpoint (+ optimizer state) atomically.

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
    it = plan
    hp = hyper(cfg, iteration)
    with phase("training"), bar(total=cfg.steps_per_iteration, desc=f"train {it.name} it{iteration}") as pb:
        history = train_on_episodes(policy, ref_model, tokenizer, optimizer, accelerator, episodes,
                                    problems, it, hp, progress=pb.update)
    if history and all(h["nan_skipped"] for h in history):
        raise FloatingPointError(f"{it.name} iteration {iteration}: every step had a non-finite loss")
    state = {"stage": it.objective, "iteration": iteration, "plan": it.to_dict(), "history": history,
             "resumed_optimizer": resumed_optimizer}
    if accelerator.is_main_process:  # one writer under `accelerate launch`
        with phase("model_save"):
            save_checkpoint(accelerator.unwrap_model(policy), tokenizer, out_dir, optimizer, state)
            atomic_write_text(json.dumps(history), Path(out_dir).with_suffix(".history.json"))
    accelerator.wait_for_everyone()
    return {"checkpoint": out_dir, "engine": cfg.rollout.engine, **_summarise(history)}


def hyper(cfg: RunConfig, iteration: int) -> Hyper:
    """How iteration `iteration` optimises (lr, batching, clipping, off-policy correction)."""
    t = cfg.train
    return Hyper(lr=t.lr, minibatch_prompts=cfg.minibatch_prompts, micro_batch_episodes=t.micro_batch_episodes,
                 epochs=cfg.epochs_per_iteration, max_grad_norm=t.max_grad_norm,
                 kl_estimator=t.kl_estimator, seed=t.seed + iteration, micro_batch_tokens=t.micro_batch_tokens,
                 sft_steps=cfg.steps_per_iteration, sft_batch=cfg.minibatch_prompts * cfg.rollout.k,
                 temperature=cfg.rollout.temperature, correction=t.pg_correction, clip_eps=t.clip_eps,
                 truncate_at=t.truncate_at, mismatch_warn=t.mismatch_warn, engine=cfg.rollout.engine)


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
