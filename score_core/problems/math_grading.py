"""Math answer grading: extract the final answer, compare it with Math-Verify.

r(y, y*) ∈ {0, 1} for MATH / GSM8K (SCoRe, Kumar et al. 2024, Sec. 3): 1 iff the
answer extracted from the response is mathematically equal to the reference.

- `extract_answer` reads, in order: the paper's "Final Answer: The final answer is X.
  I hope it is correct." (last occurrence, $…$ stripped), the last `\\boxed{…}` /
  `\\boxed X` / `\\fbox{…}` (brace matched), the GSM8K "#### n" line.
- `grade_math` first compares normalised strings (fast path, no sympy); otherwise it
  asks Math-Verify (`parse` + `verify`) in a worker subprocess.

Why a subprocess: Math-Verify's own timeout uses `signal.alarm`, which raises outside
the main thread, and Prefect runs tasks in threads. We disable it and enforce our own
deadline that works from any thread: the parent waits on the worker's pipe with
`select`, and on timeout kills the worker (a fresh one starts on the next call). Idle
workers are reused (one per concurrently grading thread), so a grade costs one pipe
round trip (~0.1 ms) plus Math-Verify's own work (~10 ms). A timeout is
`Reward(None, "timeout")`: unknown, never wrong. A broken worker is `Reward(None, "error")`.

Deliberately left out: Math-Verify's own extraction of free text (we extract first so
"no answer" is a status of its own), and unit/word answers beyond what Math-Verify knows.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from typing import Optional

from score_core.problems.reward_value import Reward

_FINAL_RE = re.compile(r"final answer is", re.IGNORECASE)
_HOPE_RE = re.compile(r"(.*?)\s*I hope it is correct", re.IGNORECASE | re.DOTALL)
_GSM8K_RE = re.compile(r"####\s*([^\n]*)")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")


def _strip_math_delims(s: str) -> str:
    """Remove outer $…$, $$…$$, \\(…\\), \\[…\\] and a trailing period."""
    s = s.strip()
    for _ in range(3):
        before = s
        s = s.rstrip().rstrip(".").rstrip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left): len(s) - len(right)].strip()
        if s == before:
            break
    return s


def last_boxed(text: str) -> Optional[str]:
    """Content of the last `\\boxed{…}` / `\\fbox{…}` (brace matched) or `\\boxed X`.

    None when there is none or its braces never close (e.g. a truncated generation).
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # "\boxed 5$" form (Hendrycks): up to the next $ or line end
        if i == matches[-1].end():
            return None
        return re.split(r"[$\n]", text[i:], maxsplit=1)[0].strip() or None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{" and text[j - 1] != "\\":
            depth += 1
        elif text[j] == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1: j].strip()
    return None


def extract_answer(text: str) -> Optional[str]:
    """The final answer in a response, or None when it states none.

    Priority: "The final answer is X" (the paper's prompt format, last occurrence,
    a \\boxed inside X is unwrapped) → last \\boxed/\\fbox → GSM8K "#### n".
    """
    finals = list(_FINAL_RE.finditer(text))
    if finals:
        rest = text[finals[-1].end():]
        hope = _HOPE_RE.match(rest)
        ans = _strip_math_delims(hope.group(1) if hope else rest.split("\n", 1)[0])
        if _BOX_RE.search(ans):
            ans = last_boxed(ans) or ans
        ans = _strip_math_delims(ans)
        if ans:
            return ans
    boxed = last_boxed(text)
    if boxed:
        return _strip_math_delims(boxed) or None
    gsm = _GSM8K_RE.findall(text)
    if gsm:
        ans = _strip_math_delims(gsm[-1]).replace(",", "")
        return ans or None
    return None


_SPACING_RE = re.compile(r"\\[!,;: ]|\\left|\\right|\s+")


def normalize_answer(s: str) -> str:
    """Meaning-preserving string normalisation for the fast path (no sympy)."""
    s = _strip_math_delims(s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING_RE.sub("", s)
    s = re.sub(r"\^\{?\\circ\}?", "", s)
    m = re.fullmatch(r"\\text\{(.*)\}", s)
    return m.group(1) if m else s


def grade_math(response: str, reference: str, timeout_s: float = 5.0, fast_path: bool = True) -> Reward:
    """r(y, y*): 1.0 if the response's final answer equals the reference, else 0.0.

    Status: ok (value 0/1) | no_answer (0.0) | timeout (None) | error (None).
    `fast_path=False` sends every answer through Math-Verify (used by tests).
    """
    answer = extract_answer(response)
    if answer is None:
        return Reward(0.0, "no_answer")
    if fast_path and normalize_answer(answer) == normalize_answer(reference):
        return Reward(1.0, "ok")
    return _verify_in_worker(answer, reference, timeout_s)


# ---------------------------------------------------------------- worker subprocess

# The worker imports only math_verify (not score_core, whose package may import torch).
_WORKER_SRC = r"""
import functools, json, logging, os, sys
out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # stray prints go to stderr, never into the reply pipe
logging.getLogger("math_verify").setLevel(logging.ERROR)
from math_verify import parse, verify
@functools.lru_cache(maxsize=4096)
def gold(ref):
    return parse("$" + ref + "$", parsing_timeout=None)
out.write("ready\n")
for line in sys.stdin:
    req = json.loads(line)
    try:
        pred = parse("\\boxed{" + req["answer"] + "}", parsing_timeout=None)
        ok = bool(pred) and verify(gold(req["reference"]), pred, timeout_seconds=None)
        out.write(json.dumps({"correct": ok}) + "\n")
    except BaseException as exc:
        out.write(json.dumps({"error": repr(exc)[:500]}) + "\n")
"""

_STARTUP_TIMEOUT_S = 120.0  # importing sympy on a busy 2-core machine; not a grading timeout


class _Worker:
    """One Math-Verify subprocess speaking JSON lines over its stdin/stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SRC],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0,
        )
        self._buf = b""
        try:
            ready = self._read_line(time.monotonic() + _STARTUP_TIMEOUT_S)
        except EOFError:
            ready = None
        if ready != "ready":
            self.kill()
            raise RuntimeError("Math-Verify worker failed to start (is math-verify installed?)")

    def _read_line(self, deadline: float) -> Optional[str]:
        """One reply line; None at the deadline; EOFError when the worker died."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("Math-Verify worker exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8")

    def ask(self, answer: str, reference: str, timeout_s: float) -> Optional[dict]:
        req = json.dumps({"answer": answer, "reference": reference}) + "\n"
        self.proc.stdin.write(req.encode("utf-8"))
        line = self._read_line(time.monotonic() + timeout_s)
        return None if line is None else json.loads(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


_IDLE: list[_Worker] = []
_IDLE_LOCK = threading.Lock()


def _verify_in_worker(answer: str, reference: str, timeout_s: float) -> Reward:
    """Math-Verify in a reused worker; the deadline is enforced here, in any thread."""
    worker = None
    with _IDLE_LOCK:
        while _IDLE and worker is None:
            worker = _IDLE.pop()
            if worker.proc.poll() is not None:  # died while idle (e.g. OOM killer): replace
                worker.kill()
                worker = None
    if worker is None:
        worker = _Worker()
    try:
        reply = worker.ask(answer, reference, timeout_s)
    except (OSError, EOFError, ValueError):  # died, broken pipe or a garbled reply
        worker.kill()
        return Reward(None, "error")
    if reply is None:  # deadline passed: the worker is busy, kill it
        worker.kill()
        return Reward(None, "timeout")
    with _IDLE_LOCK:
        _IDLE.append(worker)
    if "error" in reply:
        return Reward(None, "error")
    return Reward(1.0 if reply["correct"] else 0.0, "ok")


@atexit.register
def shutdown_workers() -> None:
    """Stop idle workers (also called at interpreter exit)."""
    with _IDLE_LOCK:
        workers, _IDLE[:] = list(_IDLE), []
    for w in workers:
        w.kill()
