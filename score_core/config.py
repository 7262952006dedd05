"""The one config module: every knob of a run, documented, validated, loaded from YAML.

Unknown keys are errors (a typo must not silently fall back to a default). Derived values
are properties. Nothing here is passed into the math: losses take explicit scalars.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


Source = Literal[
    "math",  # MATH (Hendrycks) JSONL/Parquet with problem/solution/answer (PRM800K 12k, MATH500)
    "gsm8k",  # GSM8K JSONL with question/answer ("#### n")
    "mbpp",  # MBPP JSONL (task_id/text/code/test_list/test_setup_code)
    "humaneval",  # HumanEval JSONL(.gz) (task_id/prompt/entry_point/test)
    "synth_linear",  # debug-scale synthetic family, generated from a seed
    "synth_code",  # debug-scale synthetic code family, generated from a seed
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    source: Source = Field(description="Which problem family to load.")
    path: Optional[str] = Field(
        None, description="Local JSONL/JSONL.gz/Parquet file. Relative paths resolve against the config file.")
    hub_name: Optional[str] = Field(None, description="Hugging Face dataset name, used when `path` is unset.")
    hub_split: str = Field("train", description="Split name on the hub.")
    split: Literal["train", "dev", "eval"] = Field("train", description="Role of these problems in the run.")
    limit: Optional[int] = Field(None, ge=1, description="Keep only the first N problems (after shuffling if seed).")
    n: int = Field(1000, ge=1, description="Synthetic families only: how many problems to generate.")
    seed: int = Field(0, description="Synthetic families: generator seed. Real sets: shuffle seed for `limit`.")
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="A malformed row raises (naming file and line) or is skipped and counted.")


class DebugBaseConfig(_Strict):
    """A tiny from-scratch Llama pre-trained on the synthetic family (debug scale only)."""

    hidden_size: int = Field(128, description="Model width.")
    num_layers: int = Field(3, description="Transformer blocks.")
    num_heads: int = Field(4, description="Attention heads.")
    intermediate_size: int = Field(256, description="MLP width.")
    steps: int = Field(600, ge=1, description="Pre-training optimizer steps.")
    batch_size: int = Field(64, ge=1, description="Pre-training sequences per step.")
    lr: float = Field(3e-3, gt=0, description="Pre-training AdamW learning rate.")
    corpus_size: int = Field(38400, ge=1, description="Synthetic pre-training traces (steps × batch = fresh data).")
    seed: int = Field(0, description="Seed for weights and corpus.")
    turn2_perturb: float = Field(
        0.25, ge=0, lt=0.8, description="Corpus second attempts move y1 by ±1/±2 with this probability "
        "(ignoring their own check), else copy it: how often the base explores a change at turn 2 "
        "(greedy decoding still copies while it is < 0.8).")
    turn2_moves: list[int] = Field(
        default_factory=lambda: [-2, -1, 1, 2], min_length=1,
        description="How a moved corpus y2 differs from y1 (drawn uniformly). [-1, 1]: the fix of the "
        "flawed class (off by one) is one of two moves, and the check's `<`/`>` says which.")
    turn2_follow_check: float = Field(
        0.0, ge=0, le=1, description="Probability that a moved corpus y2 goes the way its failed check "
        "points (else a random move): a weak, latent self-correction skill for RL to amplify. 0: the "
        "corpus never links the check to the answer.")
    families: list[Literal["synth_linear", "synth_code"]] = Field(
        default_factory=lambda: ["synth_linear"], min_length=1,
        description="Synthetic families in the pre-training corpus, mixed in equal parts "
        "(synth_code: the same problems answered as tiny Python programs).")


class ModelConfig(_Strict):
    path: Optional[str] = Field(
        None, description="HF hub name or local model directory. Unset: build the debug base model.")
    debug_base: DebugBaseConfig = Field(default_factory=DebugBaseConfig, description="Used when `path` is unset.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Compute dtype. Rollout and evaluation load the weights in it; training "
        "keeps float32 master weights (all weights, or the LoRA adapter), float32 Adam state, a float32 "
        "reference model and float32 checkpoints, and 'bfloat16' autocasts its forward to bf16 "
        "(Accelerator mixed_precision='bf16'). The frozen base under LoRA stays in this dtype.")
    lora: bool = Field(False, description="Train a LoRA adapter (peft) instead of all weights.")
    lora_rank: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha.")


class RolloutConfig(_Strict):
    engine: Literal["hf", "vllm"] = Field("hf", description="Generation engine: batched HF generate, or vLLM.")
    k: int = Field(4, ge=2, description="Samples per prompt during training (RLOO needs k ≥ 2).")
    temperature: float = Field(1.0, ge=0, description="Training sampling temperature (paper: 1.0).")
    max_new_tokens: int = Field(64, ge=1, description="Token limit per attempt.")
    batch_size: int = Field(64, ge=1, description="Sequences per generate call.")
    vllm_gpu_memory_utilization: float = Field(
        0.4, gt=0, le=1, description="vLLM only: fraction of GPU memory vLLM may take (weights + KV cache).")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vLLM only: GPUs one vLLM engine spans.")


class TrainConfig(_Strict):
    """SCoRe hyperparameters (paper Sec. 5; defaults scaled for debug runs)."""

    schedule: list[Literal["stage1", "stage2"]] = Field(
        default_factory=lambda: ["stage1", "stage2"],
        description="Stage iterations in order, e.g. [stage1, stage2, stage1, stage2] to interleave.")
    prompts_per_iteration: int = Field(128, ge=1, description="Training prompts rolled out per stage iteration.")
    minibatch_prompts: int = Field(16, ge=1, description="Prompts (× k samples) per optimizer step.")
    epochs_per_iteration: int = Field(1, ge=1, description="Passes over one iteration's rollouts.")
    micro_batch_episodes: int = Field(64, ge=1, description="Episodes per forward/backward (gradient accumulation).")
    micro_batch_tokens: Optional[int] = Field(
        None, ge=1, description="Also cap each forward/backward at this many padded tokens (rows × longest "
        "row; rows are sorted by length first). None: only micro_batch_episodes limits it.")
    num_processes: int = Field(
        1, ge=1, description="Processes for the training step (DDP/FSDP via `accelerate launch`; each takes "
        "its shard of every minibatch). 1: train in the step's own process.")
    accelerate_config: Optional[str] = Field(
        None, description="accelerate config file for num_processes > 1 (see configs/accelerate/); "
        "None: plain DDP.")
    kl_estimator: Literal["full", "k3"] = Field(
        "full", description="Per-token KL: exact over the vocabulary ('full') or the sampled-token k3 estimator.")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (paper: 5e-6 MATH, 1e-5 code).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    alpha: float = Field(10.0, ge=0, description="Stage II shaping α: r̂2 = r2 + α(r2 − r1).")
    beta1: float = Field(0.01, ge=0, description="β1: KL weight on all tokens (both stages).")
    beta2: float = Field(0.1, ge=0, description="β2: extra KL weight on attempt-1 tokens in Stage I.")
    seed: int = Field(0, description="Seed for sampling and shuffling.")
    pg_correction: Literal["clip", "truncate", "none"] = Field(
        "clip", description="Off-policy correction of the minibatches after the first on one rollout batch "
        "(per-token ratio ρ = π_θ/μ against the rollout's recorded log-probs; score_core/method/losses.py): "
        "'clip' PPO's clipped surrogate, 'truncate' min(ρ, c)-weighted REINFORCE, 'none' plain REINFORCE "
        "(the paper's estimator; exact only with strict_on_policy).")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="'clip': PPO's ε (ratios outside [1−ε, 1+ε] stop pushing).")
    truncate_at: float = Field(2.0, ge=1, description="'truncate': the cap c of min(ρ, c).")
    strict_on_policy: bool = Field(
        False, description="One optimizer step per rollout batch (the whole batch is the minibatch, one "
        "epoch): every gradient is on-policy and the paper's REINFORCE estimator is exact.")
    mismatch_warn: float = Field(
        0.05, ge=0, description="Warn when the first minibatch's mean |log π_θ − log μ| (rollout vs trainer "
        "log-probs of the same tokens under the same weights) exceeds this.")


class EvalConfig(_Strict):
    base: bool = Field(True, description="Evaluate the starting model before training (`score ablate` "
                       "turns this off for trained methods: the `base` cell evaluates it once).")
    every_iteration: bool = Field(True, description="Evaluate after every stage iteration (else only at the end).")
    max_new_tokens: int = Field(64, ge=1, description="Token limit per attempt at evaluation (greedy).")
    batch_size: int = Field(128, ge=1, description="Sequences per generate call at evaluation.")


class GradingConfig(_Strict):
    math_timeout_s: float = Field(5.0, gt=0, description="Per-answer Math-Verify timeout (thread-safe).")
    code_timeout_s: float = Field(10.0, gt=0, description="Per-program sandbox time limit.")
    code_memory_mb: int = Field(512, ge=16, description="Per-program sandbox memory limit.")
    sandbox_slots: int = Field(2, ge=1, description="Concurrent sandbox containers.")


class DataConfig(_Strict):
    train: DatasetConfig = Field(description="Problems for rollouts and training.")
    eval: DatasetConfig = Field(description="Held-out problems for evaluation (greedy).")


class OrchestrationConfig(_Strict):
    """How Prefect runs the steps. Not part of a run's identity: changing these fields never
    makes a run directory refuse to resume."""

    isolate_steps: Literal["process", "inline"] = Field(
        "process", description="'process': pre-training, rollout and training each run in a fresh "
        "child process (forkserver) so accelerator memory is released between steps; 'inline': in "
        "the flow's process (debugging).")
    torch_threads: Optional[int] = Field(
        None, ge=1, description="torch intra-op threads of each step's child process (None: torch's "
        "default, all cores). `score ablate` sets 1 when it runs cells side by side on a CPU.")
    gpu_slots: int = Field(1, ge=1, description="Prefect global concurrency slots for GPU-bound steps "
                           "(pre-training, rollout, training), shared by every run on one Prefect server.")
    verdict_cache: Optional[str] = Field(
        "verdicts.sqlite", description="SQLite file of code verdicts (passed/failed) reused across grading "
        "steps, keyed by program, tests, limits and the sandbox's image, code and slot limits "
        "(score_core/problems/verdict_cache.py); relative paths are in the run directory; null: run every "
        "program. `score ablate` shares one file across its cells.")
    rollout_share: Optional[str] = Field(
        None, description="Folder of rollouts of a frozen model (the base: STaR-base and Pair-SFT in every "
        "iteration, every method's first one) shared across runs: a run whose rollout would draw exactly "
        "what another run drew (same model files, problems, seed, sampling settings, threads and sampling "
        "code; HF engine only) copies those traces under its own labels instead of sampling again "
        "(score_core/steps/rollout_share.py). null: every run samples its own. `score ablate` shares one "
        "folder across its cells.")
    grading_slots: int = Field(2, ge=1, description="Prefect global concurrency slots for grading tasks "
                               "(sandbox containers are bounded per task by grading.sandbox_slots).")
    concurrency_lease_s: float = Field(
        120.0, gt=0, description="Lease of a held slot; renewed while the step runs, freed by the "
        "server this long after its holder died.")
    io_retries: int = Field(3, ge=0, description="Retries of data preparation and grading on I/O or "
                            "sandbox infrastructure errors (not on bad data).")
    step_retries: int = Field(1, ge=0, description="Retries of rollout/training when their child "
                              "process died (e.g. killed for memory); a retry starts again from the "
                              "last saved checkpoint.")
    retry_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles on each retry, "
                                   "with jitter.")


METHODS = ("base", "self_refine", "star", "star_base", "pair_sft", "single_turn_rl", "multi_turn_rl",
           "no_stage1", "no_shaping", "score")  # what each one trains: score_core/method/plan.py
Method = Literal["base", "self_refine", "star", "star_base", "pair_sft", "single_turn_rl", "multi_turn_rl",
                 "no_stage1", "no_shaping", "score"]


class RunConfig(_Strict):
    name: str = Field("score", description="Run name; also the default run directory name.")
    run_dir: Optional[str] = Field(None, description="Where everything is written. Default runs/<name>.")
    method: Method = Field(
        "score", description="What to train: score, or a baseline/ablation of the paper "
        "(base, self_refine, star, star_base, pair_sft, single_turn_rl, multi_turn_rl, no_stage1, no_shaping); "
        "see score_core/method/plan.py. Every trained method gets len(train.schedule) iterations.")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig, description="Process isolation, concurrency slots, retries.")

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        if self.train.minibatch_prompts > self.train.prompts_per_iteration:
            raise ValueError("train.minibatch_prompts must be ≤ train.prompts_per_iteration")
        return self

    @property
    def minibatch_prompts(self) -> int:
        """Prompts per optimizer step: all of an iteration's with `train.strict_on_policy`."""
        return self.train.prompts_per_iteration if self.train.strict_on_policy else self.train.minibatch_prompts

    @property
    def epochs_per_iteration(self) -> int:
        return 1 if self.train.strict_on_policy else self.train.epochs_per_iteration

    @property
    def steps_per_iteration(self) -> int:
        per_epoch = -(-self.train.prompts_per_iteration // self.minibatch_prompts)
        return per_epoch * self.epochs_per_iteration

    @property
    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")


class ConfigError(ValueError):
    """A config file that cannot be used; the message says what and where."""


def load_config(path: str | Path, overrides: Optional[dict] = None) -> RunConfig:
    """Load and validate a YAML config. Relative data/model paths resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    _resolve_paths(raw, path.parent)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid config"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def _set_dotted(raw: dict, dotted: str, value: object) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _resolve_paths(raw: dict, base: Path) -> None:
    for section in ("train", "eval"):
        ds = (raw.get("data") or {}).get(section)
        if isinstance(ds, dict) and isinstance(ds.get("path"), str):
            ds["path"] = _resolve(ds["path"], base)
    train = raw.get("train")
    if isinstance(train, dict) and isinstance(train.get("accelerate_config"), str):
        train["accelerate_config"] = _resolve(train["accelerate_config"], base)
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        p = _resolve(model["path"], base)
        model["path"] = p if Path(p).exists() else model["path"]  # keep hub names as given


def _resolve(p: str, base: Path) -> str:
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (base / q).resolve())
