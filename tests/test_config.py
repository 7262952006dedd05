from pathlib import Path

import pytest

from score_core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.steps_per_iteration >= 1


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  train: {source: synth_linear}\n  eval: {source: synth_linear}\ntrain: {lrr: 1}\n")
    with pytest.raises(ConfigError, match="train.lrr"):
        load_config(p)


def test_bad_values_name_the_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  train: {source: synth_linear}\n  eval: {source: nope}\nrollout: {k: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "data.eval.source" in str(err.value) and "rollout.k" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "c.yaml"
    p.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(p)


def test_overrides_and_relative_paths(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  train: {source: math, path: data/x.jsonl}\n  eval: {source: synth_linear}\n")
    cfg = load_config(p, {"train.lr": 0.5, "rollout.k": 8})
    assert cfg.train.lr == 0.5 and cfg.rollout.k == 8
    assert cfg.data.train.path == str((tmp_path / "data" / "x.jsonl").resolve())
