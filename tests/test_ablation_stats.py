"""`score ablate`'s paired bootstrap and goal checks on hand-built cells with known answers."""
from __future__ import annotations

import math

import pytest

from score_core.tools.ablation import goal_checks, interval_table, paired_intervals, results_markdown, summarise

N = 400


def _run(right_t1: set[int], right_t2: set[int]) -> dict[str, tuple[float, float]]:
    return {f"p{i}": (float(i in right_t1), float(i in right_t2)) for i in range(N)}


def _cells() -> dict[str, list[dict[str, tuple[float, float]]]]:
    t1 = set(range(200))
    return {
        # SCoRe: attempt 2 fixes 50–70 of the 200 wrong problems (seeds differ), breaks none
        "score": [_run(t1, t1 | set(range(200, 200 + f))) for f in (50, 60, 70)],
        # multi-turn RL: never changes its answer (Δ = 0 exactly)
        "multi_turn_rl": [_run(t1, t1) for _ in range(3)],
        # STaR: as good as SCoRe on the same problems
        "star": [_run(t1, t1 | set(range(200, 200 + f))) for f in (55, 60, 65)],
        "base": [_run(t1, t1 - set(range(10)))],  # breaks 10: Δ = −2.5
    }


def _rows(cells):
    from score_core.evaluation.metrics import self_correction_metrics

    flat = []
    for m, runs in cells.items():
        for seed, run in enumerate(runs):
            r1 = [v[0] for v in run.values()]
            r2 = [v[1] for v in run.values()]
            metrics = self_correction_metrics(r1, r2, ["a"] * N, ["b"] * N)
            metrics["unchanged_answer_rate"] = 1.0 if m == "multi_turn_rl" else 0.5
            flat.append({"base": "b0", "method": m, "seed": seed, "metrics": metrics})
    return summarise(flat)


def test_intervals_are_the_known_differences():
    boot = paired_intervals(_cells(), n_boot=1000)
    assert math.isclose(boot["score"]["delta"].estimate, 60 / N)
    assert boot["score"]["delta"].lo > 0.10  # ≥ 50 fixes in every seed: far from 0
    assert boot["multi_turn_rl"]["delta"] == (0.0, 0.0, 0.0)
    assert math.isclose(boot["multi_turn_rl"]["ref_minus_delta"].estimate, 60 / N)
    assert boot["multi_turn_rl"]["ref_minus_delta"].lo > 0.10
    star = boot["star"]["ref_minus_delta"]
    assert math.isclose(star.estimate, 0.0, abs_tol=1e-12) and star.lo < 0 < star.hi
    assert math.isclose(boot["base"]["delta"].estimate, -10 / N)
    assert "ref_minus_delta" not in boot["score"]


def test_goal_checks_use_the_paired_intervals():
    cells = _cells()
    rows, boot = _rows(cells), paired_intervals(cells, n_boot=1000)
    checks = dict(goal_checks(rows, "b0", boot))
    assert checks["SCoRe's Δ(t1,t2) interval excludes 0 (lies above it)"] is True
    assert checks["SCoRe's Δ lies above multi_turn_rl's (paired interval of the difference > 0)"] is True
    assert checks["SCoRe's Δ lies above star's (paired interval of the difference > 0)"] is False
    assert checks["SCoRe's Δ lies above pair_sft's (paired interval of the difference > 0)"] is None
    assert checks["the base model's Δ ≤ 0"] is True
    assert checks["multi-turn RL collapses: unchanged answer ≥ 95% (measured 100.0%)"] is True


def test_results_markdown_carries_the_bootstrap_table():
    cells = _cells()
    rows, boot = _rows(cells), paired_intervals(cells, n_boot=200)
    meta = {"command": "c", "config": "x.yaml", "methods": list(cells), "seeds": [0, 1, 2], "wall_s": 60.0}
    text = results_markdown(rows, meta, "p.png", {"b0": boot})
    assert interval_table(boot) in text
    assert "| multi_turn_rl | +0.0 [+0.0, +0.0] | +15.0 [" in text


def test_curve_table_shows_means_per_iteration_and_the_late_change():
    from score_core.tools.ablation import curve_table

    curves = {"score": [[0.2, 0.4, 0.5, 0.5, 0.5, 0.5], [0.4, 0.6, 0.7, 0.7, 0.7, 0.7]],  # flat at the end
              "multi_turn_rl": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]}  # still rising: +20 over the last 2
    table = curve_table(curves)
    lines = table.splitlines()
    assert lines[0].startswith("| method | it 1 | it 2 |") and "| it 6 |" in lines[0]
    assert lines[2] == "| score | 30.0 | 50.0 | 60.0 | 60.0 | 60.0 | 60.0 | +0.0 |"
    assert lines[3] == "| multi_turn_rl | 10.0 | 20.0 | 30.0 | 40.0 | 50.0 | 60.0 | +20.0 |"
    assert curve_table({}) == ""


def test_late_change_is_the_fitted_rise_over_the_last_third():
    from score_core.tools.ablation import late_change

    assert late_change([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.2)  # a line: its rise over 2 its
    # last third of 6 = the last 3 points 0.5, 0.9, 0.7: slope (0.7 − 0.5) / 2 = 0.1 per it, × 2 its
    assert late_change([0.1, 0.2, 0.3, 0.5, 0.9, 0.7]) == pytest.approx(0.2)
    # one noisy last point: the two-point difference says −0.4, the fit over 4 points (n = 9)
    # 0.8, 0.8, 0.8, 0.4 → slope −0.12 per it, × 3 its = −0.36
    assert late_change([0.1] * 5 + [0.8, 0.8, 0.8, 0.4]) == pytest.approx(-0.36)
    assert math.isnan(late_change([0.5]))
