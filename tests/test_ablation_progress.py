"""`score ablate`'s progress line: units, rate and time left, against hand arithmetic."""
from score_core.tools.ablation_progress import AblationProgress, cell_units, hms


def test_units_count_iterations_plus_the_final_evaluation():
    assert cell_units(20, trained=True) == 21
    assert cell_units(20, trained=False) == 1


def test_hms():
    assert [hms(12), hms(420), hms(3900), hms(-5)] == ["12 s", "7 min", "1 h 05 min", "0 s"]


def test_time_left_uses_only_cells_that_ran_and_divides_by_workers():
    # 2 untrained cells (1 unit each) + 4 trained cells of 20 iterations (21 units each) = 86
    p = AblationProgress(total_units=2 + 4 * 21, n_cells=6, workers=2)
    line = p.finish("debug-seed0/base/seed0", 1, wall_s=4.0, metrics={"accuracy_t1": 0.541, "accuracy_t2": 0.524})
    # 4 s: found finished on resume, so no rate yet
    assert p.seconds_left() is None
    assert line == ("[ablate] 1/6 cells done · debug-seed0/base/seed0: Acc@t1 54.1 → Acc@t2 52.4 (Δ -1.7) in 4 s"
                    " · time left: after the first cell that runs")
    line = p.finish("debug-seed0/score/seed0", 21, wall_s=630.0, metrics={"accuracy_t1": 0.534, "accuracy_t2": 0.863})
    # 630 s / 21 units = 30 s per unit; (86 - 22) units left × 30 s ÷ 2 workers = 960 s
    assert p.seconds_left() == 960.0
    assert line.endswith("(Δ +32.9) in 10 min · ≈ 16 min left")
    assert p.fraction == 22 / 86


def test_last_cell_has_no_time_left_and_the_card_counts_cells():
    p = AblationProgress(total_units=2, n_cells=2, workers=2)
    p.finish("a", 1, wall_s=40.0)
    last = p.finish("b", 1, wall_s=50.0, metrics={})
    assert last == "[ablate] 2/2 cells done · b in 50 s" and p.fraction == 1.0
    assert p.markdown().startswith("**score ablate**: 2/2 cells\n\n[ablate] 1/2 cells done · a in 40 s")
