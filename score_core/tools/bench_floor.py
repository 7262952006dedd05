"""`score bench floor`: how much of a table cell's iteration is arithmetic the model cannot skip.

One iteration of a finished `score ablate` cell is replayed from its own files — the rollout
of that iteration's prompts from the previous checkpoint (`rollout.rollout_two_attempts`, the
pipeline's seed, the cell's k, T, batch and length) and the training step on its graded traces
(`trainer.train_on_episodes`, the cell's plan, batching and reference) — first timed
plainly, then under `torch.profiler`, which splits the kernels' own time into

- **matmul**: `aten::mm` / `addmm` / `bmm` / `matmul` (the linear layers, forward and backward);
- **attention**: the scaled-dot-product-attention kernels, forward and backward;
- **rest**: every other op's own time (element-wise ops, norms, rotary, softmax/KL, sampling,
  cache copies, Adam). Python between ops is in none of the three: it is part of wall − floor.

`floor` = matmul + attention: what the iteration would cost if every other op were free and
the linear layers and attention kept this core's speed at these shapes. `ratio` = plain wall
time / floor, the most that removing "rest" could buy. The profiler's per-op bookkeeping
inflates its own total, so the split's fractions are applied to nothing: the floor is the
kernels' measured self time, compared with a separate plain run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::baddbmm")
ATTENTION = "scaled_dot_product"  # aten::_scaled_dot_product_*_attention_for_cpu and their backward


def cell_iteration(cell_dir: str | Path, iteration: int) -> dict[str, Any]:
    """The files one iteration of a finished ablation cell read: config, previous checkpoint,
    base (π_ref), graded traces and training problems."""
    from score_core.config import RunConfig
    from score_core.method.plan import method_plan

    cell = Path(cell_dir)
    cfg = RunConfig.model_validate(json.loads((cell / "config.json").read_text()))
    if not 1 <= iteration <= len(cfg.train.schedule):
        raise ValueError(f"iteration {iteration} is not one of the cell's 1..{len(cfg.train.schedule)}")
    plan = method_plan(cfg.method, cfg.train)[iteration - 1]
    if plan.is_sft or plan.sample_from != "policy":
        raise ValueError(f"{cell}: {cfg.method} iteration {iteration} is {plan.name} — the floor bench replays "
                         "on-policy RL iterations (a score, multi_turn_rl, … cell)")
    stage = plan.name
    previous = sorted(cell.glob(f"checkpoints/it{iteration - 1:03d}_*"))
    policy = next((str(p) for p in previous if p.is_dir()), None) if iteration > 1 else None
    base = Path(cfg.model.path or "")  # π_ref: the cell's model.path, else its ablation's bases/<base name>
    if not cfg.model.path or not base.is_dir():
        base = cell.parent.parent.parent / "bases" / cell.parent.name
    if not base.is_dir():
        raise FileNotFoundError(f"{cell}: its base model is neither model.path {cfg.model.path!r} nor {base}")
    traces = cell / "traces" / f"rollout_{stage}_it{iteration:03d}.parquet"
    history = cell / "checkpoints" / f"it{iteration:03d}_{stage}.history.json"
    for f in (traces, history):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: is iteration {iteration} of {cell} finished?")
    return {"cfg": cfg, "plan": plan, "policy": policy or str(base), "base": str(base), "traces": str(traces),
            "raw_traces": str(traces).replace(".parquet", "_raw.parquet"), "history": str(history),
            "problems": str(cell / "problems_train.parquet"), "iteration": iteration}


def kernel_split(fn: Callable[[], Any]) -> dict[str, float]:
    """Run `fn` under the CPU profiler → seconds of kernel self time: matmul, attention, rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    split = {"matmul": 0.0, "attention": 0.0, "rest": 0.0}
    for ev in prof.key_averages():
        s = ev.self_cpu_time_total / 1e6
        key = "matmul" if ev.key in MATMUL else "attention" if ATTENTION in ev.key else "rest"
        split[key] += s
    return split


def _rollout(c: dict[str, Any]) -> Callable[[], Any]:
    """The cell's rollout step for this iteration, as `tasks.pipeline_tasks.rollout` called it."""
    from score_core.generation.models import load_model, load_tokenizer
    from score_core.generation.rollout import rollout_two_attempts
    from score_core.schema import read_episodes, read_problems

    cfg, it, r = c["cfg"], c["iteration"], c["cfg"].rollout
    model, tok = load_model(c["policy"], "float32", trainable=False), load_tokenizer(c["policy"])
    by_id = {p.problem_id: p for p in read_problems(c["problems"])}
    ids = list(dict.fromkeys(ep.problem_id for ep in read_episodes(c["raw_traces"])))
    return lambda: rollout_two_attempts(model, tok, [by_id[i] for i in ids], k=r.k, temperature=r.temperature,
                                        max_new_tokens=r.max_new_tokens, batch_size=r.batch_size, run_id="floor",
                                        stage=c["plan"].name, iteration=it,
                                        seed=cfg.train.seed + 1000 * it)


def _training(c: dict[str, Any]) -> Callable[[], Any]:
    """The cell's training step for this iteration, as `steps.train.train_step` ran it."""
    from score_core.method.trainer import train_on_episodes
    from score_core.schema import read_episodes, read_problems
    from score_core.steps.train import build_training, hyper

    cfg, it, plan = c["cfg"], c["iteration"], c["plan"]
    episodes = read_episodes(c["traces"])
    problems = {p.problem_id: p for p in read_problems(c["problems"])}

    def run() -> Any:  # a fresh policy and Adam state each time: every run takes the same steps
        torch.manual_seed(cfg.train.seed + it)
        b = build_training(cfg, c["policy"], c["base"])
        return train_on_episodes(b.policy, b.ref_model, b.tokenizer, b.optimizer, b.accelerator, episodes,
                                 problems, plan, hyper(cfg, it))
    return run


def same_as_the_cell(c: dict[str, Any], episodes: list[Any], history: list[dict[str, float]]) -> dict[str, Any]:
    """Did the replay do the cell's work? Sampled ids against the cell's raw traces; per-step
    losses against the cell's checkpoint history (both written by the pipeline, not here)."""
    from score_core.schema import read_episodes

    cell = [(tuple(e.y1_ids), tuple(e.y2_ids)) for e in read_episodes(c["raw_traces"])]
    mine = [(tuple(e.y1_ids), tuple(e.y2_ids)) for e in episodes]
    recorded = json.loads(Path(c["history"]).read_text())
    losses = [abs(a["loss"] - b["loss"]) for a, b in zip(history, recorded)]
    return {"rollout_rows_differing": sum(a != b for a, b in zip(cell, mine)) + abs(len(cell) - len(mine)),
            "training_steps": [len(history), len(recorded)], "max_abs_loss_diff": max(losses, default=float("nan"))}


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_floor(cell_dir: str | Path, iteration: int, repeats: int = 3) -> dict[str, Any]:
    """Plain median wall time and the profiled kernel split of one rollout and one training
    step of `cell_dir`'s iteration `iteration` (see module docstring)."""
    c = cell_iteration(cell_dir, iteration)
    out: dict[str, Any] = {"cell": str(cell_dir), "iteration": iteration, "repeats": repeats,
                           "threads": torch.get_num_threads()}
    outputs = {}
    for name, make in (("rollout", _rollout), ("training", _training)):
        fn = make(c)
        outputs[name] = fn()  # warm-up (allocator, lazy imports), and the check below
        wall = _timed(fn, repeats)
        split = kernel_split(fn)
        floor = split["matmul"] + split["attention"]
        out[name] = {"wall_s": wall, **{f"{k}_s": v for k, v in split.items()}, "floor_s": floor,
                     "ratio": wall / floor if floor else float("nan")}
    out["same_as_the_cell"] = same_as_the_cell(c, outputs["rollout"], outputs["training"])
    return out


def format_floor(r: dict[str, Any]) -> str:
    lines = [f"cell {r['cell']}, iteration {r['iteration']}, {r['threads']} thread(s), median of {r['repeats']}",
             f"{'step':<9} {'wall':>8} | {'matmul':>8} {'attention':>9} {'rest':>8} (profiled) | "
             f"{'floor':>7} {'wall/floor':>10}"]
    for name in ("rollout", "training"):
        s = r[name]
        lines.append(f"{name:<9} {s['wall_s']:>7.2f}s | {s['matmul_s']:>7.2f}s {s['attention_s']:>8.2f}s "
                     f"{s['rest_s']:>7.2f}s | {s['floor_s']:>6.2f}s {s['ratio']:>9.2f}×")
    wall = r["rollout"]["wall_s"] + r["training"]["wall_s"]
    floor = r["rollout"]["floor_s"] + r["training"]["floor_s"]
    lines.append(f"{'both':<9} {wall:>7.2f}s | {'':>28} | {floor:>6.2f}s {wall / floor:>9.2f}×")
    same = r["same_as_the_cell"]
    lines.append(f"the cell's own work: {same['rollout_rows_differing']} rollout rows differ from its raw traces; "
                 f"{same['training_steps'][0]} vs {same['training_steps'][1]} optimizer steps, max |Δ loss| "
                 f"{same['max_abs_loss_diff']:.1e} against its checkpoint history")
    return "\n".join(lines)
