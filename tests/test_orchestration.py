"""The crash-safety pieces under the flow: the ledger's completeness checks, the run-dir lock,
stale temporaries, step processes, and which failures are retried."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.isolation import StepProcessDied, noop, run_in_child
from tasks.ledger import RunDirBusy, clean_stale_temps, finished, output_is_whole, record, run_dir_lock


def test_truncated_parquet_is_redone_not_trusted(tmp_path):
    path = tmp_path / "traces" / "x.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"a": list(range(1000))}), path)
    record(tmp_path, "rollout/x", {"path": str(path)})
    assert finished(tmp_path, "rollout/x") is not None
    path.write_bytes(path.read_bytes()[:-100])  # a writer killed mid-file (no atomic rename)
    assert not output_is_whole(path)
    assert finished(tmp_path, "rollout/x") is None


def test_checkpoint_without_config_or_weights_is_not_whole(tmp_path):
    import torch
    from safetensors.torch import save_file

    ckpt = tmp_path / "checkpoints" / "it001_stage1"
    ckpt.mkdir(parents=True)
    assert not output_is_whole(ckpt)
    (ckpt / "config.json").write_text("{}")
    assert not output_is_whole(ckpt)  # a config alone cannot be loaded
    save_file({"w": torch.zeros(64)}, ckpt / "model.safetensors")
    assert output_is_whole(ckpt)


def test_run_dir_lock_is_exclusive_and_cleans_temporaries(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / ".x.parquet.abc.tmp").write_bytes(b"half")
    (tmp_path / "checkpoints" / ".it001_stage1.k3j").mkdir(parents=True)
    (tmp_path / "traces" / "kept.parquet").write_bytes(b"x")
    with run_dir_lock(tmp_path):
        assert not (tmp_path / "traces" / ".x.parquet.abc.tmp").exists()
        assert not (tmp_path / "checkpoints" / ".it001_stage1.k3j").exists()
        assert (tmp_path / "traces" / "kept.parquet").exists()
        with pytest.raises(RunDirBusy):
            with run_dir_lock(tmp_path):
                pass
    with run_dir_lock(tmp_path):  # released on exit
        assert clean_stale_temps(tmp_path) == []


def test_step_process_returns_records_and_raises_the_steps_errors():
    assert run_in_child(noop, {}) == {}
    with pytest.raises(json.JSONDecodeError):
        run_in_child(json.loads, {"s": "{not json"})
    with pytest.raises(StepProcessDied):
        run_in_child(os.abort, {})  # dies without a result, like an OOM kill


def test_only_infrastructure_failures_are_retried():
    from prefect.states import Failed

    from tasks.pipeline_tasks import retry_on_infrastructure

    def retried(exc: BaseException) -> bool:
        return retry_on_infrastructure(None, None, Failed(data=exc))

    assert retried(StepProcessDied("killed")) and retried(OSError("disk hiccup")) and retried(TimeoutError())
    assert not retried(ValueError("bad row")) and not retried(FloatingPointError("NaN"))
    assert not retried(FileNotFoundError("no dataset"))
