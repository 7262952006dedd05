"""SCoRe's objectives as small tensor-in/tensor-out functions.

Kumar et al. 2024 (arXiv 2409.12917), policy-gradient form with γ = 0 (each attempt's
tokens are credited only with that attempt's shaped reward) and a leave-one-out (RLOO)
baseline over the k samples of a prompt:

  Stage I  (Eq. 3):  max E[ r(y2, y*) − β2·KL(π(·|x) ‖ π_ref(·|x)) ] − β1·KL(all tokens)
                     — no reward gradient into attempt 1.
  Stage II (Eq. 4):  max E[ Σ_{i=1,2} r̂_i − β1·KL(π(·|x_i) ‖ π_ref(·|x_i)) ]
                     with r̂1 = r1, r̂2 = r2 + α·(r2 − r1).

Every token of an attempt is a target, including the stop token that ended it.
Log-probabilities are taken at the sampling temperature T (softmax(z / T) is the
distribution the rollout sampled from); sequence sums over an attempt's tokens, means
over episodes.

Off-policy correction (`pg_objective`). The paper's estimator is on-policy REINFORCE,
  ∇J = E_{y~π_θ}[ A · Σ_t ∇ log π_θ(y_t | y_<t) ],
exact only for the first optimizer step on a rollout batch. Later minibatches of the same
batch were sampled by an older policy μ (the rollout's recorded behaviour log-probs), so
each token carries the per-token importance ratio ρ_t = π_θ(y_t | ·) / μ(y_t | ·):
  - "clip" (default): PPO's clipped surrogate (Schulman et al. 2017, arXiv 1707.06347,
    Eq. 7, per token as in PPO/GRPO implementations):
        J = Σ_t min(ρ_t·A, clip(ρ_t, 1 − ε, 1 + ε)·A);
    at ρ = 1 its gradient is exactly REINFORCE's, and tokens that already moved more
    than ε in the direction of A stop pushing.
  - "truncate": truncated importance sampling (IMPALA's ρ̄ = min(ρ, c), Espeholt et al.
    2018, arXiv 1802.01561): J = Σ_t sg(min(ρ_t, c))·A·log π_θ(y_t | ·) — the corrected
    gradient with bounded variance; also absorbs a rollout/trainer numerics mismatch.
  - "none": plain REINFORCE, J = A·Σ_t log π_θ(y_t | ·) (the paper's estimator; exact
    only with `train.strict_on_policy`, one optimizer step per rollout batch).
Deliberately left out: a value function (RLOO is the baseline).
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch


def shaped_rewards(r1: torch.Tensor, r2: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage II shaping: r̂1 = r1, r̂2 = r2 + α·(r2 − r1).

    With binary rewards and α = 10 the effective y2 reward is i→c 11, c→c 1, c→i −10, i→i 0.
    """
    if r1.shape != r2.shape:
        raise ValueError(f"r1 {tuple(r1.shape)} and r2 {tuple(r2.shape)} differ")
    return r1, r2 + alpha * (r2 - r1)


def rloo_advantages(rewards: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages A_i = r_i − mean_{j≠i, valid} r_j within each prompt.

    rewards, valid: (P, k) — P prompts × k samples; `valid` False marks an unknown reward.
    Invalid samples get advantage 0 and do not enter others' baselines; a prompt with
    fewer than two valid samples gets advantage 0 everywhere (no baseline exists).
    """
    if rewards.dim() != 2 or rewards.shape != valid.shape:
        raise ValueError(f"expected matching (P, k) tensors, got {tuple(rewards.shape)}, {tuple(valid.shape)}")
    v = valid.to(rewards.dtype)  # (P, k)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))  # (P, k) unknown → 0
    n = v.sum(dim=1, keepdim=True)  # (P, 1) valid samples per prompt
    others = (r.sum(dim=1, keepdim=True) - r) / (n - 1).clamp(min=1)  # (P, k) baseline
    adv = (r - others) * v
    return torch.where(n >= 2, adv, torch.zeros_like(adv))


def token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, targets: Optional[torch.Tensor] = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log π_T(target_t | tokens_<t) for t ≥ 1, with π_T = softmax(logits / T).

    logits (B, T, V), ids (B, T) → (B, T−1). `targets` (B, T−1) default ids[:, 1:]; a
    target may differ from the next input (y1's stop token is a target, not an input).
    """
    targets = input_ids[:, 1:] if targets is None else targets
    logp = torch.log_softmax(_tempered(logits[:, :-1], temperature), dim=-1)  # (B, T−1, V)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T in fp32 (T ≤ 0, greedy, scores the untempered distribution)."""
    return logits.float() / temperature if temperature > 0 else logits.float()


def token_kl(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    input_ids: torch.Tensor,
    estimator: Literal["full", "k3"] = "full",
    targets: Optional[torch.Tensor] = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token KL(π_T ‖ π_ref,T) at each position t ≥ 1 → (B, T−1).

    "full": Σ_v π(v)·(log π(v) − log π_ref(v)), exact, costs (B, T, V) memory.
    "k3":  exp(Δ) − Δ − 1 with Δ = log π_ref(y_t) − log π(y_t) on the sampled token
           (Schulman's unbiased, non-negative estimator).
    """
    if logits.shape != ref_logits.shape:
        raise ValueError(f"policy logits {tuple(logits.shape)} vs ref {tuple(ref_logits.shape)}")
    if estimator == "full":
        logp = torch.log_softmax(_tempered(logits[:, :-1], temperature), dim=-1)  # (B, T−1, V)
        ref_logp = torch.log_softmax(_tempered(ref_logits[:, :-1], temperature), dim=-1)  # (B, T−1, V)
        return (logp.exp() * (logp - ref_logp)).sum(-1)
    if estimator == "k3":
        delta = (token_logprobs(ref_logits, input_ids, targets, temperature)
                 - token_logprobs(logits, input_ids, targets, temperature))  # (B, T−1)
        return delta.exp() - delta - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


Correction = Literal["clip", "truncate", "none"]


def pg_objective(
    logp: torch.Tensor, behaviour_logp: torch.Tensor, adv_tok: torch.Tensor,
    correction: Correction, clip_eps: float = 0.2, truncate_at: float = 2.0,
) -> torch.Tensor:
    """Per-token policy-gradient objective J_t (to maximise; see the module docstring).

    logp (B, T−1) log π_θ with gradient; behaviour_logp (B, T−1) log μ of the sampling
    policy (pass logp.detach() where unknown: ρ = 1); adv_tok (B, T−1) the attempt's
    advantage on each of its tokens (0 elsewhere).
    """
    if correction == "none":
        return adv_tok * logp
    ratio = torch.exp(logp - behaviour_logp.detach())  # (B, T−1) ρ_t, gradient through π_θ
    if correction == "clip":
        return torch.minimum(ratio * adv_tok, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv_tok)
    if correction == "truncate":
        return ratio.detach().clamp(max=truncate_at) * adv_tok * logp
    raise ValueError(f"unknown off-policy correction {correction!r}; expected clip, truncate or none")


def ratio_stats(
    logp: torch.Tensor, behaviour_logp: torch.Tensor, known: torch.Tensor,
    mask_1: torch.Tensor, mask_2: torch.Tensor, clip_eps: float = 0.2,
) -> dict[str, float]:
    """Sums for the rollout/trainer mismatch and importance-ratio statistics of a batch.

    known (B, T−1): 1 where a behaviour log-prob was recorded. Returns token counts and
    sums (so micro-batches add up): |Δ log p| sum and max, ρ sum and max, tokens with
    |ρ − 1| > ε, and attempts whose sequence ratio exp(Σ_t log ρ_t) lies outside [½, 2].
    """
    with torch.no_grad():
        delta = (logp.detach().float() - behaviour_logp.float()) * known  # (B, T−1) log ρ_t
        tok = known * (mask_1 + mask_2)
        ratio = torch.exp(delta)
        n_tok = float(tok.sum())
        seq = torch.cat([(delta * mask_1).sum(1), (delta * mask_2).sum(1)])  # (2B,) log sequence ratio
        has = torch.cat([(known * mask_1).sum(1) > 0, (known * mask_2).sum(1) > 0])  # (2B,)
        out = (seq.abs() > math.log(2.0)) & has
        sel = tok > 0
        return {
            "n_tok": n_tok,
            "absdiff_sum": float((delta.abs() * tok).sum()),
            "absdiff_max": float(delta.abs()[sel].max()) if n_tok else 0.0,
            "ratio_sum": float((ratio * tok).sum()),
            "ratio_max": float(ratio[sel].max()) if n_tok else 0.0,
            "clipped": float((((ratio - 1).abs() > clip_eps).float() * tok).sum()),
            "n_seq": float(has.sum()),
            "seq_out": float(out.sum()),
        }


def score_loss(
    logp: torch.Tensor,
    kl: torch.Tensor,
    mask_1: torch.Tensor,
    mask_2: torch.Tensor,
    adv_1: torch.Tensor,
    adv_2: torch.Tensor,
    beta1: float,
    beta2: float,
    behaviour_logp: Optional[torch.Tensor] = None,
    correction: Correction = "none",
    clip_eps: float = 0.2,
    truncate_at: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient loss for one batch of two-attempt episodes (both stages).

    logp, kl, mask_1, mask_2: (B, T−1) aligned with target tokens; mask_i marks attempt
    i's tokens (its stop token included). adv_1, adv_2: (B,) advantages (Stage I passes
    adv_1 = 0 and beta2 > 0; Stage II passes beta2 = 0). With J_t = `pg_objective`:
      loss = −mean_b[ Σ_{t∈y1} J_t(A1) + Σ_{t∈y2} J_t(A2) ] + β1·mean_b[Σ_{1,2} KL] + β2·mean_b[Σ_1 KL];
    correction "none" is −mean_b[ A1·Σ logp_1 + A2·Σ logp_2 ] (REINFORCE).
    behaviour_logp (B, T−1): log μ of the sampled tokens (None: on-policy, ρ = 1).
    """
    for name, t in (("kl", kl), ("mask_1", mask_1), ("mask_2", mask_2)):
        if t.shape != logp.shape:
            raise ValueError(f"{name} {tuple(t.shape)} != logp {tuple(logp.shape)}")
    if adv_1.shape != (logp.shape[0],) or adv_2.shape != (logp.shape[0],):
        raise ValueError("advantages must be (B,)")
    mu = logp.detach() if behaviour_logp is None else behaviour_logp
    adv_tok = adv_1.detach().unsqueeze(1) * mask_1 + adv_2.detach().unsqueeze(1) * mask_2  # (B, T−1)
    objective = pg_objective(logp, mu, adv_tok, correction, clip_eps, truncate_at)  # (B, T−1)
    kl_1 = (kl * mask_1).sum(1)  # (B,) sequence KL on attempt 1
    kl_2 = (kl * mask_2).sum(1)  # (B,) sequence KL on attempt 2
    pg = -(objective * (mask_1 + mask_2)).sum(1).mean()
    kl_term = beta1 * (kl_1 + kl_2).mean() + beta2 * kl_1.mean()
    loss = pg + kl_term
    stats = {
        "loss": float(loss.detach()), "pg_loss": float(pg.detach()),
        "kl_t1": float(kl_1.detach().mean()), "kl_t2": float(kl_2.detach().mean()),
    }
    return loss, stats
