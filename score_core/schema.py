"""The typed contract between pipeline steps: problems and two-attempt traces.

Two levels (STYLE.md rule 6): frozen dataclasses cross task boundaries and are
written to Parquet with an explicit pyarrow schema; tensors exist only inside the
trainer. Every write is atomic (temporary name in the same folder, then rename), so a
reader never sees a half-written file, even after `kill -9`.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

KINDS = ("math", "code", "synth")

PROBLEM_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # math500, gsm8k, mbpp, synth_linear, ...
        pa.field("split", pa.string(), nullable=False),  # train | dev | eval
        pa.field("kind", pa.string(), nullable=False),  # math | code | synth
        pa.field("question", pa.string(), nullable=False),  # the turn-1 problem text
        pa.field("answer", pa.string(), nullable=False),  # reference answer ("" for code)
        pa.field("tests", pa.string(), nullable=False),  # code: test program; else ""
        pa.field("entry_point", pa.string(), nullable=False),  # code: function name; else ""
    ]
)


@dataclass(frozen=True)
class Problem:
    problem_id: str
    source: str
    split: str
    kind: str
    question: str
    answer: str
    tests: str = ""
    entry_point: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"problem {self.problem_id}: kind {self.kind!r} not in {KINDS}")


TRACE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),  # eval | stage1 | stage2 | sft ...
        pa.field("iteration", pa.int32(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),  # 0..k-1 within a prompt
        pa.field("attempt1", pa.string(), nullable=False),  # y1, decoded text
        pa.field("attempt2", pa.string(), nullable=False),  # y2, decoded text
        pa.field("reward1", pa.float64(), nullable=True),  # r1; null = could not be scored
        pa.field("reward2", pa.float64(), nullable=True),  # r2; null = could not be scored
        pa.field("prompt_tokens1", pa.int32(), nullable=False),  # len(x1) in tokens
        pa.field("prompt_tokens2", pa.int32(), nullable=False),  # len(x2) = len(x1 ⊕ y1 ⊕ p)
        pa.field("tokens1", pa.int32(), nullable=False),  # len(y1) in tokens
        pa.field("tokens2", pa.int32(), nullable=False),  # len(y2) in tokens
        pa.field("truncated1", pa.bool_(), nullable=False),  # y1 hit max_new_tokens
        pa.field("truncated2", pa.bool_(), nullable=False),  # y2 hit max_new_tokens
        pa.field("reward_status1", pa.string(), nullable=False),  # ok | empty | sandbox_error ...
        pa.field("reward_status2", pa.string(), nullable=False),
        pa.field("y1_ids", pa.list_(pa.int32()), nullable=False),  # sampled y1 token ids (no EOS)
        pa.field("y2_ids", pa.list_(pa.int32()), nullable=False),  # sampled y2 token ids (no EOS)
        # What the rollout sampled besides the ids (decode.Generation): the stop token that
        # ended each attempt (null: truncated, or not recorded) and the behaviour
        # log-probabilities log μ(token) at the sampling temperature of every token of y_i
        # and then of its stop token (empty: not recorded, e.g. SFT pairs or old traces).
        pa.field("stop1_id", pa.int32(), nullable=True),
        pa.field("stop2_id", pa.int32(), nullable=True),
        pa.field("logp1", pa.list_(pa.float32()), nullable=False),
        pa.field("logp2", pa.list_(pa.float32()), nullable=False),
        pa.field("temperature", pa.float32(), nullable=False),  # sampling T (0 = greedy)
    ]
)
# Columns added after the first traces were written, with the value an old file implies.
_TRACE_DEFAULTS = {"stop1_id": None, "stop2_id": None, "logp1": [], "logp2": [], "temperature": 1.0}


@dataclass(frozen=True)
class Episode:
    """One two-attempt trace: x → y1, then x ⊕ y1 ⊕ p → y2."""

    run_id: str
    stage: str
    iteration: int
    problem_id: str
    sample_index: int
    attempt1: str
    attempt2: str
    reward1: float | None = None
    reward2: float | None = None
    prompt_tokens1: int = 0
    prompt_tokens2: int = 0
    tokens1: int = 0
    tokens2: int = 0
    truncated1: bool = False
    truncated2: bool = False
    reward_status1: str = "ungraded"
    reward_status2: str = "ungraded"
    y1_ids: tuple[int, ...] = ()
    y2_ids: tuple[int, ...] = ()
    stop1_id: int | None = None
    stop2_id: int | None = None
    logp1: tuple[float, ...] = ()
    logp2: tuple[float, ...] = ()
    temperature: float = 1.0


def _rows_to_table(rows: Sequence[object], schema: pa.Schema) -> pa.Table:
    cols = {f.name: [_plain(getattr(r, f.name)) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def atomic_write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write a Parquet file atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (temp name, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_problems(problems: Iterable[Problem], path: str | os.PathLike) -> Path:
    return atomic_write_table(_rows_to_table(list(problems), PROBLEM_SCHEMA), path)


def read_problems(path: str | os.PathLike) -> list[Problem]:
    table = pq.read_table(path, schema=PROBLEM_SCHEMA)
    return [Problem(**row) for row in table.to_pylist()]


def write_episodes(episodes: Iterable[Episode], path: str | os.PathLike) -> Path:
    return atomic_write_table(_rows_to_table(list(episodes), TRACE_SCHEMA), path)


def read_episodes(path: str | os.PathLike) -> list[Episode]:
    """Traces as Episodes; a file written before a column existed gets `_TRACE_DEFAULTS`."""
    names = set(pq.read_schema(path).names)
    missing = [f for f in TRACE_SCHEMA if f.name not in names]
    if any(f.name not in _TRACE_DEFAULTS for f in missing):
        raise ValueError(f"{path}: not a trace file (missing columns {[f.name for f in missing]})")
    present = pa.schema([f for f in TRACE_SCHEMA if f.name in names])
    rows = pq.read_table(path, schema=present).to_pylist()
    for row in rows:
        for f in missing:
            row[f.name] = _TRACE_DEFAULTS[f.name]
        for key in ("y1_ids", "y2_ids", "logp1", "logp2"):
            row[key] = tuple(row[key])
    return [Episode(**row) for row in rows]
