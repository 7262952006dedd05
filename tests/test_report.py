"""The run report (report.md, the terminal table, the Prefect artifacts) shows the answer-level
unchanged rate, the collapse detector; the text-equality rate stays in `score metrics`."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.report import _create, metrics_table, render, summary_rows

# the debug family's y2 writes a check line before its answer: texts never match (0.0) even
# when three rows in four keep y1's answer (0.75)
EVAL = {"n": 4, "n_unscored": 0, "accuracy_t1": 0.5, "accuracy_t2": 0.5, "delta_t1_t2": 0.0,
        "delta_i_to_c": 0.0, "delta_c_to_i": 0.0, "unchanged_rate": 0.0, "unchanged_answer_rate": 0.75,
        "edit_distance_ratio": 0.3}


def _column(table: str, header: str) -> list[str]:
    """The cells under `header` in the first markdown table of `table`."""
    first = table[table.index("|"):].split("\n\n")[0]
    lines = [line.strip("|").split("|") for line in first.splitlines()]
    at = [c.strip() for c in lines[0]].index(header)
    return [row[at].strip() for row in lines[2:]]


def test_summary_table_shows_the_unchanged_answer_rate():
    evals = [{"stage": "base", "iteration": 0, **EVAL}, {"stage": "stage2", "iteration": 2, **EVAL}]
    table = metrics_table(summary_rows(evals))
    assert _column(table, "unchanged answer") == ["75.0", "75.0"]
    assert "| unchanged |" not in table  # the text-equality column is gone


def test_report_md_and_prefect_artifacts_show_it(tmp_path: Path):
    traces = tmp_path / "traces" / "eval_base_it000.parquet"
    traces.parent.mkdir()
    pq.write_table(pa.table({"a": [1]}), traces)
    evals = [{"stage": "base", "iteration": 0, "path": str(traces), **EVAL}]
    data = {"train_n": 4, "eval_n": 4, "train_path": str(traces), "eval_path": str(traces)}
    text = render(tmp_path, "t", "c.yaml", evals, [], data, [], {})
    held_out = text.split("## Held-out evaluation")[1].split("##")[0]
    assert _column(held_out, "unchanged answer") == ["75.0"]
    every = text.split("## Every evaluation")[1].split("##")[0]
    assert _column(every, "unchanged answer") == ["75.0"]

    made: dict[str, object] = {}
    _create(text, "t", evals, [], lambda markdown, key, description: made.setdefault("md", markdown),
            lambda table, key, description: made.setdefault(key, table))
    assert made["md"] == text
    assert made["score-report-t-evals"][0]["unchanged answer"] == "75.0"
    assert "unchanged" not in made["score-report-t-evals"][0]


def _eval_file(path: Path, r1: list[float], r2: list[float]) -> str:
    n = len(r1)
    pq.write_table(pa.table({"problem_id": [f"p{i}" for i in range(n)], "attempt1": ["a"] * n,
                             "attempt2": ["b"] * n, "reward1": r1, "reward2": r2}), path)
    return str(path)


def test_interval_table_puts_base_and_final_side_by_side(tmp_path: Path):
    from tasks.report import interval_table

    n = 400
    # base: Δ exactly 0 on every problem; final: attempt 2 fixes 60 of the 200 it got wrong and
    # breaks none, so Δ = +15 points and the paired gain over the base is the same +15
    base_r = [1.0] * 200 + [0.0] * 200
    final_r2 = [1.0] * 260 + [0.0] * 140
    evals = [{"stage": "base", "iteration": 0, "path": _eval_file(tmp_path / "b.parquet", base_r, base_r), **EVAL},
             {"stage": "stage2", "iteration": 4, "path": _eval_file(tmp_path / "f.parquet", base_r, final_r2), **EVAL}]
    table = interval_table(evals, n_boot=1000)
    assert _column(table, "Acc@t1") == ["50.0", "50.0"] and _column(table, "Acc@t2") == ["50.0", "65.0"]
    base_cell, final_cell = _column(table, "Δ(t1,t2) [95% interval]")
    assert base_cell == "+0.0 [+0.0, +0.0]"
    est, lo, hi = (float(x) for x in final_cell.replace("[", "").replace("]", "").replace(",", "").split())
    assert est == 15.0 and 11.0 < lo < 15.0 < hi < 19.0  # 1.96·√(.15·.85/400) ≈ 3.5 points
    assert "after Stage II (it 4) − base, paired over the same 400 problems: Acc@t2 +15.0" in table
    assert interval_table(evals[1:]) == ""  # no base evaluation: nothing to compare


def test_report_md_carries_the_interval_table(tmp_path: Path):
    r = [1.0, 0.0, 1.0, 0.0]
    evals = [{"stage": "base", "iteration": 0, "path": _eval_file(tmp_path / "b.parquet", r, r), **EVAL},
             {"stage": "stage1", "iteration": 1, "path": _eval_file(tmp_path / "f.parquet", r, [1.0] * 4), **EVAL}]
    text = render(tmp_path, "t", "c.yaml", evals, [], {}, [], {})
    assert "Δ(t1,t2) [95% interval]" in text.split("## Held-out evaluation")[1].split("## Every")[0]


def test_demo_table_script_rewrites_the_readme_section_from_a_run(tmp_path: Path):
    import importlib.util
    import json

    from tasks.report import interval_table

    spec = importlib.util.spec_from_file_location("demo_table", Path(__file__).parents[1] / "scripts" / "demo_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = [1.0, 0.0, 1.0, 0.0]
    evals = [{"stage": "base", "iteration": 0, "path": _eval_file(tmp_path / "b.parquet", r, r), **EVAL},
             {"stage": "stage2", "iteration": 2, "path": _eval_file(tmp_path / "f.parquet", r, [1.0] * 4), **EVAL}]
    (tmp_path / "metrics.json").write_text(json.dumps({"evals": evals}))
    body = mod.tables(tmp_path)
    assert body == metrics_table(summary_rows(evals)) + "\n\n" + interval_table(evals)  # what `score run` prints
    readme = f"intro\n{mod.START}\nold table\n{mod.END}\nrest\n"
    assert mod.replace_section(readme, "new") == f"intro\n{mod.START}\nnew\n{mod.END}\nrest\n"
    assert mod.START in (Path(__file__).parents[1] / "README.md").read_text()  # the README has the section
