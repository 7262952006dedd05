"""The typed outcome of running one untrusted program."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

Status = Literal["passed", "failed", "timeout", "memory_exceeded", "output_exceeded", "sandbox_error"]
STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "memory_exceeded", "output_exceeded",
                             "sandbox_error")


@dataclass(frozen=True)
class ExecutionResult:
    """`passed` iff the program exited 0; `sandbox_error` = infrastructure, not the program."""

    status: Status
    stdout: str  # capped inside the container: head + tail of at most return_bytes each
    stderr: str  # same cap
    exit_code: Optional[int]  # negative = killed by that signal; None = never ran
    duration_s: float  # wall time inside the container, start to clean-up

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")

    def to_dict(self) -> dict:
        return asdict(self)


def sandbox_error(message: str, duration_s: float = 0.0) -> ExecutionResult:
    return ExecutionResult("sandbox_error", "", message[-4000:], None, duration_s)
