"""SandboxPool: N long-lived sandbox containers graded concurrently, with retry on breakage.

Implements `score_core.problems.rewards.CodeRunner`: `run_many(jobs) -> results` in job order. Each
slot is one container with one driver and its own program uid (`uid_base + i`), so slots
never share a uid: a fork bomb's RLIMIT_NPROC and the clean-up's `kill(-1)` stay inside one
slot. A slot that breaks (container dead, driver silent past timeout + grace, protocol
garbage) is replaced; the program that was in flight is retried once on the new container
and reported as `sandbox_error` if that fails too.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import docker
from tqdm import tqdm

from .container import LABEL, Slot, SlotBroken, SlotLimits
from .image import DEFAULT_IMAGE
from .result import ExecutionResult, sandbox_error

log = logging.getLogger(__name__)


class Job(Protocol):  # score_core.problems.rewards.CodeJob satisfies this
    code: str  # the solution, compiled and run first
    tests: str  # compiled separately, run after it in the solution's names (see harness.py)
    timeout_s: float
    memory_mb: int
    entry_point: str  # may shadow a builtin in the tests' view ("" = none)


@dataclass(frozen=True)
class SandboxJob:
    """A plain `Job` (for callers without one of their own, e.g. `sandbox.bench`)."""

    code: str
    tests: str
    timeout_s: float
    memory_mb: int
    entry_point: str = ""


class SandboxPool:
    def __init__(
        self,
        slots: Optional[int] = None,
        image: str = DEFAULT_IMAGE,
        limits: SlotLimits = SlotLimits(),
        uid_base: Optional[int] = None,
        grace_s: float = 10.0,
        pipeline: int = 2,
        progress: Optional[bool] = None,
        client: Optional[docker.DockerClient] = None,
    ) -> None:
        """slots: concurrent containers (default: CPU count); grace_s: extra seconds past a
        program's timeout before its slot counts as wedged and is replaced; pipeline: jobs
        queued per driver (2 = the next program is already waiting when one ends); uid_base: program
        uids are uid_base+1..uid_base+slots (default: a random block, so two pools on one host
        never share a uid and so never share an RLIMIT_NPROC count); progress: tqdm bar
        (default: on unless SCORE_PROGRESS=0)."""
        self.n_slots = slots or os.cpu_count() or 1
        if uid_base is None:
            uid_base = 52000 + 256 * random.randrange(4000)
        if progress is None:
            progress = os.environ.get("SCORE_PROGRESS", "1") != "0"
        self.image, self.limits, self.grace_s, self.progress = image, limits, grace_s, progress
        self.pipeline = max(1, pipeline)
        self.client = client or docker.from_env(timeout=120)
        self.pool_id = uuid.uuid4().hex[:8]
        self.slots = [Slot(self.client, image, uid_base + i + 1, limits, self.pool_id)
                      for i in range(self.n_slots)]
        self._free: "queue.Queue[Slot]" = queue.Queue()
        self._lock = threading.Lock()
        self.stats = {"programs": 0, "slot_restarts": 0, "retries": 0, "sandbox_errors": 0}
        try:
            with ThreadPoolExecutor(self.n_slots) as ex:
                list(ex.map(Slot.start, self.slots))
        except Exception:
            self.close()
            raise
        for slot in self.slots:
            self._free.put(slot)

    def run(self, code: str, tests: str = "", timeout_s: float = 10.0, memory_mb: Optional[int] = None,
            entry_point: str = "") -> ExecutionResult:
        """Run one solution and its tests on a free slot: `passed` iff the tests ran to
        completion (with tests="" : iff the code ran to its end without an exception)."""
        job = SandboxJob(code, tests, timeout_s, memory_mb or self.limits.memory_mb, entry_point)
        return self._run_jobs([job], bar=None)[0]

    def run_many(self, jobs: Sequence[Job], desc: str = "sandbox") -> list[ExecutionResult]:
        """Run every job across the slots concurrently; results in job order."""
        if not jobs:
            return []
        bar = tqdm(total=len(jobs), desc=desc, unit="prog", disable=not self.progress, leave=False)
        try:
            return self._run_jobs(list(jobs), bar)
        finally:
            bar.close()

    def _run_jobs(self, jobs: list, bar) -> list[ExecutionResult]:
        todo: "queue.Queue[tuple[int, int]]" = queue.Queue()  # (job index, attempts so far)
        for i in range(len(jobs)):
            todo.put((i, 0))
        results: list[Optional[ExecutionResult]] = [None] * len(jobs)

        def worker() -> None:
            slot = self._free.get()
            try:
                self._drain_queue(slot, jobs, todo, results, bar, n_workers)
            finally:
                self._free.put(slot)

        n_workers = min(self.n_slots, len(jobs))
        if n_workers == 1:
            worker()
        else:
            with ThreadPoolExecutor(n_workers) as ex:
                for f in [ex.submit(worker) for _ in range(n_workers)]:
                    f.result()
        return results  # type: ignore[return-value]

    def _drain_queue(self, slot: Slot, jobs: list, todo: queue.Queue, results: list, bar,
                     n_workers: int) -> None:
        """Feed one slot from the shared queue, keeping up to `pipeline` jobs queued in its
        driver so the next program starts without waiting for the host round trip (only while
        the queue holds enough for every slot: small batches still spread over all slots)."""
        inflight: deque[tuple[int, int, int]] = deque()  # (index, attempts, driver job id)
        head_since = time.monotonic()
        while True:
            try:
                while len(inflight) < self.pipeline:
                    if inflight and todo.qsize() < n_workers:
                        break
                    i, attempts = todo.get_nowait()
                    if slot.container is None:
                        self._replace(slot)
                    job = jobs[i]
                    if not inflight:
                        head_since = time.monotonic()
                    inflight.append((i, attempts, slot.send(job.code, job.tests, job.timeout_s, job.memory_mb,
                                                            getattr(job, "entry_point", ""))))
            except queue.Empty:
                pass
            except (SlotBroken, docker.errors.DockerException, OSError) as exc:
                self._broken(slot, inflight, todo, results, bar, f"send failed: {exc}", i, attempts)
                continue
            if not inflight:
                return
            i, attempts, job_id = inflight[0]
            deadline = head_since + jobs[i].timeout_s + self.grace_s
            try:
                result = slot.receive(job_id, deadline)
            except (SlotBroken, docker.errors.DockerException, OSError) as exc:
                self._broken(slot, inflight, todo, results, bar, str(exc))
                continue
            inflight.popleft()
            head_since = time.monotonic()
            if result.status == "sandbox_error":  # the driver itself failed: treat as breakage
                inflight.appendleft((i, attempts, job_id))
                self._broken(slot, inflight, todo, results, bar, result.stderr)
                continue
            self._finish(results, i, result, bar)

    def _broken(self, slot: Slot, inflight: deque, todo: queue.Queue, results: list, bar,
                why: str, *unsent: int) -> None:
        """Replace the slot; the job that was running gets one retry, queued ones go back."""
        log.warning("sandbox slot uid=%d broke: %s", slot.uid, why[-500:])
        items = [(i, a) for i, a, _ in inflight] + ([tuple(unsent)] if unsent else [])
        inflight.clear()
        for n, (i, attempts) in enumerate(items):
            if n == 0 and attempts >= 1:
                self._finish(results, i, sandbox_error(f"slot broke twice: {why}"), bar)
            elif n == 0:
                self._count("retries")
                todo.put((i, attempts + 1))
            else:
                todo.put((i, attempts))
        self._replace(slot)

    def _finish(self, results: list, i: int, result: ExecutionResult, bar) -> None:
        results[i] = result
        with self._lock:
            self.stats["programs"] += 1
            self.stats["sandbox_errors"] += result.status == "sandbox_error"
        if bar is not None:
            bar.update(1)

    def _replace(self, slot: Slot) -> None:
        self._count("slot_restarts")
        try:
            slot.restart()
        except (SlotBroken, docker.errors.DockerException, OSError) as exc:
            log.error("could not restart sandbox slot uid=%d: %s", slot.uid, exc)
            slot.close()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def identity(self) -> str:
        """What this pool's verdicts depend on besides the job: the image (its id), the
        sandbox's own code and the slot limits — the salt of a verdict cache, so a changed
        harness or image never reads an old verdict."""
        h = hashlib.sha256(self.client.images.get(self.image).id.encode())
        h.update(repr(self.limits).encode())
        for path in sorted(Path(__file__).parent.glob("*.py")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()

    def stray_processes(self) -> dict[int, list[str]]:
        """Per slot uid: live processes of that uid and zombies (should be empty between jobs)."""
        return {slot.uid: slot.stray_processes() for slot in self.slots if slot.container}

    def close(self) -> None:
        for slot in self.slots:
            slot.close()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_leftover_containers(client: Optional[docker.DockerClient] = None) -> int:
    """Remove sandbox containers of pools that died without close() (e.g. kill -9)."""
    client = client or docker.from_env()
    leftovers = client.containers.list(all=True, filters={"label": LABEL})
    for c in leftovers:
        c.remove(force=True)
    return len(leftovers)
