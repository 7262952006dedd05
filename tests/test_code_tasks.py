"""score_core.problems.code_problems: extraction, program assembly and the MBPP prompt (no Docker)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from score_core.problems.code_problems import (
    MBPP_SHOT_IDS, CodeProgram, build_program, extract_code, mbpp_prompt, mbpp_shots, mbpp_tests,
)
from score_core.schema import Problem

HE_PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
HE_TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"
HE = Problem("HumanEval/x", "humaneval", "eval", "code", HE_PROMPT, "", HE_TESTS, "add")
MBPP = Problem("mbpp/x", "mbpp", "train", "code", "prompt", "",
               mbpp_tests("", ["assert sq(3) == 9", "assert sq(0) == 0"]), "")


RUN_BOTH = ("import sys\nns = {}\nexec(compile(sys.argv[1], '<solution>', 'exec'), ns)\n"
            "exec(compile(sys.argv[2], '<tests>', 'exec'), ns)\n")


def exits_zero(program: CodeProgram) -> bool:
    """Trusted programs only (written in this file): on the host, solution then tests, each
    compiled on its own (as the sandbox harness does)."""
    out = subprocess.run([sys.executable, "-c", RUN_BOTH, program.code, program.tests], capture_output=True)
    return out.returncode == 0


@pytest.mark.parametrize("text, code", [
    ("```python\nx = 1\n```", "x = 1"),
    ("a\n```python\nx = 1\n```\nb\n```py\nx = 2\n```\n", "x = 2"),  # the last block
    ("```\nx = 3\n```", "x = 3"),  # unlabeled fence
    ("```python\nx = 1\n```\n```bash\nls\n```", "x = 1"),  # other languages ignored
    ("```python\nx = 1\ny = 2", "x = 1\ny = 2"),  # unclosed fence (cut off)
    ("[BEGIN]\ndef f():\n    return 1\n[DONE]", "def f():\n    return 1"),
    ("def f():\n    return 1\n[DONE] trailing", "def f():\n    return 1"),  # prompt ended with [BEGIN]
    ("[BEGIN]\n```python\nz = 1\n```\n[DONE]", "z = 1"),
    ("no code here", None),
    ("", None),
])
def test_extract_code(text, code):
    assert extract_code(text) == code


@pytest.mark.parametrize("response", [
    "```python\n    return a + b\n```",  # body only
    "```python\nreturn a + b\n```",  # body, dedented by the model
    "```python\ndef add(a, b):\n    return a + b\n```",  # repeats the def
    "Sure!\n```python\nfrom typing import List\n\ndef add(a: int, b: int) -> int:\n    return a + b\n```",
    "    return a + b\n",  # raw continuation, no fence
])
def test_humaneval_program_passes(response):
    program = build_program(HE, response)
    assert program is not None and program.tests.rstrip().endswith("check(add)")
    assert program.code.startswith(HE_PROMPT.rstrip("\n")) and "check" not in program.code
    assert program.entry_point == "add"
    assert exits_zero(program), program


def test_humaneval_wrong_and_missing():
    assert not exits_zero(build_program(HE, "```python\n    return None\n```"))
    assert build_program(HE, "I think the answer is to add them.") is None
    assert build_program(HE, "```python\n\n```") is None


def test_mbpp_program():
    good = build_program(MBPP, "[BEGIN]\ndef sq(x):\n    return x * x\n[DONE]")
    assert good == CodeProgram("def sq(x):\n    return x * x\n", "assert sq(3) == 9\nassert sq(0) == 0\n")
    assert exits_zero(good)
    assert not exits_zero(build_program(MBPP, "```python\ndef sq(x):\n    return x + x\n```"))
    with pytest.raises(ValueError):
        build_program(Problem("m", "math500", "eval", "math", "1+1", "2"), "2")


def test_mbpp_tests_with_setup():
    assert mbpp_tests("import math", ["assert 1", "assert 2"]) == "import math\nassert 1\nassert 2\n"


def test_mbpp_prompt_is_the_canonical_three_shot(shared_data):
    rows = [json.loads(line) for line in open(shared_data / "mbpp.jsonl")]
    shots = mbpp_shots(rows)
    assert [s["task_id"] for s in shots] == list(MBPP_SHOT_IDS) == [2, 3, 4]
    target = next(r for r in rows if r["task_id"] == 11)
    prompt = mbpp_prompt(target["text"], target["test_list"], shots)
    assert prompt.count("You are an expert Python programmer, and here is your task: ") == 4
    assert prompt.count("[BEGIN]") == 4 and prompt.count("[DONE]") == 3
    assert "similar_elements" in prompt and "is_not_prime" in prompt and "heap_queue_largest" in prompt
    assert prompt.endswith("\n".join(target["test_list"]) + "\n[BEGIN]\n")
    assert "\r" not in prompt
    first = prompt.split("\n\n", 1)[0]
    assert first == ("You are an expert Python programmer, and here is your task: Write a function to "
                     "find the similar elements from the given two tuple lists. Your code should "
                     "pass these tests:")
    with pytest.raises(ValueError):
        mbpp_shots(rows[10:])


def test_solution_and_tests_stay_separate():
    """A response that would swallow appended tests (unterminated string, trailing backslash,
    `if False:`) stays a solution of its own: the tests text is the problem's, untouched."""
    for tail in ('"""', "\\", "if False:"):
        program = build_program(MBPP, f"```python\ndef sq(x):\n    return None\n{tail}\n```")
        assert program.tests == MBPP.tests.strip("\n") + "\n" and program.code.rstrip().endswith(tail)
        assert not exits_zero(program)  # the solution alone does not compile
