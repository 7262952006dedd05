"""`score bench train`: one Stage II optimizer step through the trainer versus a plain loop.

Same model weights, same episodes, same process, alternating repeats (only the ratio is
meaningful on a shared CPU). The plain loop is what one would write by hand: collate
the whole minibatch into one right-padded batch, policy and reference forward, the
SCoRe loss from `losses`, backward, clip, Adam step. The trainer path is
`trainer.train_on_episodes` under an `Accelerator` (micro-batches packed by a token
budget, gradient accumulation, optional bf16 autocast). Both updates are compared
parameter by parameter (`max_param_diff`), so the speed is not bought with wrong math.
"""
from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from typing import Any, Sequence

import torch

from score_core.method.losses import score_loss, token_kl, token_logprobs
from score_core.generation.rollout import rollout_two_attempts
from score_core.schema import Episode, Problem
from score_core.method.plan import Iteration
from score_core.method.trainer import Hyper, collate, episode_advantages, train_on_episodes


def synthetic_episodes(model: Any, tokenizer: Any, problems: Sequence[Problem], k: int,
                       max_new_tokens: int) -> list[Episode]:
    """Sampled two-attempt episodes with fixed pseudo-rewards (grading is not benchmarked)."""
    eps = rollout_two_attempts(model, tokenizer, problems, k=k, temperature=1.0, max_new_tokens=max_new_tokens,
                               batch_size=64, run_id="bench", stage="stage2", iteration=1, seed=0)
    return [dataclasses.replace(e, reward1=float(i % 3 == 0), reward2=float(i % 2 == 0)) for i, e in enumerate(eps)]


def plain_step(policy: Any, ref: Any, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               adv_1: torch.Tensor, adv_2: torch.Tensor, it: Iteration, hp: Hyper, bf16: bool) -> None:
    """The hand-written baseline: one batch, one forward/backward, one Adam step."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu" if batch["input_ids"].device.type == "cpu" else "cuda",
                        dtype=torch.bfloat16, enabled=bf16):
        logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with torch.no_grad():
            ref_logits = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = token_logprobs(logits, batch["input_ids"], batch["targets"])
        kl = token_kl(logits, ref_logits, batch["input_ids"], hp.kl_estimator, batch["targets"])
        loss, _ = score_loss(logp, kl, batch["mask_1"], batch["mask_2"], adv_1, adv_2, it.beta1, it.beta2)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), hp.max_grad_norm)
    opt.step()


def bench_train(model: Any, tokenizer: Any, problems: Sequence[Problem], *, k: int = 4, max_new_tokens: int = 32,
                token_budget: int = 4096, bf16: bool = False, repeats: int = 3) -> dict[str, Any]:
    from accelerate import Accelerator

    model = model.float().requires_grad_(True)  # a model loaded for inference comes frozen
    eps = synthetic_episodes(model, tokenizer, problems, k, max_new_tokens)
    probs = {p.problem_id: p for p in problems}
    it = Iteration("stage2", "stage2", alpha=10.0, beta1=0.01)
    hp = Hyper(lr=1e-4, minibatch_prompts=len(problems),
               micro_batch_episodes=len(eps), epochs=1, max_grad_norm=1.0, micro_batch_tokens=token_budget)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    init = copy.deepcopy(model.state_dict())
    _, adv_1, adv_2 = episode_advantages(eps, it)
    batch = collate(tokenizer, probs, eps)
    n_tokens = int(batch["attention_mask"].sum())
    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if bf16 else "no")
    plain_policy = copy.deepcopy(model)
    trainer_policy, trainer_opt = acc.prepare(copy.deepcopy(model), torch.optim.Adam(model.parameters(), lr=hp.lr))
    ref.to(acc.device)

    def run_plain() -> None:
        plain_policy.load_state_dict(init)
        opt = torch.optim.Adam(plain_policy.parameters(), lr=hp.lr)
        plain_step(plain_policy.train(), ref, opt, {k: v.to(acc.device) for k, v in batch.items()},
                   adv_1.to(acc.device), adv_2.to(acc.device), it, hp, bf16)

    def run_trainer() -> None:
        nonlocal trainer_opt
        acc.unwrap_model(trainer_policy).load_state_dict(init)
        trainer_opt = acc.prepare(torch.optim.Adam(trainer_policy.parameters(), lr=hp.lr))
        train_on_episodes(trainer_policy, ref, tokenizer, trainer_opt, acc, eps, probs, it, hp)

    seconds: dict[str, list[float]] = {"plain": [], "trainer": []}
    run_plain(), run_trainer()  # warm-up
    for _ in range(repeats):
        for name, fn in (("plain", run_plain), ("trainer", run_trainer)):
            t0 = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - t0)
    diff = max(float((a.detach().float() - b.detach().float()).abs().max()) for a, b in
               zip(plain_policy.parameters(), acc.unwrap_model(trainer_policy).parameters()))
    res: dict[str, Any] = {"episodes": len(eps), "tokens": n_tokens, "padded_tokens": int(batch["input_ids"].numel()),
                           "token_budget": token_budget, "autocast": "bf16" if bf16 else "off", "repeats": repeats}
    for name, secs in seconds.items():
        sec = statistics.median(secs)
        res[name] = {"seconds": sec, "tokens_per_s": n_tokens / sec}
    res["ratio_trainer_vs_plain"] = res["trainer"]["tokens_per_s"] / res["plain"]["tokens_per_s"]
    res["max_param_diff"] = diff
    return res
