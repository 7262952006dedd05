"""`rollout.engine: vllm` — two-attempt generation with vLLM (optional extra `score[vllm]`).

vLLM is imported lazily, only when an engine is built, so this module (and everything
that selects an engine) imports and is tested on machines without vLLM or a GPU.

Weight sync, per iteration:
- full fine-tuning: the pipeline's rollout step runs in a fresh process per iteration and
  builds the engine from the newest checkpoint directory, so vLLM reads the trainer's
  weights from disk; `sync_weights(state_dict)` pushes weights into a live engine instead
  (for a long-lived engine, no reload);
- LoRA: the engine loads the base once with `enable_lora=True` and every request carries a
  `LoRARequest` for the newest adapter directory; `set_adapter(dir)` switches to a new
  one (a new integer id, so vLLM never serves a stale cached adapter).

Prompts go in as token ids and y1 comes back as token ids, so turn 2 is exactly
x ⊕ y1 ⊕ p as in the HF engine. Sampling: temperature only (top_p 1, top_k off);
greedy at temperature 0. NOT exercised on this project's CPU machines: every call
into vLLM itself (see tests/test_vllm_engine.py for what is tested without it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .decode import Generation
from .models import is_adapter_dir

INSTALL_HINT = "rollout.engine: vllm needs vLLM and a CUDA GPU: pip install 'score[vllm]'"


class VLLMUnavailable(ImportError):
    """vLLM is not installed (or cannot be imported on this machine)."""


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise VLLMUnavailable(f"{INSTALL_HINT} ({exc})") from exc
    return vllm


def engine_args(model_dir: str, *, dtype: str, gpu_memory_utilization: float, tensor_parallel_size: int,
                max_model_len: Optional[int], seed: int) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` for a full checkpoint or a LoRA adapter directory."""
    args: dict[str, Any] = {
        "model": model_dir, "dtype": {"float32": "float32", "bfloat16": "bfloat16"}[dtype],
        "gpu_memory_utilization": gpu_memory_utilization, "tensor_parallel_size": tensor_parallel_size,
        "seed": seed, "enable_prefix_caching": True,  # turn 2 shares x ⊕ y1 with turn 1
    }
    if max_model_len is not None:
        args["max_model_len"] = max_model_len
    if is_adapter_dir(model_dir):
        cfg = json.loads((Path(model_dir) / "adapter_config.json").read_text())
        args.update(model=cfg["base_model_name_or_path"], enable_lora=True, max_lora_rank=max(int(cfg.get("r", 8)), 8))
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
    """A vLLM `LLM` that decodes both turns; `two_turns` is what `rollout_two_attempts` calls."""

    def __init__(self, model_dir: str, eos_ids: set[int], *, dtype: str = "bfloat16",
                 gpu_memory_utilization: float = 0.4, tensor_parallel_size: int = 1,
                 max_model_len: Optional[int] = None, seed: int = 0) -> None:
        vllm = import_vllm()
        self.eos_ids = set(eos_ids)
        args = engine_args(model_dir, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                           tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len, seed=seed)
        if "logprobs_mode" in getattr(vllm.EngineArgs, "__dataclass_fields__", {}):
            args["logprobs_mode"] = "processed_logprobs"  # vLLM ≥ 0.10.2 (V1): log-probs after temperature
        self.llm = vllm.LLM(**args)
        self._lora: Optional[Any] = None
        self._lora_id = 0
        if is_adapter_dir(model_dir):
            self.set_adapter(model_dir)

    def set_adapter(self, adapter_dir: str) -> None:
        """Serve the LoRA adapter saved at `adapter_dir` from now on (new id → no stale cache)."""
        from vllm.lora.request import LoRARequest

        self._lora_id += 1
        self._lora = LoRARequest(f"policy-{self._lora_id}", self._lora_id, str(adapter_dir))

    def sync_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load full-fine-tuning weights (HF parameter names) into the live engine.

        Uses the model's own `load_weights` in the worker (the path vLLM's RLHF examples use);
        works with the in-process executor (tensor_parallel_size 1)."""
        weights = list(named_tensors)

        def _load(worker: Any) -> None:  # runs inside vLLM's worker
            worker.model_runner.model.load_weights(weights=weights)

        if hasattr(self.llm, "collective_rpc"):
            self.llm.collective_rpc(_load)
        else:  # older vLLM (V0 engine)
            _load(self.llm.llm_engine.model_executor.driver_worker)
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()  # cached KV of the old weights must not be reused

    def _generate(self, prompts: list[list[int]], max_new_tokens: int, temperature: float,
                  seed: Optional[int]) -> list[Generation]:
        vllm = import_vllm()
        params = [vllm.SamplingParams(**sampling_args(max_new_tokens, temperature,
                                                      None if seed is None else seed + i, self.eos_ids))
                  for i in range(len(prompts))]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, lora_request=self._lora,
                                 use_tqdm=False)
        return [to_generation(o.outputs[0].token_ids, o.outputs[0].finish_reason, self.eos_ids, o.outputs[0].logprobs)
                for o in outs]

    def two_turns(self, prompts: Sequence[Sequence[int]], suffixes: Sequence[Sequence[int]], *,
                  max_new_tokens: int, temperature: float, seed: Optional[int] = None
                  ) -> list[tuple[Generation, Generation]]:
        """y1 for every prompt, then y2 for every x ⊕ y1 ⊕ p (prefix caching reuses x ⊕ y1)."""
        x = [list(p) for p in prompts]
        y1 = self._generate(x, max_new_tokens, temperature, seed)
        x2 = [p + list(g.ids) + list(s) for p, g, s in zip(x, y1, suffixes)]
        y2 = self._generate(x2, max_new_tokens, temperature, None if seed is None else seed + 10_000_019)
        return list(zip(y1, y2))


def build_engine(engine: str, model_dir: str, eos_ids: set[int], *, dtype: str, gpu_memory_utilization: float,
                 tensor_parallel_size: int, max_model_len: Optional[int], seed: int) -> Optional[VLLMEngine]:
    """The rollout engine named by `rollout.engine`: None means the HF engine (`decode.py`)."""
    if engine == "hf":
        return None
    if engine == "vllm":
        return VLLMEngine(model_dir, eos_ids, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                          tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len, seed=seed)
    raise ValueError(f"unknown rollout engine {engine!r}; expected 'hf' or 'vllm'")
