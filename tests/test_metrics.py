import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from score_core.evaluation.metrics import edit_distance, edit_distance_ratio, self_correction_metrics


def test_metrics_hand_computed():
    r1 = [1.0, 1.0, 0.0, 0.0, None, 1.0]
    r2 = [1.0, 0.0, 1.0, 0.0, 1.0, None]
    y1 = ["a", "b", "c", "d", "e", "f"]
    y2 = ["a", " b ", "x", "d", "e", "g"]
    m = self_correction_metrics(r1, r2, y1, y2)
    assert m["n"] == 4 and m["n_unscored"] == 2
    assert m["accuracy_t1"] == 0.5 and m["accuracy_t2"] == 0.5
    assert m["delta_i_to_c"] == 0.25 and m["delta_c_to_i"] == 0.25 and m["delta_t1_t2"] == 0.0
    assert m["unchanged_rate"] == 0.75  # whitespace-normalised: a, b, d unchanged
    assert m["delta_t1_t2"] == pytest.approx(m["delta_i_to_c"] - m["delta_c_to_i"])


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance_ratio("abc", "abc") == 0.0
    assert edit_distance_ratio("ab", "cd") == pytest.approx(2 / 4)


def test_all_unscored_gives_nan_not_zero():
    m = self_correction_metrics([None], [None])
    assert m["n"] == 0 and m["n_unscored"] == 1 and math.isnan(m["accuracy_t1"])


def test_score_metrics_cli_on_minimal_file(tmp_path, capsys):
    import json

    from score.cli import main

    table = pa.table({"problem_id": ["a", "b", "c"], "attempt1": ["1", "2", "3"], "attempt2": ["1", "5", "3"],
                      "reward1": pa.array([0.0, 1.0, None]), "reward2": pa.array([1.0, 1.0, 0.0])})
    pq.write_table(table, tmp_path / "t.parquet")
    assert main(["metrics", str(tmp_path / "t.parquet")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 2 and out["n_unscored"] == 1 and out["delta_i_to_c"] == 0.5
    assert out["unchanged_rate"] == 0.5


def test_score_metrics_cli_errors(tmp_path, capsys):
    from score.cli import main

    pq.write_table(pa.table({"problem_id": ["a"]}), tmp_path / "bad.parquet")
    assert main(["metrics", str(tmp_path / "bad.parquet")]) == 2
    assert "missing column" in capsys.readouterr().err
    assert main(["metrics", str(tmp_path / "nope.parquet")]) == 2
    (tmp_path / "junk.parquet").write_bytes(b"\xff\xfenot parquet")
    assert main(["metrics", str(tmp_path / "junk.parquet")]) == 2
