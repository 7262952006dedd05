"""Against a real `prefect server start` (127.0.0.1, random port, own database):
a served deployment on an interval schedule, a process work pool + worker running the
repo's prefect.yaml, and the run's report artifact rendered in headless Chromium.
A server, worker or browser that cannot start fails these tests; they never skip."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cdp import open_and_wait
from prefect_server import BIN, REPO, free_port, start_server, stop, wait_for

TINY = REPO / "tests" / "configs" / "tiny.yaml"
ONE_ITERATION = "train.schedule=[stage1]"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("prefect-server"))
    yield srv
    stop(srv.proc)


def _completed(server, deployment_id: str, n: int, log: Path):
    def check():
        runs = server.flow_runs(deployment_id)
        bad = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
        if bad:
            pytest.fail(f"flow run {bad[0]['name']} {bad[0]['state_type']}:\n{log.read_text()[-6000:]}")
        done = [r for r in runs if r["state_type"] == "COMPLETED"]
        return done if len(done) >= n else None
    return wait_for(check, 900, f"{n} completed runs", lambda: log.read_text()[-6000:])


def _assert_report_artifacts(server, flow_run_id: str) -> dict:
    arts = {a["key"]: a for a in server.artifacts(flow_run_id)}
    assert {"score-report-tiny", "score-report-tiny-evals", "score-report-tiny-train"} <= set(arts), arts.keys()
    md = arts["score-report-tiny"]
    assert md["type"] == "markdown" and "Accuracy@t1" in md["data"] and "plots/accuracy.png" in md["data"]
    assert md["data"].count("data:image/png;base64,") == 4
    assert arts["score-report-tiny-evals"]["type"] == "table"
    return md


@pytest.fixture(scope="module")
def served(server, tmp_path_factory):
    """`score deploy --interval` (flow.serve): two scheduled runs complete, then Ctrl-C."""
    tmp = tmp_path_factory.mktemp("served")
    log = tmp / "serve.log"
    run_dir = tmp / "runs" / "smoke"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(BIN / "score"), "deploy", str(TINY), "--interval", "10", "--name", "smoke", "--set",
             ONE_ITERATION, "--run-dir", str(run_dir), "--heartbeat", "30", "--zombie-after", "90"],
            cwd=REPO, env=server.client_env(tmp / "home"), stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        dep = wait_for(lambda: server.deployment("score_pipeline", "smoke"), 300, "the deployment",
                       lambda: log.read_text()[-4000:])
        assert dep["schedules"] and dep["schedules"][0]["schedule"]["interval"] == 10
        runs = _completed(server, dep["id"], 2, log)
    finally:
        stop(proc)
    assert proc.returncode is not None
    return {"runs": runs, "run_dir": run_dir, "log": log}


def test_served_deployment_runs_on_schedule_with_artifacts(server, served):
    for run in served["runs"][:2]:
        _assert_report_artifacts(server, run["id"])
    run_dir = served["run_dir"]
    assert (run_dir / "report.md").is_file()
    for png in ("accuracy", "flips", "training", "edit_ratio"):
        assert (run_dir / "plots" / f"{png}.png").stat().st_size > 1000, png
    autos = server.post("/automations/filter", {})
    assert any(a["name"] == "crash-zombie-score-runs" for a in autos)
    limits = {g["name"]: g["limit"] for g in server.post("/v2/concurrency_limits/filter", {})}
    assert limits.get("score-gpu") == 1 and limits.get("score-grading") == 2


def test_work_pool_worker_runs_the_prefect_yaml_deployment(server, tmp_path):
    env = server.client_env(tmp_path / "home")
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "score-test", "--type", "process"],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    dep = spec["deployments"][0]
    dep.update(name="tiny-interval", schedules=[{"interval": 10}])
    dep["parameters"] = {"config_path": str(TINY), "overrides": {"train.schedule": ["stage1"]},
                         "run_dir": str(tmp_path / "runs" / "{scheduled}")}
    dep["work_pool"]["name"] = "score-test"
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(spec))
    out = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file",
                          str(prefect_file)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    dep_id = server.deployment("score_pipeline", "tiny-interval")["id"]
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "score-test"],
                                  cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        runs = _completed(server, dep_id, 1, log)
    finally:
        stop(worker)  # SIGINT: the worker ignores SIGTERM for 30 s
    assert worker.returncode is not None
    _assert_report_artifacts(server, runs[0]["id"])
    dirs = [d.name for d in (tmp_path / "runs").iterdir()]
    assert any(re.fullmatch(r"\d{8}-\d{6}", d) for d in dirs), dirs


def test_ui_renders_the_report_artifact_in_headless_chromium(server, served, tmp_path):
    md = _assert_report_artifacts(server, served["runs"][0]["id"])
    url = f"{server.ui_url}/artifacts/artifact/{md['id']}"
    shot = tmp_path / "report-artifact.png"
    rendered = ("(() => { const t = [...document.querySelectorAll('table')].find(t => "
                "t.innerText.includes('Accuracy@t1')); return !!t && t.innerText.includes('base') && "
                "[...document.images].filter(i => i.naturalWidth >= 400).length >= 4; })()")
    text = open_and_wait(url, rendered, shot, tmp_path, free_port())
    assert "Accuracy@t2" in text and "after Stage I" in text and "Δi→c" in text, text[:3000]
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
