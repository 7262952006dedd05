"""score_core: the pure SCoRe algorithm library (no Prefect, no Docker imports).

Public API, re-exported here (rlax style):
- losses: `shaped_rewards`, `rloo_advantages`, `token_logprobs`, `token_kl`, `score_loss`
- metrics: `self_correction_metrics`, `edit_distance_ratio`
- schema: `Problem`, `Episode`, `PROBLEM_SCHEMA`, `TRACE_SCHEMA`, read/write helpers
- config: `RunConfig`, `load_config`
"""
from score_core.numerics import pin_cpu_numerics

pin_cpu_numerics()  # before any module here imports torch (score_core/numerics.py says why)

from score_core.config import ConfigError, RunConfig, load_config
from score_core.method.losses import rloo_advantages, score_loss, shaped_rewards, token_kl, token_logprobs
from score_core.evaluation.metrics import edit_distance_ratio, self_correction_metrics
from score_core.schema import (PROBLEM_SCHEMA, TRACE_SCHEMA, Episode, Problem, read_episodes, read_problems,
                     write_episodes, write_problems)

__all__ = [
    "ConfigError", "RunConfig", "load_config", "rloo_advantages", "score_loss", "shaped_rewards",
    "token_kl", "token_logprobs", "edit_distance_ratio", "self_correction_metrics", "PROBLEM_SCHEMA",
    "TRACE_SCHEMA", "Episode", "Problem", "read_episodes", "read_problems", "write_episodes",
    "write_problems",
]
