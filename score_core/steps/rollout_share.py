"""Rollouts of a frozen model, shared across the runs that would sample them alike.

In an ablation several cells roll out the *same* frozen model on the same prompts with the
same seed: STaR-on-base-traces and Pair-SFT sample the base in every iteration, and every
on-policy method's first iteration samples the base too. The HF engine is deterministic at a
fixed thread count (`score_core/numerics.py`), so those cells draw identical tokens and
log-probabilities; measured on the code table, debug-seed1 seed 2: the first-iteration traces
of score, multi-turn RL, STaR, STaR-base and Pair-SFT are equal row for row, and so are
STaR-base's and Pair-SFT's in every later iteration. One cell samples; the others copy its
traces under their own labels (run id, stage, iteration).

The key is everything that decides what is sampled, and nothing that only labels it:

- the model directory: its resolved path and, per file, the name plus the sha256 of the
  content (files ≤ 64 MiB) or size and modification time (bigger files, not re-read at
  every iteration);
- the problems drawn for this rollout (every field, in order);
- k, T, max_new_tokens, batch size, seed, dtype, turn-2 style, torch's thread count and
  version;
- the source of the modules that sample (`score_core/generation/`, `rollout_two_attempts`'s
  callers included), so a code change that could change the tokens changes the key.

Only the HF engine is shared: vLLM's sampling is not bitwise reproducible.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from score_core.schema import Episode, Problem, atomic_write_text, read_episodes, write_episodes

BIG_FILE = 64 * 2**20  # bytes; bigger model files are keyed by size and mtime, not content
_SAMPLING_CODE = Path(__file__).resolve().parents[1] / "generation"


def _file_digest(path: Path) -> str:
    st = path.stat()
    if st.st_size > BIG_FILE:
        return f"size={st.st_size},mtime_ns={st.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_digest(model_dir: str) -> list[Any]:
    root = Path(model_dir).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [str(root)] + [[str(p.relative_to(root)), _file_digest(p)] for p in files]


def _code_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(_SAMPLING_CODE.glob("*.py")) + [Path(__file__).with_name("rollout.py")]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def share_key(model_dir: str, problems: Sequence[Problem], params: dict[str, Any]) -> str:
    """sha256 of what decides a rollout's tokens (module docstring); `params` are the
    sampling settings (k, T, lengths, batch size, seed, dtype, turn-2 style)."""
    import torch

    what = {"model": _model_digest(model_dir), "problems": [dataclasses.asdict(p) for p in problems],
            "params": params, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "code": _code_digest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def reuse(share_dir: str, key: str, out_path: str, run_id: str, stage: str,
          iteration: int) -> Optional[dict[str, Any]]:
    """When `key` was sampled before: write its traces to `out_path` under this run's labels
    and return the sampler's record (marked `shared`); else None."""
    traces, record = Path(share_dir) / f"{key}.parquet", Path(share_dir) / f"{key}.json"
    if not (traces.is_file() and record.is_file()):
        return None
    episodes = [dataclasses.replace(e, run_id=run_id, stage=stage, iteration=iteration)
                for e in read_episodes(traces)]
    write_episodes(episodes, out_path)
    return {**json.loads(record.read_text()), "path": out_path, "shared": True}


def publish(share_dir: str, key: str, episodes: Sequence[Episode], record: dict[str, Any]) -> None:
    """Offer a finished rollout to later runs (atomic: traces first, then the record that
    makes them visible; two runs publishing the same key write the same content)."""
    os.makedirs(share_dir, exist_ok=True)
    write_episodes(episodes, Path(share_dir) / f"{key}.parquet")
    atomic_write_text(json.dumps({k: v for k, v in record.items() if k != "path"}), Path(share_dir) / f"{key}.json")
