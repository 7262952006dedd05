"""Loading and saving models: hub names or local `save_pretrained` directories.

A checkpoint is an ordinary HF directory (full weights), or a peft LoRA adapter directory
whose `adapter_config.json` names the base model. Saves are atomic: written to a
temporary sibling directory, then renamed, so a crash never leaves a half checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    source = path
    if is_adapter_dir(path) and not (Path(path) / "tokenizer_config.json").is_file():
        source = _adapter_base(path)
    tok = AutoTokenizer.from_pretrained(source)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str = "float32", trainable: bool = False) -> Any:
    """A causal LM from a hub name, a full checkpoint dir, or a LoRA adapter dir.

    Precision rule (`model.dtype`; `steps.train_step` builds the training side from it):
    `bfloat16` means bf16 *compute*, never bf16 master weights. Every weight the optimizer
    updates is held in float32, so Adam's moments are float32 too, and the bf16 forward
    comes from the Accelerator's `mixed_precision="bf16"` autocast. (In pure bf16 an Adam
    step of lr 1e-5 on a weight of magnitude ≳ 0.005 is below half a bf16 ULP and rounds
    away: after 10 steps at lr 1e-5 only 7.5-15% of the weights had changed at all.)

    - `trainable=False` (rollout, evaluation, the frozen base under a LoRA adapter): every
      weight in `dtype`, frozen, eval mode. The rollout may load an fp32 checkpoint as bf16.
    - `trainable=True`, full weights: the whole model in float32 (the master weights),
      whatever `dtype` says; train mode.
    - `trainable=True`, LoRA adapter dir: the base in `dtype`, frozen (it never changes, so
      nothing is lost; under bf16 autocast its matmuls run in bf16 either way, and it is
      half the memory of fp32), the adapter's weights in float32 and trainable.
    Checkpoints are saved in the parameters' dtype (`save_checkpoint`), i.e. float32 for
    whatever was trained: no update is rounded away between stage iterations.
    """
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    torch_dtype = DTYPES[dtype]
    if is_adapter_dir(path):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(_adapter_base(path), dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, path, is_trainable=trainable)
        if trainable:
            _trainable_to_fp32(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if trainable else torch_dtype)
    model.train(trainable)
    if not trainable:
        model.requires_grad_(False)
    return model


def add_lora(model: Any, rank: int, alpha: int) -> Any:
    """A trainable LoRA adapter (float32) on `model` (frozen, in its own dtype; see `load_model`)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    _trainable_to_fp32(peft_model)
    return peft_model.train(True)


def _trainable_to_fp32(model: Any) -> None:
    """Master weights: every parameter that requires grad is float32 (peft already upcasts
    adapters of a bf16 base by default; this makes the rule independent of that default)."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def _adapter_base(path: str | os.PathLike) -> str:
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    return cfg["base_model_name_or_path"]


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    out_dir: str | os.PathLike,
    optimizer: Optional[torch.optim.Optimizer] = None,
    state: Optional[dict] = None,
) -> Path:
    """save_pretrained (+ optimizer state + trainer_state.json), atomically."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state or {}, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """A checkpoint dir counts only if its last-written file is there (renamed atomically)."""
    p = Path(path)
    return p.is_dir() and (p / "trainer_state.json").is_file()
