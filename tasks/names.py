"""Task run names as a user watching the Prefect UI reads them: what the step does, for
which stage and iteration — `rollout · stage1 · it 2`, `grade · stage1 · it 2`,
`train · stage2 · it 4`, `eval · base`, `grade eval · stage2 · it 4` — instead of
Prefect's `rollout-3e6`. Prefect calls these with the task run's parameters."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_TRACES = re.compile(r"(rollout|eval)_(.+)_it(\d+)(?:_raw)?")


def step_name(verb: str, stage: str, iteration: int) -> str:
    """`verb · stage · it N`; the base model's evaluation is just `verb · base`."""
    if stage == "base" and int(iteration) == 0:
        return f"{verb} · base"
    return f"{verb} · {stage} · it {int(iteration)}"


def rollout_name(parameters: dict[str, Any]) -> str:
    verb = "eval" if parameters.get("evaluation") else "rollout"
    return step_name(verb, parameters["stage"], parameters["iteration"])


def grade_name(parameters: dict[str, Any]) -> str:
    """From the trace file's name (`traces/rollout_stage1_it002_raw.parquet`)."""
    m = _TRACES.fullmatch(Path(str(parameters.get("traces_path", ""))).name.removesuffix(".parquet"))
    if m is None:
        return "grade"
    kind, stage, it = m.groups()
    return step_name("grade" if kind == "rollout" else "grade eval", stage, int(it))


def train_name(parameters: dict[str, Any]) -> str:
    """`train · stage2 · it 4`: the plan entry's name (an `Iteration`, or its dict form)."""
    plan = parameters["plan"]
    name = plan["name"] if isinstance(plan, dict) else plan.name
    return step_name("train", name, parameters["iteration"])
