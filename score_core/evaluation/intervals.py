"""Intervals that can decide: a paired bootstrap over problems and seeds.

A method's held-out result is a grid g[s, p] (seed s, problem p) of a per-problem quantity:
r1 or r2 ∈ {0, 1} (Acc@t1, Acc@t2) or r2 − r1 ∈ {−1, 0, 1} (Δ(t1,t2), Kumar et al. 2024 §6:
Δ = Accuracy@t2 − Accuracy@t1 is the mean of r2 − r1). A statistic is a weighted sum of grid
means,

    θ = Σ_m w_m · mean_{s,p} g_m[s, p]        e.g. Δ_SCoRe − Δ_STaR:  w = (+1, −1).

One bootstrap replicate draws P problems with replacement (the same draw for every grid:
all methods answer the same held-out problems, which is what makes the comparison paired)
and, for each grid independently, S seeds with replacement (seeds of different methods
are independent runs), and recomputes θ. The interval is the 2.5th–97.5th percentile of
the replicates (percentile bootstrap). With one seed it is the ordinary paired bootstrap
over problems; with one problem-set draw it is a bootstrap over seeds. Unscored rows
(NaN) are left out of each mean.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class Interval(NamedTuple):
    estimate: float  # θ on the data as measured
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _as_grid(g: np.ndarray | Sequence) -> np.ndarray:
    a = np.asarray(g, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]  # one seed
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"a grid is seeds × problems; got shape {a.shape}")
    return a


def nanmean(a: np.ndarray) -> float:
    """Mean of the known entries; NaN (without numpy's warning) when none is known."""
    known = ~np.isnan(a)
    count = int(known.sum())
    return float(a[known].sum() / count) if count else float("nan")


def bootstrap_interval(grids: Sequence[np.ndarray], weights: Sequence[float], n_boot: int = 4000,
                       seed: int = 0, level: float = 0.95) -> Interval:
    """θ = Σ w_m mean(g_m) and its paired percentile-bootstrap interval (module docstring).
    Every grid has the same problems in the same column order; seed counts may differ."""
    gs = [_as_grid(g) for g in grids]
    if len(gs) != len(weights) or not gs:
        raise ValueError("one weight per grid, at least one grid")
    n_problems = gs[0].shape[1]
    if any(g.shape[1] != n_problems for g in gs):
        raise ValueError(f"grids cover different problem counts: {[g.shape[1] for g in gs]}")
    estimate = float(sum(w * nanmean(g) for g, w in zip(gs, weights)))
    rng = np.random.default_rng(seed)
    reps = np.zeros(n_boot)
    for b in range(n_boot):
        cols = rng.integers(0, n_problems, n_problems)
        for g, w in zip(gs, weights):
            rows = rng.integers(0, g.shape[0], g.shape[0])
            reps[b] += w * nanmean(g[np.ix_(rows, cols)])
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(reps, [tail, 100 - tail])
    return Interval(estimate, float(lo), float(hi))


def align(per_seed: Sequence[dict[str, tuple[float, float]]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """[{problem_id: (r1, r2)}] per seed → (problem ids present in every seed, r1 grid, r2 grid).
    A reward that could not be scored (None) becomes NaN."""
    common = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
    if not common:
        raise ValueError("no problem is present in every run")

    def grid(i: int) -> np.ndarray:
        return np.array([[np.nan if d[p][i] is None else d[p][i] for p in common] for d in per_seed], dtype=np.float64)

    return common, grid(0), grid(1)


def delta_grid(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """r2 − r1 per (seed, problem): its mean is Δ(t1,t2)."""
    return np.asarray(r2, dtype=np.float64) - np.asarray(r1, dtype=np.float64)
