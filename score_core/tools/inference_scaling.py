"""Inference-time scaling with self-correction (Kumar et al. 2024, Sec. 6.2 / Fig. 1 right).

- `parallel_vs_self_correct`: with a budget of K samples per problem (temperature 0.7),
  majority vote over K parallel first attempts versus majority vote over the final
  answers of K/2 samples each self-corrected once (K/2 first attempts + K/2 second
  attempts = the same K generations). The paper (MATH, K = 32): +7.4 pts for parallel
  sampling, +10.5 pts for parallel + sequential. Reported for every budget 2, 4, …, K
  (the first b parallel samples; the first b/2 self-corrected ones).
- `sequential_attempts`: more than two sequential attempts, greedy: x ⊕ y1 ⊕ p ⊕ y2 ⊕ p ⊕ …
  with the same feedback-free instruction p after every attempt; Accuracy@t for t = 1..N.

Both decode with the rollout engine (`decode.decode_turns`); `scaling_samples` and
`sequential_generations` return the generations themselves (checked against a naive
uncached decoder in tests/test_decode_oracle.py).

Majority vote: the most frequent extracted answer (normalised), ties broken by first
occurrence; a sample without an answer does not vote; a problem with no votes is wrong.
Grading is `rewards.grade_text` on a response carrying the winning answer (math and
synthetic problems; code would need the sandbox and is not supported here).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple, Optional, Sequence

import torch

from score_core.generation.decode import Generation, decode_turns
from score_core.problems.rewards import final_answer, grade_text
from score_core.generation.rollout import eos_ids, pad_id, two_turn_prompts
from score_core.schema import Problem


def answer_key(problem: Problem, response: str) -> Optional[str]:
    """The answer a response votes for: `rewards.final_answer` (normalised so equal answers
    compare equal); voting is defined for the maths and synthetic maths families only."""
    if problem.kind not in ("synth", "math"):
        raise ValueError(f"majority voting is not defined for kind {problem.kind!r}")
    return final_answer(problem, response)


def majority_correct(problem: Problem, responses: Sequence[str]) -> float:
    """1.0 when the majority answer of `responses` is right, else 0.0 (see module docstring)."""
    keys = [answer_key(problem, r) for r in responses]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == top)  # first to reach the top count
    response = responses[keys.index(winner)]
    return float(grade_text(problem, response).value or 0.0)


def _texts(tokenizer: Any, gens: Sequence[Any]) -> list[str]:
    return [tokenizer.decode(list(g.ids), skip_special_tokens=True) for g in gens]


class ScalingSamples(NamedTuple):
    """The generations behind `parallel_vs_self_correct`, rows = problem × sample."""

    parallel_prompts: list[list[int]]  # x, `budget` rows per problem
    parallel: list[tuple[Generation, ...]]  # (y,) per row
    self_correct_prompts: list[list[int]]  # x, `budget // 2` rows per problem
    suffixes: list[list[int]]  # p per self-correct row
    self_correct: list[tuple[Generation, ...]]  # (y1, y2) per row, y2 after x ⊕ y1 ⊕ p


def scaling_samples(
    model: Any, tokenizer: Any, problems: Sequence[Problem], *, budget: int, temperature: float,
    max_new_tokens: int, batch_size: int, seed: int,
) -> ScalingSamples:
    """K parallel first attempts and K/2 two-attempt rollouts per problem, both with the
    rollout engine (`decode.decode_turns`), seeded once."""
    eos, pad = eos_ids(tokenizer, model), pad_id(tokenizer)
    torch.manual_seed(seed)
    _, x, _ = two_turn_prompts(tokenizer, problems, budget)  # row = problem × sample
    par = decode_turns(model, x, None, max_new_tokens=max_new_tokens, temperature=temperature,
                       batch_size=batch_size, eos_ids=eos, pad_id=pad)
    _, x2, suffixes = two_turn_prompts(tokenizer, problems, budget // 2)
    seq = decode_turns(model, x2, suffixes, max_new_tokens=max_new_tokens, temperature=temperature,
                       batch_size=batch_size, eos_ids=eos, pad_id=pad)
    return ScalingSamples(x, par, x2, suffixes, seq)


def parallel_vs_self_correct(
    model: Any, tokenizer: Any, problems: Sequence[Problem], *, budget: int, temperature: float = 0.7,
    max_new_tokens: int = 32, batch_size: int = 64, seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of majority@b for parallel and for self-corrected samples, b = 2, 4, …, budget."""
    if budget < 2 or budget % 2:
        raise ValueError(f"budget must be an even number ≥ 2, got {budget}")
    samples = scaling_samples(model, tokenizer, problems, budget=budget, temperature=temperature,
                              max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    par, seq = samples.parallel, samples.self_correct
    par_text = _texts(tokenizer, [g[0] for g in par])
    y1_text = _texts(tokenizer, [g[0] for g in seq])
    y2_text = _texts(tokenizer, [g[1] for g in seq])
    half = budget // 2
    rows = []
    for b in range(2, budget + 1, 2):
        acc_par = acc_sc = acc_sc_y1 = 0.0
        for j, p in enumerate(problems):
            acc_par += majority_correct(p, par_text[j * budget: j * budget + b])
            acc_sc += majority_correct(p, y2_text[j * half: j * half + b // 2])
            acc_sc_y1 += majority_correct(p, y1_text[j * half: j * half + b // 2])
        n = len(problems)
        rows.append({"samples": b, "parallel_majority": acc_par / n, "self_correct_majority": acc_sc / n,
                     "first_attempts_majority_half": acc_sc_y1 / n})
    single = sum(float(grade_text(p, par_text[j * budget]).value or 0.0) for j, p in enumerate(problems))
    return {"problems": len(problems), "budget": budget, "temperature": temperature,
            "single_sample_accuracy": single / len(problems), "curve": rows}


def sequential_generations(
    model: Any, tokenizer: Any, problems: Sequence[Problem], *, attempts: int, max_new_tokens: int,
    batch_size: int, temperature: float = 0.0,
) -> tuple[list[list[int]], list[list[int]], list[tuple[Generation, ...]]]:
    """(x, p, attempts) per problem: attempt t continues x ⊕ y1 ⊕ p ⊕ … ⊕ y_{t−1} ⊕ p."""
    _, x, suffixes = two_turn_prompts(tokenizer, problems, 1)
    gens = decode_turns(model, x, suffixes if attempts > 1 else None, max_new_tokens=max_new_tokens,
                        temperature=temperature, batch_size=batch_size, eos_ids=eos_ids(tokenizer, model),
                        pad_id=pad_id(tokenizer), n_turns=attempts)
    return x, suffixes, gens


def sequential_attempts(
    model: Any, tokenizer: Any, problems: Sequence[Problem], *, attempts: int, max_new_tokens: int = 32,
    batch_size: int = 64, temperature: float = 0.0,
) -> dict[str, Any]:
    """Accuracy@t for t = 1..attempts, each attempt after x ⊕ y1 ⊕ p ⊕ … ⊕ y_{t−1} ⊕ p."""
    if attempts < 1:
        raise ValueError("attempts must be ≥ 1")
    _, _, gens = sequential_generations(model, tokenizer, problems, attempts=attempts,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size,
                                        temperature=temperature)
    correct = [[float(grade_text(p, t).value or 0.0) for t in _texts(tokenizer, g)] for p, g in zip(problems, gens)]
    n = len(problems)
    acc = [sum(c[t] for c in correct) / n for t in range(attempts)]
    changed = [sum(c[t] != c[t - 1] for c in correct) / n for t in range(1, attempts)]
    return {"problems": n, "attempts": attempts, "accuracy_at": acc, "changed_correctness_at": changed,
            "i_to_c_at": [sum(c[t] > c[t - 1] for c in correct) / n for t in range(1, attempts)],
            "c_to_i_at": [sum(c[t] < c[t - 1] for c in correct) / n for t in range(1, attempts)]}


def plot_scaling(parallel: Optional[dict], sequential: Optional[dict], out_png: str,
                 title: str = "inference-time scaling") -> str:
    """One figure: majority@b curves (left) and Accuracy@t over attempts (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (parallel, sequential) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    ax_iter = iter(axes[0])
    if parallel:
        ax = next(ax_iter)
        xs = [r["samples"] for r in parallel["curve"]]
        ax.plot(xs, [r["parallel_majority"] for r in parallel["curve"]], "o-", label="parallel (majority of b)")
        ax.plot(xs, [r["self_correct_majority"] for r in parallel["curve"]], "s-",
                label="b/2 samples × self-correct once (majority of y2)")
        ax.set_xlabel("samples per problem (b)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"T = {parallel['temperature']}, {parallel['problems']} problems")
        ax.legend(fontsize=8)
    if sequential:
        ax = next(ax_iter)
        ts = list(range(1, sequential["attempts"] + 1))
        ax.plot(ts, sequential["accuracy_at"], "o-")
        ax.set_xlabel("attempt t (greedy)")
        ax.set_ylabel("Accuracy@t")
        ax.set_title(f"sequential attempts, {sequential['problems']} problems")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


