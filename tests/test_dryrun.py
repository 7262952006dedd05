"""`score run CONFIG --dry-run`: checks, batch arithmetic and memory estimate, no downloads."""
from pathlib import Path

import pytest

from score.cli import main
from score_core.config import load_config
from score_core.dryrun import architecture, batch_arithmetic, dry_run_report, n_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["math_qwen2.5-1.5b-instruct.yaml", "code_qwen2.5-coder-1.5b-instruct.yaml"])
def test_gpu_recipes_validate_offline(name, capsys):
    cfg = load_config(ROOT / "configs" / name)
    rep = dry_run_report(cfg)
    assert rep["errors"] == []
    mem = rep["memory_per_gpu"]
    assert 1.4 < mem["params_billion"] < 1.7  # Qwen2.5-1.5B has 1.54 B parameters
    assert 10 < mem["train_total_gib"] < 80  # fits an 80 GB GPU with DDP
    assert batch_arithmetic(cfg)["episodes_per_step"] == cfg.train.minibatch_prompts * cfg.rollout.k
    assert main(["run", str(ROOT / "configs" / name), "--dry-run"]) == 0
    assert "memory estimate per process" in capsys.readouterr().out


def test_param_count_of_a_known_model():
    cfg = load_config(ROOT / "configs" / "math_qwen2.5-1.5b-instruct.yaml")
    assert abs(n_params(architecture(cfg)) - 1_543_714_304) / 1.54e9 < 0.01


def test_dry_run_fails_on_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: {source: math, path: nowhere.jsonl}\n  eval: {source: synth_linear, split: eval}\n"
                   "train: {num_processes: 2, accelerate_config: nope.yaml}\n")
    rep = dry_run_report(load_config(bad))
    assert any("no such file" in e and "train.path" in e for e in rep["errors"])
    assert any("accelerate_config" in e for e in rep["errors"])
    assert main(["run", str(bad), "--dry-run"]) == 2
