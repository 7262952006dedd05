"""Code verdicts kept across grading steps: a program graded once is not run again.

At debug scale every cell of `score ablate` samples the same problems at the same
iteration, and policies that start from one base write many of the same programs; running
each again in the sandbox is most of a code cell's cost. `CachedRunner` wraps any
`CodeRunner` (the Docker sandbox) with an SQLite table of verdicts:

- key = sha256 of the runner's identity (`salt`: the sandbox image, its code and slot
  limits — another sandbox never reads this one's verdicts) and of everything in the job
  (solution, tests, time and memory limit, entry point), each length-prefixed. The solution
  enters as the *program* it is: its text with comments blanked when that compiles to an
  equal code object (`program_identity.comment_free`; the harness runs the code object and
  the solution cannot read its text), so working written as comments does not make a new
  program. A cache written before this keyed raw texts; each of those is still a correct
  verdict for the program its text is;
- jobs of one batch that share a key run once (the first); the others take its verdict if
  it is kept, else run too;
- only `passed` and `failed` are kept: verdicts about the program. A limit hit (`timeout`,
  `memory_exceeded`, `output_exceeded`) can depend on the machine's load and
  `sandbox_error` is infrastructure, so those are run again every time;
- a nondeterministic program keeps its first draw, as duplicates within one batch already
  do (`rewards.grade_episodes`): the expected reward is the same.
The file is written only by the grading process (programs never see it); several processes
may share it (WAL journal, busy timeout).
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from score_core.problems.program_identity import comment_free
from score_core.problems.rewards import CodeJob, CodeResult, CodeRunner

KEPT = ("passed", "failed")  # verdicts about the program itself (module docstring)


@dataclass(frozen=True)
class CachedVerdict:
    """A `CodeResult` read back from the cache."""

    status: str
    detail: str = "verdict cache"


def job_key(salt: str, job: CodeJob, as_program: bool = True) -> str:
    """sha256 over the runner identity and every field of the job (the solution as the
    program it is, `comment_free`; its raw text with `as_program=False`, the baseline of
    `score bench grading`), length-prefixed so no two different jobs share a byte string."""
    h = hashlib.sha256()
    code = comment_free(job.code) if as_program else job.code
    for part in (salt, code, job.tests, repr(float(job.timeout_s)), str(int(job.memory_mb)), job.entry_point):
        data = part.encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


class CachedRunner:
    """A `CodeRunner` that runs only the jobs whose verdict is not cached yet (module docstring).
    `hits` / `runs` count jobs answered from the cache / run by `runner` since construction;
    `as_program=False` keys raw texts (`job_key`)."""

    def __init__(self, runner: CodeRunner, path: str | Path, salt: str, as_program: bool = True) -> None:
        if not salt:
            raise ValueError("a verdict cache needs the runner's identity as its salt")
        self.runner, self.path, self.salt, self.as_program = runner, Path(path), salt, as_program
        self.hits = self.runs = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create()

    def _create(self, attempts: int = 50) -> None:
        """WAL journal and the table. Switching the journal mode takes an exclusive lock that
        SQLite's busy timeout does not wait for, so two graders opening the file at once
        (cells side by side) retry here instead of failing with "database is locked"."""
        for attempt in range(attempts):
            try:
                with closing(self._connect()) as db, db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, status TEXT NOT NULL)")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=120)

    def run_many(self, jobs: Sequence[CodeJob]) -> list[CodeResult]:
        keys = [job_key(self.salt, job, self.as_program) for job in jobs]
        known = self._lookup(set(keys))
        first: dict[str, int] = {}  # an uncached key → the first job that has it
        for i, key in enumerate(keys):
            if key not in known:
                first.setdefault(key, i)
        results = self._run(jobs, list(first.values()))
        fresh = {keys[i]: r.status for i, r in results.items() if r.status in KEPT}
        self._store(fresh)
        known.update(fresh)
        results.update(self._run(jobs, [i for i, key in enumerate(keys) if key not in known and i not in results]))
        self.runs += len(results)
        self.hits += len(jobs) - len(results)
        return [results[i] if i in results else CachedVerdict(known[key]) for i, key in enumerate(keys)]

    def _run(self, jobs: Sequence[CodeJob], todo: list[int]) -> dict[int, CodeResult]:
        """Run jobs[todo] on the wrapped runner → {index: result}."""
        if not todo:
            return {}
        fresh = list(self.runner.run_many([jobs[i] for i in todo]))
        if len(fresh) != len(todo):
            raise RuntimeError(f"code runner returned {len(fresh)} results for {len(todo)} jobs")
        return dict(zip(todo, fresh))

    def _lookup(self, keys: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ordered = sorted(keys)
        with closing(self._connect()) as db:
            for start in range(0, len(ordered), 500):  # SQLite's bound-parameter limit
                chunk = ordered[start:start + 500]
                rows = db.execute(f"SELECT key, status FROM verdicts WHERE key IN ({','.join('?' * len(chunk))})",
                                  chunk)
                found.update(dict(rows.fetchall()))
        return found

    def _store(self, verdicts: dict[str, str]) -> None:
        if not verdicts:
            return
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR IGNORE INTO verdicts (key, status) VALUES (?, ?)", verdicts.items())

    def close(self) -> None:
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()
