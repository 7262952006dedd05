"""One SCoRe stage iteration of policy-gradient training on a batch of rollouts.

Reads like nanoGPT's train.py: build the batch tensors, loop over minibatches of
prompts (× k samples), accumulate micro-batches (packed by a padded-token budget),
clip, step, log. The math lives in `losses`; this file only arranges tensors. Built on
accelerate so the same code runs on one CPU, one GPU or under `accelerate launch`
(DDP; FSDP via configs/accelerate/): each process takes its shard of every minibatch,
gradients are all-reduced once per optimizer step (`no_sync` on the other micro-batches),
and bf16 autocast comes from the Accelerator's `mixed_precision`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import torch

from score_core.generation.rollout import pad_id
from score_core.method.batching import collate, collate_layouts, plan_micro_batches
from score_core.method.losses import Correction, ratio_stats, rloo_advantages, score_loss, shaped_rewards, token_kl, token_logprobs
from score_core.generation.rollout import Layout, episode_token_layout, prompt_ids
from score_core.schema import Episode, Problem
from score_core.method.plan import Iteration, Objective
from score_core.method.sft import weighted_sft_loss

__all__ = ["Hyper", "Iteration", "collate", "collate_layouts", "plan_micro_batches", "train_on_episodes",
           "episode_advantages"]
log = logging.getLogger("score.trainer")

@dataclass(frozen=True)
class Hyper:
    """How to optimise (explicit, never a config object). *What* to optimise — the
    objective and its α, β1, β2 — is the `Iteration` (method/plan.py)."""

    lr: float
    minibatch_prompts: int
    micro_batch_episodes: int  # at most this many episodes per forward/backward
    epochs: int
    max_grad_norm: float
    kl_estimator: Literal["full", "k3"] = "full"
    seed: int = 0
    micro_batch_tokens: Optional[int] = None  # and at most this many padded tokens (None: no limit)
    sft_steps: int = 0  # SFT stages: optimizer steps per iteration (= the RL steps: equal budgets)
    sft_batch: int = 0  # SFT stages: examples per step (= minibatch_prompts × k)
    temperature: float = 1.0  # the rollout's sampling T: log-probs and KL are of softmax(z / T)
    correction: Correction = "clip"  # off-policy correction of later minibatches (losses.pg_objective)
    clip_eps: float = 0.2  # "clip": PPO's ε
    truncate_at: float = 2.0  # "truncate": c in min(ρ, c)
    mismatch_warn: float = 0.05  # warn when the first minibatch's mean |Δ log p| exceeds this
    engine: str = "hf"  # which rollout engine sampled the traces (named in the mismatch log)


def episode_advantages(
    episodes: Sequence[Episode], it: Iteration
) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Group episodes by prompt and compute per-turn RLOO advantages.

    Returns (groups, adv_1, adv_2): groups[p] are episode indices of prompt p; adv_i are
    (N,) tensors indexed like `episodes`; `it.rewarded_turns` says which turns get one.
    Stage I: reward only on y2, adv_1 = 0. Stage II: r̂1 = r1, r̂2 = r2 + α(r2 − r1)
    (α = it.alpha); an unknown r1 makes r̂2 unknown too. single_turn (the single-turn RL
    baseline): reward only on y1, adv_2 = 0.
    """
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i, ep in enumerate(episodes):
        by_prompt[ep.problem_id].append(i)
    groups = list(by_prompt.values())
    k = max(len(g) for g in groups)
    r1 = torch.zeros(len(groups), k)  # (P, k)
    r2 = torch.zeros(len(groups), k)  # (P, k)
    v1 = torch.zeros(len(groups), k, dtype=torch.bool)  # (P, k) r1 known
    v2 = torch.zeros(len(groups), k, dtype=torch.bool)  # (P, k) r2 known
    for p, g in enumerate(groups):
        for s, i in enumerate(g):
            ep = episodes[i]
            v1[p, s], v2[p, s] = ep.reward1 is not None, ep.reward2 is not None
            r1[p, s], r2[p, s] = ep.reward1 or 0.0, ep.reward2 or 0.0
    if it.objective == "stage1":
        a1 = torch.zeros_like(r1)
        a2 = rloo_advantages(r2, v2)
    elif it.objective == "single_turn":
        a1 = rloo_advantages(r1, v1)
        a2 = torch.zeros_like(r2)
    elif it.objective == "stage2":
        hat1, hat2 = shaped_rewards(r1, r2, it.alpha)
        a1 = rloo_advantages(hat1, v1)
        a2 = rloo_advantages(hat2, v1 & v2)
    else:
        raise ValueError(f"no policy-gradient advantages for objective {it.objective!r}")
    adv_1, adv_2 = torch.zeros(len(episodes)), torch.zeros(len(episodes))
    for p, g in enumerate(groups):
        for s, i in enumerate(g):
            adv_1[i], adv_2[i] = a1[p, s], a2[p, s]
    return groups, adv_1, adv_2


def _forward_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def _ref_logits(policy: Any, ref_model: Optional[Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """π_ref logits: the frozen base, or the LoRA policy with its adapter disabled."""
    with torch.no_grad():
        if ref_model is not None:
            return _forward_logits(ref_model, batch)
        with _unwrap(policy).disable_adapter():
            return _forward_logits(policy, batch)


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)  # DDP wraps the model in .module


def micro_step(
    policy: Any, ref_model: Optional[Any], batch: dict[str, torch.Tensor],
    adv_1: torch.Tensor, adv_2: torch.Tensor, it: Iteration, hp: Hyper,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch (a mean over its episodes; not yet scaled for accumulation)
    and its stats, incl. the sums of `losses.ratio_stats`. SFT stages read adv_1/adv_2 as
    per-episode weights (0 or 1) of each attempt's tokens."""
    logits = _forward_logits(policy, batch)  # (B, T, V)
    ids, targets, m1, m2 = batch["input_ids"], batch["targets"], batch["mask_1"], batch["mask_2"]
    if it.is_sft:
        logp = token_logprobs(logits, ids, targets)  # (B, T−1)
        loss = weighted_sft_loss(logp, m1, m2, adv_1, adv_2)
        return loss, {"loss": float(loss.detach()), "pg_loss": float(loss.detach()), "kl_t1": 0.0, "kl_t2": 0.0}
    ref_logits = _ref_logits(policy, ref_model, batch)  # (B, T, V)
    logp = token_logprobs(logits, ids, targets, hp.temperature)  # (B, T−1) log π_θ,T
    kl = token_kl(logits, ref_logits, ids, hp.kl_estimator, targets, hp.temperature)  # (B, T−1)
    known = batch["known"]
    mu = torch.where(known > 0, batch["behaviour_logp"], logp.detach())  # (B, T−1) log μ; ρ = 1 if unknown
    loss, stats = score_loss(logp, kl, m1, m2, adv_1, adv_2, it.beta1, it.beta2, behaviour_logp=mu,
                             correction=hp.correction, clip_eps=hp.clip_eps, truncate_at=hp.truncate_at)
    return loss, {**stats, **ratio_stats(logp, batch["behaviour_logp"], known, m1, m2, hp.clip_eps)}


def train_on_episodes(
    policy: Any,
    ref_model: Optional[Any],
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    accelerator: Any,
    episodes: Sequence[Episode],
    problems: dict[str, Problem],
    it: Iteration,
    hp: Hyper,
    progress: Optional[Callable[[int], None]] = None,
) -> list[dict[str, float]]:
    """Optimizer steps over one iteration's rollouts; returns one stats dict per step.

    Under `accelerate launch` every process gets the same episodes and the same shuffle;
    each takes its shard (every world_size-th episode) of each minibatch, and the loss is
    normalised by the *global* minibatch size, so the all-reduced (averaged) gradient
    equals the one-process gradient of the whole minibatch.
    """
    if it.is_sft:
        adv_1, adv_2 = sft_weights(len(episodes), it.objective)
        minibatches = sft_minibatches(len(episodes), hp.sft_steps, hp.sft_batch, random.Random(hp.seed))
    else:
        groups, adv_1, adv_2 = episode_advantages(episodes, it)
        minibatches = rl_minibatches(groups, hp.minibatch_prompts, hp.epochs, random.Random(hp.seed))
    prompts = {pid: prompt_ids(tokenizer, problems[pid]) for pid in {ep.problem_id for ep in episodes}}
    layouts = [episode_token_layout(tokenizer, problems[ep.problem_id], ep, prompts[ep.problem_id]) for ep in episodes]
    behaviour = [(ep.logp1, ep.logp2) for ep in episodes]
    history: list[dict[str, float]] = []
    policy.train()
    for idx in minibatches:
        stats = _optimizer_step(policy, ref_model, optimizer, accelerator, [layouts[i] for i in idx],
                                [behaviour[i] for i in idx], pad_id(tokenizer), adv_1[idx], adv_2[idx], it, hp)
        stats["reward1"] = _mean([episodes[i].reward1 for i in idx])
        stats["reward2"] = _mean([episodes[i].reward2 for i in idx])
        if not history and not it.is_sft:
            check_mismatch(stats, hp)
        history.append(stats)
        if progress:
            progress(1)
    return history


def check_mismatch(first: dict[str, float], hp: Hyper) -> None:
    """The rollout/trainer mismatch check. On the first minibatch θ is the policy that
    sampled, so π_θ and the recorded μ must agree up to numerics; warn loudly if not."""
    if not first.get("behaviour_tokens"):
        log.warning("rollout traces carry no behaviour log-probs (engine %s): importance ratios "
                    "are taken as 1 and the rollout/trainer mismatch cannot be checked", hp.engine)
        return
    mean, worst = first["logp_absdiff_mean"], first["logp_absdiff_max"]
    if mean > hp.mismatch_warn:
        log.warning("ROLLOUT/TRAINER MISMATCH: mean |Δ log p| = %.4f (max %.4f) over %d tokens on the "
                    "first minibatch (engine %s) exceeds train.mismatch_warn = %g — the sampler and the "
                    "trainer disagree (dtype, temperature, a context the trainer does not see); the traces "
                    "are off-policy by that much", mean, worst, int(first["behaviour_tokens"]), hp.engine,
                    hp.mismatch_warn)


def rl_minibatches(groups: list[list[int]], minibatch_prompts: int, epochs: int,
                   rng: random.Random) -> list[list[int]]:
    """Episode indices per optimizer step: each epoch shuffles the prompt groups and takes
    `minibatch_prompts` prompts (all k samples of each) per step."""
    out = []
    for _epoch in range(epochs):
        order = groups[:]
        rng.shuffle(order)
        for start in range(0, len(order), minibatch_prompts):
            out.append([i for g in order[start : start + minibatch_prompts] for i in g])
    return out


def sft_minibatches(n: int, steps: int, batch: int, rng: random.Random) -> list[list[int]]:
    """`steps` minibatches of `batch` examples (fewer if n < batch), cycling through
    shuffled passes over n examples, so SFT takes as many steps as RL whatever D⁺'s size."""
    if n == 0:
        return []
    out, order = [], []
    for _ in range(steps):
        take = []
        while len(take) < min(batch, n):
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            take.append(order.pop())
        out.append(take)
    return out


def sft_weights(n: int, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example weights of attempt 1's and attempt 2's tokens: STaR imitates whole
    traces (1, 1); Pair-SFT only the second turn (0, 1)."""
    w_2 = torch.ones(n)
    return (torch.ones(n) if objective == "sft_both" else torch.zeros(n)), w_2


def _optimizer_step(
    policy: Any, ref_model: Optional[Any], optimizer: torch.optim.Optimizer, accelerator: Any,
    layouts: list[Layout], behaviour: list, pad: int, adv_1: torch.Tensor, adv_2: torch.Tensor,
    it: Iteration, hp: Hyper,
) -> dict[str, float]:
    t0 = time.perf_counter()
    world, rank, dev = accelerator.num_processes, accelerator.process_index, accelerator.device
    n_global = len(layouts)
    mine = list(range(rank, n_global, world))  # this process's shard of the minibatch
    plans = [[mine[j] for j in mb] for mb in
             plan_micro_batches([len(layouts[i].ids) for i in mine], hp.micro_batch_episodes, hp.micro_batch_tokens)]
    if not plans:  # more processes than episodes: join the gradient all-reduce with a zero-weight pass
        plans, zero_weight = [[0]], True
    else:
        zero_weight = False
    optimizer.zero_grad(set_to_none=True)
    sums = torch.zeros(len(STAT_KEYS) + 2, device=dev)  # weighted stats, non-finite flag, tokens
    ratio = torch.zeros(len(RATIO_SUMS), device=dev)  # ratio_stats sums (exact over micro-batches)
    peaks = torch.zeros(len(RATIO_MAXES), device=dev)  # ratio_stats maxima
    for m, mb in enumerate(plans):
        batch = {k: v.to(dev) for k, v in collate_layouts(
            [layouts[i] for i in mb], pad, [behaviour[i] for i in mb]).items()}
        weight = 0.0 if zero_weight else len(mb) * world / n_global  # mean over the global minibatch
        sync = contextlib.nullcontext() if m == len(plans) - 1 else accelerator.no_sync(policy)
        with sync:  # all-reduce gradients only on the last micro-batch
            with accelerator.autocast():  # bf16 when the Accelerator's mixed_precision says so
                loss, stats = micro_step(policy, ref_model, batch, adv_1[mb].to(dev), adv_2[mb].to(dev), it, hp)
            accelerator.backward(loss * weight)
        sums[-2] += float(not torch.isfinite(loss))
        sums[-1] += 0 if zero_weight else int(batch["attention_mask"].sum())
        for j, key in enumerate(STAT_KEYS):
            sums[j] += stats[key] * weight / world
        if not zero_weight:
            ratio += torch.tensor([stats.get(k, 0.0) for k in RATIO_SUMS], device=dev)
            peaks = torch.maximum(peaks, torch.tensor([stats.get(k, 0.0) for k in RATIO_MAXES], device=dev))
    if world > 1:
        sums = accelerator.reduce(sums, reduction="sum")
        ratio = accelerator.reduce(ratio, reduction="sum")
        peaks = accelerator.gather(peaks.unsqueeze(0)).max(0).values
    if sums[-2] > 0:  # every process agrees: skip the step
        optimizer.zero_grad(set_to_none=True)
        return {"nan_skipped": 1.0, "loss": float("nan"), "step_s": time.perf_counter() - t0}
    grad_norm = accelerator.clip_grad_norm_(policy.parameters(), hp.max_grad_norm)
    optimizer.step()
    dt = time.perf_counter() - t0
    out = {key: float(sums[j]) for j, key in enumerate(STAT_KEYS)}
    grad_norm = math.nan if grad_norm is None else float(grad_norm)  # DeepSpeed clips itself
    return {**out, **_ratio_summary(ratio, peaks), "grad_norm": grad_norm, "nan_skipped": 0.0, "step_s": dt,
            "tokens_per_s": float(sums[-1]) / dt if dt > 0 else 0.0}


STAT_KEYS = ("loss", "pg_loss", "kl_t1", "kl_t2")
RATIO_SUMS = ("n_tok", "absdiff_sum", "ratio_sum", "clipped", "n_seq", "seq_out")
RATIO_MAXES = ("absdiff_max", "ratio_max")


def _ratio_summary(sums: torch.Tensor, peaks: torch.Tensor) -> dict[str, float]:
    """Per-step importance-ratio statistics (tokens with a recorded behaviour log-prob)."""
    s = dict(zip(RATIO_SUMS, sums.tolist()))
    p = dict(zip(RATIO_MAXES, peaks.tolist()))
    n, n_seq = max(s["n_tok"], 1.0), max(s["n_seq"], 1.0)
    return {"behaviour_tokens": s["n_tok"], "logp_absdiff_mean": s["absdiff_sum"] / n,
            "logp_absdiff_max": p["absdiff_max"], "ratio_mean": s["ratio_sum"] / n if s["n_tok"] else 1.0,
            "ratio_max": p["ratio_max"], "clip_frac": s["clipped"] / n,
            "seq_ratio_out_frac": s["seq_out"] / n_seq}


def _mean(values: Sequence[Optional[float]]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else math.nan


def load_optimizer_state(optimizer: torch.optim.Optimizer, checkpoint: Optional[str]) -> bool:
    """Continue Adam's moments across stage iterations when the checkpoint saved them."""
    if checkpoint is None or not (Path(checkpoint) / "optimizer.pt").is_file():
        return False
    optimizer.load_state_dict(torch.load(Path(checkpoint) / "optimizer.pt", weights_only=True))
    return True
