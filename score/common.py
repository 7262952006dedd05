"""What every `score` command shares: `--set` parsing, Prefect's settings, the Docker engine
check, the check that our generic package names are ours, and the watchdog that makes sure
nothing a run started outlives it.

The subcommand modules (`score.cli`, `score.ablate_cli`, `score.deploy`, `score.bench_cli`, …)
import from here and never from each other, so the CLI has no import cycle."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional


def quiet_prefect() -> None:
    """Prefect settings every command uses: no analytics, INFO logs, a patient embedded server."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # the embedded server can take > 20 s to start on a loaded 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if os.environ.get("PREFECT_API_URL"):
        # a run whose process died stops heart-beating; the zombie automation marks it Crashed
        os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items → {dotted key: YAML-parsed value}."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"score: --set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


class UsageError(RuntimeError):
    """Something outside the config the run needs and lacks (e.g. a Docker engine): the CLI
    prints it as its one `score: error:` line, exit 2."""


OWN_PACKAGES = ("score_core", "tasks", "flows", "sandbox")  # generic top-level names (docs/ARCHITECTURE.md)


def check_own_packages() -> None:
    """`tasks`, `flows` and `sandbox` are generic top-level names: make sure each of ours is
    the one Python finds (next to this `score/` package), not another distribution's that
    shadows it — before any of them is imported."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or origin.parent != root / name:
            raise UsageError(
                f"the `{name}` package Python finds is {origin or 'missing'}, not score's ({root / name}): "
                "another installed distribution uses the same top-level name; install score in its own "
                "virtual environment (scripts/setup.sh makes .venv)")


CODE_SOURCES = ("mbpp", "humaneval", "synth_code")  # graded in the Docker sandbox


def check_sandbox_engine(cfg: Any) -> None:
    """A config with a code family grades in the Docker sandbox: make sure an engine answers
    (and has the sandbox image) before the first step, not after minutes of pre-training."""
    if not any(getattr(cfg.data, role).source in CODE_SOURCES for role in ("train", "eval")):
        return
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    todo = ("start one (as root: scripts/ensure_docker.sh; or `sudo systemctl start docker`) or "
            "point DOCKER_HOST at a running engine, then run the same command again")
    try:
        import docker
    except ImportError:
        raise UsageError(f"{cfg.name} grades code in the Docker sandbox, but the `docker` Python "
                         "package is missing: pip install docker") from None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # no socket, refused, no permission, daemon wedged
        reason = " ".join(str(exc).split())[:200]
        raise UsageError(f"{cfg.name} grades code in the Docker sandbox, but no Docker engine answers "
                         f"at {where} ({reason}): {todo}") from None
    from sandbox.image import DEFAULT_IMAGE

    try:
        client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        raise UsageError(f"the sandbox image {DEFAULT_IMAGE} is missing from the Docker engine at {where}: "
                         "run `score sandbox build` (offline works too), then run the same command again") from None
    finally:
        client.close()


# ---- nothing outlives `score run` -------------------------------------------------------
# The run marks its environment with a token that every process it starts inherits (Prefect's
# temporary API server, the step forkserver and its children, `accelerate launch`, ...). A
# watchdog process waits on a pipe from the run; when the run ends, however it ends (kill -9
# included: the kernel closes the pipe), the watchdog kills every process still carrying the
# token — they may have been re-parented to PID 1 by then — and exits.
RUN_TOKEN = "SCORE_RUN_TOKEN"


def _marked(needle: bytes) -> list[tuple[int, str]]:
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                out.append((int(name), fh.read().decode(errors="replace")))
        except OSError:  # gone, or not ours
            continue
    return out


def _watchdog_main(parent: int, token: str, fd: int) -> None:
    """The watchdog's body (a separate small process; see above)."""
    import select
    import signal
    import time

    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's Ctrl-C/hang-up ends the run, not this
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready and not os.read(fd, 64):
            break  # the run's end of the pipe closed: it exited or was killed
        if os.getppid() != parent:
            break
    needle = f"{RUN_TOKEN}={token}".encode()
    start, quiet = time.monotonic(), 0
    while quiet < 3 and time.monotonic() - start < 10:
        found = _marked(needle)
        for pid, cmd in found:
            # the multiprocessing resource tracker cleans up semaphores and exits by itself once
            # the processes holding it are gone: give it 2 s
            if "resource_tracker" in cmd and time.monotonic() - start < 2:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        quiet = 0 if found else quiet + 1
        time.sleep(0.05)


def guard_descendants() -> Optional[Any]:
    """Start the watchdog and mark this process's environment (Linux; elsewhere a no-op).
    Returns a callable that restores the environment (the watchdog stays until this process
    ends: children it started may outlive the call, e.g. the forkserver)."""
    import secrets
    import subprocess

    if not Path("/proc/self/environ").is_file():
        return None
    token = secrets.token_hex(8)
    read_fd, write_fd = os.pipe()  # the write end stays here, never inherited
    env = {k: v for k, v in os.environ.items() if k != RUN_TOKEN}
    subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[4]); "
                      "from score.common import _watchdog_main; "
                      "_watchdog_main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))",
                      str(os.getpid()), token, str(read_fd), str(Path(__file__).resolve().parents[1])],
                     pass_fds=(read_fd,), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
    os.close(read_fd)
    _WATCHDOG_PIPES.append(write_fd)
    previous = os.environ.get(RUN_TOKEN)
    os.environ[RUN_TOKEN] = token

    def restore() -> None:
        if previous is None:
            os.environ.pop(RUN_TOKEN, None)
        else:
            os.environ[RUN_TOKEN] = previous

    return restore


_WATCHDOG_PIPES: list[int] = []
