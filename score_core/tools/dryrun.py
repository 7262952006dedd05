"""`score run CONFIG --dry-run`: check a config without loading or downloading anything.

Field checks beyond the pydantic schema, the batch arithmetic of a run, and a per-GPU
memory estimate. Model sizes come from a local `config.json` or, for a hub name, from a
small table of the models this project's recipes name (unknown hub models: no estimate).

Memory model (bytes; P parameters, A LoRA adapter parameters, c bytes per compute weight
(model.dtype: 2 for bfloat16, 4 for float32), N processes, T tokens of one micro-batch, V
vocabulary, L layers, h width). It follows the precision rule of `models.load_model`:
whatever is trained is held in float32.
- full fine-tuning: float32 master weights 4P + float32 gradients 4P + Adam's two float32
  moments 8P; under bf16 autocast the bf16 casts of the trainable weights, 2P, live from
  forward to backward (autograd saves them); the frozen reference is float32, 4P (π_ref
  runs the same computation as π_θ: KL = 0 at the first step). FSDP/ZeRO divide what they
  shard by N (read from train.accelerate_config: FSDP FULL_SHARD all three, SHARD_GRAD_OP
  gradients and Adam; ZeRO stage 1 Adam, 2 + gradients, 3 + weights); the reference is
  never sharded;
- LoRA: the frozen base in model.dtype, P·c (it is also π_ref: adapter off), plus the
  adapter in float32: weights 4A + gradients 4A + Adam 8A, A = L·r·(9h + 2·kv + 3·i)
  (r·(in + out) for each of q, k, v, o, gate, up, down);
- activations ≈ T·L·h·34·c/2 (Korthikanti et al. 2022, no recomputation, SDPA attention)
  plus logits ≈ 5·T·V·4 (policy and reference logits, two float32 log-softmaxes, probs);
- rollout (its own step, not at the same time as training): the weights in model.dtype
  P·c (an fp32 checkpoint is loaded as bf16), and with the HF engine a KV cache
  2·L·kv_heads·head_dim·c per token × rollout.batch_size × (typical long prompt of the data
  source + 2·max_new_tokens + 128); vLLM instead takes vllm_gpu_memory_utilization of the GPU.
Estimates are ±30%; allocator fragmentation and CUDA context (~1 GB) come on top.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Optional

from score_core.config import RunConfig

# architecture of models named by the recipes: hidden, layers, heads, kv_heads, intermediate, vocab, tied, qkv_bias
KNOWN = {
    "Qwen/Qwen2.5-1.5B-Instruct": (1536, 28, 12, 2, 8960, 151936, True, True),
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": (1536, 28, 12, 2, 8960, 151936, True, True),
    "Qwen/Qwen2.5-7B-Instruct": (3584, 28, 28, 4, 18944, 152064, False, True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": (576, 30, 9, 3, 1536, 49152, True, False),
    "meta-llama/Meta-Llama-3-8B-Instruct": (4096, 32, 32, 8, 14336, 128256, False, False),
}
# a hub dataset name is checked for its form only: the dry run downloads nothing
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?")
HUB_SPLIT = re.compile(r"[\w.-]+(\[[\w:%-]*\])?(\+[\w.-]+(\[[\w:%-]*\])?)*")
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
    episodes = cfg.minibatch_prompts * k  # all prompts of an iteration with train.strict_on_policy
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


def lora_params(a: dict[str, Any], rank: int) -> int:
    """Adapter parameters of peft's "all-linear" LoRA (every linear of the blocks, not lm_head)."""
    kv = a["kv_heads"] * (a["hidden"] // a["heads"])
    return a["layers"] * rank * (9 * a["hidden"] + 2 * kv + 3 * a["intermediate"])


def sharding(cfg: RunConfig) -> dict[str, int]:
    """What FSDP/ZeRO (train.accelerate_config) divide by the number of processes: divisors of
    the trainable weights, their gradients and Adam's moments."""
    import yaml

    n, path = cfg.train.num_processes, cfg.train.accelerate_config
    c = yaml.safe_load(Path(path).read_text()) if path and Path(path).is_file() else None
    c = c if isinstance(c, dict) else {}
    shard = (False, False, False)
    if c.get("distributed_type") == "FSDP":
        strategy = str((c.get("fsdp_config") or {}).get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        shard = {"FULL_SHARD": (True,) * 3, "HYBRID_SHARD": (True,) * 3, "SHARD_GRAD_OP": (False, True, True)}.get(
            strategy, shard)
    elif c.get("distributed_type") == "DEEPSPEED":
        stage = int((c.get("deepspeed_config") or {}).get("zero_stage", 0))
        shard = (stage >= 3, stage >= 2, stage >= 1)
    return {k: n if on else 1 for k, on in zip(("weights", "grads", "adam"), shard)}


def memory_per_gpu(cfg: RunConfig, a: dict[str, Any]) -> dict[str, float]:
    """Estimated GiB per process for the training step and for the rollout step, itemised."""
    P, c = n_params(a), (2 if cfg.model.dtype == "bfloat16" else 4)
    div = sharding(cfg)
    if cfg.model.lora:
        A = lora_params(a, cfg.model.lora_rank)
        trained = A
        frozen_base = P * c
        copies = 0.0  # the base is already in c; the adapter's bf16 casts are negligible
        ref = 0.0  # π_ref = the same base with the adapter off
    else:
        trained = P
        frozen_base = 0.0
        copies = 2 * P / div["weights"] if c == 2 else 0.0
        ref = 4 * P
    master, grads, adam = 4 * trained / div["weights"], 4 * trained / div["grads"], 8 * trained / div["adam"]
    seq = longest_episode_tokens(cfg)
    T = min(cfg.train.micro_batch_tokens or 1 << 62, cfg.train.micro_batch_episodes * seq)
    act = T * a["layers"] * a["hidden"] * 34 * c / 2
    logits = 5 * T * a["vocab"] * 4
    train = master + grads + adam + copies + frozen_base + ref + act + logits
    kv_per_token = 2 * a["layers"] * a["kv_heads"] * (a["hidden"] // a["heads"]) * c
    kv = kv_per_token * cfg.rollout.batch_size * seq
    return {"params_billion": P / 1e9, "trainable_params_billion": trained / 1e9,
            "train_master_weights_fp32_gib": master / GB, "train_grads_fp32_gib": grads / GB,
            "train_adam_moments_fp32_gib": adam / GB, "train_autocast_weight_copies_gib": copies / GB,
            "train_frozen_base_gib": frozen_base / GB, "train_reference_gib": ref / GB,
            "train_activations_gib": act / GB, "train_logits_gib": logits / GB, "train_total_gib": train / GB,
            "rollout_weights_gib": P * c / GB, "rollout_hf_kv_cache_gib": kv / GB,
            "rollout_hf_total_gib": (P * c + kv) / GB, "micro_batch_tokens_assumed": float(T)}


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
        if ds.source.startswith("synth"):
            continue
        if ds.path is not None:
            if not Path(ds.path).is_file():  # it may exist where the run runs: not needed to check
                warnings.append(f"data.{role}.path: no such file here: {ds.path} (the run's prepare-data "
                                "step needs it)")
        elif ds.hub_name is not None and not HUB_NAME.fullmatch(ds.hub_name):
            errors.append(f"data.{role}.hub_name {ds.hub_name!r}: expected OWNER/NAME or OWNER/NAME:CONFIG")
        elif not HUB_SPLIT.fullmatch(ds.hub_split):
            errors.append(f"data.{role}.hub_split {ds.hub_split!r}: expected a split name, or names joined by '+'")
    rows = _count_rows(cfg.data.train.path) if cfg.data.train.path else None
    if rows is not None and min(rows, cfg.data.train.limit or rows) < cfg.train.prompts_per_iteration:
        warnings.append(f"train.prompts_per_iteration {cfg.train.prompts_per_iteration} > {rows} train rows: "
                        "prompts repeat within an iteration")
    if cfg.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        warnings.append("rollout.engine: vllm, but vLLM is not installed here (pip install 'score[vllm]')")
    if cfg.train.num_processes > 1 and cfg.minibatch_prompts * cfg.rollout.k < cfg.train.num_processes:
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


def data_sources(cfg: RunConfig) -> dict[str, str]:
    """Where each data set will come from at the prepare-data step (nothing is read now)."""
    from score_core.problems.loaders import HUB_DEFAULTS

    out = {}
    for role in ("train", "eval"):
        ds = getattr(cfg.data, role)
        if ds.source.startswith("synth"):
            out[role] = f"generated: {ds.source} (n={ds.n}, seed={ds.seed})"
        elif ds.path is not None:
            out[role] = f"local file: {ds.path}"
        else:
            name = ds.hub_name or ":".join(x for x in HUB_DEFAULTS[ds.source] if x)
            out[role] = f"hub: {name} [{ds.hub_split}] (downloaded by the run, not by the dry run)"
    return out


def dry_run_report(cfg: RunConfig) -> dict[str, Any]:
    errors, warnings = checks(cfg)
    a = architecture(cfg)
    return {"errors": errors, "warnings": warnings, "data": data_sources(cfg), "batch": batch_arithmetic(cfg),
            "memory_per_gpu": memory_per_gpu(cfg, a) if a else None,
            "model_source": a["source"] if a else None}


def print_dry_run(cfg: RunConfig) -> int:
    """Print the report; return 2 when a check failed (the CLI's exit code), else 0."""
    rep = dry_run_report(cfg)
    print("data:")
    for role, where in rep["data"].items():
        print(f"  {role}: {where}")
    print("batch arithmetic:")
    for k, v in rep["batch"].items():
        print(f"  {k}: {v}")
    if rep["memory_per_gpu"]:
        m = rep["memory_per_gpu"]
        print(f"memory estimate per process ({m['params_billion']:.3f} B params, "
              f"{m['trainable_params_billion']:.4f} B trained, from {rep['model_source']}, {cfg.model.dtype} compute, "
              f"float32 master weights, {cfg.train.num_processes} process(es)):")
        for k, v in m.items():
            if k.endswith("_gib"):
                print(f"  {k}: {v:.2f}")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    for e in rep["errors"]:
        print(f"error: {e}")
    return 2 if rep["errors"] else 0
