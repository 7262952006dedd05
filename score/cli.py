"""`score`: train language models to self-correct with SCoRe, orchestrated by Prefect.

Every command explains itself with --help. Errors on bad input print one clear message
and exit 2; nothing already written is touched.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

EPILOG = """examples:
  score run configs/demo.yaml                 # the CPU debug-scale demo (≈ 11 min on 2 cores)
  score run configs/demo.yaml --set train.lr=3e-4 --run-dir runs/lr3e-4
  score metrics runs/demo/traces/eval_stage2_it002.parquet
  score run configs/demo.yaml --set method=pair_sft --run-dir runs/demo-pair-sft
  score ablate configs/ablate_debug.yaml --seeds 3    # SCoRe vs every baseline → docs/RESULTS.md
"""


# shared with the other subcommands (score/common.py); the old private names stay importable
from score.common import (  # noqa: E402
    CODE_SOURCES, RUN_TOKEN, UsageError, check_own_packages, check_sandbox_engine, guard_descendants,
    parse_set as _parse_set,
    quiet_prefect as _quiet_prefect,
)


def cmd_run(args: argparse.Namespace) -> int:
    from score_core.config import load_config

    overrides = _parse_set(args.set)
    cfg = load_config(args.config, overrides)  # validate before starting Prefect
    if args.dry_run:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
        print(f"config OK: {len(cfg.train.schedule)} stage iterations × {cfg.steps_per_iteration} steps")
        from score_core.tools.dryrun import print_dry_run

        return print_dry_run(cfg)
    check_sandbox_engine(cfg)
    restore = guard_descendants()
    try:
        _quiet_prefect()
        from flows.pipeline import score_pipeline
        from tasks.report import interval_table, metrics_table, summary_rows

        result = score_pipeline(config_path=str(Path(args.config).resolve()), overrides=overrides or None,
                                run_dir=args.run_dir)
    finally:
        if restore:
            restore()
    print()
    print(metrics_table(summary_rows(result["evals"])))
    intervals = interval_table(result["evals"])
    if intervals:
        print("\n" + intervals)
    print(f"\nrun directory: {result['run_dir']}\nreport: {result['report']}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from score_core.evaluation.metrics import self_correction_metrics
    from score_core.evaluation.tracefile import read_trace_columns

    cols = read_trace_columns(args.traces)
    out = self_correction_metrics(cols["reward1"], cols["reward2"], cols["attempt1"], cols["attempt2"])
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the SCoRe pipeline (a Prefect flow) from a YAML config",
                         description="Prepare data → (pre-train debug base) → evaluate base → "
                         "Stage I/II iterations (rollout → grade → train → evaluate) → report. "
                         "`method:` in the config (or --set method=star) runs a baseline or "
                         "ablation instead of SCoRe (score_core/method/plan.py). "
                         "Re-running the same command resumes after the last finished step.")
    run.add_argument("config", help="YAML config file (see configs/ and score_core/config.py)")
    run.add_argument("--run-dir", help="output directory (default: runs/<name> from the config)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, dotted, e.g. --set train.lr=1e-4 (repeatable)")
    run.add_argument("--dry-run", action="store_true",
                     help="validate the config and print it resolved; run nothing, download nothing")
    run.set_defaults(func=cmd_run)

    met = sub.add_parser("metrics", help="self-correction metrics of a trace Parquet file, as JSON",
                         description="Prints n, n_unscored, accuracy_t1, accuracy_t2, delta_t1_t2, "
                         "delta_i_to_c, delta_c_to_i, unchanged_rate and edit_distance_ratio, over "
                         "rows whose rewards are both known (null reward = could not be scored).")
    met.add_argument("traces", help="Parquet file with problem_id, attempt1, attempt2, reward1, reward2")
    met.set_defaults(func=cmd_metrics)

    bench = sub.add_parser("bench", help="benchmarks that print a ratio against a baseline run alongside")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", required=True)
    _optional_hooks(sub, bench_sub)
    return parser


def _optional_hooks(sub: Any, bench_sub: Any) -> None:
    from score.models_cli import add_commands as add_model_commands

    add_model_commands(sub)
    try:
        from sandbox.cli import add_commands
    except ImportError:
        add_commands = None
    if add_commands:
        add_commands(sub)
    try:
        from score.sandbox_bench_cli import add_bench_command
    except ImportError:
        add_bench_command = None
    if add_bench_command:
        add_bench_command(bench_sub)
    from score.bench_pipeline_cli import add_bench_command as add_pipeline_bench
    from score.deploy import add_commands as add_deploy_command

    add_deploy_command(sub)
    add_pipeline_bench(bench_sub)
    from score.bench_grading_cli import add_bench_command as add_grading_bench

    add_grading_bench(bench_sub)
    from score.bench_cli import add_bench_commands as add_speed_benches
    from score.eval_cli import add_commands as add_eval_command

    add_speed_benches(bench_sub)
    add_eval_command(sub)
    from score.ablate_cli import add_commands as add_ablate_command

    add_ablate_command(sub)


def _temporary_servers() -> dict:
    """Prefect's temporary API servers alive in this process, by id."""
    server = sys.modules.get("prefect.server.api.server")
    instances = getattr(getattr(server, "SubprocessASGIServer", None), "_instances", {}) or {}
    return {id(instance): instance for instance in list(instances.values())}


def _quiet_down_prefect(keep: frozenset = frozenset()) -> None:
    """Send Prefect's queued logs and events, stop the temporary API server this command
    started (it logs "Stopping temporary server"; servers in `keep` were there before the
    command — e.g. a test harness's — and stay up) and flush, so an error line printed next
    is the last line."""
    if "prefect.logging.handlers" in sys.modules:  # send what is queued while the API still answers
        try:
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            for service in (APILogWorker, EventsWorker):
                service.drain_all(timeout=10)
        except Exception:
            pass
    for key, instance in _temporary_servers().items():
        if key in keep:
            continue
        try:
            instance.stop()
        except Exception:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def main(argv: Optional[list[str]] = None) -> int:
    from score_core.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    before = frozenset(_temporary_servers())  # a caller's server (e.g. tests) is not ours to stop
    try:
        check_own_packages()
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError, UsageError) as exc:
        # bad config, bad data, a missing engine: one line, last and alone (after Prefect's logs)
        after_logs = "prefect" in sys.modules
        _quiet_down_prefect(keep=before)
        print(f"{chr(10) if after_logs else ''}score: error: {str(exc).strip()}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
