"""`model.dtype: bfloat16` learns (issue 10, item 3): bf16 compute, float32 master weights.

The oracle is the optimizer's own arithmetic, not the trainer's bookkeeping: on the first
Adam step the bias-corrected m̂/√v̂ is g/|g|, so every element moves by lr·g/(|g|+eps) —
|Δw| = lr wherever |g| ≫ eps — which float32 master weights show and bf16 weights (half
a ULP of a weight of magnitude ~0.02 is ~4e-5 > lr 1e-5) round away. Ten steps of the real
`steps.train_step` at lr 1e-5 must move essentially every trainable element, in memory and
in the checkpoint reloaded from disk. On the pre-fix code (98cc54f: bf16 parameters and
bf16 Adam state) full fine-tuning moved 15.6% of the elements at the first step and 15.1%
after 10 (bf16 checkpoint) and fails here; its LoRA adapter was already float32 (peft
upcasts adapters of a bf16 base) and passes.
"""
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from score_core.method.plan import Iteration
from score_core.steps import train as steps
from score_core.config import DebugBaseConfig, RunConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.generation.models import load_model
from score_core.generation.rollout import rollout_two_attempts
from score_core.schema import write_episodes, write_problems
from score_core.problems.synthetic import make_problems

LR, STEPS, EPS = 1e-5, 10, 1e-8
SMALL = DebugBaseConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """AcceleratorState is process-wide and refuses a second mixed_precision: other tests
    build fp32 Accelerators in the same process."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """A small random debug Llama saved as the base (float32 on disk), 10 problems, and two
    sampled episodes per problem with rewards that give every group a non-zero advantage."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("precision")
    tok = build_tokenizer()
    model = build_model(SMALL, tok)
    base = root / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    problems = make_problems("synth_linear", STEPS, 0, "train")
    write_problems(problems, root / "problems.parquet")
    eps = rollout_two_attempts(model.eval(), tok, problems, k=2, temperature=1.0, max_new_tokens=8, batch_size=32,
                               run_id="r", stage="stage2", iteration=1, seed=0)
    eps = [dataclasses.replace(e, reward1=float(e.sample_index), reward2=float(1 - e.sample_index),
                               reward_status1="ok", reward_status2="ok") for e in eps]
    write_episodes(eps, root / "traces.parquet")
    return root


def _cfg(base: Path, lora: bool) -> RunConfig:
    return RunConfig.model_validate({
        "name": "precision",
        "data": {"train": {"source": "synth_linear", "split": "train", "n": STEPS},
                 "eval": {"source": "synth_linear", "split": "eval", "n": 4}},
        "model": {"path": str(base), "dtype": "bfloat16", "lora": lora, "lora_rank": 4, "lora_alpha": 8},
        "rollout": {"k": 2, "max_new_tokens": 8},
        # one prompt (k = 2 episodes) per optimizer step: 10 Adam steps in one iteration
        "train": {"schedule": ["stage2"], "prompts_per_iteration": STEPS, "minibatch_prompts": 1, "lr": LR,
                  "micro_batch_episodes": 2},
    })


class _Probe:
    """Hooks on the real training path: the policy `_policy_and_reference` built, the
    parameters and gradients around Adam's first step, the dtype of every nn.Linear output."""

    def __init__(self, monkeypatch):
        self.policy, self.before, self.grads, self.after = None, None, None, None
        self.n_steps, self.linear_dtypes, self.autocast_seen = 0, set(), set()
        real = steps._policy_and_reference

        def spy(*a, **kw):
            policy, ref = real(*a, **kw)
            self.policy, self.ref = policy, ref
            self.init = {n: p.detach().float().clone() for n, p in policy.named_parameters() if p.requires_grad}
            self.param_dtypes = {p.dtype for p in policy.parameters() if p.requires_grad}
            return policy, ref

        monkeypatch.setattr(steps, "_policy_and_reference", spy)

    def _pre(self, opt, args, kwargs):
        self.n_steps += 1
        if self.n_steps == 1:
            params = [p for g in opt.param_groups for p in g["params"]]
            self.before = [p.detach().clone() for p in params]
            self.grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]

    def _post(self, opt, args, kwargs):
        if self.n_steps == 1:
            self.after = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
            self.state_dtypes = {v.dtype for s in opt.state.values() for k, v in s.items() if k != "step"}

    def _forward(self, module, inputs, output):
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            self.linear_dtypes.add(output.dtype)
            self.autocast_seen.add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self.handles = [register_optimizer_step_pre_hook(self._pre), register_optimizer_step_post_hook(self._post),
                        register_module_forward_hook(self._forward)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _fraction_changed(init: dict, final: dict) -> float:
    changed = sum(int((final[n].float() != init[n]).sum()) for n in init)
    return changed / sum(t.numel() for t in init.values())


def _saved_trainable(ckpt: Path, names, lora: bool) -> dict:
    """The trainable tensors as written to disk, keyed like `named_parameters()`."""
    if lora:
        disk = load_file(ckpt / "adapter_model.safetensors")
        return {n: disk[n.replace(".default.", ".")] for n in names}
    disk = load_file(ckpt / "model.safetensors")
    return {n: disk[n] for n in names if n in disk}  # tied lm_head.weight is saved once, as the embedding


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_bf16_config_learns_with_fp32_master_weights(run_inputs, tmp_path, monkeypatch, lora):
    torch.set_num_threads(1)
    root = run_inputs
    cfg = _cfg(root / "base", lora)
    assert cfg.steps_per_iteration == STEPS
    ckpt = tmp_path / "it1"
    with _Probe(monkeypatch) as probe:
        out = steps.train_step(cfg, str(root / "base"), str(root / "base"), str(root / "traces.parquet"),
                               str(root / "problems.parquet"),
                               Iteration("stage2", "stage2", alpha=cfg.train.alpha, beta1=cfg.train.beta1),
                               str(ckpt), 1)
    assert out["steps"] == STEPS == probe.n_steps and out["nan_skipped"] == 0

    # oracle, first Adam step: Δw = -lr·g/(|g|+eps) element by element (m̂ = g, √v̂ = |g|)
    dw = torch.cat([(a.float() - b.float()).flatten() for a, b in zip(probe.after, probe.before)])
    g = torch.cat([x.float().flatten() for x in probe.grads])
    w = torch.cat([b.float().flatten() for b in probe.before])
    expected = -LR * g / (g.abs() + EPS)
    ulp = torch.finfo(torch.float32).eps * w.abs().clamp_min(LR)  # rounding of w + Δw in float32
    assert ((dw - expected).abs() <= 1e-3 * LR + 2 * ulp).all(), float((dw - expected).abs().max())
    assert (dw[g != 0] != 0).all()  # every element with a gradient moved
    strong = g.abs() > 100 * EPS  # m̂/√v̂ = ±1 to 1%: |Δw| = lr
    assert ((dw[strong].abs() - LR).abs() <= 1e-2 * LR + 2 * ulp[strong]).all()
    if not lora:  # (LoRA's A gets no gradient while B is still 0)
        assert strong.float().mean() > 0.99, float(strong.float().mean())
    else:
        assert strong.float().mean() > 0.4, float(strong.float().mean())

    # after 10 steps: essentially every trainable element moved, in memory and on disk (float32)
    final = {n: p.detach() for n, p in probe.policy.named_parameters() if p.requires_grad}
    frac_mem = _fraction_changed(probe.init, final)
    saved = _saved_trainable(ckpt, list(probe.init), lora)
    frac_disk = _fraction_changed({n: probe.init[n] for n in saved}, saved)
    print(f"\n[{'lora' if lora else 'full'}] fraction of trainable elements changed after {STEPS} steps "
          f"at lr {LR:g}: in memory {frac_mem:.4f}, checkpoint {frac_disk:.4f}")
    assert frac_mem >= 0.99 and frac_disk >= 0.99
    assert saved and {t.dtype for t in saved.values()} == {torch.float32}
    assert all(torch.equal(saved[n], final[n]) for n in saved)  # the checkpoint is the master weights

    # bf16 compute: accelerate autocasts on CPU, every Linear (policy and reference) ran in bf16
    assert probe.linear_dtypes == {torch.bfloat16}, probe.linear_dtypes
    assert probe.autocast_seen == {(True, torch.bfloat16)}
    # fp32 master weights and fp32 Adam moments
    assert probe.param_dtypes == {torch.float32} and probe.state_dtypes == {torch.float32}
    if not lora:  # fp32 reference under the same autocast: π_θ = π_ref exactly before the first update
        assert {p.dtype for p in probe.ref.parameters()} == {torch.float32}
        first = json.loads(Path(str(ckpt) + ".history.json").read_text())[0]
        assert first["kl_t1"] == 0.0 and first["kl_t2"] == 0.0
    else:  # the frozen base stays bf16; only the adapter is trained
        frozen = {p.dtype for p in probe.policy.parameters() if not p.requires_grad}
        assert frozen == {torch.bfloat16}
    opt_state = torch.load(ckpt / "optimizer.pt", weights_only=True)["state"]
    assert {v.dtype for s in opt_state.values() for k, v in s.items() if k != "step"} == {torch.float32}

    # next iteration: training resumes from the fp32 checkpoint in fp32, the rollout loads it in bf16
    resumed = load_model(str(ckpt), "bfloat16", trainable=True)
    assert {p.dtype for p in resumed.parameters() if p.requires_grad} == {torch.float32}
    assert all(torch.equal(p, final[n]) for n, p in resumed.named_parameters() if n in final)
    rollout = load_model(str(ckpt), "bfloat16")  # (peft keeps an adapter float32 on a bf16 base)
    assert {p.dtype for n, p in rollout.named_parameters() if "lora_" not in n} == {torch.bfloat16}


def test_explicit_precision_wins_over_accelerate_launch_env(run_inputs, monkeypatch):
    """`accelerate launch --mixed_precision no` (launch_train's default flags) sets this env
    var; the config's bf16 must still autocast in the launched processes."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    built = steps.build_training(_cfg(run_inputs / "base", False), str(run_inputs / "base"), str(run_inputs / "base"))
    assert built.accelerator.mixed_precision == "bf16" and built.accelerator.native_amp
    assert {p.dtype for p in built.policy.parameters()} == {torch.float32}
