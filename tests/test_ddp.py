"""Two CPU processes (DDP over gloo, started by `accelerate launch`) make the same update
as one process on the same global batches.

accelerate 1.x's `--cpu` flag always starts ONE process (multi-CPU there means mpirun);
`--multi_gpu --num_processes 2` starts two via torch.distributed.run, and on a machine
without CUDA `Accelerator(cpu=True)` makes them a MULTI_CPU / gloo group."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _run(args, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args + [str(WORKER), str(out)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares CPU/gloo processes")
def test_two_process_update_equals_one_process(tmp_path):
    one = _run([sys.executable], tmp_path / "one.pt")
    two = _run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", "0"], tmp_path / "two.pt")
    assert one["world"] == 1 and two["world"] == 2
    for stage in ("stage1", "stage2"):
        _assert_same_update(one[stage], two[stage])


def _assert_same_update(one, two):
    assert len(one["history"]) == len(two["history"]) == 4  # 2 epochs × ⌈5 prompts / 3⌉ steps
    for h1, h2 in zip(one["history"], two["history"]):
        assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5, abs=1e-6)
        assert h2["grad_norm"] == pytest.approx(h1["grad_norm"], rel=1e-4)
    for name, p1 in one["state"].items():
        torch.testing.assert_close(two["state"][name], p1, rtol=0, atol=2e-6, msg=name)
    moved = max(float((one["state"][n] - one["init"][n]).abs().max()) for n in one["init"])
    assert moved > 1e-4  # the update itself is not trivial (4 Adam steps of lr 1e-3)


def test_launch_command_for_the_n_process_train_step():
    from score_core.steps.launch_train import launch_command

    plain = launch_command("a.json", "r.json", 4)
    assert plain[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in plain
    assert plain[plain.index("--num_processes") + 1] == "4" and plain[-3:] == ["score_core.steps.launch_train", "a.json", "r.json"]
    fsdp = launch_command("a.json", "r.json", 8, accelerate_config="configs/accelerate/fsdp.yaml")
    assert fsdp[fsdp.index("--config_file") + 1] == "configs/accelerate/fsdp.yaml" and "--multi_gpu" not in fsdp


def test_the_plan_survives_the_launched_processes_json(tmp_path):
    """`train.num_processes > 1`: the Iteration goes through the JSON argument file and
    comes back equal (launch_train.main rebuilds it the same way)."""
    import json

    from score_core.config import load_config
    from score_core.method.plan import Iteration, method_plan
    from score_core.steps.launch_train import write_args

    cfg = load_config("configs/demo.yaml")
    plan = method_plan("score", cfg.train)[-1]
    path = write_args(str(tmp_path / "args.json"), cfg, plan=plan, iteration=10)
    raw = json.loads(open(path).read())
    assert Iteration(**raw["plan"]) == plan and plan.alpha == cfg.train.alpha and raw["iteration"] == 10
