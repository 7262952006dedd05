"""`score deploy`: register the SCoRe pipeline as a scheduled Prefect deployment.

Two ways, both against the Prefect server named by PREFECT_API_URL:
- default: `flow.serve` — this process registers the deployment and runs its scheduled
  runs (each in its own subprocess) until Ctrl-C. Simplest; nothing else to start.
- `--work-pool POOL`: register a deployment on a process work pool and return; a
  `prefect worker start --pool POOL` runs the scheduled runs (the repo's `prefect.yaml` is
  the same thing for `prefect deploy`).

Every flow run sends a heartbeat every `--heartbeat` seconds, and the deploy command
ensures the "crash zombie score runs" automation exists (see docs/OPERATIONS.md), so a run
whose process died is marked Crashed instead of staying Running forever.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/pipeline.py:score_pipeline"
ZOMBIE_AUTOMATION = "crash-zombie-score-runs"

EPILOG = """examples:
  export PREFECT_API_URL=http://127.0.0.1:4200/api      # a running `prefect server start`
  score deploy configs/demo.yaml --cron "0 3 * * *"     # serve: every day at 03:00 (local time)
  score deploy configs/demo.yaml --interval 3600 --name hourly --set train.lr=3e-4
  score deploy configs/demo.yaml --cron "0 3 * * *" --work-pool score-process
"""


def cmd_deploy(args: argparse.Namespace) -> int:
    from score.common import check_sandbox_engine, parse_set
    from score_core.config import load_config

    overrides = parse_set(args.set)
    cfg = load_config(args.config, overrides)  # fail here, not at 03:00
    if not args.work_pool:  # serving: the runs grade here (a worker checks its own machine)
        check_sandbox_engine(cfg)
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(args.heartbeat)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ValueError("score deploy needs a Prefect server: start one with `prefect server start` "
                         "and export PREFECT_API_URL=http://127.0.0.1:4200/api (see README)")
    run_dir = args.run_dir or str(Path.cwd() / "runs" / cfg.name / "{scheduled}")
    params = {"config_path": str(Path(args.config).resolve()), "overrides": list(args.set) or None,
              "run_dir": run_dir}  # overrides as typed: the UI's form shows them as KEY=VALUE lines
    schedule: dict[str, Any] = {"cron": args.cron} if args.cron else {"interval": args.interval}
    name = args.name or cfg.name
    if args.zombie_after > 0:
        ensure_zombie_automation(args.zombie_after)
    if args.work_pool:
        return _deploy_to_pool(name, args.work_pool, params, schedule, args.heartbeat, args.limit)
    from flows.pipeline import score_pipeline
    from score.common import guard_descendants

    guard_descendants()  # the served runs' processes end with this one, kill -9 included
    print(f"serving deployment score_pipeline/{name} ({schedule}); Ctrl-C to stop")
    score_pipeline.serve(name=name, parameters=params, limit=args.limit, **schedule)
    return 0


def _deploy_to_pool(name: str, pool: str, params: dict, schedule: dict, heartbeat: int,
                    limit: int) -> int:
    from prefect import flow

    source = flow.from_source(source=str(REPO), entrypoint=ENTRYPOINT)
    deployment_id = source.deploy(
        name=name, work_pool_name=pool, parameters=params, build=False, push=False, concurrency_limit=limit,
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat)}}, **schedule)
    print(f"deployment score_pipeline/{name} ({deployment_id}) on work pool {pool!r}; "
          f"start a worker: prefect worker start --pool {pool}")
    return 0


def ensure_zombie_automation(within_s: int) -> str:
    """Mark a flow run Crashed when it sent a heartbeat and then nothing for `within_s` seconds."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    if existing:
        return str(existing[0].id)
    automation = Automation(
        name=ZOMBIE_AUTOMATION,
        description="A flow run that stopped sending heartbeats (its process died) is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=timedelta(seconds=within_s)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within_s} s: the run's process died")],
    ).create()
    return str(automation.id)


def _at_least_30(text: str) -> int:
    value = int(text)
    if value < 30:
        raise argparse.ArgumentTypeError("Prefect accepts heartbeat periods of 30 s or more")
    return value


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "deploy", help="register the pipeline as a scheduled Prefect deployment (serve or work pool)",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config file")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='cron schedule, e.g. "0 3 * * *"')
    when.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS")
    p.add_argument("--name", help="deployment name (default: the config's name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override passed to every run (repeatable)")
    p.add_argument("--run-dir", help="run directory of each run; may use {scheduled} and {flow_run_name} "
                   "(default: runs/<name>/{scheduled} under the current directory)")
    p.add_argument("--work-pool", help="deploy to this process work pool instead of serving here")
    p.add_argument("--limit", type=int, default=1, help="at most this many runs of this deployment at once (default 1)")
    p.add_argument("--heartbeat", type=_at_least_30, default=30, metavar="SECONDS",
                   help="flow-run heartbeat period, ≥ 30 (Prefect's minimum; default 30)")
    p.add_argument("--zombie-after", type=int, default=120, metavar="SECONDS",
                   help="create the automation that marks runs Crashed after this long without a "
                   "heartbeat (0: don't; default 120)")
    p.set_defaults(func=cmd_deploy)
    return p
