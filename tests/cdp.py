"""Drive headless Chromium over the DevTools protocol (no Playwright needed): open a page,
wait until a JavaScript condition holds (the SPA has fetched and rendered), take a
screenshot. A browser that cannot start fails the test."""
from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", "--remote-allow-origins=*", "--window-size=1400,2000"]


def chromium() -> str:
    for exe in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(exe):
            return shutil.which(exe)
    pytest.fail("no Chromium found: run scripts/ensure_chromium.sh (Debian package `chromium`)")


class Page:
    def __init__(self, ws: Any) -> None:
        self.ws, self.ids = ws, itertools.count(1)

    def call(self, method: str, **params: Any) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def open_and_wait(url: str, condition_js: str, screenshot: Path, workdir: Path, port: int,
                  timeout_s: float = 180) -> str:
    """Load `url`, wait until `condition_js` is truthy, save a PNG; returns the page's text."""
    from websockets.sync.client import connect

    log = workdir / "chromium.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={workdir / 'profile'}",
                                 f"--remote-debugging-port={port}", "about:blank"],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        ws_url = _page_ws(port, proc, log)
        with connect(ws_url, max_size=None, open_timeout=60) as ws:
            page = Page(ws)
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1400, height=2000,
                      deviceScaleFactor=1, mobile=False)
            page.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            while not page.evaluate(condition_js):
                if time.monotonic() > deadline:
                    text = page.evaluate("document.body ? document.body.innerText : ''") or ""
                    pytest.fail(f"{url}: condition never held in {timeout_s} s; page text:\n{text[:3000]}")
                time.sleep(1)
            time.sleep(1)  # let the last layout settle before the picture
            png = page.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(png["data"]))
            return page.evaluate("document.body.innerText") or ""
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _page_ws(port: int, proc: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"chromium exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"chromium's DevTools endpoint did not answer:\n{log.read_text()[-3000:]}")
