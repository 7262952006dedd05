"""The paired bootstrap against hand-computed distributions and normal theory."""
from __future__ import annotations

import math

import numpy as np
import pytest

from score_core.evaluation.intervals import Interval, align, bootstrap_interval, delta_grid


def test_constant_grid_has_a_zero_width_interval():
    iv = bootstrap_interval([np.full((3, 50), 0.4)], [1.0], n_boot=200)
    assert iv == Interval(pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.4))


def test_two_problems_enumerated_by_hand():
    # resampling 2 problems from values (0, 1): the mean is 0, ½, 1 with p ¼, ½, ¼, so the
    # 2.5th and 97.5th percentiles are 0 and 1; an 80% interval (10th–90th) is the same
    iv = bootstrap_interval([[0.0, 1.0]], [1.0], n_boot=4000)
    assert (iv.estimate, iv.lo, iv.hi) == (0.5, 0.0, 1.0)
    # three problems (0, 0, 1): P(mean = 0) = 8/27 ≈ 0.296 > 0.25, so even the 50% interval starts at 0
    assert bootstrap_interval([[0.0, 0.0, 1.0]], [1.0], level=0.5).lo == 0.0


def test_one_seed_matches_normal_theory_on_many_problems():
    rng = np.random.default_rng(1)
    r = (rng.random(4000) < 0.3).astype(float)
    iv = bootstrap_interval([r], [1.0], n_boot=2000, seed=3)
    half = 1.96 * r.std() / math.sqrt(len(r))  # mean ± 1.96·σ/√n
    assert iv.estimate == pytest.approx(r.mean())
    assert (iv.hi - iv.lo) / 2 == pytest.approx(half, rel=0.1)
    assert (iv.lo + iv.hi) / 2 == pytest.approx(r.mean(), abs=0.2 * half)


def test_the_difference_is_paired_over_problems():
    # B answers what A answers plus 20 more problems right. Paired, the difference is the mean
    # of d = b − a (20 ones in 800): half-width 1.96·σ_d/√n ≈ 1.1 points; unpaired (two
    # independent 50% accuracies) it would be 1.96·√(2·¼/n) ≈ 4.9 points
    rng = np.random.default_rng(2)
    n = 800
    a = (rng.random(n) < 0.5).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:20]] = 1.0
    diff = bootstrap_interval([b, a], [1.0, -1.0], n_boot=2000)
    assert diff.estimate == pytest.approx(20 / n)
    assert diff.lo > 0
    paired_half = 1.96 * (b - a).std() / math.sqrt(n)
    assert (diff.hi - diff.lo) / 2 == pytest.approx(paired_half, rel=0.2)
    unpaired_half = 1.96 * math.sqrt(a.var() / n + b.var() / n)
    assert (diff.hi - diff.lo) / 2 < 0.3 * unpaired_half


def test_seed_spread_widens_the_interval():
    # three seeds that disagree by ±10 points on the same problems: the interval must cover
    # the seed spread, which a problems-only bootstrap of the pooled grid would not
    rng = np.random.default_rng(4)
    base = rng.random(1000)
    seeds = np.stack([(base < p).astype(float) for p in (0.4, 0.5, 0.6)])
    iv = bootstrap_interval([seeds], [1.0], n_boot=2000)
    pooled = bootstrap_interval([seeds.reshape(1, -1)], [1.0], n_boot=2000)
    assert iv.hi - iv.lo > 3 * (pooled.hi - pooled.lo)
    assert iv.lo < 0.45 and iv.hi > 0.55


def test_nan_rows_are_left_out():
    iv = bootstrap_interval([[1.0, np.nan, 1.0]], [1.0], n_boot=100)
    assert (iv.estimate, iv.lo, iv.hi) == (1.0, 1.0, 1.0)


def test_align_keeps_problems_present_in_every_seed():
    ids, r1, r2 = align([{"a": (1.0, 0.0), "b": (0.0, 1.0), "c": (1.0, 1.0)}, {"b": (1.0, None), "a": (0.0, 0.0)}])
    assert ids == ["a", "b"]
    assert r1.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert np.isnan(r2[1, 1]) and r2[0].tolist() == [0.0, 1.0]
    assert delta_grid(r1, r2)[0].tolist() == [-1.0, 1.0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="different problem counts"):
        bootstrap_interval([[1.0, 0.0], [1.0]], [1.0, -1.0])
    with pytest.raises(ValueError, match="one weight per grid"):
        bootstrap_interval([[1.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="no problem"):
        align([{"a": (1.0, 1.0)}, {"b": (0.0, 0.0)}])
