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

from .methods import UNTRAINED

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


def goal_checks(rows: Sequence[dict[str, Any]], base: str) -> list[tuple[str, Optional[bool]]]:
    """Issue 5's goal, checked on one base model's rows: (statement, met?) — None when a
    needed method is missing. Measured and reported, never asserted."""
    by = {r["method"]: r for r in rows if r["base"] == base}
    if "score" not in by:
        return [("SCoRe was run", False)]
    score = by["score"]
    out: list[tuple[str, Optional[bool]]] = []
    best = max(by.values(), key=lambda r: r["accuracy_t2"][0])
    out.append((f"SCoRe has the highest Acc@t2 (highest: {best['method']})", best["method"] == "score"))
    lo, _ = _lo_hi(score["delta_t1_t2"])
    out.append(("SCoRe's Δ(t1,t2) interval excludes 0 (lies above it)", lo > 0))
    for other in ("multi_turn_rl", "star", "pair_sft"):
        if other not in by:
            out.append((f"SCoRe's Δ interval lies above {other}'s", None))
            continue
        _, hi = _lo_hi(by[other]["delta_t1_t2"])
        out.append((f"SCoRe's Δ interval lies above {other}'s", lo > hi))
    if "base" in by:
        out.append(("the base model's Δ ≤ 0", by["base"]["delta_t1_t2"][0] <= 0))
    return out


def results_markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any], plot_name: str) -> str:
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
        out += [f"## Base model `{base}`", "", markdown_table(rows, base), "", "Goal checks (measured):", ""]
        out += [f"- {'met' if ok else ('not run' if ok is None else 'NOT met')}: {text}"
                for text, ok in goal_checks(rows, base)]
        out.append("")
    out += [f"![Acc@t2 and Δ(t1,t2) per method]({plot_name})", "",
            "## The paper, for comparison (Kumar et al. 2024, Table 3 and Table 4)", "", paper_table(), ""]
    return "\n".join(out)
