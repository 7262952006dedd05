import os

import pyarrow.parquet as pq
import pytest

from score_core.schema import (PROBLEM_SCHEMA, TRACE_SCHEMA, Episode, Problem, atomic_write_text,
                               read_episodes, read_problems, write_episodes, write_problems)


def test_problem_and_trace_round_trip(tmp_path):
    probs = [Problem("p1", "synth_linear", "train", "synth", "1*x+0=3", "3")]
    write_problems(probs, tmp_path / "p.parquet")
    assert read_problems(tmp_path / "p.parquet") == probs
    assert pq.read_schema(tmp_path / "p.parquet").equals(PROBLEM_SCHEMA, check_metadata=False)
    eps = [Episode("r", "stage1", 1, "p1", 0, "x=3", "x=4", 1.0, None, y1_ids=(1, 2), y2_ids=())]
    write_episodes(eps, tmp_path / "t.parquet")
    assert read_episodes(tmp_path / "t.parquet") == eps
    assert pq.read_schema(tmp_path / "t.parquet").equals(TRACE_SCHEMA, check_metadata=False)


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="kind"):
        Problem("p", "s", "train", "poetry", "q", "a")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "t.parquet"
    write_episodes([Episode("r", "s", 1, "p", 0, "a", "b")], path)
    with pytest.raises(Exception):
        write_episodes([Episode("r", "s", 1, "p", 0, "a", 123)], path)  # wrong type
    assert len(read_episodes(path)) == 1  # old file intact
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # no temp left behind


def test_atomic_text(tmp_path):
    atomic_write_text("héllo", tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
