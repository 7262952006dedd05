"""Code tasks as text: extract code from a response, build the (solution, tests) pair, MBPP prompts.

Pure string work, no docker (STYLE.md rule 1). `build_program` returns a `CodeProgram`: the
solution code and the test code as TWO texts. The sandbox (`sandbox/`) compiles them
separately — the solution cannot swallow or comment out the tests (an unterminated triple
quote, a trailing backslash or `if False:` is a SyntaxError of the solution alone) — runs the
tests after the solution in its names, and reports `passed` only when every test ran to
completion and passed (a harness proof, not "the process exited 0": see `sandbox.driver`).

Conventions (set by the problem loader):
- HumanEval (eval): `question` is the prompt (imports + signature + docstring), `tests` is the
  dataset's `test` code + `check(entry_point)`. Solution code = prompt + completion, where a
  completion that (re)defines `entry_point` is appended after the prompt (the prompt's helpers
  and imports stay; the new def wins) and a body-only completion continues the prompt.
- MBPP (train): `question` is the canonical 3-shot prompt (`mbpp_prompt`, Austin et al. 2021,
  shots = task ids 2, 3, 4), `tests` is `test_setup_code` + the `test_list` asserts.
  Solution code = the extracted code.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from score_core.schema import Problem

MBPP_SHOT_IDS = (2, 3, 4)
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_LANGS = {"", "python", "python3", "py", "py3"}


def extract_code(text: str) -> Optional[str]:
    """The last fenced python (or unlabeled) block, else `[BEGIN]…[DONE]`, else None.

    An unclosed last fence (generation cut off) counts up to the end of the text. Inside
    `[BEGIN]…[DONE]` a fence is unwrapped. `[DONE]` without `[BEGIN]` (the MBPP prompt ends
    with `[BEGIN]`) takes everything before `[DONE]`.
    """
    blocks = [body for lang, body in _FENCE.findall(text) if lang.lower() in _PYTHON_LANGS]
    if blocks:
        return blocks[-1].strip("\n")
    begin, done = text.rfind("[BEGIN]"), text.rfind("[DONE]")
    if begin < 0 and done < 0:
        return None
    start = begin + len("[BEGIN]") if begin >= 0 else 0
    end = done if done > start else len(text)
    return text[start:end].strip("\n")


def _looks_like_python(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return bool(text.strip())


def solution_code(response: str, prompt: str = "") -> Optional[str]:
    """extract_code, falling back to the whole response when it parses as Python on its own
    or as a continuation of `prompt` (a raw HumanEval completion)."""
    code = extract_code(response)
    if code is not None:
        return code
    stripped = response.strip("\n")
    if _looks_like_python(stripped) or (prompt and _looks_like_python(prompt + stripped)):
        return stripped
    return None


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _as_body(code: str) -> str:
    """A body-only completion: keep its indentation, or indent it if the model dedented it."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first.startswith((" ", "\t")):
        return code
    return "\n".join("    " + line if line.strip() else line for line in code.splitlines())


@dataclass(frozen=True)
class CodeProgram:
    """What the sandbox runs: `code` (the solution, compiled and run first) and `tests`
    (compiled separately, run after it in the solution's names). `entry_point`: the one
    solution name the tests may use even if it shadows a builtin ("" = none)."""

    code: str
    tests: str
    entry_point: str = ""


def humaneval_program(prompt: str, code: str, tests: str, entry_point: str) -> CodeProgram:
    if _defines(code, entry_point):
        body = prompt.rstrip("\n") + "\n\n\n" + code
    else:
        body = prompt.rstrip("\n") + "\n" + _as_body(code)
    return CodeProgram(body.rstrip("\n") + "\n", tests.strip("\n") + "\n", entry_point)


def build_program(problem: Problem, response: str) -> Optional[CodeProgram]:
    """The solution and the tests of a code problem (`passed` in the sandbox iff every test
    ran to completion and passed), or None when the response holds no code."""
    if problem.kind != "code":
        raise ValueError(f"build_program needs a code problem, got kind {problem.kind!r}")
    humaneval = problem.source.lower().startswith("humaneval")
    code = solution_code(response, problem.question if humaneval else "")
    if code is None or not code.strip():
        return None
    if humaneval:
        return humaneval_program(problem.question, code, problem.tests, problem.entry_point)
    return CodeProgram(code.rstrip("\n") + "\n", problem.tests.strip("\n") + "\n", problem.entry_point)


def mbpp_tests(test_setup_code: str, test_list: Sequence[str]) -> str:
    """The `tests` field of an MBPP Problem: setup code, then one assert per line."""
    return test_setup_code.strip("\n") + "\n" + "\n".join(test_list) + "\n"


def _mbpp_task(text: str, tests: Sequence[str]) -> str:
    return (f"You are an expert Python programmer, and here is your task: {text} "
            f"Your code should pass these tests:\n\n" + "\n".join(tests) + "\n")


def mbpp_prompt(text: str, tests: Sequence[str], shots: Sequence[Mapping]) -> str:
    """The canonical 3-shot MBPP prompt (Austin et al. 2021; SCORE_METHOD.md).

    shots: MBPP rows (text, test_list, code) — the paper uses task ids 2, 3, 4, see
    `MBPP_SHOT_IDS`. Each shot is the task, then `[BEGIN]\\n{code}\\n[DONE]`; the target task
    ends with `[BEGIN]\\n` so the answer is the code up to `[DONE]`.
    """
    parts = [_mbpp_task(s["text"], s["test_list"]) + "[BEGIN]\n" + s["code"].replace("\r\n", "\n").strip("\n")
             + "\n[DONE]" for s in shots]
    parts.append(_mbpp_task(text, tests) + "[BEGIN]\n")
    return "\n\n".join(parts)


def mbpp_shots(rows: Sequence[Mapping]) -> list[Mapping]:
    """Pick the prompt shots (task ids 2, 3, 4) from MBPP rows, in that order."""
    by_id = {int(r["task_id"]): r for r in rows}
    missing = [i for i in MBPP_SHOT_IDS if i not in by_id]
    if missing:
        raise ValueError(f"MBPP shot task ids {missing} not in the given rows")
    return [by_id[i] for i in MBPP_SHOT_IDS]
