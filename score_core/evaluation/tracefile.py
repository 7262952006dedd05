"""Reading trace files written by anyone: the minimum columns `score metrics` needs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REQUIRED = {
    "problem_id": pa.string(),
    "attempt1": pa.string(),
    "attempt2": pa.string(),
    "reward1": pa.float64(),
    "reward2": pa.float64(),
}


def read_trace_columns(path: str | Path) -> dict[str, list[Any]]:
    """The required columns as Python lists; a clear ValueError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a Parquet file ({exc})") from None
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)}")
    table = pq.read_table(path, columns=list(REQUIRED))
    out: dict[str, list[Any]] = {}
    for name, typ in REQUIRED.items():
        col = table.column(name)
        try:
            col = col.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"{path}: column {name} is {col.type}, expected {typ} ({exc})") from None
        out[name] = col.to_pylist()
    for name in ("attempt1", "attempt2"):
        out[name] = [s if s is not None else "" for s in out[name]]
    return out


def per_problem_rewards(path: str | Path) -> dict[str, tuple[Any, Any]]:
    """problem_id → (r1, r2) of a graded evaluation file (the mean over rows if a problem
    repeats; None where no row of it could be scored)."""
    cols = read_trace_columns(path)
    rows: dict[str, list[tuple[Any, Any]]] = {}
    for pid, r1, r2 in zip(cols["problem_id"], cols["reward1"], cols["reward2"]):
        rows.setdefault(pid, []).append((r1, r2))

    def mean(vals: list[Any]) -> Any:
        known = [v for v in vals if v is not None]
        return sum(known) / len(known) if known else None

    return {pid: (mean([a for a, _ in rs]), mean([b for _, b in rs])) for pid, rs in rows.items()}
