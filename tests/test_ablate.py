"""`score ablate` end to end on the seconds-scale config: every method runs through the real
flow (subflows in threads, steps in child processes), the table and RESULTS.md are written."""
import json
from pathlib import Path

import pytest

from score_core.schema import read_episodes

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
METHODS = ["base", "self_refine", "star", "star_base", "pair_sft", "single_turn_rl", "multi_turn_rl", "no_stage1",
           "no_shaping", "score"]


@pytest.fixture(scope="module")
def ablation(prefect_harness, tmp_path_factory):
    from flows.ablate import score_ablate

    out = tmp_path_factory.mktemp("ablate")
    result = score_ablate(config_path=str(TINY), seeds=1, methods=METHODS, base_seeds=[0], out_dir=str(out / "run"),
                          workers=2, results_md=str(out / "docs" / "RESULTS.md"), command="score ablate tiny")
    return out, result


def test_every_method_and_seed_has_a_cell_and_a_table_row(ablation):
    out, result = ablation
    data = json.loads((out / "run" / "ablation.json").read_text())
    cells = {(c["method"], c["seed"]) for c in data["cells"]}
    expected = {(m, 0) for m in METHODS}
    assert cells == expected
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == set(METHODS) and rows["score"]["n"] == 1 and rows["score"]["seeds"] == [0]
    for key in ("accuracy_t1", "accuracy_t2", "delta_t1_t2", "unchanged_answer_rate", "edit_distance_ratio"):
        mean, _ = rows["score"][key]
        assert 0.0 <= abs(mean) <= 1.0, key


def test_cells_ran_their_own_method_with_equal_budgets(ablation):
    out, _ = ablation
    run = out / "run" / "cells" / "debug-seed0"
    sizes = {}
    for method in ("star", "star_base", "pair_sft", "single_turn_rl", "multi_turn_rl", "score"):
        ckpts = sorted(p.name for p in (run / f"{method}-seed0" / "checkpoints").iterdir() if p.is_dir())
        assert len([c for c in ckpts if c.startswith("it")]) == 2, (method, ckpts)
        rollouts = sorted((run / f"{method}-seed0" / "traces").glob("rollout_*_it00?.parquet"))
        sizes[method] = sum(len(read_episodes(p)) for p in rollouts)
    assert len(set(sizes.values())) == 1, sizes  # same number of sampled episodes per method
    assert (run / "pair_sft-seed0" / "traces" / "rollout_pair_sft_it001_pair.parquet").is_file()
    assert not (run / "base-seed0" / "checkpoints").exists() or not any(
        p.name.startswith("it") for p in (run / "base-seed0" / "checkpoints").iterdir())


def test_results_markdown_has_table_goal_checks_plot_and_paper_numbers(ablation):
    out, _ = ablation
    text = (out / "docs" / "RESULTS.md").read_text()
    assert "| score | 1 |" in text and "Goal checks (measured)" in text
    assert "score ablate tiny" in text and "| SCoRe | 60.0 | 64.4 |" in text
    assert (out / "docs" / "results_ablation.png").stat().st_size > 1000
    assert (out / "run" / "ablation.png").is_file() and (out / "run" / "RESULTS.md").is_file()


def test_paired_bootstrap_comes_from_the_cells_traces(ablation):
    from score_core.tools.ablation import paired_intervals
    from score_core.evaluation.tracefile import per_problem_rewards

    out, _ = ablation
    data = json.loads((out / "run" / "ablation.json").read_text())
    boot = data["paired_bootstrap"]["debug-seed0"]
    assert set(boot) == set(METHODS)
    score_cell = next(c for c in data["cells"] if c["method"] == "score")
    # Δ's point estimate is the cell's own held-out Δ, recomputed from its traces
    assert abs(boot["score"]["delta"]["estimate"] - score_cell["metrics"]["delta_t1_t2"]) < 1e-9
    again = paired_intervals({"score": [per_problem_rewards(score_cell["eval_path"])]})
    assert again["score"]["delta"].estimate == boot["score"]["delta"]["estimate"]
    text = (out / "docs" / "RESULTS.md").read_text()
    assert "Paired bootstrap over the held-out problems and seeds" in text
    assert "Training-reward curves" in text and "| score |" in text.split("Training-reward curves")[1]
    assert (out / "docs" / "results_reward_curves.png").stat().st_size > 1000
    assert set(data["reward_curves"]["debug-seed0"]) >= {"score", "multi_turn_rl", "star"}


def test_rewriting_results_md_keeps_the_hand_written_part(ablation, tmp_path):
    from flows.ablate import READING_MARK, _hand_written

    out, _ = ablation
    text = (out / "docs" / "RESULTS.md").read_text()
    assert READING_MARK in text  # the generated file already carries the mark
    md = tmp_path / "RESULTS.md"
    md.write_text("# old generated table\n" + READING_MARK + "\n## Task design\nwritten before the run\n")
    assert _hand_written(md) == "\n" + READING_MARK + "\n## Task design\nwritten before the run\n"
    assert "old generated table" not in _hand_written(md)


def test_flow_run_has_a_progress_card_that_ends_with_every_cell_done(ablation):
    """The UI card `score ablate` keeps on its flow run: at 100% with all 10 cells counted
    once every cell finished (the same lines the log gets, one per cell)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        cards = [a for a in client.read_artifacts() if a.type == "progress"
                 and (a.description or "").startswith("**score ablate**")]
    assert len(cards) == 1
    card = cards[0]
    assert card.data == 100.0 and card.description.startswith(f"**score ablate**: {len(METHODS)}/{len(METHODS)} cells")
    assert f"[ablate] {len(METHODS)}/{len(METHODS)} cells done · debug-seed0/" in card.description


def test_partial_table_of_the_finished_cells_matches_the_finished_ablation(ablation, tmp_path):
    """`score ablate --partial` on a copy of the run with two cells' reports removed (as if
    they were still running): the other rows are exactly the finished ablation's, the two
    are named missing, and nothing but RESULTS.partial.md and its plots is written."""
    import shutil

    from flows.ablate_partial import write_partial

    out, result = ablation
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    for method in ("star", "score"):
        (run / "cells" / "debug-seed0" / f"{method}-seed0" / "metrics.json").unlink()
    before = {p.name for p in run.iterdir()}
    path = write_partial(str(TINY), 1, METHODS, [0], str(run), command="score ablate tiny --partial")
    assert {p.name for p in run.iterdir()} - before == {"RESULTS.partial.md", "partial_ablation.png",
                                                         "partial_reward_curves.png"}
    text = path.read_text()
    assert "8 of 10 planned cells finished; missing: debug-seed0/star/seed0, debug-seed0/score/seed0" in text
    full = {r["method"]: r for r in result["rows"]}
    for method in set(METHODS) - {"star", "score"}:
        r = full[method]
        acc1, acc2 = 100 * r["accuracy_t1"][0], 100 * r["accuracy_t2"][0]
        assert f"| {method} | 1 | {acc1:.1f} | {acc2:.1f} |" in text, method
    assert "| score | 1 |" not in text and "| star | 1 |" not in text
    shutil.rmtree(run / "cells")
    with pytest.raises(ValueError, match="no finished cell"):
        write_partial(str(TINY), 1, METHODS, [0], str(run))


def test_floor_bench_replays_a_cells_iteration_and_notices_when_it_does_not(ablation, tmp_path, capsys):
    """`score bench floor` on the SCoRe cell's Stage II iteration: the replay samples the cell's
    raw traces row for row and trains with the losses in the cell's checkpoint history (both
    written by the pipeline's child processes); the kernel split is non-empty and under the
    wall time. On a copy whose recorded losses were nudged, the same bench exits 1."""
    import shutil

    from score.cli import main

    out, _ = ablation
    run = out / "run"
    cell = run / "cells" / "debug-seed0" / "score-seed0"
    assert main(["bench", "floor", "--cell", str(cell), "--iteration", "2", "--repeats", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["same_as_the_cell"]["rollout_rows_differing"] == 0
    assert res["same_as_the_cell"]["training_steps"] == [2, 2] and res["same_as_the_cell"]["max_abs_loss_diff"] <= 1e-4
    for step in ("rollout", "training"):
        s = res[step]
        assert s["matmul_s"] > 0 and s["attention_s"] > 0 and s["floor_s"] == s["matmul_s"] + s["attention_s"]
    copy = tmp_path / "run"
    shutil.copytree(run / "bases", copy / "bases")
    shutil.copytree(cell, copy / "cells" / "debug-seed0" / "score-seed0")
    history = copy / "cells" / "debug-seed0" / "score-seed0" / "checkpoints" / "it002_stage2.history.json"
    steps = json.loads(history.read_text())
    steps[0]["loss"] += 0.01
    history.write_text(json.dumps(steps))
    assert main(["bench", "floor", "--cell", str(history.parent.parent), "--iteration", "2", "--repeats", "1"]) == 1
    capsys.readouterr()
    assert main(["bench", "floor", "--cell", str(run / "cells" / "debug-seed0" / "star-seed0"), "--iteration", "1"]) == 2
    assert "replays on-policy RL iterations" in capsys.readouterr().err

def test_cells_copy_the_rollouts_of_the_base_that_another_cell_drew(ablation):
    """STaR-base and Pair-SFT sample the frozen base in every iteration and every on-policy
    method samples it in its first: 10 rollouts of the base in this table, 2 distinct ones. Each
    is drawn by one cell (two at most when cells race) and copied by the others (the copy is
    checked against a run that shares nothing in tests/test_rollout_share.py)."""
    out, _ = ablation
    run = out / "run"
    frozen = []  # (cell, step, shared?) of every rollout of the frozen base
    for cell in sorted((run / "cells" / "debug-seed0").iterdir()):
        steps = json.loads((cell / "steps.json").read_text())
        frozen += [(cell.name, k, v["shared"]) for k, v in steps.items() if k.startswith("rollout/") and "shared" in v]
    drawn = [f for f in frozen if not f[2]]
    assert len(frozen) == 10 and 2 <= len(drawn) <= 4, frozen
    assert len(list((run / "shared_rollouts").glob("*.json"))) == 2

    def rows(cell: str, name: str) -> list:
        path = run / "cells" / "debug-seed0" / cell / "traces" / name
        return [(e.problem_id, e.sample_index, e.y1_ids, e.y2_ids, e.logp1, e.logp2) for e in read_episodes(path)]

    star_base = rows("star_base-seed0", "rollout_star_base_it002_raw.parquet")
    assert rows("pair_sft-seed0", "rollout_pair_sft_it002_raw.parquet") == star_base and len(star_base) > 0


def test_wall_time_is_the_ablation_clock_summed_over_invocations(ablation):
    """The table's wall time is `wall.json`'s: the first invocation's record, then a resumed
    invocation on the finished run (every cell resumes from its ledger; in place, since a
    cell's config names its absolute paths — so this test comes last) adds a second record,
    and the new meta is the sum of both — timed against the test's own clock."""
    import time

    from flows.ablate import score_ablate
    from score_core.tools.wall_clock import read_invocations

    out, result = ablation
    (first,) = read_invocations(out / "run")
    assert first["ended"] == "finished" and result["meta"]["invocations"] == 1
    assert 0 < result["meta"]["wall_s"] <= first["wall_s"]  # the meta is taken just before the outputs
    run = out / "run"
    t0 = time.perf_counter()
    again = score_ablate(config_path=str(TINY), seeds=1, methods=METHODS, base_seeds=[0], out_dir=str(run),
                         workers=2, results_md=None, command="score ablate tiny")
    resumed_s = time.perf_counter() - t0
    records = read_invocations(run)
    assert len(records) == 2 and records[0] == first and records[1]["ended"] == "finished"
    assert records[1]["wall_s"] <= resumed_s
    assert again["meta"]["invocations"] == 2
    assert first["wall_s"] < again["meta"]["wall_s"] <= first["wall_s"] + resumed_s
    assert again["rows"] == result["rows"]  # resumed, not re-run
    # finished cells are read from their run directories, not replayed as pipeline subflows
    assert _flow_runs_named("debug-seed0/score/seed0") == 1


def _flow_runs_named(name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))))


def test_a_finished_cell_is_finished_only_for_the_config_it_was_run_with(ablation):
    from flows.ablate import run_cell
    from flows.pipeline import finished_run

    out, _ = ablation
    cell = out / "run" / "cells" / "debug-seed0" / "star-seed0"
    pinned = json.loads((cell / "config.json").read_text())
    same = {"model.path": pinned["model"]["path"], "method": "star", "train.seed": 0, "name": pinned["name"],
            "eval.every_iteration": False, "eval.base": False}
    report = json.loads((cell / "metrics.json").read_text())
    assert finished_run(str(TINY), same, str(cell)) == report
    assert finished_run(str(TINY), {**same, "train.lr": 1e-5}, str(cell)) is None
    with pytest.raises(ValueError, match="different config"):  # and the flow refuses the directory
        run_cell.fn(str(TINY), {"train.lr": 1e-5}, "debug-seed0", pinned["model"]["path"], "star", 0,
                    str(out / "run"))
