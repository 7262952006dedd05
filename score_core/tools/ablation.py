"""`score ablate`'s arithmetic: per-cell metrics → mean ± 95% interval over seeds → tables.

A cell is one (base model, method, seed) run evaluated on the held-out split. For each
(base, method) the table reports, for every metric, the mean over seeds and the
half-width of the two-sided 95% Student-t interval of that mean,
    m̄ ± t_{0.975, n−1} · s / √n        (s: sample standard deviation over the n seeds).
A method whose runs are deterministic given the base (base, self_refine: greedy
evaluation, no training) is run once and shown with n = 1 and no interval.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence

from score_core.evaluation.intervals import Interval, align, bootstrap_interval, delta_grid
from score_core.method.plan import UNTRAINED

TABLE_METRICS = (
    ("accuracy_t1", "Acc@t1"), ("accuracy_t2", "Acc@t2"), ("delta_t1_t2", "Δ(t1,t2)"),
    ("delta_i_to_c", "Δi→c"), ("delta_c_to_i", "Δc→i"),
    ("unchanged_answer_rate", "unchanged answer"), ("edit_distance_ratio", "edit ratio"),
)
PERCENT = {"accuracy_t1", "accuracy_t2", "delta_t1_t2", "delta_i_to_c", "delta_c_to_i", "unchanged_answer_rate"}
DETERMINISTIC = UNTRAINED  # no training, greedy evaluation: one run says it all

# two-sided 95% Student-t critical values t_{0.975, df}, df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)

# The paper's MATH500 table (Gemini 1.5 Flash; SCORE_METHOD.md): Acc@t1, Acc@t2, Δ, Δi→c, Δc→i
PAPER_MATH = (
    ("Base", 52.6, 41.4, -11.2, 4.6, 15.8),
    ("Self-Refine", 52.8, 51.8, -1.0, 3.2, 4.2),
    ("STaR (D⁺)", 53.6, 54.0, 0.4, 2.6, 2.2),
    ("Pair-SFT", 52.4, 54.2, 1.8, 5.4, 3.6),
    ("SCoRe", 60.0, 64.4, 4.4, 5.8, 1.4),
)
PAPER_ABLATIONS = (("single-turn RL", 61.8, 59.4, -2.4), ("no Stage I", 59.2, 61.4, 2.2),
                   ("no shaping (α = 0)", 60.0, 62.6, 2.6), ("STaR in Stage II", 56.2, 58.4, 2.2))


def t_critical(df: int) -> float:
    """t_{0.975, df}; the normal 1.96 beyond the table."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, 95% half-width) of `values`; half-width is NaN for fewer than two values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, math.nan
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return m, t_critical(len(vals) - 1) * s / math.sqrt(len(vals))


def summarise(cells: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows {base, method, n, seeds, <metric>: (mean, half-width)} in input order of first appearance."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[(cell["base"], cell["method"])].append(cell)
    rows = []
    for (base, method), runs in groups.items():
        row: dict[str, Any] = {"base": base, "method": method, "n": len(runs),
                               "seeds": sorted(r["seed"] for r in runs)}
        for key, _ in TABLE_METRICS:
            row[key] = mean_ci([r["metrics"].get(key, math.nan) for r in runs])
        rows.append(row)
    return rows


def _fmt(key: str, value: tuple[float, float]) -> str:
    m, h = value
    scale = 100.0 if key in PERCENT else 1.0
    digits = 1 if key in PERCENT else 3
    if math.isnan(m):
        return "–"
    text = f"{m * scale:.{digits}f}"
    return text if math.isnan(h) else f"{text} ± {h * scale:.{digits}f}"


def markdown_table(rows: Sequence[dict[str, Any]], base: Optional[str] = None) -> str:
    """A markdown table (percent points, mean ± 95% half-width) of one base model's rows."""
    head = "| method | n | " + " | ".join(label for _, label in TABLE_METRICS) + " |"
    sep = "|---|---|" + "---|" * len(TABLE_METRICS)
    lines = [head, sep]
    for row in rows:
        if base is not None and row["base"] != base:
            continue
        cells = " | ".join(_fmt(k, row[k]) for k, _ in TABLE_METRICS)
        lines.append(f"| {row['method']} | {row['n']} | {cells} |")
    return "\n".join(lines)


def paper_table() -> str:
    lines = ["| method (paper, MATH500, Gemini 1.5 Flash) | Acc@t1 | Acc@t2 | Δ(t1,t2) | Δi→c | Δc→i |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {a} | {b} | {d:+.1f} | {ic} | {ci} |" for name, a, b, d, ic, ci in PAPER_MATH]
    lines += [f"| {name} (ablation) | {a} | {b} | {d:+.1f} | – | – |" for name, a, b, d in PAPER_ABLATIONS]
    return "\n".join(lines)


def _lo_hi(v: tuple[float, float]) -> tuple[float, float]:
    m, h = v
    h = 0.0 if math.isnan(h) else h
    return m - h, m + h


def paired_intervals(per_seed: dict[str, list[dict[str, tuple[Any, Any]]]], n_boot: int = 4000,
                     ref: str = "score") -> dict[str, dict[str, Interval]]:
    """One base model's cells → method → {"delta", "acc_t2"} and, for methods other than
    `ref`, {"ref_minus_delta", "ref_minus_acc_t2"}: `ref` minus the method. 95% paired
    bootstrap over the held-out problems (shared draw) and each method's seeds
    (score_core/evaluation/intervals.py). `per_seed[method]`: one {problem_id: (r1, r2)} per seed."""
    methods = list(per_seed)
    runs = [run for m in methods for run in per_seed[m]]
    _, r1, r2 = align(runs)  # problems every run answered, same column order everywhere
    grids, at = {}, 0
    for m in methods:
        n = len(per_seed[m])
        grids[m] = (r2[at:at + n], delta_grid(r1[at:at + n], r2[at:at + n]))
        at += n
    out: dict[str, dict[str, Interval]] = {}
    for m, (acc_t2, delta) in grids.items():
        out[m] = {"delta": bootstrap_interval([delta], [1.0], n_boot),
                  "acc_t2": bootstrap_interval([acc_t2], [1.0], n_boot)}
        if ref in grids and m != ref:
            ref_acc, ref_delta = grids[ref]
            out[m]["ref_minus_delta"] = bootstrap_interval([ref_delta, delta], [1.0, -1.0], n_boot)
            out[m]["ref_minus_acc_t2"] = bootstrap_interval([ref_acc, acc_t2], [1.0, -1.0], n_boot)
    return out


def _fmt_iv(iv: Optional[Interval]) -> str:
    if iv is None or math.isnan(iv.estimate):
        return "–"
    return f"{100 * iv.estimate:+.1f} [{100 * iv.lo:+.1f}, {100 * iv.hi:+.1f}]"


def interval_table(boot: dict[str, dict[str, Interval]]) -> str:
    """The paired-bootstrap table of one base model (percent points)."""
    lines = ["| method | Δ(t1,t2) [95%] | SCoRe − method: Δ [95%] | SCoRe − method: Acc@t2 [95%] |",
             "|---|---|---|---|"]
    lines += [f"| {m} | {_fmt_iv(b['delta'])} | {_fmt_iv(b.get('ref_minus_delta'))} | "
              f"{_fmt_iv(b.get('ref_minus_acc_t2'))} |" for m, b in boot.items()]
    return "\n".join(lines)


def goal_checks(rows: Sequence[dict[str, Any]], base: str,
                boot: Optional[dict[str, dict[str, Interval]]] = None) -> list[tuple[str, Optional[bool]]]:
    """Issue 12's goal, checked on one base model's rows: (statement, met?) — None when a
    needed method is missing. With `boot` (paired_intervals) the interval statements use the
    paired bootstrap (SCoRe − method excludes 0 from above); without, the Student-t intervals
    over seeds. Measured and reported, never asserted."""
    by = {r["method"]: r for r in rows if r["base"] == base}
    if "score" not in by:
        return [("SCoRe was run", False)]
    out: list[tuple[str, Optional[bool]]] = []
    best = max(by.values(), key=lambda r: r["accuracy_t2"][0])
    out.append((f"SCoRe has the highest Acc@t2 (highest: {best['method']})", best["method"] == "score"))
    lo = boot["score"]["delta"].lo if boot else _lo_hi(by["score"]["delta_t1_t2"])[0]
    out.append(("SCoRe's Δ(t1,t2) interval excludes 0 (lies above it)", lo > 0))
    for other in ("multi_turn_rl", "star", "star_base", "pair_sft"):
        text = f"SCoRe's Δ lies above {other}'s (paired interval of the difference > 0)" if boot \
            else f"SCoRe's Δ interval lies above {other}'s"
        if other not in by:
            out.append((text, None))
        elif boot:
            out.append((text, boot[other]["ref_minus_delta"].lo > 0))
        else:
            out.append((text, lo > _lo_hi(by[other]["delta_t1_t2"])[1]))
    if "base" in by:
        out.append(("the base model's Δ ≤ 0", by["base"]["delta_t1_t2"][0] <= 0))
    if "multi_turn_rl" in by:
        unchanged = by["multi_turn_rl"]["unchanged_answer_rate"][0]
        out.append((f"multi-turn RL collapses: unchanged answer ≥ 95% (measured {100 * unchanged:.1f}%)",
                    unchanged >= 0.95))
    return out


def results_markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any], plot_name: str,
                     boot: Optional[dict[str, dict[str, dict[str, Interval]]]] = None,
                     curves: Optional[dict[str, dict[str, list[list[float]]]]] = None) -> str:
    """docs/RESULTS.md: command, seeds, wall time, one table per base model, goal checks,
    and the paper's MATH table for comparison."""
    bases = list(dict.fromkeys(r["base"] for r in rows))
    out = [f"# Results: SCoRe against the baselines and ablations ({meta.get('scale', 'debug scale')})", "",
           f"- command: `{meta['command']}`",
           f"- config: `{meta['config']}`; methods: {', '.join(meta['methods'])}",
           f"- seeds: {meta['seeds']}; base models: {', '.join(bases)}",
           f"- held-out problems per evaluation: {meta.get('n_eval', '?')} (greedy decoding)",
           f"- wall time: {meta['wall_s'] / 60:.1f} min on {meta.get('cpus', '?')} CPU cores "
           f"({meta.get('workers', 1)} cells at a time; {meta.get('invocations', 1)} invocation(s) of the "
           f"command, summed); finished {meta.get('finished', '')}",
           "", "Percent points, mean ± 95% Student-t half-width over seeds (n runs per cell). "
           "'unchanged answer': y2 commits to y1's final answer; 'edit ratio': edit distance / "
           "total length of both attempts.", ""]
    for base in bases:
        b = (boot or {}).get(base)
        out += [f"## Base model `{base}`", "", markdown_table(rows, base), ""]
        if b:
            out += ["Paired bootstrap over the held-out problems and seeds (percent points, 95%):", "",
                    interval_table(b), ""]
        curve = curve_table((curves or {}).get(base, {}))
        if curve:
            out += ["Training-reward curves (mean r2 of each iteration's training rollouts, %, mean over seeds):",
                    "", curve, ""]
        out += ["Goal checks (measured):", ""]
        out += [f"- {'met' if ok else ('not run' if ok is None else 'NOT met')}: {text}"
                for text, ok in goal_checks(rows, base, b)]
        out.append("")
    out += [f"![Acc@t2 and Δ(t1,t2) per method]({plot_name})", ""]
    if curves:  # written beside the bar plot by flows/ablate.py
        out += [f"![training reward per iteration]({plot_name.replace('ablation.png', 'reward_curves.png')})", ""]
    out += ["## The paper, for comparison (Kumar et al. 2024, Table 3 and Table 4)", "", paper_table(), ""]
    return "\n".join(out)


def curve_table(curves: dict[str, list[list[float]]]) -> str:
    """Training-reward curves of one base model: method → one list per seed of the mean r2
    of each iteration's training rollouts (the on-policy reward). Shows the mean over seeds
    per iteration and the fitted change over the last third of the iterations
    (`late_change`) — a curve that has not flattened has a change far from 0 (the budget did
    not let the method converge)."""
    width = max((len(c) for runs in curves.values() for c in runs), default=0)
    if not width:
        return ""
    head = ("| method | " + " | ".join(f"it {i + 1}" for i in range(width))
            + " | fitted change over last third |")
    lines = [head, "|---|" + "---|" * (width + 1)]
    for method, runs in curves.items():
        mean = [_mean_at(runs, i) for i in range(width)]
        change = late_change([v for v in mean if not math.isnan(v)])
        cells = " | ".join("–" if math.isnan(v) else f"{100 * v:.1f}" for v in mean)
        lines.append(f"| {method} | {cells} | {'–' if math.isnan(change) else f'{100 * change:+.1f}'} |")
    return "\n".join(lines)


def late_change(curve: list[float]) -> float:
    """How much a curve still moves at its end: the least-squares slope over its last
    third (the last ⌊n/3⌋ + 1 points, at least 2) times the ⌊n/3⌋ iterations they span. A
    straight line gives exactly its rise over those iterations; unlike the difference of two
    single points it does not swing with one noisy iteration. NaN below 2 points."""
    third = max(1, len(curve) // 3)
    if len(curve) <= third:
        return math.nan
    ys = curve[-1 - third:]
    x_mean, y_mean = third / 2, sum(ys) / len(ys)
    slope = (sum((x - x_mean) * (y - y_mean) for x, y in enumerate(ys))
             / sum((x - x_mean) ** 2 for x in range(len(ys))))
    return slope * third


def _mean_at(runs: list[list[float]], i: int) -> float:
    vals = [r[i] for r in runs if i < len(r) and r[i] is not None and not math.isnan(r[i])]
    return sum(vals) / len(vals) if vals else math.nan
