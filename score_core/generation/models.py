"""Loading and saving models: hub names or local `save_pretrained` directories.

A checkpoint is an ordinary HF directory (full weights), or a peft LoRA adapter directory
whose `adapter_config.json` names the base model. Saves are atomic: written to a
temporary sibling directory, then renamed, so a crash never leaves a half checkpoint.
`save_checkpoint` writes `manifest.json` last (every file's size and a hash of its ends);
`is_complete_checkpoint` is the one rule for "this checkpoint can be loaded", used on resume.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

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

    Precision rule (`model.dtype`; `steps.train.train_step` builds the training side from it):
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
        with _peft_reads_old_names():
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
    with _peft_reads_old_names():
        peft_model = get_peft_model(model, cfg)
    _trainable_to_fp32(peft_model)
    return peft_model.train(True)


@contextlib.contextmanager
def _peft_reads_old_names() -> Iterator[None]:
    """peft reads `model.is_gradient_checkpointing`, which transformers 5 renamed and warns
    about on every LoRA load; silence exactly that warning, only around peft's calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def _trainable_to_fp32(model: Any) -> None:
    """Master weights: every parameter that requires grad is float32 (peft already upcasts
    adapters of a bf16 base by default; this makes the rule independent of that default)."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def _adapter_base(path: str | os.PathLike) -> str:
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    return cfg["base_model_name_or_path"]


def save_atomically(out_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a directory atomically: `write(tmp)` fills a temporary sibling folder, which is
    then renamed into place (an existing `out_dir` is moved aside first and removed after),
    so a reader sees the old directory or the whole new one, never a half-written one."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    out_dir: str | os.PathLike,
    optimizer: Optional[torch.optim.Optimizer] = None,
    state: Optional[dict] = None,
) -> Path:
    """save_pretrained (+ optimizer state + trainer_state.json + manifest.json), atomically."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state or {}, indent=2))
        write_manifest(tmp)

    return save_atomically(out_dir, write)


MANIFEST = "manifest.json"
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_ENDS = 1 << 20  # bytes hashed at each end of a file: cheap on a multi-GB weights file


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size and sha256 of the first and last MiB: catches a deleted, truncated or replaced
    file without reading gigabytes."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        h.update(fh.read(_ENDS))
        if size > _ENDS:
            fh.seek(max(_ENDS, size - _ENDS))
            h.update(fh.read(_ENDS))
    return {"size": size, "sha256_ends": h.hexdigest()}


def write_manifest(ckpt_dir: str | os.PathLike) -> Path:
    """`manifest.json`: the fingerprint of every file of a checkpoint, written last."""
    d = Path(ckpt_dir)
    files = {str(f.relative_to(d)): file_fingerprint(f) for f in sorted(d.rglob("*"))
             if f.is_file() and f.name != MANIFEST}
    path = d / MANIFEST
    path.write_text(json.dumps({"files": files}, indent=1))
    return path


def _safetensors_problem(path: Path) -> Optional[str]:
    """A safetensors file is whole iff its size is 8 + header + the end of its last tensor."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(size - 8, 1 << 28):
                return f"{path.name}: truncated ({size} bytes, header says {n})"
            header = json.loads(fh.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        return f"{path.name}: unreadable header ({exc})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size != 8 + n + end:
        return f"{path.name}: {size} bytes, its header needs {8 + n + end}"
    return None


def checkpoint_problems(path: str | os.PathLike) -> list[str]:
    """Why the checkpoint at `path` cannot be loaded as it is ([] when it can): a config, the
    weights (every shard an index names), each safetensors file as long as its header says,
    and, when `save_checkpoint` wrote a manifest, every file with its recorded size and hash.
    Directories without a manifest (fetched models, older runs) get the structural checks."""
    p = Path(path)
    if not p.is_dir():
        return [f"{p}: no such directory"]
    problems = []
    if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        problems.append("no config.json or adapter_config.json")
    weights = [p / w for w in WEIGHT_FILES if (p / w).is_file()]
    for index in (p / i for i in WEIGHT_INDEXES):
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError) as exc:
                problems.append(f"{index.name}: unreadable ({exc})")
                continue
            problems += [f"missing weights shard {s}" for s in shards if not (p / s).is_file()]
            weights += [p / s for s in shards if (p / s).is_file()]
    if not weights and not problems:
        problems.append(f"no weights file ({', '.join(WEIGHT_FILES)} or a sharded index)")
    problems += [msg for w in weights if w.suffix == ".safetensors" and (msg := _safetensors_problem(w))]
    manifest = p / MANIFEST
    if manifest.is_file():
        try:
            files = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError) as exc:
            return problems + [f"{MANIFEST}: unreadable ({exc})"]
        for name, want in files.items():
            f = p / name
            if not f.is_file():
                problems.append(f"missing {name}")
            elif f.stat().st_size != want["size"]:
                problems.append(f"{name}: {f.stat().st_size} bytes, {want['size']} when saved")
            elif file_fingerprint(f) != want:
                problems.append(f"{name}: changed since it was saved")
    return problems


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """The one rule for a checkpoint directory that may be trusted (on resume, as a policy)."""
    return not checkpoint_problems(path)
