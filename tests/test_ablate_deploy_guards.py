"""`score ablate` and `score deploy` (serving) start runs too: the same guards as `score run`
— no Docker engine for a code family is one `score: error:` line before any work, and a
`kill -9` of `score ablate` leaves none of the processes it started."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_faults import CODE_TINY, SCORE, TINY, _env, _kill_9_mid_step, _last_line, _survivors

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _refused_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    path = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))  # nothing listens: connections are refused
    return sock, f"unix://{path}"


@pytest.mark.parametrize("command", ["ablate", "deploy"])
def test_no_docker_engine_is_one_line_before_any_work(tmp_path, command):
    cfg = tmp_path / "code.yaml"
    cfg.write_text(CODE_TINY)
    out_dir = tmp_path / "out"
    args = {"ablate": ["ablate", str(cfg), "--seeds", "1", "--out", str(out_dir), "--results-md", ""],
            "deploy": ["deploy", str(cfg), "--interval", "60", "--run-dir", str(out_dir)]}[command]
    sock, host = _refused_socket(tmp_path)
    t0 = time.monotonic()
    try:
        # deploy: a server address nothing answers at — the engine check must come first anyway
        done = subprocess.run([str(SCORE), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=_env(DOCKER_HOST=host, PREFECT_API_URL="http://127.0.0.1:9/api"))
    finally:
        sock.close()
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-4000:]
    last = _last_line(done.stderr)
    assert last.startswith("score: error: tiny_code grades code in the Docker sandbox") and host in last, last
    assert "Traceback" not in out and "Starting temporary server" not in out and "serving" not in out
    assert not out_dir.exists()
    assert time.monotonic() - t0 < 60


def test_kill_9_of_score_ablate_leaves_no_process(tmp_path):
    out_dir, log = tmp_path / "ablate", tmp_path / "ablate.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(SCORE), "ablate", str(TINY), "--seeds", "1", "--methods", "score",
                                 "--base-seeds", "0", "--workers", "1", "--out", str(out_dir), "--results-md", ""],
                                cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    seen = _kill_9_mid_step(proc, log, "the ablation never reached a step process")
    alive = _survivors(seen)
    assert not alive, f"outlived `score ablate` by 5 s: {[v[1][:100] for v in alive.values()]}"
