"""`score bench grading`: the command line of flows/bench_grading.py (verdict cache keyed on
programs vs on texts). The measurement lives there; this module only parses and prints."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from flows.bench_grading import EPILOG
from flows.bench_grading import __doc__ as bench_doc
from score.common import parse_set, quiet_prefect


def bench_grading(args: argparse.Namespace) -> int:
    from flows.bench_grading import run_bench_grading

    quiet_prefect()
    os.environ.setdefault("SCORE_PROGRESS", "0")
    load0 = os.getloadavg()
    r = run_bench_grading(args.config, parse_set(args.set), Path(args.out), args.cells, args.prompts)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    print(f"\n{r['cells']} cells × {r['prompts']} prompts × k {r['k']} = {r['attempts']} attempts graded; "
          f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'cache key':<10} | {'programs run':>12} | {'from cache':>10} | {'grading wall':>12}")
    for mode in ("text", "program"):
        m = r[mode]
        print(f"{mode:<10} | {m['programs_run']:>12} | {m['from_cache']:>10} | {m['wall_s']:>10.1f} s")
    print(f"program vs text: ×{r['ratio_programs']:.2f} fewer sandbox runs, ×{r['ratio_wall']:.2f} faster grading")
    print("same reward for every attempt in both modes: " + ("yes" if r["same_rewards"] else "NO"))
    return 0 if r["same_rewards"] else 1


def add_bench_command(bench_subparsers: Any) -> argparse.ArgumentParser:
    p = bench_subparsers.add_parser(
        "grading", help="verdict cache keyed on programs vs on texts, over ablation-like cells",
        description=bench_doc, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/ablate_debug_code.yaml",
                   help="a code-family config (default configs/ablate_debug_code.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--cells", type=int, default=4, help="rollouts of the same problems, one per cell (default 4)")
    p.add_argument("--prompts", type=int, default=256, help="problems per cell (× rollout.k episodes; default 256)")
    p.add_argument("--out", default="runs/bench-grading", help="scratch directory (default runs/bench-grading)")
    p.add_argument("--json", default="", metavar="FILE", help="also write every measurement to FILE")
    p.set_defaults(func=bench_grading)
    return p
