"""A long step's progress in the Prefect UI: one progress artifact per step run, fed from the
progress file the step's bars write (score_core/progress.py) — in the step's child process
or in this thread.

The artifact is created when the step starts (0%) and updated by a poller thread at most
once per `period_s`, and only when the percentage moved, so a step costs a handful of API
calls; it ends at 100% when the step finished, or stays where it stopped (its description
says so) when the step failed. Outside a Prefect task run (`.fn()` calls) nothing is made.
"""
from __future__ import annotations

import contextvars
import os
import tempfile
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from score_core import progress

PERIOD_S = 1.0


@contextmanager
def ui_progress(period_s: float = PERIOD_S) -> Iterator[Optional[str]]:
    """Yields the progress file path the step should write (None outside a task run)."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None or ctx.task_run is None:
        yield None
        return
    from prefect.artifacts import create_progress_artifact

    title = ctx.task_run.name
    path = os.path.join(tempfile.gettempdir(), f"score-progress-{uuid.uuid4().hex}.json")
    try:
        artifact_id = create_progress_artifact(0.0, description=f"**{title}**: starting")
    except Exception:  # the UI is a convenience: never fail a step for it
        yield None
        return
    poller = _Poller(artifact_id, title, path, period_s)
    thread = threading.Thread(target=contextvars.copy_context().run, args=(poller.loop,),
                              name=f"score-progress:{title}", daemon=True)
    thread.start()
    ok = False
    try:
        yield path
        ok = True
    finally:
        poller.stop.set()
        thread.join(timeout=10)
        poller.publish(final=True, ok=ok)
        try:
            os.unlink(path)
        except OSError:
            pass


class _Poller:
    def __init__(self, artifact_id: Any, title: str, path: str, period_s: float) -> None:
        self.artifact_id, self.title, self.path, self.period_s = artifact_id, title, path, period_s
        self.stop, self.shown = threading.Event(), 0.0

    def loop(self) -> None:
        while not self.stop.wait(self.period_s):
            self.publish()

    def publish(self, final: bool = False, ok: bool = True) -> None:
        pct, counts = percent(progress.read(self.path))
        if final:
            pct = 100.0 if ok else (pct or 0.0)
            what = f"done{counts}" if ok else f"stopped at {pct:.0f}%{counts}"
        elif pct is None or pct == self.shown:
            return
        else:
            what = f"{pct:.0f}%{counts}"
        self._send(pct, f"**{self.title}**: {what}")
        self.shown = pct

    def _send(self, pct: float, description: str) -> None:
        _update_artifact(self.artifact_id, pct, description)


def _update_artifact(artifact_id: Any, pct: float, description: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    try:
        with get_client(sync_client=True) as client:
            client.update_artifact(artifact_id, ArtifactUpdate(data=pct, description=description))
    except Exception:  # the UI is a convenience: never fail a run for it
        pass


class ProgressCard:
    """A progress artifact of the current flow or task run, set by hand (`score ablate`'s
    cells); does nothing outside a run or when the API refuses."""

    def __init__(self, description: str) -> None:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import FlowRunContext, TaskRunContext

        self.artifact_id = None
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        try:
            self.artifact_id = create_progress_artifact(0.0, description=description)
        except Exception:
            self.artifact_id = None

    def update(self, pct: float, description: str) -> None:
        if self.artifact_id is not None:
            _update_artifact(self.artifact_id, min(100.0, max(0.0, pct)), description)


def percent(record: Optional[dict[str, Any]]) -> tuple[Optional[float], str]:
    """(percentage rounded to 1%, " (n/total)") of a progress record; (None, "") if unknown."""
    if not record or not record.get("total"):
        return None, ""
    n, total = int(record.get("n", 0)), int(record["total"])
    return float(min(100, round(100 * n / total))), f" ({n}/{total})"
