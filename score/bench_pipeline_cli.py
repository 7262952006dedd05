"""`score bench pipeline`: the command line of flows/bench.py (where a debug-scale iteration's
wall time goes). The measurement lives in flows/bench.py; this module only parses and prints."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from flows.bench import EPILOG
from flows.bench import __doc__ as bench_doc
from score.common import parse_set, quiet_prefect


def bench_pipeline(args: argparse.Namespace) -> int:
    from flows.bench import run_bench
    from flows.bench_split import per_iteration, table

    quiet_prefect()
    os.environ.setdefault("SCORE_PROGRESS", "0")
    load0 = os.getloadavg()
    prompts = [int(x) for x in args.prompts.split(",")] if args.prompts else [0]
    overrides = parse_set(args.set)
    if prompts == [0]:
        from score_core.config import load_config

        prompts = [load_config(args.config, overrides).train.prompts_per_iteration]
    r = run_bench(args.config, overrides, Path(args.out), args.repeats, prompts, args.modes.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    print(f"\nload average before {load0[0]:.2f} {load0[1]:.2f}, after {r['loadavg'][0]:.2f} "
          f"{r['loadavg'][1]:.2f} on {r['cpu_count']} CPUs; mean of {r['repeats']} repeat(s) per mode")
    for eps, res in r["results"].items():
        print("\n" + table(int(eps), res["mean"]))
    if "direct" in r["modes"]:
        for eps, res in r["results"].items():
            m = res["mean"]
            for mode in (x for x in r["modes"] if x != "direct"):
                over = per_iteration(m[mode]) / per_iteration(m["direct"]) - 1
                print(f"{eps} episodes: {mode} adds {100 * over:+.1f}% per iteration over direct "
                      f"(prefect {m[mode]['prefect']:.2f} s, child processes {m[mode]['child_process']:.2f} s)")
    print(f"Once per process, not in the ratios: ephemeral API start {r['api_start_s']:.1f} s, "
          f"step forkserver start (imports) {r['forkserver_start_s']:.1f} s.")
    return 0


def add_bench_command(bench_subparsers: Any) -> argparse.ArgumentParser:
    p = bench_subparsers.add_parser(
        "pipeline", help="where a debug-scale iteration's time goes: direct calls vs the flow",
        description=bench_doc, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo.yaml", help="config (default configs/demo.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--out", default="runs/bench-pipeline", help="scratch directory (default runs/bench-pipeline)")
    p.add_argument("--repeats", type=int, default=1, help="alternate the modes this many times")
    p.add_argument("--prompts", default="", help="comma-separated train.prompts_per_iteration values to "
                   "measure (× rollout.k episodes each; default: the config's)")
    p.add_argument("--modes", default="direct,flow_inline,flow_process",
                   help="comma-separated subset of direct,flow_inline,flow_process,flow_notags (direct is "
                   "the baseline; flow_notags: flow_process with the tasks' tags removed, a what-if)")
    p.add_argument("--json", default="", metavar="FILE", help="also write every measurement to FILE")
    p.set_defaults(func=bench_pipeline)
    return p
