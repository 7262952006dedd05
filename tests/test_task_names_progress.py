"""Task run names a user can read, the progress file a step's child process writes for the
UI, the typed `overrides` parameter of the flow, and the deployment's parameter form."""
from __future__ import annotations

import time

import pytest

from score_core import progress
from tasks.names import grade_name, rollout_name, step_name
from tasks.progress import percent


def test_task_run_names_say_step_stage_and_iteration():
    assert rollout_name({"stage": "stage1", "iteration": 2, "evaluation": False}) == "rollout · stage1 · it 2"
    assert rollout_name({"stage": "stage2", "iteration": 4, "evaluation": True}) == "eval · stage2 · it 4"
    assert rollout_name({"stage": "base", "iteration": 0, "evaluation": True}) == "eval · base"
    assert grade_name({"traces_path": "/r/traces/rollout_stage1_it002_raw.parquet"}) == "grade · stage1 · it 2"
    assert grade_name({"traces_path": "traces/eval_base_it000_raw.parquet"}) == "grade eval · base"
    assert grade_name({"traces_path": "t/rollout_single_turn_it013_raw.parquet"}) == "grade · single_turn · it 13"
    assert step_name("train", "stage2", 4) == "train · stage2 · it 4"


def test_decorated_tasks_carry_the_names():
    from score_core.method.plan import Iteration
    from tasks import pipeline_tasks as pt

    assert pt.train.task_run_name({"plan": Iteration("stage2", "stage2"), "iteration": 4}) == "train · stage2 · it 4"
    assert pt.train.task_run_name({"plan": {"name": "star"}, "iteration": 3}) == "train · star · it 3"
    assert pt.prepare_data.task_run_name == "prepare data"
    assert pt.pretrain_debug_base.task_run_name == "pretrain debug base"
    assert pt.rollout.task_run_name is rollout_name and pt.grade.task_run_name is grade_name
    o = _tiny_cfg().orchestration
    retried = pt.rollout.with_options(**pt.retry_policy(o.step_retries, o.retry_backoff_s))
    assert retried.task_run_name is rollout_name and retried.retries == o.step_retries  # names survive


def _tiny_cfg():
    from pathlib import Path

    from score_core.config import load_config

    return load_config(str(Path(__file__).parent / "configs" / "tiny.yaml"))


def test_bar_writes_a_throttled_progress_file(tmp_path):
    sink = tmp_path / "p.json"
    with progress.reporting(str(sink)):
        with progress.bar(total=10, desc="rollout stage1 it1", period_s=3600) as pb:
            assert progress.read(str(sink)) == {"desc": "rollout stage1 it1", "n": 0, "total": 10, "done": False}
            for _ in range(7):
                pb.update(1)
            # the first update is written at once, the next ones only after the period
            assert progress.read(str(sink))["n"] == 1
    assert progress.read(str(sink)) == {"desc": "rollout stage1 it1", "n": 7, "total": 10, "done": True}
    assert percent(progress.read(str(sink))) == (70.0, " (7/10)")
    other = tmp_path / "q.json"
    with progress.bar(total=3, desc="outside"):  # no sink outside `reporting`
        pass
    assert not other.exists() and progress.read(str(other)) is None


def test_step_in_a_child_process_reports_to_the_parent(tmp_path):
    """A real forkserver child (tasks/isolation.py) writes the file the parent task polls."""
    from tasks.isolation import run_in_child

    sink = tmp_path / "child.json"
    t0 = time.monotonic()
    out = run_in_child(progress.call_reporting, {"target": _counting_step, "kwargs": {"n": 5}, "path": str(sink)})
    assert out == {"counted": 5}
    assert progress.read(str(sink)) == {"desc": "count", "n": 5, "total": 5, "done": True}
    assert time.monotonic() - t0 < 120


def _counting_step(n: int) -> dict:
    with progress.bar(total=n, desc="count") as pb:
        for _ in range(n):
            pb.update(1)
    return {"counted": n}


def test_overrides_as_key_value_strings_or_mapping():
    from flows.pipeline import parse_overrides

    assert parse_overrides(["train.lr=0.0003", "train.schedule=[stage1]", "name=x=y"]) == {
        "train.lr": 0.0003, "train.schedule": ["stage1"], "name": "x=y"}
    assert parse_overrides({"train.seed": 3}) == {"train.seed": 3}
    assert parse_overrides([]) is None and parse_overrides(None) is None
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["train.lr"])


def test_flow_parameter_form_is_typed_and_described():
    from flows.pipeline import score_pipeline

    props = score_pipeline.parameters.model_dump()["properties"]
    assert props["config_path"]["type"] == "string"
    assert {"type": "array", "items": {"type": "string"}} in props["overrides"]["anyOf"]
    assert {"type": "string"} in props["run_dir"]["anyOf"]
    for name in ("config_path", "overrides", "run_dir"):
        assert len(props[name].get("description", "")) > 30, name
    assert "KEY=VALUE" in props["overrides"]["description"]


def test_iterate_reports_like_a_bar(tmp_path):
    sink = tmp_path / "it.json"
    with progress.reporting(str(sink)):
        it = progress.iterate(range(4), desc="pretrain debug base", quiet=True)
        seen = []
        for x in it:
            it.set_postfix(loss="1.0")
            seen.append(x)
    assert seen == [0, 1, 2, 3]
    assert progress.read(str(sink)) == {"desc": "pretrain debug base", "n": 4, "total": 4, "done": True}


def _progress_artifacts() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterTaskRunId
    from prefect.context import TaskRunContext

    task_run_id = TaskRunContext.get().task_run.id
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(task_run_id=ArtifactFilterTaskRunId(any_=[task_run_id])))


def test_progress_artifact_follows_the_step_and_ends_at_its_outcome(prefect_harness):
    """Under a real (test) Prefect API: the artifact moves while the step runs, ends at 100%
    when it finished, and stays where a failed step stopped."""
    from prefect import flow, task

    from tasks.progress import ui_progress

    @task(task_run_name="count · {name}")
    def counting(name: str, fail: bool) -> list:
        seen = []
        with ui_progress(period_s=0.2) as sink, progress.reporting(sink):
            with progress.bar(total=4, desc="count", period_s=0.05) as pb:
                for _ in range(2):
                    pb.update(1)
                    time.sleep(1.5)  # the poller publishes within 0.2 s; the API answers in < 1 s
                    seen.append([(a.data, a.description) for a in _progress_artifacts()])
                if fail:
                    raise RuntimeError("the step broke half way")
                pb.update(2)
        return seen

    @flow
    def two_steps() -> list:
        ok = counting("ok", False)
        failed = counting("failed", True, return_state=True)
        return [ok, failed]

    ok, failed = two_steps()
    assert ok[0] == [(25.0, "**count · ok**: 25% (1/4)")]
    assert ok[1] == [(50.0, "**count · ok**: 50% (2/4)")]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        arts = {a.description.split("**")[1]: a for a in client.read_artifacts() if a.type == "progress"
                and a.description and a.description.startswith("**count ·")}
    assert (arts["count · ok"].data, arts["count · ok"].description) == (100.0, "**count · ok**: done (4/4)")
    assert (arts["count · failed"].data, arts["count · failed"].description) == (
        50.0, "**count · failed**: stopped at 50% (2/4)")
    assert failed.is_failed()
