"""`synth_linear`: a debug-scale maths family where checking an answer is easier than producing it.

Problem: `a*x+b=c` (a ∈ 1..9, x ∈ 0..29, b ∈ 0..29, c = a·x + b); the answer is x.
Producing x means a subtraction and a division; checking a candidate y means one
multiplication, one addition and a comparison — forward arithmetic a small transformer
learns far more reliably than inversion.

Formats (no chat template; `prompts.py` frames x as "Q:" + question + "\\nA:"):
- attempt 1:  `103-12=91,91/7=13\\nx=13` — a two-step scratchpad (subtract, divide), then
  the answer. Each step is a local operation a tiny model learns quickly.
- attempt 2:  `7*14=98,98+12=110>103\\nx=13` — first a check of y1 (a·y1, then + b, then
  `<`, `=` or `>` against c, always computed correctly in the corpus), then the answer.
  `grade_synth` reads the LAST `x=<int>`, so the check line never counts as an answer.

Why the base model is wrong *systematically* (the debug-scale probe in
DEBUG_SCALE_FINDINGS.md failed because its base errors were label noise):
- The pre-training corpus's first attempts come from a flawed solver: exact for a < 6,
  always off by one for a ≥ 6 ("large coefficient" class, 4/9 of problems). The sign of
  the slip is a pseudo-random bit of the problem, unpredictable from the question, so
  the corpus never shows the right answer for this class. The base is confidently wrong
  there (≈ 0 probability on the true x); a fully trained base is right elsewhere, so
  Acc@t1 ≤ 5/9 ≈ 56% by construction (less when under-trained).
- Second attempts in the corpus contain a *correct* check of y1, then copy y1 most of the
  time regardless of the check, else move it by ±1 or ±2 at random. The greedy base copies
  (Δ(t1,t2) ≈ 0; sampled at T = 1 it perturbs correct answers too, so Δ < 0), yet the
  check already states the direction of a fix (`>`: y1 is too large).

What RL can find and SFT cannot:
- At turn 2, sampling reaches the fix (y1 ∓ 1 after a failed check) with probability
  ≈ p_perturb/4, so on-policy RL sees rewarded i→c traces and can learn "if the check
  says `>`, lower the answer; if `=`, keep it". The rule reads the model's own check, so
  it transfers to held-out problems; the direction bit does not (it is not learnable
  from the question), which is what makes the check necessary.
- At turn 1 the right answer of the flawed class has ≈ 0 probability: single-turn RL and
  STaR-style filtering of first attempts rarely see a reward there, and Pair-SFT has no
  correct base response to pair with. SFT on someone else's corrections teaches answers
  without the model's own check line, a context shift at test time.
Train, dev and eval problems are disjoint by construction: a fixed hash of (a, x, b)
assigns each point of the problem space to one split (80/10/10), independent of seeds.
"""
from __future__ import annotations

import hashlib
import random
import re
from functools import lru_cache

from score_core.problems.reward_value import Reward
from score_core.schema import Problem

SOURCES = ("synth_linear",)
A_VALUES = range(1, 10)
X_VALUES = range(0, 30)
B_VALUES = range(0, 30)
FLAW_MIN_A = 6  # the flawed solver slips by one for a ≥ FLAW_MIN_A
SPLIT_BUCKETS = {"train": range(0, 80), "dev": range(80, 90), "eval": range(90, 100)}
PERTURBATIONS = (-2, -1, 1, 2)  # default moves of a non-copied corpus y2 away from y1

_QUESTION_RE = re.compile(r"^(\d+)\*x\+(\d+)=(\d+)$")
_ANSWER_RE = re.compile(r"x=(-?\d+)")


def _hash_int(salt: str, a: int, x: int, b: int) -> int:
    digest = hashlib.blake2b(f"{salt}:{a},{x},{b}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def split_of(a: int, x: int, b: int) -> str:
    """The split a point of the problem space belongs to (fixed, seed-free)."""
    bucket = _hash_int("split", a, x, b) % 100
    return next(name for name, rng in SPLIT_BUCKETS.items() if bucket in rng)


@lru_cache(maxsize=None)
def problem_pool(split: str) -> tuple[tuple[int, int, int], ...]:
    """Every (a, x, b) of the fixed part of the problem space that belongs to `split`."""
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_BUCKETS)}")
    return tuple((a, x, b) for a in A_VALUES for x in X_VALUES for b in B_VALUES
                 if split_of(a, x, b) == split)


def question_text(a: int, x: int, b: int) -> str:
    return f"{a}*x+{b}={a * x + b}"


def parse_question(question: str, pattern: re.Pattern = _QUESTION_RE,
                   family: str = "synth_linear") -> tuple[int, int, int]:
    """(a, b, c) of a `a*x+b=c` question (another family passes its own `pattern`)."""
    m = pattern.match(question.strip())
    if not m:
        raise ValueError(f"not a {family} question: {question!r}")
    a, b, c = (int(g) for g in m.groups())
    return a, b, c


def is_flawed_class(a: int) -> bool:
    """The problem class on which the base model's corpus solver is always wrong."""
    return a >= FLAW_MIN_A


def flawed_solve(a: int, x: int, b: int) -> int:
    """The corpus's turn-1 solver: exact for a < 6, off by one (pseudo-random sign) else."""
    if not is_flawed_class(a):
        return x
    if x == 0:
        return 1
    return x + (1 if _hash_int("slip", a, x, b) % 2 else -1)


def render_attempt1(a: int, b: int, c: int, y: int) -> str:
    """The solver's scratchpad `c-b=d,d/a=y` and answer; a flawed y shows up as a wrong quotient."""
    return f"{c}-{b}={c - b},{c - b}/{a}={y}\nx={y}"


def check_line(a: int, b: int, c: int, y: int) -> str:
    """`a*y=p,p+b=v` followed by `<`, `=` or `>` and c: the check a second attempt writes."""
    p = a * y
    v = p + b
    cmp = "<" if v < c else (">" if v > c else "=")
    return f"{a}*{y}={p},{p}+{b}={v}{cmp}{c}"


def render_attempt2(a: int, b: int, c: int, y1: int, y2: int) -> str:
    return f"{check_line(a, b, c, y1)}\nx={y2}"


def make_problems(source: str, n: int, seed: int, split: str) -> list[Problem]:
    """n distinct problems of `source` from `split`'s fixed part of the problem space."""
    if source not in SOURCES:
        raise ValueError(f"unknown synthetic source {source!r}; expected one of {SOURCES}")
    pool = problem_pool(split)
    if not 0 < n <= len(pool):
        raise ValueError(f"{source}/{split}: n must be in 1..{len(pool)}, got {n}")
    rng = random.Random(f"{source}:{split}:{seed}")
    return [
        Problem(problem_id=f"{source}/{split}/{i}", source=source, split=split, kind="synth",
                question=question_text(a, x, b), answer=str(x))
        for i, (a, x, b) in enumerate(rng.sample(pool, n))
    ]


def sample_answer_pairs(n: int, rng: random.Random, p_perturb: float = 0.25,
                        moves: tuple[int, ...] = PERTURBATIONS, follow_check: float = 0.0
                        ) -> list[tuple[int, int, int, int, int, int]]:
    """n corpus draws (a, x, b, c, y1, y2) from train problems: y1 from the flawed solver;
    y2 copies y1 with probability 1 − p_perturb, else moves it by one of `moves`: with
    probability `follow_check` (only when the check fails) in the direction the check
    points (`>`: down), else a uniformly random move."""
    pool = problem_pool("train")
    draws = []
    for _ in range(n):
        a, x, b = pool[rng.randrange(len(pool))]
        y1 = y2 = flawed_solve(a, x, b)
        if rng.random() < p_perturb:
            d = rng.choice(moves)
            if y1 != x and rng.random() < follow_check:
                d = abs(d) if x > y1 else -abs(d)  # a·y1 + b < c: y1 is too small
            y2 = y1 + d if y1 + d >= 0 else y1 - d
        draws.append((a, x, b, a * x + b, y1, y2))
    return draws


def sample_corpus_traces(n: int, seed: int, p_perturb: float = 0.25, moves: tuple[int, ...] = PERTURBATIONS,
                         follow_check: float = 0.0) -> list[tuple[Problem, str, str]]:
    """n pre-training traces (problem, attempt 1, attempt 2) on train-split problems.

    Attempt 1 is the flawed solver's answer; attempt 2 checks it correctly, then copies it
    or perturbs it (`sample_answer_pairs`).
    """
    traces = []
    for i, (a, x, b, c, y1, y2) in enumerate(sample_answer_pairs(n, random.Random(f"corpus:{seed}"), p_perturb, moves, follow_check)):
        problem = Problem(problem_id=f"synth_linear/corpus/{i}", source="synth_linear",
                          split="train", kind="synth", question=question_text(a, x, b),
                          answer=str(x))
        traces.append((problem, render_attempt1(a, b, c, y1), render_attempt2(a, b, c, y1, y2)))
    return traces


def extract_answer(response: str) -> int | None:
    """The integer of the LAST `x=<int>` in a response, or None."""
    found = _ANSWER_RE.findall(response)
    return int(found[-1]) if found else None


def grade_synth(response: str, answer: str) -> Reward:
    """Exact match of the last `x=<int>` against the reference integer."""
    got = extract_answer(response)
    if got is None:
        return Reward(0.0, "no_answer")
    return Reward(1.0 if got == int(answer) else 0.0, "ok")
