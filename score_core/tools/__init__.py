"""What only CLI commands use: `score ablate`'s arithmetic (`ablation`), the benchmarks
(`bench_rollout`, `bench_train`), `score run --dry-run` (`dryrun`), inference-time scaling
(`inference_scaling`). The training pipeline never imports these; `flows/ablate.py` uses
`ablation`.
"""
