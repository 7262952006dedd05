"""`score bench pipeline`'s accounting: phase lines from every process, step windows, the split."""
from __future__ import annotations

import multiprocessing as mp

from flows.bench_split import per_iteration, split, table, with_prefect
from score_core import timing


def _child(sink: str) -> None:
    timing.record("rollout", 10.0, 12.0, sink)


def test_phases_are_recorded_only_with_a_sink(tmp_path, monkeypatch):
    sink = str(tmp_path / "t.jsonl")
    monkeypatch.delenv(timing.ENV, raising=False)
    with timing.phase("rollout"):
        pass
    assert timing.read_lines(sink) == []
    monkeypatch.setenv(timing.ENV, sink)
    with timing.phase("parquet_io"):
        pass
    proc = mp.get_context("fork").Process(target=_child, args=(sink,))
    proc.start()
    proc.join()
    lines = timing.read_lines(sink)
    assert [r["phase"] for r in lines] == ["parquet_io", "rollout"]
    assert lines[1]["end"] - lines[1]["start"] == 2.0


def _line(phase: str, start: float, end: float) -> dict:
    return {"pid": 1, "phase": phase, "start": start, "end": end}


def test_split_assigns_evaluation_base_eval_and_the_rest():
    windows = [("eval/base/it000", 0.0, 2.0), ("rollout/stage1/it001", 2.0, 5.0),
               ("train/stage1/it001", 5.0, 8.0), ("eval/stage1/it001", 8.0, 9.5)]
    lines = [_line("rollout", 0.5, 1.5), _line("model_load", 0.1, 0.4),  # base eval: once
             _line("rollout", 2.5, 4.5), _line("model_load", 2.1, 2.4),
             _line("training", 5.5, 7.5), _line("model_save", 7.6, 7.8),
             _line("rollout", 8.2, 9.2), _line("report", 9.6, 9.9),
             _line("rollout", 20.0, 21.0)]  # outside the run's window: another run
    s = split(lines, windows, 0.0, 10.0)
    assert abs(s["base_eval"] - 1.3) < 1e-9
    assert abs(s["rollout"] - 2.0) < 1e-9 and abs(s["evaluation"] - 1.0) < 1e-9
    assert abs(s["model_load"] - 0.3) < 1e-9 and abs(s["training"] - 2.0) < 1e-9
    assert abs(s["wall"] - 10.0) < 1e-9
    assert abs(sum(v for k, v in s.items() if k != "wall") - 10.0) < 1e-9  # every second counted once
    assert abs(per_iteration(s) - (10.0 - 1.3 - 0.3)) < 1e-9


def test_prefect_is_the_flows_unattributed_time_beyond_the_direct_runs():
    direct = {"unattributed": 0.5, "wall": 10.0, "rollout": 9.5}
    flowed = {"unattributed": 3.0, "wall": 12.5, "rollout": 9.5}
    f = with_prefect(direct, flowed)
    assert f["other"] == 0.5 and f["prefect"] == 2.5 and "unattributed" not in f
    text = table(128, {"direct": with_prefect(direct, direct), "flow_process": f})
    assert "prefect" in text and "×  1.250" in text


def test_direct_iteration_is_fully_accounted(tmp_path, monkeypatch):
    """One tiny direct iteration: every step window and phase lands in the split, the
    categories add up to the wall time, and nothing is left unexplained but glue."""
    import time

    from flows import bench
    from score_core.config import load_config
    from score_core.generation.debug_model import pretrain_debug_base

    sink = str(tmp_path / "timing.jsonl")
    monkeypatch.setenv(timing.ENV, sink)
    monkeypatch.setenv("SCORE_PROGRESS", "0")
    cfg = load_config("tests/configs/tiny.yaml", {})
    pretrain_debug_base(cfg.model.debug_base.model_copy(update={"steps": 2}), tmp_path / "base")
    cfg = load_config("tests/configs/tiny.yaml", {"model.path": str(tmp_path / "base"), "train.schedule": ["stage1"]})
    bench._instrument()
    windows: list = []
    t0 = time.time()
    bench.direct_iteration(cfg, tmp_path / "run", windows)
    s = split(timing.read_lines(sink), windows, t0, time.time())
    assert [w[0] for w in windows][:3] == ["prepare_data", "eval/base/it000", "grade/eval_base_it000"]
    for cat in ("rollout", "training", "evaluation", "model_load", "model_save", "parquet_io", "base_eval", "report"):
        assert s[cat] > 0, cat
    assert s["child_process"] == 0 and s["ledger"] == 0  # direct: no children, no ledger
    assert abs(sum(v for k, v in s.items() if k != "wall") - s["wall"]) < 1e-6
    assert s["unattributed"] < 0.5 * s["wall"]
