"""The I/O edge: one plain function per pipeline step, paths and small records in, paths
and metrics out, every output written atomically. The Prefect tasks
(`tasks/pipeline_tasks.py`) are thin adapters over these; `score bench pipeline` calls them
directly.

- `prepare` — problem sets → Parquet; graded rollouts → SFT examples.
- `rollout` — a checkpoint → a two-attempt trace file.
- `grade`   — a trace file → r1, r2 and the paper's metrics.
- `train`   — an `Iteration` on a trace file → a checkpoint (weights + Adam state).
- `launch_train` — `train` in N processes under `accelerate launch`.
"""
