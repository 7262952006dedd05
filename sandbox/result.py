"""The typed outcome of running one untrusted program."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

Status = Literal["passed", "failed", "timeout", "memory_exceeded", "output_exceeded", "sandbox_error"]
STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "memory_exceeded", "output_exceeded",
                             "sandbox_error")


@dataclass(frozen=True)
class ExecutionResult:
    """The verdict on one solution + its tests (see `sandbox.driver` for the proof).

    `passed`: every test ran to completion and passed — the harness compiled the solution and
    the tests separately, ran the tests after the solution, and only then wrote its proof (a
    per-program secret) before exiting 0; the driver verified the proof. Exiting 0 in any
    other way is `failed`, never `passed`. `failed`: the solution or a test raised, a test's
    assert failed, the solution did not compile, the process died, or it exited without the
    proof (a test-code SyntaxError — a dataset bug — is `failed` too, with `detail` saying
    so). `timeout` / `memory_exceeded` / `output_exceeded`: a limit was hit.
    `sandbox_error`: infrastructure, not the program (reward None, never 0).
    """

    status: Status
    stdout: str  # capped inside the container: head + tail of at most return_bytes each
    stderr: str  # same cap
    exit_code: Optional[int]  # negative = killed by that signal; None = never ran
    duration_s: float  # wall time inside the container, start to clean-up
    detail: str = ""  # one line: why this status (e.g. "exit status 0 without the proof")

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")

    def to_dict(self) -> dict:
        return asdict(self)


def sandbox_error(message: str, duration_s: float = 0.0) -> ExecutionResult:
    return ExecutionResult("sandbox_error", "", message[-4000:], None, duration_s,
                           "infrastructure failure: " + message[-200:])
