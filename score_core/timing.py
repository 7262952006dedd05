"""Wall-time phases of pipeline steps, for `score bench pipeline`'s split.

`phase("model_load")` times a block. Nothing is recorded unless the environment variable
SCORE_TIMING names a file: then each phase appends one JSON line (pid, phase, start and end
wall-clock time) to it, from whichever process ran it (child processes of the step
forkserver inherit the variable when it was set before the forkserver started). The bench
assigns lines to runs by time. Phases do not nest: each names time spent in exactly one
category. Off (the default) a phase costs one environment lookup.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Iterator

ENV = "SCORE_TIMING"
PHASES = ("rollout", "grading", "training", "model_load", "model_save", "parquet_io", "child_process",
          "ledger", "prepare", "report")


@contextmanager
def phase(name: str) -> Iterator[None]:
    sink = os.environ.get(ENV)
    if not sink:
        yield
        return
    t0 = time.time()
    try:
        yield
    finally:
        record(name, t0, time.time(), sink)


def record(name: str, start: float, end: float, sink: str | None = None) -> None:
    """Append one finished phase (wall-clock `start`..`end`, time.time()) to the sink."""
    sink = sink or os.environ.get(ENV)
    if not sink:
        return
    line = json.dumps({"pid": os.getpid(), "phase": name, "start": start, "end": end}) + "\n"
    fd = os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write of a short line with O_APPEND: never interleaved
    finally:
        os.close(fd)


def read_lines(sink: str) -> list[dict]:
    """Every phase recorded in the sink so far."""
    if not os.path.isfile(sink):
        return []
    with open(sink, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
