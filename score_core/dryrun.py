"""`score run CONFIG --dry-run`: check a config without loading or downloading anything.

Field checks beyond the pydantic schema, the batch arithmetic of a run, and a per-GPU
memory estimate. Model sizes come from a local `config.json` or, for a hub name, from a
small table of the models this project's recipes name (unknown hub models: no estimate).

Memory model (bytes; P parameters, b bytes per weight, N processes, T tokens of one
micro-batch, V vocabulary, L layers, h width):
- full fine-tuning: policy weights P·b + gradients P·b + Adam moments 2·P·b (the trainer's
  Adam keeps the weights' dtype) + frozen reference P·b; FSDP/ZeRO divide all but the
  reference by N;
- LoRA: base P·b (the reference is the same weights with the adapter off) + ~1% adapter;
- activations ≈ T·L·h·34·b/2 (Korthikanti et al. 2022, no recomputation, SDPA attention)
  plus logits ≈ 5·T·V·4 (policy and reference logits, two float32 log-softmaxes, probs);
- rollout with the HF engine: weights P·b + KV cache 2·L·kv_heads·head_dim·b per token ×
  rollout.batch_size × (typical long prompt of the data source + 2·max_new_tokens + 128).
Estimates are ±30%; allocator fragmentation and CUDA context (~1 GB) come on top.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any, Optional

from .config import RunConfig

# architecture of models named by the recipes: hidden, layers, heads, kv_heads, intermediate, vocab, tied, qkv_bias
KNOWN = {
    "Qwen/Qwen2.5-1.5B-Instruct": (1536, 28, 12, 2, 8960, 151936, True, True),
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": (1536, 28, 12, 2, 8960, 151936, True, True),
    "Qwen/Qwen2.5-7B-Instruct": (3584, 28, 28, 4, 18944, 152064, False, True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": (576, 30, 9, 3, 1536, 49152, True, False),
    "meta-llama/Meta-Llama-3-8B-Instruct": (4096, 32, 32, 8, 14336, 128256, False, False),
}
PAPER = {"math": {"lr": 5e-6, "beta2": 0.1}, "code": {"lr": 1e-5, "beta2": 0.25}}
GB = 1024 ** 3


def architecture(cfg: RunConfig) -> Optional[dict[str, Any]]:
    """Width, depth, heads, vocab of the configured model, without downloading it."""
    if cfg.model.path is None:
        d = cfg.model.debug_base
        return dict(hidden=d.hidden_size, layers=d.num_layers, heads=d.num_heads, kv_heads=d.num_heads,
                    intermediate=d.intermediate_size, vocab=101, tied=True, qkv_bias=False, source="debug_base")
    local = Path(cfg.model.path) / "config.json"
    if local.is_file():
        c = json.loads(local.read_text())
        return dict(hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=c["num_attention_heads"],
                    kv_heads=c.get("num_key_value_heads", c["num_attention_heads"]),
                    intermediate=c["intermediate_size"], vocab=c["vocab_size"],
                    tied=c.get("tie_word_embeddings", False), qkv_bias="qwen2" in c.get("model_type", ""),
                    source=str(local))
    if cfg.model.path in KNOWN:
        h, L, nh, kv, i, v, tied, bias = KNOWN[cfg.model.path]
        return dict(hidden=h, layers=L, heads=nh, kv_heads=kv, intermediate=i, vocab=v, tied=tied,
                    qkv_bias=bias, source="built-in table")
    return None


def n_params(a: dict[str, Any]) -> int:
    h, hd = a["hidden"], a["hidden"] // a["heads"]
    kv = a["kv_heads"] * hd
    attn = 2 * h * h + 2 * h * kv + (h + 2 * kv if a["qkv_bias"] else 0)
    per_layer = attn + 3 * h * a["intermediate"] + 2 * h
    return a["vocab"] * h * (1 if a["tied"] else 2) + a["layers"] * per_layer + h


PROMPT_TOKENS = {"synth_linear": 16, "synth_code": 64, "math": 256, "gsm8k": 192, "mbpp": 768, "humaneval": 256}


def longest_episode_tokens(cfg: RunConfig) -> int:
    """Assumed longest x ⊕ y1 ⊕ p ⊕ y2: a typical long prompt, both attempts at the limit, p ≈ 128."""
    return PROMPT_TOKENS[cfg.data.train.source] + 2 * cfg.rollout.max_new_tokens + 128


def batch_arithmetic(cfg: RunConfig) -> dict[str, Any]:
    t, k = cfg.train, cfg.rollout.k
    episodes = t.minibatch_prompts * k
    shard = -(-episodes // t.num_processes)
    steps = cfg.steps_per_iteration * len(t.schedule)
    per_mb = t.micro_batch_episodes
    if t.micro_batch_tokens:
        per_mb = max(1, min(per_mb, t.micro_batch_tokens // longest_episode_tokens(cfg)))
    return {"episodes_per_step": episodes, "episodes_per_process": shard,
            "micro_batches_per_step_min": -(-shard // t.micro_batch_episodes),
            "micro_batches_per_step_if_all_longest": -(-shard // per_mb),
            "steps_per_iteration": cfg.steps_per_iteration, "optimizer_steps_total": steps,
            "episodes_sampled_per_iteration": t.prompts_per_iteration * k,
            "generated_tokens_per_iteration_max": t.prompts_per_iteration * k * 2 * cfg.rollout.max_new_tokens}


def memory_per_gpu(cfg: RunConfig, a: dict[str, Any]) -> dict[str, float]:
    """Estimated GiB per process for the training step and for HF-engine rollouts."""
    P, b = n_params(a), (2 if cfg.model.dtype == "bfloat16" else 4)
    N = cfg.train.num_processes
    sharded = cfg.train.accelerate_config is not None and any(
        s in cfg.train.accelerate_config.lower() for s in ("fsdp", "zero", "deepspeed"))
    if cfg.model.lora:
        state = P * b + 0.01 * P * 4 * 4  # base + adapter weights, grads, Adam (fp32)
        ref = 0.0
    else:
        state = 4 * P * b / (N if sharded else 1)
        ref = P * b
    seq = longest_episode_tokens(cfg)
    T = min(cfg.train.micro_batch_tokens or 1 << 62, cfg.train.micro_batch_episodes * seq)
    act = T * a["layers"] * a["hidden"] * 34 * b / 2
    logits = 5 * T * a["vocab"] * 4
    kv_per_token = 2 * a["layers"] * a["kv_heads"] * (a["hidden"] // a["heads"]) * b
    rollout = P * b + kv_per_token * cfg.rollout.batch_size * seq
    return {"params_billion": P / 1e9, "train_weights_grads_adam_gib": state / GB, "train_reference_gib": ref / GB,
            "train_activations_gib": act / GB, "train_logits_gib": logits / GB,
            "train_total_gib": (state + ref + act + logits) / GB, "rollout_hf_total_gib": rollout / GB,
            "micro_batch_tokens_assumed": float(T)}


def _count_rows(path: str) -> Optional[int]:
    p = Path(path)
    if not p.is_file():
        return None
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(p).metadata.num_rows
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return sum(1 for line in f if line.strip())


def checks(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) a schema cannot express."""
    errors, warnings = [], []
    for role in ("train", "eval"):
        ds = getattr(cfg.data, role)
        if ds.path is None and ds.hub_name is None and not ds.source.startswith("synth"):
            errors.append(f"data.{role}: set path (local file) or hub_name")
        if ds.path is not None and not Path(ds.path).is_file():
            errors.append(f"data.{role}.path: no such file: {ds.path}")
    rows = _count_rows(cfg.data.train.path) if cfg.data.train.path else None
    if rows is not None and min(rows, cfg.data.train.limit or rows) < cfg.train.prompts_per_iteration:
        warnings.append(f"train.prompts_per_iteration {cfg.train.prompts_per_iteration} > {rows} train rows: "
                        "prompts repeat within an iteration")
    if cfg.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        warnings.append("rollout.engine: vllm, but vLLM is not installed here (pip install 'score[vllm]')")
    if cfg.train.num_processes > 1 and cfg.train.minibatch_prompts * cfg.rollout.k < cfg.train.num_processes:
        errors.append("train.minibatch_prompts × rollout.k must be ≥ train.num_processes (each process needs episodes)")
    if cfg.train.accelerate_config and not Path(cfg.train.accelerate_config).is_file():
        errors.append(f"train.accelerate_config: no such file: {cfg.train.accelerate_config}")
    if cfg.model.path is not None and cfg.model.path not in KNOWN and not Path(cfg.model.path).exists():
        warnings.append(f"model.path {cfg.model.path!r}: not a local dir nor a known hub name — no memory estimate")
    kind = "code" if cfg.data.train.source in ("mbpp", "humaneval") else "math"
    if not cfg.data.train.source.startswith("synth"):
        paper = PAPER[kind]
        if cfg.train.lr > 20 * paper["lr"]:
            warnings.append(f"train.lr {cfg.train.lr:g} is > 20× the paper's {paper['lr']:g} for {kind}")
        if cfg.rollout.temperature != 1.0:
            warnings.append(f"rollout.temperature {cfg.rollout.temperature} (paper trains at 1.0)")
    return errors, warnings


def dry_run_report(cfg: RunConfig) -> dict[str, Any]:
    errors, warnings = checks(cfg)
    a = architecture(cfg)
    return {"errors": errors, "warnings": warnings, "batch": batch_arithmetic(cfg),
            "memory_per_gpu": memory_per_gpu(cfg, a) if a else None,
            "model_source": a["source"] if a else None}


def print_dry_run(cfg: RunConfig) -> int:
    """Print the report; return 2 when a check failed (the CLI's exit code), else 0."""
    rep = dry_run_report(cfg)
    print("batch arithmetic:")
    for k, v in rep["batch"].items():
        print(f"  {k}: {v}")
    if rep["memory_per_gpu"]:
        m = rep["memory_per_gpu"]
        print(f"memory estimate per process ({m['params_billion']:.3f} B params, from {rep['model_source']}, "
              f"{cfg.model.dtype}, {cfg.train.num_processes} process(es)):")
        for k, v in m.items():
            if k.endswith("_gib"):
                print(f"  {k}: {v:.2f}")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    for e in rep["errors"]:
        print(f"error: {e}")
    return 2 if rep["errors"] else 0
