"""`rollout.engine: vllm` — two-attempt generation with vLLM, one engine per run.

The engine lives in the vLLM rollout server (`score_vllm/server.py`, in its own environment:
`scripts/ensure_vllm.sh`; lifetime and restarts: `score_core/generation/vllm_server.py`). A
`VLLMEngine` is a connection to it; `two_turns` is what `rollout_two_attempts` calls.

Weight sync, per iteration (`VLLMEngine.load`): the engine stays up across iterations —
- full fine-tuning: the newest checkpoint is loaded *in place* into the live model (vLLM's
  layer-wise `reload_weights` via `collective_rpc`, plus a fix for the CPU build's stale
  packed LM head: `score_vllm/worker.py`), and the prefix cache is dropped;
- LoRA: the engine is built once on the base with `enable_lora=True`; a new adapter
  directory becomes a new `LoRARequest` (a new integer id, so vLLM never serves a stale
  cached adapter) that every later request carries.

Prompts go in as token ids (`TokensPrompt`) and y1 comes back as token ids, so turn 2 is
exactly x ⊕ y1 ⊕ p as in the HF engine. Sampling: temperature only (top_p 1, top_k off),
greedy at temperature 0. Behaviour log-probs are those of the sampling distribution,
log softmax(z / T) of the sampled token (T = 1 when greedy), as `decode.Generation` wants:
the engine is built with `logprobs_mode="processed_logprobs"` (vLLM's default, raw_logprobs,
is log softmax(z) whatever T is). Seeds: one per request (seed + i), so a sample does not
depend on what it was batched with. On CPU a seeded request killed the engine
(`RuntimeError: CPU Generator does not use offset`: vLLM rewinds a request's generator after
a sampled token it discards — a chunked-prefill step — and a CPU generator has no offset);
the CPU engine is built with chunked prefill off, so no sampled token is discarded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from score_core.generation.decode import Generation
from score_core.generation.models import is_adapter_dir
from score_core.generation.vllm_server import (HINT, Connection, EngineDied, RolloutServer, ServerError,
                          VLLMUnavailable, address_from)

INSTALL_HINT = HINT
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values

__all__ = ["VLLMEngine", "VLLMUnavailable", "EngineDied", "ServerError", "build_engine", "engine_args",
           "sampling_args", "to_generation", "INSTALL_HINT"]


def _lora_rank(r: int) -> int:
    return next(x for x in LORA_RANKS if x >= r)


def engine_args(model_dir: str, *, dtype: str, gpu_memory_utilization: float, tensor_parallel_size: int,
                max_model_len: Optional[int], seed: int, platform: str = "cuda",
                max_lora_rank: Optional[int] = None) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` for a full checkpoint or a LoRA adapter directory.

    `platform` is the server's (`cpu`: float32, eager, the KV cache sized by
    VLLM_CPU_KVCACHE_SPACE rather than a memory fraction). `max_lora_rank` builds a
    LoRA-capable engine even from a full checkpoint (a LoRA run's first rollout is the base)."""
    args: dict[str, Any] = {
        "model": model_dir, "dtype": {"float32": "float32", "bfloat16": "bfloat16"}[dtype],
        "tensor_parallel_size": tensor_parallel_size, "seed": seed,
        "enable_prefix_caching": True,  # turn 2 shares x ⊕ y1 with turn 1
        "logprobs_mode": "processed_logprobs",  # log softmax(z / T): the sampling distribution
        "generation_config": "vllm",  # no sampling defaults from the checkpoint's generation_config
        "skip_tokenizer_init": True,  # token ids in and out; the project tokenizes
    }
    if platform == "cpu":  # chunked prefill off: seeded requests (see the module docstring)
        args.update(dtype="float32", enforce_eager=True, enable_chunked_prefill=False)
    else:
        args["gpu_memory_utilization"] = gpu_memory_utilization
    if max_model_len is not None:
        args["max_model_len"] = max_model_len
    if is_adapter_dir(model_dir):
        cfg = json.loads((Path(model_dir) / "adapter_config.json").read_text())
        args["model"] = cfg["base_model_name_or_path"]
        max_lora_rank = max(int(cfg.get("r", 8)), max_lora_rank or 0)
    if max_lora_rank is not None:
        args.update(enable_lora=True, max_lora_rank=_lora_rank(max(int(max_lora_rank), 8)))
    return args


def sampling_args(max_new_tokens: int, temperature: float, seed: Optional[int], stop_token_ids: Iterable[int]) -> dict:
    """Keyword arguments for `vllm.SamplingParams` matching the HF engine's sampling.

    Temperature 0 is vLLM's greedy decoding (no top-k 1: with processed log-probs a top-k
    filter would make every sampled token's log-prob 0). `logprobs: 0` returns the sampled
    token's log-prob only (`to_generation`)."""
    return {"n": 1, "max_tokens": max_new_tokens, "temperature": max(temperature, 0.0), "top_p": 1.0,
            "top_k": -1, "seed": seed, "stop_token_ids": sorted(stop_token_ids),
            "skip_special_tokens": False, "detokenize": False, "logprobs": 0}


def to_generation(token_ids: Sequence[int], finish_reason: Optional[str], eos: set[int],
                  logprobs: Optional[Sequence[Any]] = None) -> Generation:
    """vLLM output → Generation: the stop token removed (and kept as `stop_id`), truncated
    when the length limit hit. `logprobs`: `CompletionOutput.logprobs`, one entry per
    generated token (stop token included) mapping token id → Logprob (or a float); the
    sampled token's value of each becomes `Generation.logprobs` (empty when not requested)."""
    ids = list(token_ids)
    stop_id = ids.pop() if ids and ids[-1] in eos else None
    sampled: tuple[float, ...] = ()
    if logprobs is not None:
        if len(logprobs) != len(token_ids):
            raise ValueError(f"{len(logprobs)} log-prob entries for {len(token_ids)} generated tokens")
        sampled = tuple(float(getattr(entry[tok], "logprob", entry[tok])) for tok, entry in zip(token_ids, logprobs))
    return Generation(tuple(ids), stop_id is None and finish_reason == "length", stop_id, sampled)


class VLLMEngine:
    """A connection to the run's vLLM rollout server, loaded with `model_dir`.

    `server`: a `RolloutServer` (its owner keeps it across engines), or the `ServerAddress`
    of one (a rollout step's child process), or None: start a private server (closed by
    `close()`; a test or a one-off call)."""

    def __init__(self, model_dir: str, eos_ids: set[int], *, dtype: str = "bfloat16",
                 gpu_memory_utilization: float = 0.4, tensor_parallel_size: int = 1,
                 max_model_len: Optional[int] = None, seed: int = 0, max_lora_rank: Optional[int] = None,
                 server: Optional[Any] = None) -> None:
        self.eos_ids = set(eos_ids)
        self._owned: Optional[RolloutServer] = None
        if server is None:
            self._owned = server = RolloutServer()
        address = server.ensure() if isinstance(server, RolloutServer) else address_from(server)
        self.conn = Connection(address)
        self.platform = self.conn.call("ping")["platform"]
        _check_build(self.platform)
        self.args = engine_args(model_dir, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                                seed=seed, platform=self.platform, max_lora_rank=max_lora_rank)
        built = self.conn.call("engine", args=self.args)
        self.built, self.start_s = built["built"], built["start_s"]
        self.sync_s = 0.0
        self.load(model_dir)

    def load(self, model_dir: str) -> dict[str, Any]:
        """Serve the weights at `model_dir` from now on — the per-iteration weight sync: a
        full checkpoint is loaded in place, an adapter becomes the new LoRA request."""
        if is_adapter_dir(model_dir):
            weights = self.conn.call("weights", path=self.args["model"])  # the base under the adapter
            adapter = self.conn.call("adapter", path=str(model_dir))
        else:
            weights = self.conn.call("weights", path=str(model_dir))
            adapter = self.conn.call("adapter", path=None)
        self.sync_s = weights["seconds"]
        return {"weights_loaded": weights["loaded"], "sync_s": weights["seconds"],
                "adapter_id": adapter["adapter_id"]}

    def sync_weights(self, model_dir: str) -> dict[str, Any]:
        """Alias of `load` (the trainer's new checkpoint)."""
        return self.load(model_dir)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float,
                 seed: Optional[int]) -> list[Generation]:
        """One attempt per prompt (token ids in), in prompt order; request i is seeded with
        seed + i, so a sample does not depend on the batch it was scheduled in."""
        sampling = [sampling_args(max_new_tokens, temperature, None if seed is None else seed + i, self.eos_ids)
                    for i in range(len(prompts))]
        out = self.conn.call("generate", prompts=[list(map(int, p)) for p in prompts], sampling=sampling)["outputs"]
        return [to_generation(o["token_ids"], o["finish_reason"], self.eos_ids,
                              [{t: lp} for t, lp in zip(o["token_ids"], o["logprobs"])]) for o in out]

    def two_turns(self, prompts: Sequence[Sequence[int]], suffixes: Sequence[Sequence[int]], *,
                  max_new_tokens: int, temperature: float, seed: Optional[int] = None
                  ) -> list[tuple[Generation, Generation]]:
        """y1 for every prompt, then y2 for every x ⊕ y1 ⊕ p (prefix caching reuses x ⊕ y1)."""
        x = [list(p) for p in prompts]
        y1 = self.generate(x, max_new_tokens, temperature, seed)
        x2 = [p + list(g.ids) + list(s) for p, g, s in zip(x, y1, suffixes)]
        y2 = self.generate(x2, max_new_tokens, temperature, None if seed is None else seed + 10_000_019)
        return list(zip(y1, y2))

    def close(self) -> None:
        self.conn.close()
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> "VLLMEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_build(platform: str) -> None:
    """One line when the installed vLLM build does not fit this machine."""
    gpu = _has_cuda_gpu()
    if not platform or platform in ("unspecified", "empty"):
        raise VLLMUnavailable(f"the installed vLLM build found no device it supports on this machine "
                              f"(platform {platform!r}). {INSTALL_HINT}")
    if gpu and platform == "cpu" and os.environ.get("SCORE_VLLM_ALLOW_CPU") != "1":
        raise VLLMUnavailable("the vLLM environment has the CPU build (vllm-cpu) but this machine has a CUDA "
                              "GPU: rerun scripts/ensure_vllm.sh to install the GPU build (vllm), or set "
                              "SCORE_VLLM_ALLOW_CPU=1 to generate on the CPU anyway")


def _has_cuda_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def build_engine(engine: str, model_dir: str, eos_ids: set[int], *, dtype: str, gpu_memory_utilization: float,
                 tensor_parallel_size: int, max_model_len: Optional[int], seed: int,
                 server: Optional[Any] = None, max_lora_rank: Optional[int] = None) -> Optional[VLLMEngine]:
    """The rollout engine named by `rollout.engine`: None means the HF engine (`decode.py`)."""
    if engine == "hf":
        return None
    if engine == "vllm":
        return VLLMEngine(model_dir, eos_ids, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                          tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len, seed=seed,
                          max_lora_rank=max_lora_rank, server=server)
    raise ValueError(f"unknown rollout engine {engine!r}; expected 'hf' or 'vllm'")
