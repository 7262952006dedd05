"""The verdict cache (score_core/problems/verdict_cache.py).

Two oracles: the runner it wraps — a cached grading must give every job the verdict an
uncached run of the real Docker sandbox gives it, and the sandbox must not be asked again
for a kept verdict; and hand-built jobs that differ in one field each, which must never
share a verdict. Limit hits and infrastructure errors must reach the runner every time.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import pytest

from score_core.problems.rewards import CodeJob
from score_core.problems.verdict_cache import CachedRunner, job_key

JOB = CodeJob(code="x = 1", tests="assert x == 1", timeout_s=5.0, memory_mb=128, entry_point="")


@dataclass(frozen=True)
class Verdict:
    status: str


class Recording:
    """A runner whose verdict is the job's code read as a status ("passed", "timeout", …),
    recording what it was asked to run."""

    def __init__(self) -> None:
        self.asked: list[CodeJob] = []

    def run_many(self, jobs):
        self.asked += jobs
        return [Verdict(job.code) for job in jobs]


def test_kept_verdicts_are_not_run_again_and_come_back_in_job_order(tmp_path):
    runner = Recording()
    cache = CachedRunner(runner, tmp_path / "v.sqlite", salt="sandbox-A")
    jobs = [dataclasses.replace(JOB, code=s) for s in ("passed", "failed", "timeout", "memory_exceeded",
                                                        "output_exceeded", "sandbox_error")]
    assert [r.status for r in cache.run_many(jobs)] == [j.code for j in jobs]
    assert (cache.hits, cache.runs) == (0, 6)
    again = CachedRunner(runner, tmp_path / "v.sqlite", salt="sandbox-A")  # another step, same file
    runner.asked.clear()
    assert [r.status for r in again.run_many(list(reversed(jobs)))] == [j.code for j in reversed(jobs)]
    # passed/failed answered from the file; limit hits and infrastructure errors run again
    assert [j.code for j in runner.asked] == ["sandbox_error", "output_exceeded", "memory_exceeded", "timeout"]
    assert (again.hits, again.runs) == (2, 4)


def test_a_job_differing_in_any_field_or_another_sandbox_never_shares_a_verdict(tmp_path):
    variants = [dataclasses.replace(JOB, code="x = 2"), dataclasses.replace(JOB, tests="assert x == 2"),
                dataclasses.replace(JOB, timeout_s=6.0), dataclasses.replace(JOB, memory_mb=256),
                dataclasses.replace(JOB, entry_point="f"),
                dataclasses.replace(JOB, code="x = 1a", tests="ssert x == 1")]  # same bytes, other split
    keys = {job_key("sandbox-A", j) for j in [JOB] + variants} | {job_key("sandbox-B", JOB)}
    assert len(keys) == len(variants) + 2
    assert job_key("sandbox-A", JOB) == job_key("sandbox-A", dataclasses.replace(JOB))

    runner = Recording()
    CachedRunner(runner, tmp_path / "v.sqlite", salt="sandbox-A").run_many([dataclasses.replace(JOB, code="passed")])
    other = CachedRunner(runner, tmp_path / "v.sqlite", salt="sandbox-B")
    other.run_many([dataclasses.replace(JOB, code="passed")])
    assert (other.hits, other.runs) == (0, 1)
    with pytest.raises(ValueError):
        CachedRunner(runner, tmp_path / "v.sqlite", salt="")


def test_two_graders_share_one_file_at_once(tmp_path):
    """Cells of `score ablate` grade side by side: concurrent writers lose nothing."""
    path, errors = tmp_path / "v.sqlite", []
    batches = [[dataclasses.replace(JOB, code="passed", tests=f"# {w} {i}") for i in range(300)] for w in range(2)]

    def grade(batch):
        try:
            CachedRunner(Recording(), path, salt="s").run_many(batch)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=grade, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    runner = Recording()
    check = CachedRunner(runner, path, salt="s")
    check.run_many(batches[0] + batches[1])
    assert (check.hits, check.runs) == (600, 0)


def test_cached_grading_equals_the_sandbox_and_skips_it(tmp_path):
    from sandbox import SandboxPool
    from tests.sandbox_fixtures import docker_ready

    docker_ready()
    programs = {
        "passed": ("x = 7", "assert x == 7"),
        "failed": ("x = 8", "assert x == 7"),
        "exit 0 before the tests": ("import sys\nx = 7\nsys.exit(0)", "assert x == 7"),
        "timeout": ("while True:\n    pass", "assert True"),
        "raises": ("raise ValueError('no')", "assert True"),
    }
    jobs = [CodeJob(code, tests, 2.0, 128) for code, tests in programs.values()]

    class Counting:
        def __init__(self, pool):
            self.pool, self.asked = pool, 0

        def run_many(self, batch):
            self.asked += len(batch)
            return self.pool.run_many(batch)

    with SandboxPool(slots=2, progress=False) as pool:
        truth = [r.status for r in pool.run_many(jobs)]
        assert truth == ["passed", "failed", "failed", "timeout", "failed"]
        counting = Counting(pool)
        first = CachedRunner(counting, tmp_path / "v.sqlite", salt=pool.identity())
        assert [r.status for r in first.run_many(jobs)] == truth
        second = CachedRunner(counting, tmp_path / "v.sqlite", salt=pool.identity())
        assert [r.status for r in second.run_many(jobs)] == truth
        assert counting.asked == len(jobs) + 1  # only the timeout ran twice
