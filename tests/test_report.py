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
