"""`score sandbox build|exec` (and, standalone, `python -m sandbox.cli ...`).

The `score` CLI calls `add_commands(subparsers)` and `bench.add_bench_command(...)`; every
leaf parser sets `func`, which takes the parsed args and returns the exit code.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .image import DEFAULT_IMAGE

EXEC_EPILOG = """\
prints ONE JSON object: {"status", "stdout", "stderr", "exit_code", "duration_s", "detail"}
status: passed | failed | timeout | memory_exceeded | output_exceeded | sandbox_error
exit code: 0 passed, 1 any other program outcome, 2 sandbox_error (infrastructure).
CODE and TESTS are compiled SEPARATELY (CODE cannot swallow or comment out TESTS); TESTS run
after CODE, in CODE's names but with the real builtins. `passed` means every test ran to
completion and passed: the harness writes a per-run secret to a private pipe only after
TESTS returned, and the result is `passed` only when that proof arrived AND the process
exited 0. Exiting 0 any other way (sys.exit, os._exit, an atexit hook, a signal handler,
a thread) is `failed`. Without --tests, `passed` means CODE ran to its end without an
exception. A SyntaxError in TESTS is `failed` with detail "the tests do not compile"."""


def _docker_ok() -> bool:
    try:
        import docker

        docker.from_env(timeout=10).ping()
        return True
    except Exception as exc:  # any reason: no socket, no permission, daemon down
        print(f"sandbox: no Docker daemon answers ({exc}). Start one with "
              "scripts/ensure_docker.sh (installs docker.io and starts dockerd when root).",
              file=sys.stderr)
        return False


def cmd_build(args: argparse.Namespace) -> int:
    from .image import build_image

    if not _docker_ok():
        return 2
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    report = build_image(args.image, mode=args.mode, force=args.force, log=log)
    print(f"sandbox image {report.image}: path={report.path} ({report.seconds:.1f} s) — {report.detail}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from .container import SlotLimits
    from .pool import SandboxPool

    code = Path(args.code).read_text()
    tests = Path(args.tests).read_text() if args.tests else ""
    if not _docker_ok():
        return 2
    limits = SlotLimits(memory_mb=args.memory_mb, return_bytes=args.return_bytes)
    with SandboxPool(slots=1, image=args.image, limits=limits, progress=False) as pool:
        result = pool.run(code, tests, timeout_s=args.timeout, memory_mb=args.memory_mb,
                          entry_point=args.entry_point)
    print(json.dumps(result.to_dict()))
    return {"passed": 0, "sandbox_error": 2}.get(result.status, 1)


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Add `sandbox build` and `sandbox exec` to a top-level argparse subparsers object."""
    sandbox = subparsers.add_parser(
        "sandbox", help="Docker sandbox for untrusted code (build the image, run one program)",
        description="Docker sandbox that runs model-written code for HumanEval/MBPP rewards.")
    sub = sandbox.add_subparsers(dest="sandbox_command", metavar="{build,exec}", required=True)

    b = sub.add_parser(
        "build", help="build the sandbox image if missing (Dockerfile, else offline debootstrap)",
        description="Build the sandbox image. auto: `docker build` of sandbox/Dockerfile "
                    "(FROM python:3.11-slim) where a registry is reachable, otherwise offline: "
                    "debootstrap --variant=minbase --include=python3 bookworm + docker import "
                    "(root). Prints which path it took; does nothing when the image exists.")
    b.add_argument("--image", default=DEFAULT_IMAGE, help="image name (default: %(default)s)")
    b.add_argument("--mode", choices=("auto", "dockerfile", "offline"), default="auto",
                   help="force one build path (default: auto)")
    b.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    b.set_defaults(func=cmd_build)

    e = sub.add_parser(
        "exec", help="run one program in the sandbox and print one JSON result",
        description="Run CODE, then TESTS (compiled separately), once in a fresh sandbox "
                    "container with the pool's limits (no network, read-only root, non-root "
                    "uid, memory/pid/output caps). passed = every test ran to completion and "
                    "passed (harness proof verified), never just 'exited 0'.",
        epilog=EXEC_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--code", required=True, metavar="FILE", help="Python file with the solution")
    e.add_argument("--tests", metavar="FILE",
                   help="Python file with the tests: compiled on its own, run after the code")
    e.add_argument("--entry-point", default="", metavar="NAME",
                   help="a CODE name the tests may use even if it shadows a builtin (MBPP 126: sum)")
    e.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="wall-clock limit in seconds (default: %(default)s)")
    e.add_argument("--memory-mb", type=int, default=512, metavar="M",
                   help="address-space limit in MiB (default: %(default)s)")
    e.add_argument("--return-bytes", type=int, default=8000, metavar="N",
                   help="keep the first and last N bytes of stdout/stderr (default: %(default)s)")
    e.add_argument("--image", default=DEFAULT_IMAGE, help="image name (default: %(default)s)")
    e.set_defaults(func=cmd_exec)
    return sandbox


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone `score`-like parser with just the sandbox commands (`score bench sandbox`
    lives in score/sandbox_bench_cli.py: it builds HumanEval programs with the project's code)."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.cli",
                                     description="Sandbox commands of the `score` CLI.")
    sub = parser.add_subparsers(dest="command", metavar="{sandbox}", required=True)
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
