"""SCoRe's objectives as small tensor-in/tensor-out functions.

Kumar et al. 2024 (arXiv 2409.12917), policy-gradient form with γ = 0 (each attempt's
tokens are credited only with that attempt's shaped reward) and a leave-one-out (RLOO)
baseline over the k samples of a prompt:

  Stage I  (Eq. 3):  max E[ r(y2, y*) − β2·KL(π(·|x) ‖ π_ref(·|x)) ] − β1·KL(all tokens)
                     — no reward gradient into attempt 1.
  Stage II (Eq. 4):  max E[ Σ_{i=1,2} r̂_i − β1·KL(π(·|x_i) ‖ π_ref(·|x_i)) ]
                     with r̂1 = r1, r̂2 = r2 + α·(r2 − r1).

Sequence log-probabilities are sums over the attempt's tokens; losses are means over
episodes. Deliberately left out: PPO clipping / importance ratios (the paper uses
REINFORCE), and a value function.
"""
from __future__ import annotations

from typing import Literal

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


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log π(token_t | tokens_<t) for t ≥ 1. logits (B, T, V), ids (B, T) → (B, T−1)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T−1, V)
    return logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def token_kl(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    input_ids: torch.Tensor,
    estimator: Literal["full", "k3"] = "full",
) -> torch.Tensor:
    """Per-token KL(π ‖ π_ref) at each position t ≥ 1 → (B, T−1).

    "full": Σ_v π(v)·(log π(v) − log π_ref(v)), exact, costs (B, T, V) memory.
    "k3":  exp(Δ) − Δ − 1 with Δ = log π_ref(y_t) − log π(y_t) on the sampled token
           (Schulman's unbiased, non-negative estimator).
    """
    if logits.shape != ref_logits.shape:
        raise ValueError(f"policy logits {tuple(logits.shape)} vs ref {tuple(ref_logits.shape)}")
    if estimator == "full":
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T−1, V)
        ref_logp = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)  # (B, T−1, V)
        return (logp.exp() * (logp - ref_logp)).sum(-1)
    if estimator == "k3":
        delta = token_logprobs(ref_logits, input_ids) - token_logprobs(logits, input_ids)  # (B, T−1)
        return delta.exp() - delta - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def score_loss(
    logp: torch.Tensor,
    kl: torch.Tensor,
    mask_1: torch.Tensor,
    mask_2: torch.Tensor,
    adv_1: torch.Tensor,
    adv_2: torch.Tensor,
    beta1: float,
    beta2: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE loss for one batch of two-attempt episodes (both stages).

    logp, kl, mask_1, mask_2: (B, T−1) aligned with target tokens; mask_i marks attempt
    i's tokens. adv_1, adv_2: (B,) advantages (Stage I passes adv_1 = 0 and beta2 > 0;
    Stage II passes beta2 = 0). Loss =
      −mean_b[ A1·Σ logp_1 + A2·Σ logp_2 ] + β1·mean_b[Σ_{1,2} KL] + β2·mean_b[Σ_1 KL].
    """
    for name, t in (("kl", kl), ("mask_1", mask_1), ("mask_2", mask_2)):
        if t.shape != logp.shape:
            raise ValueError(f"{name} {tuple(t.shape)} != logp {tuple(logp.shape)}")
    if adv_1.shape != (logp.shape[0],) or adv_2.shape != (logp.shape[0],):
        raise ValueError("advantages must be (B,)")
    logp_1 = (logp * mask_1).sum(1)  # (B,) Σ log π(y1 tokens)
    logp_2 = (logp * mask_2).sum(1)  # (B,) Σ log π(y2 tokens)
    kl_1 = (kl * mask_1).sum(1)  # (B,) sequence KL on attempt 1
    kl_2 = (kl * mask_2).sum(1)  # (B,) sequence KL on attempt 2
    pg = -(adv_1.detach() * logp_1 + adv_2.detach() * logp_2).mean()
    kl_term = beta1 * (kl_1 + kl_2).mean() + beta2 * kl_1.mean()
    loss = pg + kl_term
    stats = {
        "loss": float(loss.detach()), "pg_loss": float(pg.detach()),
        "kl_t1": float(kl_1.detach().mean()), "kl_t2": float(kl_2.detach().mean()),
    }
    return loss, stats
