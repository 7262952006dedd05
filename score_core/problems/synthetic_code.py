"""`synth_code`: a debug-scale *code* family — the model writes a tiny Python program that
hidden tests check in the sandbox, so the CPU demo trains with Docker inside the RL loop.

Problem: the `synth_linear` space (a ∈ 1..9, x ∈ 0..29, b ∈ 0..29, c = a·x + b) and its
fixed hash split (80/10/10, `synthetic.split_of`), asked as the Python condition
`a*x+b==c` ("==" tells the model which family it is in). `kind="code"`; the reference
program goes into `answer` for analysis only — reward comes from running code.

Formats (no chat template; `prompts.py` frames it like synth_linear, "Q:" + question + "\\nA:"):
- attempt 1:  `# 103-12=91,91/7=13\\nx=13` — the synth_linear scratchpad as a comment, then
  the assignment the tests read. The model, not Python, does the arithmetic: that is the
  skill the base model gets systematically wrong, and what a check can catch.
- attempt 2:  `# 7*13=91,91+12=103=103\\nx=13` — a comment that checks y1 (a·y1, + b, then
  `<`, `=` or `>` against c; always correct in the corpus), then the answer program.
- hidden tests (`problem.tests`): `assert isinstance(x, int)` and `assert a*x+b==c`.
  `code_tasks.build_program` pairs them with the response (a response that does not parse
  as Python holds no code: reward 0, status `no_code`); the sandbox harness runs the
  response, then the tests separately (same harness as HumanEval/MBPP): reward 1 iff every
  test ran to completion and passed — `import sys; sys.exit(0)` after `x=1` scores 0.
  Comments are never executed, so only the final `x=` counts — a wrong check costs nothing
  by itself, it only hurts through the answer it leads to.
Both attempts stay under ~32 characters (= tokens for the char-level debug model).

Why this shape (same rationale as `synthetic.py`, which it deliberately mirrors so one
debug base learns both families and skills transfer between them):
- Checking is easier than producing: the check is a multiplication and an addition,
  producing x needs a subtraction and a division.
- The corpus's first attempts come from `synthetic.flawed_solve`: exact for a < 6, off by
  one (a pseudo-random sign, unpredictable from the question) for a ≥ 6. The base is
  confidently wrong on that class; its program runs fine and fails `assert a*x+b==c`.
- Corpus second attempts check y1 correctly, then copy y1 (prob 1 − p_perturb) or move it
  by ±1/±2 at random, so the base does not self-correct but sampling reaches the fix
  (y1 ∓ 1 after a `>`/`<` check) often enough for on-policy RL to be rewarded for it.
- An alternative where Python does the arithmetic (`x=(103-12)//7+1`) was rejected: the
  flaw would be a visible suffix that single-turn RL drops at turn 1 as easily as
  self-correction does at turn 2, so the family would no longer probe self-correction.
"""
from __future__ import annotations

import random
import re

from score_core.schema import Problem
from score_core.problems import synthetic
from score_core.problems.synthetic import problem_pool, check_line, flawed_solve, render_attempt1

SOURCE = "synth_code"
_QUESTION_RE = re.compile(r"^(\d+)\*x\+(\d+)==(\d+)$")
_ANSWER_LINE = re.compile(r"^x=-?\d+$")


def question_text(a: int, x: int, b: int) -> str:
    return f"{a}*x+{b}=={a * x + b}"


def parse_question(question: str) -> tuple[int, int, int]:
    """(a, b, c) of a `a*x+b==c` question."""
    return synthetic.parse_question(question, _QUESTION_RE, SOURCE)


def hidden_tests(a: int, b: int, c: int) -> str:
    """The hidden tests run after the model's program: they pass iff x is an int solving it."""
    return f"assert isinstance(x, int)\nassert {a}*x+{b}=={c}\n"


def as_program(text: str) -> str:
    """Comment out every line but the `x=<int>` answer lines (the scratchpad is not code)."""
    return "\n".join(line if _ANSWER_LINE.match(line) else f"# {line}" for line in text.split("\n"))


def render_program1(a: int, b: int, c: int, y: int) -> str:
    """Attempt 1: the synth_linear scratchpad as a comment, then `x=y`."""
    return as_program(render_attempt1(a, b, c, y))


def render_program2(a: int, b: int, c: int, y1: int, y2: int) -> str:
    """Attempt 2: a comment checking y1, then `x=y2`."""
    return as_program(f"{check_line(a, b, c, y1)}\nx={y2}")


def _problem(problem_id: str, split: str, a: int, x: int, b: int) -> Problem:
    c = a * x + b
    return Problem(problem_id=problem_id, source=SOURCE, split=split, kind="code",
                   question=question_text(a, x, b), answer=f"x={x}", tests=hidden_tests(a, b, c))


def make_problems(n: int, seed: int, split: str) -> list[Problem]:
    """n distinct problems from `split`'s fixed part of the (shared) problem space."""
    pool = problem_pool(split)
    if not 0 < n <= len(pool):
        raise ValueError(f"{SOURCE}/{split}: n must be in 1..{len(pool)}, got {n}")
    rng = random.Random(f"{SOURCE}:{split}:{seed}")
    return [_problem(f"{SOURCE}/{split}/{i}", split, a, x, b)
            for i, (a, x, b) in enumerate(rng.sample(pool, n))]


def sample_corpus_traces(n: int, seed: int, p_perturb: float = 0.25,
                         moves: tuple[int, ...] = synthetic.PERTURBATIONS, follow_check: float = 0.0
                         ) -> list[tuple[Problem, str, str]]:
    """n pre-training traces (problem, program 1, program 2) on train-split problems.

    Program 1 carries the flawed solver's answer; program 2 checks it correctly, then copies
    it with probability 1 − p_perturb, else moves it by a random ±1/±2 (ignoring the check).
    """
    draws = synthetic.sample_answer_pairs(n, random.Random(f"{SOURCE}:corpus:{seed}"), p_perturb, moves,
                                          follow_check)
    return [(_problem(f"{SOURCE}/corpus/{i}", "train", a, x, b),
             render_program1(a, b, c, y1), render_program2(a, b, c, y1, y2))
            for i, (a, x, b, c, y1, y2) in enumerate(draws)]
