"""Faults a user's machine produces, against real `score run` processes and real files:
a checkpoint whose weights were deleted, a run directory copied elsewhere, no Docker daemon,
bad config / bad data, and `kill -9` of the run (nothing it started may outlive it)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from score_core.generation.models import checkpoint_problems, is_complete_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SCORE = REPO / ".venv" / "bin" / "score"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "SCORE_PROGRESS": "0", **extra}
    env.pop("PREFECT_API_URL", None)  # the embedded API, as a user's plain `score run`
    return env


def _score_run(config: Path, run_dir: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCORE), "run", str(config), "--run-dir", str(run_dir)], cwd=REPO,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)


def _ledger(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "steps.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns
            for sub in ("traces", "checkpoints") for p in (run_dir / sub).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny run (≈ 30 s); tests copy it before changing anything."""
    run_dir = tmp_path_factory.mktemp("faults") / "tiny"
    done = _score_run(TINY, run_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir


# ---------------------------------------------------------------- a. deleted weights


def test_checkpoint_completeness_means_loadable(finished_run, tmp_path):
    """save_checkpoint's manifest (sizes + hashes of both ends) and the safetensors header
    are checked: a deleted, truncated or replaced file makes the checkpoint incomplete."""
    ckpt = tmp_path / "it001_stage1"
    shutil.copytree(finished_run / "checkpoints" / "it001_stage1", ckpt)
    manifest = json.loads((ckpt / "manifest.json").read_text())["files"]
    assert {"model.safetensors", "optimizer.pt", "config.json", "trainer_state.json"} <= set(manifest)
    assert is_complete_checkpoint(ckpt)

    opt = ckpt / "optimizer.pt"
    data = opt.read_bytes()
    opt.write_bytes(data[:-10])
    assert checkpoint_problems(ckpt) == [f"optimizer.pt: {len(data) - 10} bytes, {len(data)} when saved"]
    opt.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, last byte changed
    assert checkpoint_problems(ckpt) == ["optimizer.pt: changed since it was saved"]
    opt.write_bytes(data)
    (ckpt / "model.safetensors").unlink()
    assert not is_complete_checkpoint(ckpt)

    base = tmp_path / "base"  # the debug base (saved by the same save_checkpoint)
    shutil.copytree(finished_run / "checkpoints" / "base", base)
    assert is_complete_checkpoint(base)
    weights = base / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert any("model.safetensors" in p for p in checkpoint_problems(base))


def test_checkpoint_with_deleted_weights_is_redone_on_resume(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    ckpt = run_dir / "checkpoints" / "it001_stage1"
    (ckpt / "model.safetensors").unlink()
    before = _mtimes(run_dir)
    again = _score_run(TINY, run_dir)
    assert again.returncode == 0, again.stderr[-4000:]
    assert is_complete_checkpoint(ckpt), checkpoint_problems(ckpt)
    after = _mtimes(run_dir)
    redone = {k for k in after if before.get(k) != after[k]}
    assert redone and all(k.startswith("checkpoints/it001_stage1") for k in redone), redone
    assert {k.split("/")[0] for k in redone} == {"checkpoints"}  # nothing else was redone


# ---------------------------------------------------------------- b. a copied run directory


def test_copied_run_dir_resumes_from_its_own_files(finished_run, tmp_path):
    original, moved = tmp_path / "original", tmp_path / "elsewhere" / "moved"
    shutil.copytree(finished_run, original)
    shutil.copytree(original, moved)
    shutil.rmtree(original)
    ledger = _ledger(moved)
    paths = [v for rec in ledger.values() for k, v in rec.items()
             if isinstance(v, str) and (k in ("path", "checkpoint", "model_dir") or k.endswith("_path"))]
    assert paths and not [p for p in paths if os.path.isabs(p)], "steps.json holds absolute paths"
    before = _mtimes(moved)
    again = _score_run(TINY, moved)
    assert again.returncode == 0, again.stderr[-4000:]
    assert _ledger(moved) == ledger, "a step was redone"
    assert _mtimes(moved) == before, "a finished step's output was rewritten"
    assert not original.exists()
    metrics = json.loads((moved / "metrics.json").read_text())
    assert all(e["path"].startswith(str(moved)) for e in metrics["evals"])


# ---------------------------------------------------------------- c. no Docker daemon

CODE_TINY = """name: tiny_code
data:
  train: {source: synth_code, split: train, n: 32, seed: 0}
  eval: {source: synth_code, split: eval, n: 16, seed: 1}
model:
  debug_base: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, steps: 20,
               batch_size: 16, corpus_size: 200, families: [synth_code]}
rollout: {k: 2, max_new_tokens: 36, batch_size: 64}
train: {schedule: [stage1], prompts_per_iteration: 8, minibatch_prompts: 8, lr: 1.0e-3}
eval: {max_new_tokens: 36, batch_size: 64}
grading: {sandbox_slots: 1}
"""


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_no_docker_daemon_is_one_line_before_any_work(tmp_path):
    sock_path = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))  # a socket file where nothing listens: connections are refused
    cfg = tmp_path / "code.yaml"
    cfg.write_text(CODE_TINY)
    t0 = time.monotonic()
    try:
        done = _score_run(cfg, tmp_path / "run", timeout=300, DOCKER_HOST=f"unix://{sock_path}")
    finally:
        sock.close()
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-4000:]
    last = _last_line(done.stderr)
    assert last.startswith("score: error: tiny_code grades code in the Docker sandbox") and "DOCKER_HOST" in last
    assert f"unix://{sock_path}" in last
    assert "Traceback" not in out and "Starting temporary server" not in out  # no work was started
    assert not (tmp_path / "run").exists()
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------- d. bad config, bad data


def test_bad_config_and_bad_data_end_with_their_one_line(tmp_path):
    bad_cfg = tmp_path / "bad_config.yaml"
    bad_cfg.write_text(TINY.read_text() + "\nnot_a_field: 1\n")
    done = _score_run(bad_cfg, tmp_path / "run1", timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("score: error:") and "not_a_field" in done.stderr

    bad_data = tmp_path / "bad_data.yaml"
    bad_data.write_text(TINY.read_text().replace("train: {source: synth_linear, split: train, n: 64, seed: 0}",
                                                 "train: {source: math, path: nowhere.jsonl}"))
    done = _score_run(bad_data, tmp_path / "run2", timeout=300)
    assert done.returncode == 2, done.stderr[-4000:]
    want = f"score: error: dataset file not found: {tmp_path / 'nowhere.jsonl'}"
    assert "Stopping temporary server" in done.stderr  # Prefect's logs come first ...
    assert done.stderr.rstrip().endswith("\n\n" + want)  # ... then the one line, alone
    assert (done.stdout + done.stderr).count("score: error:") == 1


# ---------------------------------------------------------------- e. kill -9 leaves nothing


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # state, then starttime (field 22)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _descendants(pid: int) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    todo = [pid]
    while todo:
        for c in _children(todo.pop()):
            start = _start_time(c)
            if start is not None:
                out[c] = (start, _cmdline(c))
                todo.append(c)
    return out


def _kill_9_mid_step(proc: subprocess.Popen, log: Path, never: str, ready=lambda: True,
                     timeout_s: float = 600) -> dict[int, tuple[str, str]]:
    """Wait until `proc` has Prefect's temporary server up and a step process (a forkserver
    child) running and `ready()` holds, then `kill -9` it; every descendant seen on the way."""
    seen: dict[int, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, never
            now = _descendants(proc.pid)
            seen.update(now)
            server = any("uvicorn" in cmd for _, cmd in now.values())
            forkserver = [p for p, (_, cmd) in now.items() if "multiprocessing.forkserver" in cmd]
            if server and forkserver and _children(forkserver[0]) and ready():
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    return seen


def _survivors(seen: dict[int, tuple[str, str]], grace_s: float = 5) -> dict[int, tuple[str, str]]:
    """The processes of `seen` still alive `grace_s` after the kill (then killed: the test leaks
    nothing, whatever it finds)."""
    alive, until = seen, time.monotonic() + grace_s
    while alive and time.monotonic() < until:
        time.sleep(0.1)
        alive = {p: v for p, v in seen.items() if _start_time(p) == v[0]}
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def _files(run_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}


def test_kill_9_of_score_run_leaves_no_process(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(SCORE), "run", str(TINY), "--run-dir", str(run_dir)], cwd=REPO,
                                env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    seen = _kill_9_mid_step(proc, log, "the run never reached a training step",
                            ready=lambda: "eval/base/it000" in _ledger(run_dir))
    assert any("uvicorn" in cmd for _, cmd in seen.values())
    alive = _survivors(seen)
    assert not alive, f"outlived `score run` by 5 s: {[v[1][:100] for v in alive.values()]}"
    files = _files(run_dir)
    time.sleep(2)
    assert _files(run_dir) == files, "a file in the run directory changed after the run was killed"
