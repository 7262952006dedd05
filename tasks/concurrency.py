"""Prefect global concurrency limits that gate GPU-bound steps and grading across runs.

Two limits, sized from the config (`orchestration.gpu_slots`, `orchestration.grading_slots`):
`score-gpu` (pre-training, rollout, training) and `score-grading`. Every run on one Prefect
server shares them, so two scheduled runs never train on the same GPU at once. A held slot
is a lease renewed while the step runs; if the holder dies (`kill -9`), the server frees it
`concurrency_lease_s` after the last renewal.

On the embedded ephemeral API (plain `score run`, no PREFECT_API_URL) there is no one to
share with and leases would live in a throw-away server's memory, so gating is skipped.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

from score_core.config import RunConfig

LIMIT_NAMES = {"gpu": "score-gpu", "grading": "score-grading"}


def _on_server() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def ensure_limits(cfg: RunConfig) -> dict[str, int]:
    """Create or resize the limits to this config's slot counts (idempotent)."""
    if not _on_server():
        return {}
    from prefect.client.orchestration import get_client

    slots = {LIMIT_NAMES["gpu"]: cfg.orchestration.gpu_slots,
             LIMIT_NAMES["grading"]: cfg.orchestration.grading_slots}
    with get_client(sync_client=True) as client:
        for name, limit in slots.items():
            client.upsert_global_concurrency_limit_by_name(name, limit)
    return slots


@contextmanager
def slot(kind: Literal["gpu", "grading"], cfg: RunConfig) -> Iterator[None]:
    """Hold one slot of the `kind` limit while the block runs (waits for a free slot)."""
    if not _on_server():
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(LIMIT_NAMES[kind], occupy=1, lease_duration=cfg.orchestration.concurrency_lease_s,
                     strict=True):
        yield
