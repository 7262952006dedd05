"""What a user watching a run sees in the Prefect UI: a tiny `score run` against a real
`prefect server start`, then its flow run page in headless Chromium — task runs named by what
they do (`rollout · stage1 · it 1`, not `rollout-3e6`) and a progress artifact per long step
(the artifact page shows its progress bar at 100%). A server or browser that cannot start
fails the test; it never skips."""
from __future__ import annotations

import base64
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cdp import FLAGS, Page, _page_ws, chromium
from prefect_server import BIN, REPO, free_port, start_server, stop

TINY = REPO / "tests" / "configs" / "tiny.yaml"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# The oracle: the steps of a one-iteration tiny run, as the pipeline's diagram names them.
TASK_RUNS = ["prepare data", "pretrain debug base", "eval · base", "grade eval · base",
             "rollout · stage1 · it 1", "grade · stage1 · it 1", "train · stage1 · it 1",
             "eval · stage1 · it 1", "grade eval · stage1 · it 1", "report"]
LONG_STEPS = ["pretrain debug base", "eval · base", "rollout · stage1 · it 1", "grade · stage1 · it 1",
              "train · stage1 · it 1", "eval · stage1 · it 1"]
PREFECT_DEFAULT_NAME = re.compile(r"^[a-z_-]+-[0-9a-f]{3}$", re.M)  # e.g. rollout-3e6


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    server = start_server(tmp)
    try:
        done = subprocess.run([str(BIN / "score"), "run", str(TINY), "--set", "train.schedule=[stage1]",
                               "--run-dir", str(tmp / "run")], cwd=REPO, env=server.client_env(tmp / "home"),
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (run,) = server.post("/flow_runs/filter", {})
        yield server, run, tmp
    finally:
        stop(server.proc)


@contextmanager
def browser(workdir: Path) -> Iterator[Page]:
    from websockets.sync.client import connect

    port, log = free_port(), workdir / "chromium.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={workdir / 'profile'}",
                                 f"--remote-debugging-port={port}", "about:blank"], stdout=fh, stderr=subprocess.STDOUT)
    try:
        with connect(_page_ws(port, proc, log), max_size=None, open_timeout=60) as ws:
            page = Page(ws)
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1400, height=2000, deviceScaleFactor=1, mobile=False)
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _text(page: Page) -> str:
    return page.evaluate("document.body ? document.body.innerText : ''") or ""


def _wait_text(page: Page, wanted: list[str], timeout_s: float = 120, click: str = "") -> str:
    """Wait until every string of `wanted` is on the page (clicking the tab `click` until it is)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if click:
            page.evaluate(f"(() => {{ const t = [...document.querySelectorAll('[role=tab], .p-tab')]"
                          f".find(e => e.innerText.trim() === {click!r}); if (t) t.click(); }})()")
        text = _text(page)
        if all(w in text for w in wanted):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"missing on the page after {timeout_s} s: {[w for w in wanted if w not in text]}\n{text[:4000]}")
        time.sleep(1)


def _shot(page: Page, path: Path) -> None:
    path.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))


def test_flow_run_page_shows_named_task_runs_and_progress(finished):
    server, run, tmp = finished
    with browser(tmp) as page:
        page.call("Page.navigate", url=f"{server.ui_url}/runs/flow-run/{run['id']}")
        _wait_text(page, [run["name"], "Task Runs", "Artifacts"])
        text = _wait_text(page, ["10 Task runs", *TASK_RUNS], click="Task Runs")
        _shot(page, tmp / "task-runs.png")
        listed = text[text.index("10 Task runs"):]
        assert not PREFECT_DEFAULT_NAME.search(listed), PREFECT_DEFAULT_NAME.findall(listed)
        # the Artifacts tab: one PROGRESS card per long step, each finished
        text = _wait_text(page, ["PROGRESS", *(f"{s}: done (" for s in LONG_STEPS)], click="Artifacts")
        _shot(page, tmp / "artifacts.png")
        assert text.count("PROGRESS") >= len(LONG_STEPS)
        assert "rollout · stage1 · it 1: done (64/64)" in text  # 16 prompts × k = 2 × 2 attempts
    progress = [a for a in server.artifacts(run["id"]) if a["type"] == "progress"]
    rollout = next(a for a in progress if a["description"].startswith("**rollout · stage1 · it 1**"))
    assert rollout["data"] == 100
    (tmp / "artifact").mkdir()
    with browser(tmp / "artifact") as page:
        page.call("Page.navigate", url=f"{server.ui_url}/artifacts/artifact/{rollout['id']}")
        _wait_text(page, ["rollout · stage1 · it 1", "Progress: 100%"])
        assert page.evaluate("!!document.querySelector('.artifact-data-progress')")
        _shot(page, tmp / "progress-artifact.png")
    print(f"screenshots: {tmp}")


def test_custom_run_form_is_typed_and_described(finished, tmp_path):
    """`score deploy --work-pool` registers the flow's typed parameters; the deployment's
    "Custom run" form shows each field with its description and the given overrides."""
    server, _, _ = finished
    env = server.client_env(tmp_path / "home")
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "score-ui", "--type", "process"],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run([str(BIN / "score"), "deploy", str(TINY), "--interval", "3600", "--name", "form",
                           "--work-pool", "score-ui", "--set", "train.schedule=[stage1]", "--zombie-after", "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dep = server.deployment("score_pipeline", "form")
    assert dep["parameters"]["overrides"] == ["train.schedule=[stage1]"]
    props = dep["parameter_openapi_schema"]["properties"]
    assert props["config_path"]["type"] == "string"
    assert {"type": "array", "items": {"type": "string"}} in props["overrides"]["anyOf"]
    with browser(tmp_path) as page:
        page.call("Page.navigate", url=f"{server.ui_url}/deployments/deployment/{dep['id']}/run")
        text = _wait_text(page, ["config_path", "overrides", "run_dir", "YAML config file",
                                 "one KEY=VALUE per entry", "output directory (empty: runs/NAME"])
        _shot(page, tmp_path / "custom-run-form.png")
        assert page.evaluate("[...document.querySelectorAll('input, textarea')].some(i => i.value === 'train.schedule=[stage1]')"), text[:3000]
    print(f"screenshot: {tmp_path / 'custom-run-form.png'}")
