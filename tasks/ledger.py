"""A run directory's ledger of finished steps, for resume after a crash (even `kill -9`).

`steps.json` maps a step key (e.g. "rollout/it003") to the small record the step returned.
A step is skipped on re-run only if it is in the ledger *and* every path it recorded still
exists; otherwise it is redone. The ledger itself is written atomically after the step's
outputs, so it never names a half-written file.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from score_core.schema import atomic_write_text

_LOCK = threading.Lock()
PATH_KEYS = ("path", "checkpoint", "model_dir", "report")


def _ledger_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "steps.json"


def load_ledger(run_dir: str | Path) -> dict[str, Any]:
    p = _ledger_path(run_dir)
    return json.loads(p.read_text()) if p.is_file() else {}


def _outputs_exist(record: dict[str, Any]) -> bool:
    paths = [v for k, v in record.items()
             if isinstance(v, str) and (k in PATH_KEYS or k.endswith("_path"))]
    return all(Path(p).exists() for p in paths)


def finished(run_dir: str | Path, key: str) -> Optional[dict[str, Any]]:
    record = load_ledger(run_dir).get(key)
    if record is None or not _outputs_exist(record):
        return None
    return record


def record(run_dir: str | Path, key: str, result: dict[str, Any]) -> None:
    with _LOCK:
        ledger = load_ledger(run_dir)
        ledger[key] = result
        atomic_write_text(json.dumps(ledger, indent=2, default=str), _ledger_path(run_dir))


def once(run_dir: str | Path, key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` unless the ledger shows the step finished with its outputs on disk."""
    done = finished(run_dir, key)
    if done is not None:
        return {**done, "resumed": True}
    result = fn()
    record(run_dir, key, result)
    return result
