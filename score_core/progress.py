"""Progress of long work (rollout, grading, training): a tqdm bar on stderr, and, when a
step runs under the pipeline, a tiny JSON file the Prefect task polls for the UI.

Set SCORE_PROGRESS=0 to silence the terminal bars (CI logs, benchmarks); the file is
written regardless. The file (`{"desc", "n", "total", "done"}`) is replaced atomically at
most once per `period_s` (0.25 s; the first update at once) and once more when the bar
closes, so a reader never sees half a record and the step pays a few small writes a second
at most (tens of microseconds each). No Prefect here: the task side
(tasks/progress.py) turns the file into a progress artifact.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Optional

from tqdm.auto import tqdm

_SINK: ContextVar[Optional[str]] = ContextVar("score_progress_sink", default=None)


class Bar:
    """What `bar` yields: `update(n)` advances the terminal bar and the progress file."""

    def __init__(self, pb: tqdm, total: Optional[int], desc: str, sink: Optional[str],
                 period_s: float) -> None:
        self.pb, self.total, self.desc, self.sink, self.period_s = pb, total, desc, sink, period_s
        self.n, self._written = 0, 0.0

    def update(self, n: int = 1) -> None:
        self.pb.update(n)
        self.n += n
        if self.sink and time.monotonic() - self._written >= self.period_s:
            self.write()

    def set_postfix(self, **kwargs: Any) -> None:
        self.pb.set_postfix(**kwargs)

    def write(self, done: bool = False) -> None:
        if not self.sink:
            return
        record = {"desc": self.desc, "n": self.n, "total": self.total, "done": done}
        tmp = f"{self.sink}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as fh:
                json.dump(record, fh)
            os.replace(tmp, self.sink)
        except OSError:  # progress is best-effort: never fail the step for it
            pass
        self._written = time.monotonic()


@contextmanager
def bar(total: Optional[int], desc: str, period_s: float = 0.25, quiet: bool = False) -> Iterator[Bar]:
    """A progress bar (silent on the terminal if `quiet` or SCORE_PROGRESS=0)."""
    disable = quiet or os.environ.get("SCORE_PROGRESS", "1") == "0"
    with tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True) as pb:
        b = Bar(pb, total, desc, _SINK.get(), period_s)
        b.write()
        b._written = 0.0  # the first update is written at once
        try:
            yield b
        finally:
            b.write(done=True)


class iterate:
    """`for x in iterate(range(n), desc): ...` — a bar over a sized iterable, like tqdm's,
    with `set_postfix`."""

    def __init__(self, items: Any, desc: str, quiet: bool = False) -> None:
        self.items, self.desc, self.quiet, self._bar = items, desc, quiet, None

    def __iter__(self) -> Iterator[Any]:
        with bar(total=len(self.items), desc=self.desc, quiet=self.quiet) as b:
            self._bar = b
            for item in self.items:
                yield item
                b.update(1)

    def set_postfix(self, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**kwargs)


@contextmanager
def reporting(path: Optional[str]) -> Iterator[None]:
    """Bars opened inside this block (in this thread or context) also write to `path`."""
    token = _SINK.set(path)
    try:
        yield
    finally:
        _SINK.reset(token)


def read(path: str) -> Optional[dict[str, Any]]:
    """The last record written to `path`, or None (none yet, or unreadable)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def call_reporting(target: Callable[..., Any], kwargs: dict[str, Any], path: Optional[str]) -> Any:
    """Call `target(**kwargs)` with its bars reporting to `path` — what a step's child
    process runs (tasks/pipeline_tasks.py `_call`)."""
    with reporting(path):
        return target(**kwargs)
