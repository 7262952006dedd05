"""Rollouts of a frozen model shared across runs (`score_core/steps/rollout_share.py`), checked
against an independent oracle: the same rollout drawn by a run that shares nothing."""
import shutil

import pytest
import torch

from score_core.schema import read_episodes, write_problems
from score_core.steps.rollout import rollout_step


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory):
    model, tok = tiny
    out = tmp_path_factory.mktemp("frozen_base")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def problems_path(problems, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "problems_train.parquet"
    write_problems(problems, path)
    return path


def _roll(model, problems, out, run_id="A", stage="star_base", iteration=3, share=None, **over):
    kw = dict(k=2, temperature=1.0, max_new_tokens=8, batch_size=4, seed=1003, limit=4, offset=0)
    return rollout_step(str(model), str(problems), str(out), run_id=run_id, stage=stage, iteration=iteration,
                        share_dir=None if share is None else str(share), **{**kw, **over})


def test_a_shared_rollout_is_exactly_what_the_run_would_have_drawn(model_dir, problems_path, tmp_path):
    share = tmp_path / "shared"
    first = _roll(model_dir, problems_path, tmp_path / "a.parquet", share=share)
    second = _roll(model_dir, problems_path, tmp_path / "b.parquet", run_id="B", stage="pair_sft", share=share)
    oracle = _roll(model_dir, problems_path, tmp_path / "o.parquet", run_id="B", stage="pair_sft")
    assert first["shared"] is False and second["shared"] is True and "shared" not in oracle
    got, want = read_episodes(tmp_path / "b.parquet"), read_episodes(tmp_path / "o.parquet")
    assert len(want) == 8 and got == want  # every field: labels, ids, texts, stop ids, log-probs
    assert {(e.run_id, e.stage, e.iteration) for e in got} == {("B", "pair_sft", 3)}
    assert second["gen_tokens"] == oracle["gen_tokens"] == sum(e.tokens1 + e.tokens2 for e in want)
    assert len(list(share.glob("*.json"))) == 1


@pytest.mark.parametrize("change", [dict(seed=1004), dict(offset=1), dict(temperature=0.7),
                                    dict(max_new_tokens=6), dict(batch_size=2)])
def test_what_decides_the_tokens_decides_the_key(model_dir, problems_path, tmp_path, change):
    share = tmp_path / "shared"
    _roll(model_dir, problems_path, tmp_path / "a.parquet", share=share)
    other = _roll(model_dir, problems_path, tmp_path / "b.parquet", share=share, **change)
    assert other["shared"] is False and len(list(share.glob("*.json"))) == 2
    oracle = _roll(model_dir, problems_path, tmp_path / "o.parquet", **change)
    assert read_episodes(tmp_path / "b.parquet") == read_episodes(tmp_path / "o.parquet")
    assert other["gen_tokens"] == oracle["gen_tokens"]


def test_new_weights_in_the_same_folder_are_not_served_the_old_rollout(model_dir, problems_path, tmp_path, tiny):
    model_copy, share = tmp_path / "base", tmp_path / "shared"
    shutil.copytree(model_dir, model_copy)
    _roll(model_copy, problems_path, tmp_path / "a.parquet", share=share)
    model, _ = tiny
    changed = type(model)(model.config)
    changed.load_state_dict({k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()})
    changed.save_pretrained(model_copy)  # same path, new weights
    after = _roll(model_copy, problems_path, tmp_path / "b.parquet", share=share)
    _roll(model_copy, problems_path, tmp_path / "o.parquet")
    assert after["shared"] is False
    assert read_episodes(tmp_path / "b.parquet") == read_episodes(tmp_path / "o.parquet")
    assert read_episodes(tmp_path / "b.parquet") != read_episodes(tmp_path / "a.parquet")


def test_only_a_local_model_folder_is_shared(model_dir, problems, tmp_path):
    from score_core.steps.rollout import _share_key

    params = dict(k=2, seed=1)
    assert _share_key(str(tmp_path), "HuggingFaceTB/SmolLM2-135M-Instruct", problems, params) is None
    assert _share_key(None, str(model_dir), problems, params) is None
    key = _share_key(str(tmp_path), str(model_dir), problems, params)
    assert key == _share_key(str(tmp_path), str(model_dir), problems, params) and len(key) == 64
