"""A real `prefect server start` for tests: 127.0.0.1, a random free port, its own database
(PREFECT_HOME in a temporary directory). Startup failure fails the test — it never skips."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrefectServer:
    api_url: str
    ui_url: str
    home: Path
    log: Path
    proc: Optional[subprocess.Popen] = None
    children: list[subprocess.Popen] = field(default_factory=list)

    def client_env(self, home: Path, **extra: str) -> dict[str, str]:
        """Environment for a process that talks to this server (own PREFECT_HOME)."""
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(home), DO_NOT_TRACK="1",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", SCORE_PROGRESS="0",
                   PATH=f"{BIN}:{env.get('PATH', '')}", **extra)
        return env

    def post(self, path: str, body: Optional[dict] = None) -> Any:
        req = urllib.request.Request(self.api_url + path, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        return _read_json(req)

    def get(self, path: str) -> Any:
        return _read_json(urllib.request.Request(self.api_url + path))

    def flow_runs(self, deployment_id: str) -> list[dict]:
        return self.post("/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})

    def deployment(self, flow_name: str, name: str) -> Optional[dict]:
        try:
            return self.get(f"/deployments/name/{flow_name}/{name}")
        except Exception:
            return None

    def artifacts(self, flow_run_id: str) -> list[dict]:
        return self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""


def _read_json(req: urllib.request.Request, attempts: int = 3, timeout_s: float = 120) -> Any:
    """One API call; a SQLite-backed server on a loaded 2-core machine can stall for tens of
    seconds (artifact payloads carry inline PNGs), so time-outs are retried, not fatal."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except TimeoutError:
            if attempt == attempts - 1:
                raise
            time.sleep(2)


def start_server(tmp: Path, timeout_s: float = 240) -> PrefectServer:
    port = free_port()
    home = tmp / "server-home"
    home.mkdir(parents=True)
    log = tmp / "server.log"
    server = PrefectServer(api_url=f"http://127.0.0.1:{port}/api", ui_url=f"http://127.0.0.1:{port}",
                           home=home, log=log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
               PREFECT_UI_API_URL=server.api_url, PREFECT_UI_ENABLED="true")
    with open(log, "wb") as fh:
        server.proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"prefect server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if server.get("/health") is True:
                return server
        except Exception:
            pass
        time.sleep(1)
    stop(server.proc, signal.SIGINT)
    pytest.fail(f"prefect server did not answer /api/health in {timeout_s} s:\n{server.log_tail()}")


def stop(proc: Optional[subprocess.Popen], sig: int = signal.SIGINT, timeout_s: float = 40) -> None:
    """Stop a process group politely (SIGINT: the worker ignores SIGTERM for 30 s), then kill."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def wait_for(predicate, timeout_s: float, what: str, on_fail=lambda: "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{on_fail()}")
