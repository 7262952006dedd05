"""How long a resumable command has run on one output directory, summed over invocations —
including invocations that never finished.

`score ablate` is resumed by running it again; its table states the wall time of all the
invocations together. Reading that sum from the previous invocation's final output would
drop every invocation that was killed (SIGKILL, a lost machine) or failed before writing it.
`WallClock` keeps `<out_dir>/wall.json` instead: one record per invocation, written when it
starts, every `every_s` seconds from a daemon thread while it runs, and when it stops
(`"ended": "finished"` or `"failed"`). A killed invocation keeps the time of its last write,
so the sum undercounts it by at most `every_s`; its record stays `"ended": null`.

A directory written before this file existed carries its earlier total only in the old
`meta` (`wall_s`, `invocations`): pass it as `legacy` and it becomes the first record.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from score_core.schema import atomic_write_text

FILE = "wall.json"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def read_invocations(out_dir: str | Path) -> list[dict[str, Any]]:
    """The invocation records of `out_dir` (empty when none was kept)."""
    path = Path(out_dir) / FILE
    return json.loads(path.read_text())["invocations"] if path.is_file() else []


def totals(records: list[dict[str, Any]]) -> tuple[float, int]:
    """(wall seconds, invocations) summed over `records`; a legacy record may stand for several."""
    return (sum(float(r["wall_s"]) for r in records), sum(int(r.get("invocations", 1)) for r in records))


class WallClock:
    """Time this invocation into `<out_dir>/wall.json` (see module docstring)."""

    def __init__(self, out_dir: str | Path, every_s: float = 30.0, legacy: Optional[dict[str, Any]] = None) -> None:
        self.path = Path(out_dir) / FILE
        self.every_s = every_s
        self._records = read_invocations(out_dir)
        if not self._records and legacy and legacy.get("wall_s"):
            self._records = [{"started": None, "ended": "before wall.json", "wall_s": float(legacy["wall_s"]),
                              "invocations": int(legacy.get("invocations", 1))}]
        self._mine = {"started": _now(), "ended": None, "wall_s": 0.0}
        self._records.append(self._mine)
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "WallClock":
        self.tick()
        self._thread = threading.Thread(target=self._beat, name="wall-clock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.tick(ended="failed" if exc_type is not None else "finished")

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self.tick()

    def tick(self, ended: Optional[str] = None) -> None:
        """Record this invocation's elapsed time (atomically; safe from any thread)."""
        with self._lock:
            self._mine["wall_s"] = round(time.perf_counter() - self._t0, 3)
            if ended:
                self._mine["ended"] = ended
            atomic_write_text(json.dumps({"invocations": self._records}, indent=1), self.path)

    def totals(self) -> tuple[float, int]:
        """(wall seconds, invocations) of every invocation so far, this one up to now."""
        with self._lock:
            self._mine["wall_s"] = round(time.perf_counter() - self._t0, 3)
            return totals(self._records)
