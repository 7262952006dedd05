"""The method: what SCoRe optimises and how.

- `plan`     — the one home of Stage I / Stage II and the baselines: `method_plan` turns
               `config.method` + `train.schedule` into `Iteration`s carrying α, β1, β2.
- `losses`   — the objectives (paper Eq. 3, 4) as tensor-in/tensor-out functions.
- `trainer`  — one iteration of optimizer steps on a rollout batch (reads an `Iteration`).
- `batching` — episodes → padded training tensors.
- `sft`      — the supervised baselines' data (STaR's D⁺, Pair-SFT pairs) and loss.

Imports only `score_core.base` modules (config, schema, …) and `generation`.
"""
