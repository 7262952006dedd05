"""`score run CONFIG --dry-run`: checks, batch arithmetic and memory estimate, no downloads."""
from pathlib import Path

import pytest

from score.cli import main
from score_core.config import load_config
from score_core.tools.dryrun import architecture, batch_arithmetic, dry_run_report, lora_params, memory_per_gpu, n_params

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3
QWEN_P = 1_543_714_304  # Qwen2.5-1.5B-Instruct


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
    assert abs(n_params(architecture(cfg)) - QWEN_P) / 1.54e9 < 0.01


def test_math_recipe_counts_fp32_master_weights_and_reference():
    """Full fine-tuning, bf16 compute, plain DDP (nothing sharded): 4 + 4 + 8 bytes per
    parameter of float32 weights, gradients and Adam moments, 2 of bf16 autocast copies,
    4 of the float32 reference; before the fix the estimate was 2 + 2 + 4 + 2 (bf16 all through)."""
    cfg = load_config(ROOT / "configs" / "math_qwen2.5-1.5b-instruct.yaml")
    m = memory_per_gpu(cfg, architecture(cfg))
    P = n_params(architecture(cfg))
    assert P == QWEN_P  # the built-in table's architecture gives the exact count
    assert m["train_master_weights_fp32_gib"] == pytest.approx(5.7508, abs=1e-4)  # 4·P / GiB
    assert m["train_grads_fp32_gib"] == pytest.approx(5.7508, abs=1e-4)
    assert m["train_adam_moments_fp32_gib"] == pytest.approx(11.5016, abs=1e-4)
    assert m["train_autocast_weight_copies_gib"] == pytest.approx(2.8754, abs=1e-4)
    assert m["train_reference_gib"] == pytest.approx(5.7508, abs=1e-4) and m["train_frozen_base_gib"] == 0
    assert m["rollout_weights_gib"] == pytest.approx(2.8754, abs=1e-4)  # rollout loads bf16
    # T = 8192 tokens: 8192·28·1536·34 B of activations, 5·8192·151936·4 B of logits
    assert m["train_activations_gib"] == pytest.approx(11.1562, abs=1e-4)
    assert m["train_logits_gib"] == pytest.approx(23.1836, abs=1e-4)
    assert m["train_total_gib"] == pytest.approx(65.9692, abs=1e-4)


TINY_ARCH = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100, "tie_word_embeddings": True}


def _tiny_cfg(tmp_path, train="", **model):
    import json

    d = tmp_path / "tiny_model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(TINY_ARCH))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("data:\n  train: {source: synth_linear, split: train}\n  eval: {source: synth_linear, split: eval}\n"
                   f"model: {{path: {d}, dtype: {model.get('dtype', 'bfloat16')}, lora: {str(model.get('lora', False)).lower()}, "
                   "lora_rank: 8}\n"
                   "rollout: {max_new_tokens: 8, batch_size: 4}\n"
                   f"train: {{micro_batch_episodes: 4, micro_batch_tokens: null{train}}}\n")
    return load_config(cfg)


def test_tiny_model_parameter_counts_match_the_real_models(tmp_path):
    """n_params and lora_params against a built LlamaForCausalLM and the project's add_lora."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from score_core.generation.models import add_lora

    a = architecture(_tiny_cfg(tmp_path))
    # by hand: embedding 100·64 + 2 layers·(q,o 2·64·64 + k,v 2·64·32 + mlp 3·64·128 + norms 2·64) + norm 64
    assert n_params(a) == 6400 + 2 * (8192 + 4096 + 24576 + 128) + 64 == 80_448
    # by hand: 2 layers · r 8 · (q 64+64, k 64+32, v 64+32, o 64+64, gate 64+128, up 64+128, down 128+64)
    assert lora_params(a, 8) == 2 * 8 * (128 + 96 + 96 + 128 + 192 + 192 + 192) == 16_384
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in TINY_ARCH.items() if k != "model_type"}))
    assert sum(p.numel() for p in model.parameters()) == 80_448
    peft_model = add_lora(model, rank=8, alpha=16)
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == 16_384


def test_tiny_model_memory_by_hand(tmp_path):
    """Bytes, computed by hand for P = 80,448 parameters, A = 16,384 adapter parameters,
    T = 4 episodes × (16 + 2·8 + 128) = 640 tokens, 2 layers, width 64, vocabulary 100."""
    act_bf16, logits = 640 * 2 * 64 * 34, 5 * 640 * 100 * 4  # 2,785,280 and 1,280,000
    full = memory_per_gpu(cfg := _tiny_cfg(tmp_path), architecture(cfg))
    want = {"train_master_weights_fp32_gib": 321_792, "train_grads_fp32_gib": 321_792,
            "train_adam_moments_fp32_gib": 643_584, "train_autocast_weight_copies_gib": 160_896,
            "train_frozen_base_gib": 0, "train_reference_gib": 321_792,
            "train_activations_gib": act_bf16, "train_logits_gib": logits,
            "train_total_gib": 3 * 321_792 + 643_584 + 160_896 + act_bf16 + logits,
            "rollout_weights_gib": 160_896, "rollout_hf_kv_cache_gib": 256 * 4 * 160}  # 2·2·2·16·2 B/token
    for k, v in want.items():
        assert full[k] * GIB == pytest.approx(v), k
    assert full["train_total_gib"] * GIB == pytest.approx(5_835_136)

    lora = memory_per_gpu(cfg := _tiny_cfg(tmp_path, lora=True), architecture(cfg))
    want = {"train_master_weights_fp32_gib": 65_536, "train_grads_fp32_gib": 65_536,
            "train_adam_moments_fp32_gib": 131_072, "train_autocast_weight_copies_gib": 0,
            "train_frozen_base_gib": 160_896, "train_reference_gib": 0}  # base bf16, shared by π_ref
    for k, v in want.items():
        assert lora[k] * GIB == pytest.approx(v), k
    assert lora["train_total_gib"] * GIB == pytest.approx(4_488_320)
    assert lora["trainable_params_billion"] * 1e9 == pytest.approx(16_384)

    fp32 = memory_per_gpu(cfg := _tiny_cfg(tmp_path, dtype="float32"), architecture(cfg))
    assert fp32["train_autocast_weight_copies_gib"] == 0 and fp32["train_activations_gib"] * GIB == 2 * act_bf16
    assert fp32["rollout_weights_gib"] * GIB == 321_792


@pytest.mark.parametrize("accelerate_yaml, want", [
    ("distributed_type: FSDP\nfsdp_config: {fsdp_sharding_strategy: FULL_SHARD}\n",
     (80_448, 80_448, 160_896, 40_224)),  # weights, grads, Adam and bf16 copies all / 4
    ("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 2}\n",
     (321_792, 80_448, 160_896, 160_896)),  # ZeRO-2: gradients and Adam / 4
], ids=["fsdp", "zero2"])
def test_sharding_divides_trained_state_not_the_reference(tmp_path, accelerate_yaml, want):
    acc = tmp_path / "acc.yaml"
    acc.write_text(accelerate_yaml)
    cfg = _tiny_cfg(tmp_path, train=f", num_processes: 4, accelerate_config: {acc}")
    m = memory_per_gpu(cfg, architecture(cfg))
    keys = ("train_master_weights_fp32_gib", "train_grads_fp32_gib", "train_adam_moments_fp32_gib",
            "train_autocast_weight_copies_gib")
    assert tuple(round(m[k] * GIB) for k in keys) == want
    assert m["train_reference_gib"] * GIB == pytest.approx(321_792)  # the reference is never sharded


def test_dry_run_fails_on_missing_files(tmp_path):
    """A missing accelerate config (it ships with the repo) is an error; a missing data file
    only a warning: the dry run must not need the data (it may live where the run runs)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: {source: math, path: nowhere.jsonl}\n  eval: {source: synth_linear, split: eval}\n"
                   "train: {num_processes: 2, accelerate_config: nope.yaml}\n")
    rep = dry_run_report(load_config(bad))
    assert any("no such file" in w and "train.path" in w for w in rep["warnings"])
    assert not any("train.path" in e for e in rep["errors"])
    assert any("accelerate_config" in e for e in rep["errors"])
    assert main(["run", str(bad), "--dry-run"]) == 2


CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_dry_runs_on_a_fresh_clone(name, tmp_path, monkeypatch, capsys):
    """`score run CONFIG --dry-run` through the CLI entry, as on a fresh clone: configs/ copied
    alone (no ../shared beside it, no models/, no data), run from an empty directory."""
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "configs", clone / "configs")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert not (tmp_path / "shared").exists()
    assert main(["run", str(clone / "configs" / name), "--dry-run"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "config OK" in out and "batch arithmetic" in out


@pytest.mark.parametrize("name", ["math_qwen2.5-1.5b-instruct.yaml", "code_qwen2.5-coder-1.5b-instruct.yaml"])
def test_gpu_recipes_name_hub_datasets_and_take_local_files_as_override(name, capsys):
    from score_core.tools.dryrun import data_sources

    cfg = load_config(ROOT / "configs" / name)
    for role in ("train", "eval"):
        ds = getattr(cfg.data, role)
        assert ds.path is None and ds.hub_name and ds.hub_split
        assert data_sources(cfg)[role].startswith("hub: ")
    local = "/data/x.jsonl"
    cfg = load_config(ROOT / "configs" / name, {"data.train.path": local})
    assert cfg.data.train.path == local and data_sources(cfg)["train"] == f"local file: {local}"
    assert main(["run", str(ROOT / "configs" / name), "--dry-run", "--set", f"data.train.path={local}"]) == 0
    assert f"no such file here: {local}" in capsys.readouterr().out


def test_malformed_hub_names_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  train: {source: math, hub_name: 'not a name'}\n"
                   "  eval: {source: math, hub_name: o/n, hub_split: 'te st'}\n")
    errors = dry_run_report(load_config(cfg))["errors"]
    assert any("data.train.hub_name" in e for e in errors) and any("data.eval.hub_split" in e for e in errors)


def test_an_error_in_process_leaves_the_callers_prefect_server_up(prefect_harness, tmp_path):
    """`score.cli.main` on an error stops the temporary Prefect server *it* started (so its
    error line prints last) — never one its caller was using (this session's test server)."""
    from prefect import flow

    from score.cli import main

    @flow
    def ping() -> int:
        return 1

    assert ping() == 1  # the caller's server is up
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["run", str(bad)]) == 2
    assert ping() == 1  # and still is
