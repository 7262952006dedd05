"""Run `steps.train.train_step` in N processes with `accelerate launch` (DDP, or FSDP/DeepSpeed
through a config file in configs/accelerate/).

The pipeline's train step stays one function call; with `train.num_processes > 1` the
caller writes the step's arguments to a JSON file and runs `launch_command(...)` as a
subprocess. Every process loads the same episodes and takes its shard of each minibatch
(`trainer.train_on_episodes`); process 0 saves the checkpoint and writes the result JSON.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 \\
        -m score_core.steps.launch_train ARGS.json RESULT.json

On a machine without CUDA `--multi_gpu` still starts N processes (torch.distributed.run)
and `Accelerator(cpu=True)` joins them over gloo; accelerate 1.x's `--cpu` flag alone
would start only one process.

Precision is the config's, not the launcher's: each process builds its model, optimizer and
Accelerator with `steps.train.build_training`, exactly as the one-process step does (float32
master weights, Adam state, reference and checkpoint; `model.dtype: bfloat16` autocasts the
forward). The explicit `Accelerator(mixed_precision=...)` there wins over the
`--mixed_precision no` below (the ACCELERATE_MIXED_PRECISION it sets; tests/test_precision.py
checks it); with a config file keep its `mixed_precision` equal to model.dtype (DeepSpeed
takes bf16 from its own config; the GPU files in configs/accelerate say bf16).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional


def launch_command(args_json: str, result_json: str, num_processes: int,
                   accelerate_config: Optional[str] = None, main_process_port: int = 0) -> list[str]:
    """argv for the N-process train step (run it with subprocess; it exits non-zero on failure)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    else:
        cmd += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--num_machines", "1"]
    cmd += ["--num_processes", str(num_processes), "--main_process_port", str(main_process_port),
            "-m", "score_core.steps.launch_train", args_json, result_json]
    return cmd


def write_args(path: str, cfg: Any, **kwargs: Any) -> str:
    """Serialise train_step's arguments (the RunConfig and the plan's Iteration as JSON) for
    the launched processes."""
    from score_core.method.plan import Iteration
    from score_core.schema import atomic_write_text

    args = {k: v.to_dict() if isinstance(v, Iteration) else v for k, v in kwargs.items()}
    atomic_write_text(json.dumps({"cfg": cfg.model_dump(mode="json"), **args}), Path(path))
    return path


def main(args_json: str, result_json: str) -> None:
    from accelerate import PartialState

    from score_core.config import RunConfig
    from score_core.method.plan import Iteration
    from score_core.schema import atomic_write_text
    from score_core.steps.train import train_step

    raw = json.loads(Path(args_json).read_text())
    cfg = RunConfig.model_validate(raw.pop("cfg"))
    raw["plan"] = Iteration(**raw["plan"])
    result = train_step(cfg, **raw)
    if PartialState().is_main_process:
        atomic_write_text(json.dumps(result), Path(result_json))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
