"""Problem loading: real data from ../shared/data, and every kind of bad input.

A malformed row must raise a DataError naming file and line, or with on_bad_row=skip be
counted — never dropped silently.
"""
from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from score_core.config import DatasetConfig
from score_core.problems.loaders import DataError, MBPP_SHOT_IDS, load_problems, mbpp_entry_point
from score_core.schema import read_problems, write_problems

DATA = Path(__file__).resolve().parents[1] / "../shared/data"

GOOD = {"problem": "1+1?", "solution": "It is $\\boxed{2}$.", "answer": "2", "unique_id": "t/1.json"}


def _real(name: str) -> str:
    path = DATA / name
    if not path.is_file():
        pytest.fail(f"real data missing: {path} (see ../shared/data/PROVENANCE.md)")
    return str(path)


def _jsonl(tmp_path: Path, lines: list, name: str = "rows.jsonl") -> Path:
    """Write rows (dicts as JSON, str/bytes verbatim) one per line."""
    raw = b"".join(
        (line if isinstance(line, bytes) else
         (line if isinstance(line, str) else json.dumps(line)).encode("utf-8")) + b"\n"
        for line in lines)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return path


def _row(i: int, **changes) -> dict:
    return {**GOOD, "unique_id": f"t/{i}.json", **changes}


# ------------------------------------------------------------------ real data


def test_math500(tmp_path):
    result = load_problems(DatasetConfig(source="math", path=_real("math500_test.jsonl"), split="eval"))
    assert len(result.problems) == 500 and result.n_skipped == 0
    p = result.problems[0]
    assert p.problem_id == "test/precalculus/807.json" and p.kind == "math" and p.split == "eval"
    assert p.answer == "\\left( 3, \\frac{\\pi}{2} \\right)" and p.question.startswith("Convert the point")
    out = write_problems(result.problems, tmp_path / "problems.parquet")
    assert read_problems(out) == result.problems  # explicit-schema Parquet round trip


def test_prm800k_train_has_two_empty_answers():
    """MATH train/number_theory/7115 and 7117 have `\\boxed{}` solutions: counted, not dropped."""
    path = _real("math_prm800k_train.jsonl.gz")
    with pytest.raises(DataError, match=r"math_prm800k_train\.jsonl\.gz:5530: field 'answer' is empty"):
        load_problems(DatasetConfig(source="math", path=path))
    result = load_problems(DatasetConfig(source="math", path=path, on_bad_row="skip"))
    assert len(result.problems) == 11998 and result.n_skipped == 2
    assert [m.split(":")[-2] for m in result.skipped] == ["5530", "5532"]


def test_gsm8k():
    result = load_problems(DatasetConfig(source="gsm8k", path=_real("gsm8k_train.jsonl"), split="train"))
    assert len(result.problems) == 7473
    first = result.problems[0]
    assert first.problem_id == "gsm8k/train/0" and first.answer == "72" and first.kind == "math"
    assert all("," not in p.answer and p.answer for p in result.problems)
    rows = [json.loads(line) for line in open(_real("gsm8k_train.jsonl"), encoding="utf-8")]
    with_comma = next(i for i, r in enumerate(rows) if "," in r["answer"].rsplit("####", 1)[1])
    assert result.problems[with_comma].answer == rows[with_comma]["answer"].rsplit("####")[1].strip().replace(",", "")


def test_humaneval():
    result = load_problems(DatasetConfig(source="humaneval", path=_real("humaneval.jsonl.gz"), split="eval"))
    assert len(result.problems) == 164
    p = result.problems[0]
    assert p.problem_id == "HumanEval/0" and p.kind == "code" and p.answer == ""
    assert p.entry_point == "has_close_elements" and p.question.startswith("from typing import List")
    assert p.tests.endswith("\ncheck(has_close_elements)\n") and "def check(candidate)" in p.tests


@pytest.fixture()
def mbpp_prompt_stub(monkeypatch):
    """Use the real code_tasks.mbpp_prompt when it exists; else a stub that records shots."""
    try:
        from score_core.problems.code_problems import mbpp_prompt  # noqa: F401
        return False
    except ImportError:
        stub = types.ModuleType("score_core.problems.code_problems")
        stub.mbpp_prompt = lambda text, tests, shots: f"{[s['task_id'] for s in shots]} {text} {tests}"
        monkeypatch.setitem(sys.modules, "score_core.problems.code_problems", stub)
        return True


def test_mbpp(mbpp_prompt_stub):
    result = load_problems(DatasetConfig(source="mbpp", path=_real("mbpp.jsonl")))
    ids = [p.problem_id for p in result.problems]
    assert len(ids) == 974 - 3 and not {f"mbpp/{i}" for i in MBPP_SHOT_IDS} & set(ids)
    p = result.problems[0]
    assert p.problem_id == "mbpp/1" and p.kind == "code" and p.entry_point == "min_cost"
    assert p.tests == "\nassert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8\n" + \
        "assert min_cost([[2, 3, 4], [5, 9, 3], [2, 6, 4]], 2, 2) == 12\n" + \
        "assert min_cost([[3, 4, 5], [6, 10, 4], [3, 7, 5]], 2, 2) == 16"
    assert "minimum cost path" in p.question and "assert min_cost(" in p.question
    if mbpp_prompt_stub:
        assert p.question.startswith("[2, 3, 4] ")
    else:
        assert "similar_elements" in p.question and "[BEGIN]" in p.question
    assert all(p.entry_point for p in result.problems)
    sanitized = load_problems(DatasetConfig(source="mbpp", path=_real("mbpp_sanitized.jsonl")))
    assert len(sanitized.problems) == 427 - 3 and all(p.entry_point for p in sanitized.problems)


def test_mbpp_entry_point():
    assert mbpp_entry_point("assert set(similar_elements((3, 4),(5, 4))) == set((4,))") == "similar_elements"
    assert mbpp_entry_point("assert math.isclose(area(5), 78.5)") == "area"
    assert mbpp_entry_point("assert f(g(1)) == 2", "def g(x):\n  return x\n") == "g"


def test_limit_is_a_seeded_shuffle():
    def ids(seed):
        ds = DatasetConfig(source="math", path=_real("math500_test.jsonl"), limit=20, seed=seed)
        return [p.problem_id for p in load_problems(ds).problems]

    assert ids(0) == ids(0) and ids(0) != ids(1) and len(set(ids(0))) == 20
    assert ids(0) != [p.problem_id for p in load_problems(
        DatasetConfig(source="math", path=_real("math500_test.jsonl"))).problems[:20]]


def test_synthetic_sources_are_delegated():
    pytest.importorskip("score_core.problems.synthetic")
    result = load_problems(DatasetConfig(source="synth_linear", n=7, seed=3, split="eval"))
    assert len(result.problems) == 7 and all(p.kind == "synth" for p in result.problems)


def test_hub_path_loads_by_name(monkeypatch):
    """path unset → datasets.load_dataset(name, config, split=hub_split); stubbed (no hub here)."""
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return [{"question": "2+2?", "answer": "so 4\n#### 4"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = load_problems(DatasetConfig(source="gsm8k", hub_split="test", split="eval"))
    assert calls == [("openai/gsm8k", "main", "test")]
    assert result.problems[0].problem_id == "gsm8k/eval/0" and result.problems[0].answer == "4"
    with pytest.raises(DataError, match=r"hub:me/math\[test\]:1: missing field 'unique_id'"):
        load_problems(DatasetConfig(source="math", hub_name="me/math:cfg", hub_split="test"))
    assert calls[-1] == ("me/math", "cfg", "test")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ('{"problem": "x", "answer": ', "not valid JSON"),
        (b'{"problem": "caf\xe9", "answer": "1", "unique_id": "u"}', "not valid UTF-8"),
        ({"problem": "x", "answer": "1"}, "missing field 'unique_id'"),
        ({"problem": "x", "answer": 5, "unique_id": "u"}, "field 'answer' must be str, got int"),
        ('["a list"]', "not a JSON object"),
    ],
)
@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_bad_row_names_file_and_line(tmp_path, bad_line, reason, name):
    path = _jsonl(tmp_path, [_row(1), "", _row(2), bad_line, _row(4)], name)
    with pytest.raises(DataError) as err:
        load_problems(DatasetConfig(source="math", path=str(path)))
    assert f"{path}:4: {reason}" in str(err.value)  # line 4: the blank line 2 still counts
    result = load_problems(DatasetConfig(source="math", path=str(path), on_bad_row="skip"))
    assert [p.problem_id for p in result.problems] == ["t/1.json", "t/2.json", "t/4.json"]
    assert result.n_skipped == 1 and result.skipped[0].startswith(f"{path}:4: {reason}")


def test_skip_mode_counts_every_bad_row(tmp_path):
    lines = [_row(1), "{oops", {"question": "no #### here", "answer": "7"}, _row(2, answer=None)]
    path = _jsonl(tmp_path, lines)
    result = load_problems(DatasetConfig(source="math", path=str(path), on_bad_row="skip"))
    assert len(result.problems) == 1 and result.n_skipped == 3 == len(result.skipped)
    gsm = _jsonl(tmp_path, [{"question": "q", "answer": "no marker"}, {"question": "q", "answer": "#### 1"}], "g.jsonl")
    with pytest.raises(DataError, match=r"g\.jsonl:1: field 'answer' has no '#### <number>' line"):
        load_problems(DatasetConfig(source="gsm8k", path=str(gsm)))
    result = load_problems(DatasetConfig(source="gsm8k", path=str(gsm), on_bad_row="skip"))
    assert [p.problem_id for p in result.problems] == ["gsm8k/train/1"] and result.n_skipped == 1


def test_parquet_rows(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([_row(1), _row(2, answer=None)]), path)
    with pytest.raises(DataError, match=r"rows\.parquet:2: missing field 'answer'"):
        load_problems(DatasetConfig(source="math", path=str(path)))
    assert load_problems(DatasetConfig(source="math", path=str(path), on_bad_row="skip")).n_skipped == 1
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="broken.parquet: cannot read Parquet"):
        load_problems(DatasetConfig(source="math", path=str(tmp_path / "broken.parquet")))


def test_missing_file_truncated_gzip_and_empty_set(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=f"dataset file not found: {missing}"):
        load_problems(DatasetConfig(source="math", path=str(missing)))
    gz = _jsonl(tmp_path, [_row(i) for i in range(200)], "rows.jsonl.gz")
    gz.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(DataError, match="rows.jsonl.gz:.*cannot read file"):
        load_problems(DatasetConfig(source="math", path=str(gz)))
    empty = _jsonl(tmp_path, ["{bad"], "empty.jsonl")
    with pytest.raises(DataError, match="no problems loaded"):
        load_problems(DatasetConfig(source="math", path=str(empty), on_bad_row="skip"))


def test_duplicate_problem_ids_are_an_error(tmp_path):
    path = _jsonl(tmp_path, [_row(1), _row(2), _row(1)])
    with pytest.raises(DataError, match="duplicate problem_id 't/1.json'"):
        load_problems(DatasetConfig(source="math", path=str(path), on_bad_row="skip"))
