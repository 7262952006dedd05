"""`score bench sandbox`'s command line: HumanEval's canonical programs built by the project
(score_core.problems.code_problems), measured by `sandbox.bench` — which itself imports nothing from the
project, so the sandbox stays usable alone."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

from sandbox.bench import __doc__ as bench_doc
from sandbox.bench import default_host_python, format_report, run_bench

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval.jsonl.gz"


def humaneval_programs(path: Path) -> list:
    """(prompt + canonical solution, test + check(entry_point)) as `CodeProgram`s."""
    from score_core.problems.code_problems import humaneval_program

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [humaneval_program(r["prompt"], r["canonical_solution"],
                              r["test"] + f"\ncheck({r['entry_point']})\n", r["entry_point"])
            for r in rows]


def bench_sandbox(args: argparse.Namespace) -> int:
    report = run_bench(humaneval_programs(Path(args.data)), args.slots or os.cpu_count() or 1, args.timeout,
                       args.image, args.skip_docker_run, args.host_python, args.rounds)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    ok = all(report[k]["passed"] == report[k]["n"] for k in ("host", "pool", "pool_fresh", "docker_run") if k in report)
    if not ok:
        print("bench sandbox: not every canonical program passed", file=sys.stderr)
    return 0 if ok else 1


def add_bench_command(bench_subparsers) -> argparse.ArgumentParser:
    """Add `bench sandbox` to the `bench` subcommand's subparsers."""
    from sandbox.image import DEFAULT_IMAGE

    p = bench_subparsers.add_parser(
        "sandbox", help="HumanEval canonical programs: sandbox pool vs host subprocess vs docker run",
        description=bench_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--data", default=str(DEFAULT_HUMANEVAL),
                   help="HumanEval .jsonl or .jsonl.gz (default: %(default)s)")
    p.add_argument("--slots", type=int, default=0,
                   help="pool slots = host workers = concurrent docker runs (default: CPU count)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-program limit in s (default: 10)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="sandbox image (default: %(default)s)")
    p.add_argument("--host-python", default=default_host_python(),
                   help="interpreter for the host baseline, run as `PY -I file` (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="host/pool passes, alternating order against load drift (default: 3)")
    p.add_argument("--skip-docker-run", action="store_true",
                   help="leave out the slow one-docker-run-per-program baseline")
    p.set_defaults(func=bench_sandbox)
    return p
