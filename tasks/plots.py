"""PNG plots of a run, saved in `<run_dir>/plots/` and linked from report.md.

Plain matplotlib (Agg backend, no display). Each function takes small records or lists
and one output path, writes the PNG atomically and returns its path.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (7, 4)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=size, constrained_layout=True)


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(path)


def eval_label(e: dict[str, Any]) -> str:
    return "base" if e["stage"] == "base" else f"{e['stage']}\nit {e['iteration']}"


def accuracy_plot(evals: Sequence[dict[str, Any]], path: Path) -> str:
    """Accuracy@t1 and Accuracy@t2 (held-out, greedy) after every stage iteration."""
    fig, ax = _figure()
    x = range(len(evals))
    ax.plot(x, [100 * e["accuracy_t1"] for e in evals], "o-", label="Accuracy@t1")
    ax.plot(x, [100 * e["accuracy_t2"] for e in evals], "s-", label="Accuracy@t2")
    ax.set_xticks(list(x), [eval_label(e) for e in evals])
    ax.set_ylabel("% correct (held-out)")
    ax.set_title("Accuracy at turn 1 and turn 2")
    ax.legend()
    return _save(fig, path)


def flips_plot(evals: Sequence[dict[str, Any]], path: Path) -> str:
    """Counts of problems flipped incorrect→correct and correct→incorrect between attempts."""
    fig, ax = _figure()
    x = list(range(len(evals)))
    i2c = [round(e["delta_i_to_c"] * e["n"]) for e in evals]
    c2i = [round(e["delta_c_to_i"] * e["n"]) for e in evals]
    ax.bar([v - 0.2 for v in x], i2c, width=0.4, label="incorrect → correct", color="tab:green")
    ax.bar([v + 0.2 for v in x], c2i, width=0.4, label="correct → incorrect", color="tab:red")
    ax.set_xticks(x, [eval_label(e) for e in evals])
    ax.set_ylabel("problems")
    ax.set_title("Answer flips between attempt 1 and attempt 2")
    ax.legend()
    return _save(fig, path)


def training_plot(trains: Sequence[dict[str, Any]], path: Path) -> str:
    """Per-step mean rewards and per-token KL, concatenated over stage iterations."""
    fig, (ax_r, ax_kl) = _figure(2, 1, size=(7, 6))
    step0 = 0
    for t in trains:
        hist_path = Path(str(t["checkpoint"]) + ".history.json")
        history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
        ok = [(step0 + i, h) for i, h in enumerate(history) if not h.get("nan_skipped")]
        steps = [s for s, _ in ok]
        label = f"{t['stage']} it{t['iteration']}"
        ax_r.plot(steps, [h.get("reward1", float("nan")) for _, h in ok], "-", label=f"r1 {label}")
        ax_r.plot(steps, [h.get("reward2", float("nan")) for _, h in ok], "--", label=f"r2 {label}")
        ax_kl.plot(steps, [h.get("kl_t1", float("nan")) for _, h in ok], "-", label=f"KL y1 {label}")
        ax_kl.plot(steps, [h.get("kl_t2", float("nan")) for _, h in ok], "--", label=f"KL y2 {label}")
        step0 += len(history)
    ax_r.set_ylabel("mean reward (train rollouts)")
    ax_r.set_title("Training reward and KL to the reference, per optimizer step")
    ax_kl.set_ylabel("per-token KL")
    ax_kl.set_xlabel("optimizer step")
    for ax in (ax_r, ax_kl):
        if ax.get_legend_handles_labels()[0]:  # base and self_refine train nothing
            ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def edit_ratio_plot(ratios: dict[str, Sequence[float]], path: Path) -> str:
    """Histogram of edit distance / total length between attempt 1 and attempt 2."""
    fig, ax = _figure()
    bins = [i / 20 for i in range(21)]
    for label, values in ratios.items():
        ax.hist(values, bins=bins, alpha=0.5, label=f"{label} (n={len(values)})")
    ax.set_xlabel("edit distance ratio (0 = attempt 2 identical to attempt 1)")
    ax.set_ylabel("episodes")
    ax.set_title("How much the second attempt changes the first")
    ax.legend()
    return _save(fig, path)


def plot_ablation(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Acc@t2 and Δ(t1,t2) per method (bars: mean over seeds, whiskers: 95% interval),
    one group of bars per base model."""
    import math

    bases = list(dict.fromkeys(r["base"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = _figure(1, 2, size=(12, 4.5))
    width = 0.8 / max(len(bases), 1)
    for ax, key, title in ((axes[0], "accuracy_t2", "Accuracy@t2 (%)"), (axes[1], "delta_t1_t2", "Δ(t1,t2) (points)")):
        for b, base in enumerate(bases):
            by = {r["method"]: r for r in rows if r["base"] == base}
            xs = [i + (b - (len(bases) - 1) / 2) * width for i in range(len(methods))]
            means = [100 * by[m][key][0] if m in by else math.nan for m in methods]
            errs = [0.0 if m not in by or math.isnan(by[m][key][1]) else 100 * by[m][key][1] for m in methods]
            ax.bar(xs, means, width, yerr=errs, capsize=3, label=base)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=35, ha="right")
        ax.set_title(title)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    return Path(_save(fig, Path(path)))


def plot_reward_curves(curves: dict[str, dict[str, list[list[float]]]], path: Path) -> Path:
    """Training reward (mean r2 of each iteration's rollouts) per method, one panel per base
    model; thin lines are seeds, the thick line their mean."""
    import math

    bases = list(curves) or ["(none)"]
    fig, axes = _figure(1, len(bases), size=(6 * len(bases), 4.5))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, base in zip(axes, bases):
        for i, (method, runs) in enumerate(curves.get(base, {}).items()):
            color = f"C{i % 10}"
            for run in runs:
                ax.plot(range(1, len(run) + 1), [100 * v for v in run], color=color, alpha=0.3, linewidth=0.8)
            width = max(len(r) for r in runs)
            mean = [sum(vals) / len(vals) if vals else math.nan
                    for vals in ([r[j] for r in runs if j < len(r)] for j in range(width))]
            ax.plot(range(1, width + 1), [100 * v for v in mean], color=color, linewidth=2, label=method)
        ax.set_title(f"training reward r2 — {base}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("mean r2 of the iteration's rollouts (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return Path(_save(fig, Path(path)))
