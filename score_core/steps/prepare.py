"""Data steps: load and normalise the problem sets; filter graded rollouts into SFT examples.

Steps are plain functions, paths and small records in, paths and metrics out; the Prefect
tasks (`tasks/pipeline_tasks.py`) are thin adapters over them and `score bench pipeline` calls
them directly. Every output is written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from score_core.config import RunConfig
from score_core.schema import read_episodes, write_episodes, write_problems
from score_core.timing import phase


def prepare_problems(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Load and normalise train and eval problems into Parquet files."""
    from score_core.problems.loaders import load_problems

    out: dict[str, Any] = {}
    for role, ds in (("train", cfg.data.train), ("eval", cfg.data.eval)):
        with phase("prepare"):
            result = load_problems(ds)
        if not result.problems:
            raise ValueError(f"data.{role}: no problems loaded from {ds.path or ds.hub_name or ds.source}")
        with phase("parquet_io"):
            path = write_problems(result.problems, run_dir / f"problems_{role}.parquet")
        out[role] = {"path": str(path), "n": len(result.problems), "n_skipped": result.n_skipped}
    return out


def sft_examples_step(traces_path: str, out_path: str, data: str, seed: int) -> dict[str, Any]:
    """Filter graded rollouts into SFT examples: STaR's D⁺ ("star") or Pair-SFT pairs ("pair")."""
    from score_core.method.sft import pair_sft_examples, star_examples

    episodes = read_episodes(traces_path)
    if data == "star":
        examples = star_examples(episodes, include_correct_to_correct=True)
    elif data == "pair":
        examples = pair_sft_examples(episodes, seed=seed)
    else:
        raise ValueError(f"unknown SFT data {data!r}; expected 'star' or 'pair'")
    write_episodes(examples, out_path)
    return {"path": out_path, "examples": len(examples), "from_episodes": len(episodes)}
