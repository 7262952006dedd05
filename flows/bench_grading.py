"""`score bench grading`: what keying the verdict cache on programs instead of texts saves
when several `score ablate` cells grade code rollouts of the same problems.

In one invocation: one debug base is pre-trained (not timed); `--cells` rollouts of the
same `--prompts` training problems are sampled from it with different seeds, as the cells of
an ablation do at an iteration (every cell samples the same problems; later iterations'
policies differ more than these draws, earlier ones less). Then the cells' traces are graded
one after the other in the real Docker sandbox behind a fresh verdict cache, twice:
  text     — the baseline: the cache keyed on each solution's raw text;
  program  — keyed on the program (`program_identity.comment_free`).
It prints programs run and grading wall time per mode, their ratio, and checks that both
modes gave every attempt the same reward (the cache must change cost, never a verdict).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

EPILOG = """examples:
  score bench grading                                     # configs/ablate_debug_code.yaml, 4 cells × 256 prompts
  score bench grading --set model.debug_base.steps=300 --cells 2 --prompts 64   # quick
"""


def _rollouts(cfg: Any, base: Path, train_path: str, out: Path, cells: int, prompts: int) -> list[str]:
    from score_core.steps.rollout import rollout_step

    paths = []
    for c in range(cells):
        raw = str(out / f"cell{c}_raw.parquet")
        rollout_step(str(base), train_path, raw, run_id="bench-grading", stage="stage1", iteration=1,
                     k=cfg.rollout.k, temperature=cfg.rollout.temperature,
                     max_new_tokens=cfg.rollout.max_new_tokens, batch_size=cfg.rollout.batch_size,
                     seed=cfg.train.seed + 1000 + c, limit=prompts, offset=0, dtype=cfg.model.dtype)
        paths.append(raw)
    return paths


def _grade_all(cfg: Any, pool: Any, raws: list[str], train_path: str, out: Path, as_program: bool
               ) -> dict[str, Any]:
    from score_core.problems.verdict_cache import CachedRunner
    from score_core.schema import read_episodes
    from score_core.steps.grade import grade_step

    mode = "program" if as_program else "text"
    cache = CachedRunner(pool, out / f"verdicts-{mode}.sqlite", salt=pool.identity(), as_program=as_program)
    rewards: list = []
    t0 = time.perf_counter()
    for c, raw in enumerate(raws):
        graded = str(out / f"cell{c}_{mode}.parquet")
        grade_step(raw, train_path, graded, math_timeout_s=cfg.grading.math_timeout_s, code_runner=cache,
                   code_timeout_s=cfg.grading.code_timeout_s, code_memory_mb=cfg.grading.code_memory_mb)
        eps = read_episodes(graded)
        rewards.append([(e.reward1, e.reward2) for e in eps])
    return {"mode": mode, "wall_s": time.perf_counter() - t0, "programs_run": cache.runs,
            "from_cache": cache.hits, "rewards": rewards}


def run_bench_grading(config: str, overrides: dict, out: Path, cells: int, prompts: int) -> dict[str, Any]:
    from sandbox import SandboxPool
    from score_core.config import load_config
    from flows.bench import debug_base_once
    from score_core.steps.prepare import prepare_problems

    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config, overrides)
    base = debug_base_once(cfg, out)
    train_path = prepare_problems(cfg, out / "run")["train"]["path"]
    raws = _rollouts(cfg, base, train_path, out, cells, prompts)
    with SandboxPool(slots=cfg.grading.sandbox_slots, progress=False) as pool:
        pool.run("x = 1", timeout_s=5)  # containers warm before either mode is timed
        for p in Path(out).glob("verdicts-*.sqlite*"):
            p.unlink()
        text = _grade_all(cfg, pool, raws, train_path, out, as_program=False)
        program = _grade_all(cfg, pool, raws, train_path, out, as_program=True)
    same = text.pop("rewards") == program.pop("rewards")
    return {"cells": cells, "prompts": prompts, "k": cfg.rollout.k, "attempts": 2 * cells * prompts * cfg.rollout.k,
            "text": text, "program": program, "same_rewards": same,
            "ratio_programs": text["programs_run"] / max(1, program["programs_run"]),
            "ratio_wall": text["wall_s"] / program["wall_s"]}
