"""The whole flow on a seconds-scale config, under an isolated Prefect API."""
import json
import os
from pathlib import Path

import pytest

from score_core.schema import read_episodes

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def finished_run(prefect_harness, tmp_path_factory):
    from flows.pipeline import score_pipeline

    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    result = score_pipeline(config_path=str(TINY), run_dir=str(run_dir))
    return run_dir, result


def test_run_directory_holds_every_artifact(finished_run):
    run_dir, result = finished_run
    for name in ("problems_train.parquet", "problems_eval.parquet", "metrics.json", "report.md", "config.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "base" / "config.json").is_file()
    assert (run_dir / "checkpoints" / "it002_stage2" / "trainer_state.json").is_file()
    assert [e["stage"] for e in result["evals"]] == ["base", "stage1", "stage2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"accuracy_t1", "accuracy_t2", "delta_i_to_c", "delta_c_to_i", "unchanged_rate"} <= set(metrics["evals"][0])
    report = (run_dir / "report.md").read_text()
    assert "Accuracy@t1" in report and "after Stage II" in report
    eval_traces = read_episodes(result["evals"][-1]["path"])
    assert len(eval_traces) == 32 and all(e.reward1 is not None for e in eval_traces)


def test_rerun_resumes_without_redoing_finished_steps(finished_run):
    from flows.pipeline import score_pipeline

    run_dir, result = finished_run
    ckpt = run_dir / "checkpoints" / "it001_stage1" / "trainer_state.json"
    mtime = ckpt.stat().st_mtime_ns
    again = score_pipeline(config_path=str(TINY), run_dir=str(run_dir))
    assert ckpt.stat().st_mtime_ns == mtime
    assert all(t.get("resumed") for t in again["train"])
    assert again["evals"][-1]["accuracy_t2"] == result["evals"][-1]["accuracy_t2"]


def test_missing_output_is_redone_not_trusted(finished_run):
    from flows.pipeline import score_pipeline

    run_dir, _ = finished_run
    victim = run_dir / "traces" / "eval_stage2_it002.parquet"
    os.unlink(victim)
    again = score_pipeline(config_path=str(TINY), run_dir=str(run_dir))
    assert victim.is_file()
    assert not again["evals"][-1].get("resumed")


def test_other_config_in_same_run_dir_is_refused(finished_run):
    from flows.pipeline import score_pipeline

    run_dir, _ = finished_run
    with pytest.raises(ValueError, match="different config"):
        score_pipeline(config_path=str(TINY), run_dir=str(run_dir), overrides={"train.lr": 0.5})


def test_same_config_and_seed_give_the_same_run(finished_run, tmp_path):
    """Determinism (the README quotes one table per config and seed): a second run in a fresh
    directory reproduces every held-out trace and the trained weights bit for bit."""
    import hashlib

    from flows.pipeline import score_pipeline

    run_dir, result = finished_run
    again = score_pipeline(config_path=str(TINY), run_dir=str(tmp_path / "tiny"))

    def traces(path):
        return [(e.problem_id, e.attempt1, e.attempt2, e.reward1, e.reward2) for e in read_episodes(path)]

    for first, second in zip(result["evals"], again["evals"], strict=True):
        assert traces(first["path"]) == traces(second["path"]), first["path"]

    def weights(root: Path) -> str:
        files = sorted((root / "checkpoints" / "it002_stage2").glob("*.safetensors"))
        assert files
        return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()

    assert weights(run_dir) == weights(tmp_path / "tiny")
