"""Shared set-up for the sandbox tests: a real Docker engine, the image, one pool per session.

Never skips: if Docker cannot be started or the image cannot be built, the tests fail
loudly with the reason (issue 3: the attack suite must run in CI).
"""
from __future__ import annotations

import atexit
import functools
import gzip
import json
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
OK_PROGRAM = "assert sum(range(10)) == 45\nprint('ok')\n"


@functools.lru_cache(maxsize=None)
def docker_ready() -> str:
    """Start the engine (scripts/ensure_docker.sh) and build the image if missing."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "ensure_docker.sh")], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"Docker is required for the sandbox tests and could not be started:\n"
                    f"{out.stderr}", pytrace=False)
    from sandbox import DEFAULT_IMAGE, build_image

    report = build_image(DEFAULT_IMAGE)
    return report.path


@functools.lru_cache(maxsize=None)
def shared_pool():
    """One pool (2 slots) for the whole session, closed at exit."""
    docker_ready()
    from sandbox import SandboxPool

    pool = SandboxPool(slots=2, progress=False, grace_s=8.0)
    atexit.register(pool.close)
    return pool


@pytest.fixture
def pool():
    return shared_pool()


def assert_healthy(pool, expect_restarts: bool = False) -> None:
    """After an attack: a normal program passes on the same pool, no stray process is left
    in any slot, and the Docker daemon still answers quickly."""
    for _ in range(pool.n_slots):  # land on every slot at least once in practice
        result = pool.run(OK_PROGRAM, timeout_s=10)
        assert result.status == "passed", result
        assert result.stdout == "ok\n"
    strays = pool.stray_processes()
    assert all(not procs for procs in strays.values()), f"stray processes left: {strays}"
    t0 = time.monotonic()
    assert pool.client.ping()
    pool.client.containers.list()
    assert time.monotonic() - t0 < 5.0, "Docker daemon slow to answer after the attack"


def load_humaneval() -> list[dict]:
    with gzip.open(DATA / "humaneval.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_mbpp() -> list[dict]:
    with open(DATA / "mbpp.jsonl") as fh:
        return [json.loads(line) for line in fh if line.strip()]
