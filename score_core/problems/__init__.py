"""Problem sets and rewards r(y, y*) ∈ {0, 1} (or None: could not be scored).

- `loaders`        — MATH / GSM8K / MBPP / HumanEval from the hub or local files → `Problem`s.
- `synthetic`, `synthetic_code` — the debug-scale families (systematic, checkable errors).
- `code_problems`  — code extraction and (solution, tests) programs for the sandbox.
- `math_grading`   — final-answer extraction and Math-Verify comparison.
- `rewards`        — the dispatcher every grader goes through; `CodeRunner` is the sandbox's
                     interface (the Docker implementation lives in `sandbox/`, not here).
- `reward_value`   — the value graders return.

Imports only `score_core.base`.
"""
