"""`score ablate`: SCoRe against every baseline and ablation, one command (flows/ablate.py)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """Run every method of score_core/method/plan.py (base, self_refine, star, pair_sft,
single_turn_rl, multi_turn_rl, no_stage1, no_shaping, score) on the same data, with the same
sample and gradient budget, on each base model × --seeds seeds; evaluate on the config's
held-out split; write a table (mean ± 95% interval over seeds), a plot and RESULTS.md to
--out, and RESULTS.md to --results-md. At debug scale (model.path unset) one base model is
pre-trained per --base-seeds entry. Re-running the same command resumes unfinished cells."""

EPILOG = """examples:
  score ablate configs/ablate_debug.yaml --seeds 3            # the debug-scale comparison
  score ablate configs/ablate_debug.yaml --seeds 1 --methods base score multi_turn_rl
  score ablate configs/ablate_debug.yaml --set data.eval.split=dev --results-md ''   # tune on dev
  score ablate configs/ablate_debug.yaml --seeds 3 --partial   # the cells finished so far (runs nothing)
"""


def cmd_ablate(args: argparse.Namespace) -> int:
    from score.common import check_sandbox_engine, guard_descendants, parse_set, quiet_prefect
    from score_core.config import load_config
    from score_core.method.plan import METHODS

    overrides = parse_set(args.set)
    cfg = load_config(args.config, overrides)  # validate before starting Prefect
    bad = [m for m in args.methods or [] if m not in METHODS]
    if bad:
        raise ValueError(f"unknown --methods {bad}; choose from {', '.join(METHODS)}")
    if args.seeds < 1 or args.workers < 1:
        raise ValueError("--seeds and --workers must be ≥ 1")
    command = "score ablate " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["ablate"] else ""
    if args.partial:
        from flows.ablate_partial import write_partial

        path = write_partial(str(Path(args.config).resolve()), args.seeds, args.methods or list(METHODS),
                             args.base_seeds, args.out, overrides or None, command, args.workers)
        print(path.read_text() + f"\npartial table: {path}")
        return 0
    check_sandbox_engine(cfg)  # a code family: the Docker engine answers before any work
    restore = guard_descendants()  # nothing this command starts outlives it (kill -9 included)
    try:
        quiet_prefect()
        from flows.ablate import score_ablate

        score_ablate(config_path=str(Path(args.config).resolve()), seeds=args.seeds, methods=args.methods,
                     base_seeds=args.base_seeds, out_dir=args.out, workers=args.workers,
                     overrides=overrides or None, results_md=args.results_md or None, command=command)
    finally:
        if restore:
            restore()
    print(f"\ntable, plot, RESULTS.md: {args.out}" + (f"; also {args.results_md}" if args.results_md else ""))
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ablate", help="SCoRe vs every baseline/ablation: table with 95%% intervals + plot",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config shared by every cell (see configs/ablate_debug.yaml)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per (base, method) (default 3)")
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="subset of methods (default: all)")
    p.add_argument("--base-seeds", nargs="+", type=int, default=[0, 1], metavar="SEED",
                   help="debug scale: one independently pre-trained base model per seed (default 0 1)")
    p.add_argument("--workers", type=int, default=2, help="cells run side by side (default 2)")
    p.add_argument("--out", default="runs/ablate", help="output directory (default runs/ablate)")
    p.add_argument("--results-md", default="docs/RESULTS.md",
                   help="also write RESULTS.md here (default docs/RESULTS.md; '' to skip)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--partial", action="store_true",
                   help="run nothing: write --out/RESULTS.partial.md from the cells finished so far (same "
                   "arguments as the ablation; safe while it runs; docs/ untouched)")
    p.set_defaults(func=cmd_ablate)
