"""A run directory's ledger of finished steps, for resume after a crash (even `kill -9`).

`steps.json` maps a step key (e.g. "rollout/it003") to the small record the step returned.
A step is skipped on re-run only if it is in the ledger *and* every path it recorded is
still there and whole (a Parquet file ends with its footer magic, a checkpoint directory is
loadable: `models.is_complete_checkpoint`, weights present and as large as when saved);
otherwise it is redone. Paths inside the run directory are stored relative to it and
resolved against the directory the ledger is read from, so a copied or moved run directory
resumes from its own files. The ledger is written atomically *after* the step's outputs,
so it never names a half-written file. One process at a time owns a run directory
(`run_dir_lock`); on entry, temporary files left by a killed writer are removed.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from score_core.schema import atomic_write_text

_LOCK = threading.Lock()
PATH_KEYS = ("path", "checkpoint", "model_dir", "report")


def _ledger_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "steps.json"


def load_ledger(run_dir: str | Path) -> dict[str, Any]:
    p = _ledger_path(run_dir)
    return json.loads(p.read_text()) if p.is_file() else {}


def output_is_whole(path: str | Path) -> bool:
    """A recorded output counts only if it is complete: cheap checks, no full reads."""
    p = Path(path)
    if p.suffix == ".parquet":
        if not p.is_file() or p.stat().st_size < 12:
            return False
        with open(p, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            return fh.read(4) == b"PAR1"
    if (p.name == "base" or p.parent.name == "checkpoints") and not p.is_file():
        from score_core.generation.models import is_complete_checkpoint

        return is_complete_checkpoint(p)
    return p.exists()


def _is_path_key(key: str, value: Any) -> bool:
    return isinstance(value, str) and (key in PATH_KEYS or key.endswith("_path"))


def _outputs_exist(record: dict[str, Any]) -> bool:
    return all(output_is_whole(v) for k, v in record.items() if _is_path_key(k, v))


def to_run_relative(run_dir: str | Path, result: dict[str, Any]) -> dict[str, Any]:
    """The record as stored: each path inside `run_dir` relative to it (POSIX form)."""
    root = os.path.abspath(run_dir)
    out = {}
    for k, v in result.items():
        if _is_path_key(k, v):
            full = os.path.abspath(v)
            if full == root or full.startswith(root + os.sep):
                v = Path(os.path.relpath(full, root)).as_posix()
        out[k] = v
    return out


def from_run_relative(run_dir: str | Path, stored: dict[str, Any]) -> dict[str, Any]:
    """The record as used: relative paths resolved against `run_dir` (where it is now)."""
    return {k: (str(Path(run_dir) / v) if _is_path_key(k, v) and not os.path.isabs(v) else v)
            for k, v in stored.items()}


def finished(run_dir: str | Path, key: str) -> Optional[dict[str, Any]]:
    stored = load_ledger(run_dir).get(key)
    if stored is None:
        return None
    rec = from_run_relative(run_dir, stored)
    return rec if _outputs_exist(rec) else None


def record(run_dir: str | Path, key: str, result: dict[str, Any]) -> None:
    with _LOCK:
        ledger = load_ledger(run_dir)
        ledger[key] = to_run_relative(run_dir, result)
        atomic_write_text(json.dumps(ledger, indent=2, default=str), _ledger_path(run_dir))


def once(run_dir: str | Path, key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` unless the ledger shows the step finished with its outputs on disk."""
    done = finished(run_dir, key)
    if done is not None:
        return {**done, "resumed": True}
    result = fn()
    record(run_dir, key, result)
    return result


class RunDirBusy(ValueError):
    """Another live process is running a pipeline in this run directory (a usage error: the
    CLI prints it as one line, and it is never retried)."""


@contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[None]:
    """Exclusive ownership of a run directory for one pipeline run. The OS drops the lock
    when its process dies, so a `kill -9`ed run never blocks its own resume."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    fh = open(run / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(f"{run} is being written by another running pipeline; wait for it, "
                             f"or pass another --run-dir") from None
        clean_stale_temps(run)
        yield
    finally:
        fh.close()


def clean_stale_temps(run_dir: Path) -> list[str]:
    """Remove temporaries of atomic writes (".name.XXXX.tmp" files, ".name.XXXX" dirs) that a
    killed writer left behind. Only called while holding the run directory's lock."""
    removed = []
    for sub in (run_dir, run_dir / "traces", run_dir / "checkpoints", run_dir / "plots"):
        if not sub.is_dir():
            continue
        for p in sub.iterdir():
            if not p.name.startswith(".") or p.name == ".lock":
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            else:
                continue
            removed.append(p.name)
    return removed
