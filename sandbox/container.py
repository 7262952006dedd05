"""One sandbox slot: a long-lived locked-down container plus the driver process inside it.

The host talks to the driver over the attached stdin/stdout of one `docker exec` (Docker's
multiplexed stream: 8-byte frame header, then payload). A slot runs one program at a time.
Anything unexpected on that channel (EOF, a missing or oversized reply, a deadline passed)
raises `SlotBroken`; the pool then replaces the container. When the channel closes for any
reason (the pool closed the slot, or its owner died: kill -9, a cancelled flow run) the driver
stops the container, which was started with auto_remove: nothing is left running on the host.
"""
from __future__ import annotations

import ast
import json
import select
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker

from .result import ExecutionResult

LABEL = "org.score.sandbox.pool"
_HERE = Path(__file__).resolve().parent
# The driver is one program text (sent as -c, nothing is installed in the image): the parts
# define, driver.py last uses their names and calls main(). See `_join_driver`.
DRIVER_PARTS = ("driver_proof.py", "driver_cleanup.py", "driver_fork.py", "driver.py")
# The harness, likewise: harness_values.py defines the honesty check, harness.py uses it.
HARNESS_PARTS = ("harness_values.py", "harness.py")
CLEANER_UID_OFFSET = 2_000_000  # the clean-up runs with real uid = program uid + this
MAX_REPLY_BYTES = 4 * 1024 * 1024  # the driver's replies are a few kB; more means trouble


def _join_driver(parts: tuple[str, ...] = DRIVER_PARTS, docstrings: bool = True) -> str:
    """The driver's (or the harness's) program text: the parts in order, one namespace. A
    top-level function or constant defined in two parts would silently shadow the first:
    refused here. docstrings=False drops each part's module docstring."""
    texts = [(_HERE / name).read_text() for name in parts]
    if not docstrings:
        texts = [_without_docstring(text) for text in texts]
    seen: dict[str, str] = {}
    for name, text in zip(parts, texts):
        for node in ast.parse(text, name).body:
            targets = [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else getattr(node, "targets", [])
            for defined in (getattr(t, "name", None) or getattr(t, "id", None) for t in targets):
                if defined and seen.setdefault(defined, name) != name:
                    raise RuntimeError(f"driver parts {seen[defined]} and {name} both define {defined}")
    return "\n".join(texts)


def _without_docstring(text: str) -> str:
    body = ast.parse(text).body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        return "\n".join(text.split("\n")[body[0].end_lineno:])
    return text


DRIVER_SOURCE = _join_driver()
HARNESS_SOURCE = _join_driver(HARNESS_PARTS, docstrings=False)  # sent as -c: no module docstrings
# The one environment of the driver and of every program it runs: the driver starts under
# `env -i` with exactly these variables and `python3 -I` less `-E` (driver.py gets both in
# its config, runs each program under them and refuses to start in any other environment),
# so PYTHONHASHSEED=0 holds and a program's set order — hence its verdict — is the same in
# every container and run.
PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
PY_FLAGS = ("-s", "-P")  # `-I` is -E -s -P; -E would drop PYTHONHASHSEED
DRIVER_ARGV = ("env", "-i", *(f"{k}={v}" for k, v in PROGRAM_ENV.items()), "python3", *PY_FLAGS, "-c")
# What the harness imports: the driver imports them once and forks each program from there.
HARNESS_IMPORTS = sorted({alias.name for node in ast.walk(ast.parse(HARNESS_SOURCE))
                          if isinstance(node, ast.Import) for alias in node.names})
STRAY_SOURCE = """
import os, sys
uid = int(sys.argv[1]); out = []
for p in filter(str.isdigit, os.listdir('/proc')):
    try:
        st = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0]
        if os.stat(f'/proc/{p}').st_uid == uid or st == 'Z':
            out.append(p + ':' + st + ':' + open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ')[:80])
    except OSError:
        pass
print('\\n'.join(out))
"""


class SlotBroken(RuntimeError):
    """The container or its driver died, wedged, or spoke out of protocol."""


@dataclass(frozen=True)
class SlotLimits:
    memory_mb: int = 512  # RLIMIT_AS cap per program; the container gets + tmpfs + headroom
    tmpfs_mb: int = 64  # size of the only writable place, /tmp
    pids_limit: int = 256  # whole container (backstop); per program: nproc
    nproc: int = 64  # RLIMIT_NPROC of the slot uid: a fork bomb stays in its slot
    fsize_mb: int = 16  # RLIMIT_FSIZE per file
    max_output_bytes: int = 1_000_000  # stdout+stderr beyond this -> output_exceeded
    return_bytes: int = 8_000  # head and tail of each stream sent back to the host
    # False (default): each program runs in a fork of the warm driver (sandbox/driver_fork.py);
    # True: a new python3 per program (≈ 45–60 ms more CPU each; for comparison and debugging)
    fresh_interpreter: bool = False


class Slot:
    """A container whose driver runs programs as `uid` (never 0, unique per slot)."""

    def __init__(self, client: docker.DockerClient, image: str, uid: int, limits: SlotLimits,
                 pool_id: str) -> None:
        if uid <= 0:
            raise ValueError("programs never run as root")
        self.client, self.image, self.uid, self.limits, self.pool_id = client, image, uid, limits, pool_id
        self.container = None
        self._sock: socket.socket | None = None
        self._pending = bytearray()
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._next_id = 0
        self.restarts = 0

    def start(self) -> None:
        lim = self.limits
        mem = f"{lim.memory_mb + lim.tmpfs_mb + 128}m"
        self.container = self.client.containers.run(
            self.image, ["sleep", "infinity"], detach=True, init=True,
            auto_remove=True,  # removed once stopped: the driver stops it when its stdin ends
            name=f"score-sandbox-{self.pool_id}-{self.uid}-{uuid.uuid4().hex[:6]}",
            network_mode="none", read_only=True, ipc_mode="none",
            tmpfs={"/tmp": f"rw,size={lim.tmpfs_mb}m,mode=1777,nosuid,nodev,noexec"},
            mem_limit=mem, memswap_limit=mem, pids_limit=lim.pids_limit,
            cap_drop=["ALL"], cap_add=["SETUID", "SETGID"], security_opt=["no-new-privileges"],
            labels={LABEL: self.pool_id}, log_config={"type": "none", "config": {}},
        )
        config = {"uid": self.uid, "cleaner_uid": self.uid + CLEANER_UID_OFFSET, "max_output_bytes": lim.max_output_bytes, "nproc": lim.nproc,
                  "return_bytes": lim.return_bytes, "fsize": lim.fsize_mb * 1024 * 1024,
                  "harness": HARNESS_SOURCE, "preload": HARNESS_IMPORTS,
                  "fresh_interpreter": lim.fresh_interpreter, "env": PROGRAM_ENV, "py_flags": list(PY_FLAGS)}
        api = self.client.api
        exec_id = api.exec_create(self.container.id, [*DRIVER_ARGV, DRIVER_SOURCE, json.dumps(config)],
                                  stdin=True, stdout=True, stderr=True, user="0:0")["Id"]
        raw = api.exec_start(exec_id, socket=True)
        self._sock = getattr(raw, "_sock", raw)
        self._sock.settimeout(60)  # sends only: reads wait in select() with their deadline
        self._pending.clear(), self._stdout.clear(), self._stderr.clear()
        hello = self._read_json(time.monotonic() + 30)
        if hello != {"ready": True}:
            raise SlotBroken(f"driver did not start: {str(hello)[:200]}")

    def send(self, code: str, tests: str, timeout_s: float, memory_mb: int, entry_point: str = "") -> int:
        """Queue one solution + its tests on the driver (it runs jobs in order); returns the
        job id. `entry_point`: the one solution name the tests may use even if it shadows a
        builtin (MBPP 126 tests a function called `sum`)."""
        if self._sock is None:
            raise SlotBroken("slot not started")
        self._next_id += 1
        job = {"id": self._next_id, "code": code, "tests": tests, "entry_point": entry_point,
               "timeout_s": float(timeout_s), "memory_mb": int(min(memory_mb, self.limits.memory_mb))}
        try:
            self._sock.sendall(json.dumps(job).encode() + b"\n")
        except OSError as exc:
            raise SlotBroken(f"cannot send to driver: {exc!r}") from exc
        return self._next_id

    def receive(self, job_id: int, deadline: float) -> ExecutionResult:
        """The result of job `job_id` (the oldest one queued); SlotBroken when the slot
        cannot say what happened by `deadline` (time.monotonic())."""
        reply = self._read_json(deadline)
        if reply.get("id") != job_id:
            raise SlotBroken(f"reply for job {reply.get('id')} while waiting for {job_id}")
        return ExecutionResult(reply["status"], reply["stdout"], reply["stderr"],
                               reply["exit_code"], float(reply["duration_s"]), reply.get("detail", ""))

    def _read_json(self, deadline: float) -> dict:
        line = self._read_line(deadline)
        try:
            return json.loads(line)
        except ValueError as exc:
            raise SlotBroken(f"driver spoke out of protocol: {line[:200]!r}") from exc

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._stdout:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SlotBroken(f"driver silent past the deadline; stderr: {self.driver_stderr()}")
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise SlotBroken(f"driver connection lost: {exc!r}") from exc
            if not chunk:
                raise SlotBroken(f"driver exited; stderr: {self.driver_stderr()}")
            self._pending += chunk
            self._split_frames()
            if len(self._stdout) > MAX_REPLY_BYTES:
                raise SlotBroken("driver reply too large")
        line, _, rest = bytes(self._stdout).partition(b"\n")
        self._stdout[:] = rest
        return line

    def _split_frames(self) -> None:
        """Docker's stream multiplexing: [type, 0, 0, 0, size (4 bytes BE)] + payload."""
        while len(self._pending) >= 8:
            size = int.from_bytes(self._pending[4:8], "big")
            if len(self._pending) < 8 + size:
                return
            stream, payload = self._pending[0], bytes(self._pending[8:8 + size])
            del self._pending[:8 + size]
            if stream == 2:  # the driver's own stderr: keep the tail for diagnostics
                self._stderr.extend(payload)
                del self._stderr[:-4000]
            else:
                self._stdout.extend(payload)

    def driver_stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace")[-2000:]

    def stray_processes(self) -> list[str]:
        """Live processes of this slot's uid and zombies anywhere in the container."""
        out = self.container.exec_run(["python3", "-c", STRAY_SOURCE, str(self.uid)], user="0:0")
        return [line for line in out.output.decode().splitlines() if line.strip()]

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except docker.errors.APIError:
                pass
            self.container = None

    def restart(self) -> None:
        self.close()
        self.restarts += 1
        self.start()
