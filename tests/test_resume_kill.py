"""`kill -9` of a running `score run` mid-training, then the same command again: the
finished steps' outputs are byte-identical, nothing half-written is read, the run finishes."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from score_core.schema import read_episodes

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _ledger(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "steps.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in os.listdir(f"/proc/{p}/task")
                    for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            kids = []
        out.update(kids)
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _digests(run_dir: Path, ledger: dict) -> dict[str, str]:
    """sha256 of every file a finished step recorded (files of checkpoint dirs included)."""
    out = {}
    for rec in ledger.values():
        for key, value in rec.items():
            if not (isinstance(value, str) and (key in ("path", "checkpoint", "model_dir") or key.endswith("_path"))):
                continue
            p = run_dir / value  # steps.json holds paths relative to the run directory
            for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _score_run(run_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "SCORE_PROGRESS": "0"}
    env.pop("PREFECT_API_URL", None)  # the embedded API, as a user's plain `score run`
    with open(log, "ab") as fh:
        return subprocess.Popen([str(REPO / ".venv" / "bin" / "score"), "run", str(TINY), "--run-dir", str(run_dir)],
                                cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)


def test_kill_9_mid_training_then_resume(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    proc = _score_run(run_dir, log)
    deadline = time.monotonic() + 600
    while "grade/rollout_stage2_it002" not in _ledger(run_dir):  # training it002 starts next
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, "pipeline never reached stage 2 training"
        time.sleep(0.05)
    # read the command lines before the kill: `score run`'s watchdog kills the step processes
    # (and Prefect's temporary API server, see tests/test_faults.py) right after it, so a
    # /proc lookup afterwards can find them already gone
    steps = {c for c in _descendants(proc.pid) if "multiprocessing" in _cmdline(c)}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = _ledger(run_dir)
    assert "train/stage2/it002" not in before, "killed too late: training had already finished"
    assert "train/stage1/it001" in before and "eval/stage1/it001" in before
    digests = _digests(run_dir, before)
    # the step's child process notices its parent died and exits: nothing races the resume
    deadline = time.monotonic() + 30
    assert steps, "no step process (forkserver) was running"
    while any(_alive(c) for c in steps):
        assert time.monotonic() < deadline, f"orphaned step processes: {[c for c in steps if _alive(c)]}"
        time.sleep(0.5)

    again = _score_run(run_dir, log)
    assert again.wait(600) == 0, log.read_text()[-6000:]
    after = _ledger(run_dir)
    assert {"train/stage2/it002", "eval/stage2/it002", "grade/eval_stage2_it002"} <= set(after)
    assert {k: after[k] for k in before} == before, "a finished step was redone"
    assert _digests(run_dir, before) == digests, "a finished step's output changed"
    assert (run_dir / "report.md").is_file()
    assert not [p for p in run_dir.rglob(".*") if p.name != ".lock"], "temporary files left behind"
    assert len(read_episodes(run_dir / after["grade/eval_stage2_it002"]["path"])) == 32
