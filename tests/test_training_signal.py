"""The trainer scores exactly what the rollout sampled (issue 10), checked against oracles
that do not use the trainer's own bookkeeping: a plain forward over the sequence as it was
sampled (x ⊕ y1 ⊕ stop1, x ⊕ y1 ⊕ B ⊕ y2 ⊕ stop2), the rollout's recorded behaviour
log-probabilities, and the arithmetic of the importance ratio."""
import copy
import dataclasses
import math
import random

import pytest
import torch

from score_core.generation.rollout import prompt_ids, rollout_two_attempts
from score_core.schema import Episode
from score_core.method.plan import Iteration
from score_core.method.trainer import Hyper, collate, episode_advantages, rl_minibatches, train_on_episodes

STAGE2 = Iteration("stage2", "stage2", alpha=10.0, beta1=0.01)

def _seq_logp(model, context, continuation, temperature=1.0):
    """Oracle: Σ log softmax(z/T) of `continuation` after `context`, one plain forward."""
    ids = torch.tensor([list(context) + list(continuation)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    logp = torch.log_softmax(logits, -1)
    n = len(context)
    return [float(logp[n - 1 + t, tok]) for t, tok in enumerate(continuation)]


def _trainer_logp(model, tok, problems, eps, temperature=1.0):
    """The trainer's per-attempt sums Σ mask_i · log π(target) of `collate`d episodes."""
    from score_core.method.losses import token_logprobs

    batch = collate(tok, {p.problem_id: p for p in problems}, eps)
    targets = batch.get("targets", batch["input_ids"][:, 1:])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = torch.log_softmax(logits[:, :-1].float() / temperature, -1).gather(-1, targets.unsqueeze(-1))[..., 0]
    return (logp * batch["mask_1"]).sum(1), (logp * batch["mask_2"]).sum(1), token_logprobs


def _episode(problem, y1, y2, stop1, stop2, eos=None):
    """An episode; stop ids equal to `eos` are left unrecorded (the tokenizer's EOS is implied),
    so the same test also runs against traces without stop columns."""
    stops = {f"stop{i}_id": s for i, s in ((1, stop1), (2, stop2)) if s is not None and s != eos}
    return Episode("r", "stage2", 1, problem.problem_id, 0, "", "", y1_ids=tuple(y1), y2_ids=tuple(y2),
                   truncated1=stop1 is None, truncated2=stop2 is None, tokens1=len(y1), tokens2=len(y2), **stops)


def test_attempt1_stop_token_is_a_target(tiny, problems):
    """Σ log π over y1 includes log π(stop | x, y1): the stop decides `x=1` vs `x=13`."""
    model, tok = tiny
    p = problems[0]
    x, suffix = prompt_ids(tok, p)
    y1, y2 = tok("x=1", add_special_tokens=False)["input_ids"], tok("x=13", add_special_tokens=False)["input_ids"]
    ep = _episode(p, y1, y2, tok.eos_token_id, tok.eos_token_id, eos=tok.eos_token_id)
    got_1, got_2, _ = _trainer_logp(model, tok, problems, [ep])
    want_1 = sum(_seq_logp(model, x, y1 + [tok.eos_token_id]))  # the sequence as sampled: y1 then its stop
    want_2 = sum(_seq_logp(model, x + y1 + suffix, y2 + [tok.eos_token_id]))
    assert float(got_1[0]) == pytest.approx(want_1, abs=1e-4)
    assert float(got_2[0]) == pytest.approx(want_2, abs=1e-4)
    # a truncated y1 has no stop target
    trunc = _episode(p, y1, y2, None, tok.eos_token_id, eos=tok.eos_token_id)
    got_t, _, _ = _trainer_logp(model, tok, problems, [trunc])
    assert float(got_t[0]) == pytest.approx(sum(_seq_logp(model, x, y1)), abs=1e-4)


def test_the_sampled_stop_id_is_trained_not_the_tokenizer_eos(tiny, problems):
    """A model with two end ids (Qwen: <|im_end|>, <|endoftext|>) is trained on the one it sampled."""
    model, tok = tiny
    p = problems[1]
    x, suffix = prompt_ids(tok, p)
    other_end = tok.convert_tokens_to_ids("<retry>")  # stands in for a second end id
    assert other_end != tok.eos_token_id
    y1, y2 = tok("x=2", add_special_tokens=False)["input_ids"], tok("x=3", add_special_tokens=False)["input_ids"]
    ep = _episode(p, y1, y2, other_end, other_end)
    got_1, got_2, _ = _trainer_logp(model, tok, problems, [ep])
    assert float(got_1[0]) == pytest.approx(sum(_seq_logp(model, x, y1 + [other_end])), abs=1e-4)
    assert float(got_2[0]) == pytest.approx(sum(_seq_logp(model, x + y1 + suffix, y2 + [other_end])), abs=1e-4)


def _hp(**kw):
    base = dict(lr=1e-3, minibatch_prompts=3, micro_batch_episodes=4,
                epochs=1, max_grad_norm=1.0, seed=0)
    return Hyper(**{**base, **kw})


def _train(policy, ref, tok, problems, eps, hp, progress=None):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    opt = torch.optim.Adam(policy.parameters(), lr=hp.lr)
    policy, opt = acc.prepare(policy, opt)
    return train_on_episodes(policy, ref, tok, opt, acc, eps, {p.problem_id: p for p in problems}, STAGE2, hp,
                             progress=progress)


def _graded_rollout(model, tok, problems, temperature, seed=0):
    eps = rollout_two_attempts(model, tok, problems, k=2, temperature=temperature, max_new_tokens=8, batch_size=5,
                               run_id="r", stage="stage2", iteration=1, seed=seed)
    rng = random.Random(seed)
    return [dataclasses.replace(e, reward1=float(rng.random() < 0.5), reward2=float(rng.random() < 0.5)) for e in eps]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_first_minibatch_logprobs_match_the_rollouts(tiny, problems, temperature, caplog):
    """The rollout/trainer mismatch check: at θ = the sampler, |Δ log p| is float rounding."""
    model, tok = tiny
    eps = _graded_rollout(model, tok, problems, temperature)
    assert all(len(e.logp1) == e.tokens1 + (not e.truncated1) for e in eps)
    assert any(not e.truncated1 for e in eps) and any(e.truncated1 for e in eps)  # both kinds of y1
    policy = copy.deepcopy(model)
    hist = _train(policy, model, tok, problems, eps, _hp(temperature=temperature, lr=1e-6))
    first = hist[0]
    groups, _, _ = episode_advantages(eps, STAGE2)
    step1 = rl_minibatches(groups, 3, 1, random.Random(0))[0]
    assert first["behaviour_tokens"] == sum(len(eps[i].logp1) + len(eps[i].logp2) for i in step1) > 0
    assert first["logp_absdiff_max"] < 1e-4, first
    assert first["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    if temperature != 1.0:  # the old trainer scored T = 0.5 samples at T = 1: far off-policy
        with caplog.at_level("WARNING", logger="score.trainer"):
            stale = _train(copy.deepcopy(model), model, tok, problems, eps, _hp(temperature=1.0, lr=1e-6))
        assert stale[0]["logp_absdiff_mean"] > 0.05
        assert "ROLLOUT/TRAINER MISMATCH" in caplog.text  # loudly
    else:
        assert "MISMATCH" not in caplog.text


def test_later_minibatch_ratios_match_an_independent_recomputation(tiny, problems):
    """Step 2's logged ratio statistics equal ρ = π_θ1/μ recomputed by plain forwards
    of each sampled sequence under the weights after step 1."""
    model, tok = tiny
    eps = _graded_rollout(model, tok, problems, 1.0, seed=3)
    policy = copy.deepcopy(model)
    snapshots = []
    hp = _hp(lr=3e-2, minibatch_prompts=3, correction="clip")
    hist = _train(policy, model, tok, problems, eps, hp,
                  progress=lambda n: snapshots.append(copy.deepcopy(policy.state_dict())))
    assert len(hist) == 2
    groups, _, _ = episode_advantages(eps, STAGE2)
    step2 = rl_minibatches(groups, hp.minibatch_prompts, hp.epochs, random.Random(hp.seed))[1]
    after1 = copy.deepcopy(model)
    after1.load_state_dict(snapshots[0])
    by_id = {p.problem_id: p for p in problems}
    log_ratios, seq_out, n_seq = [], 0, 0
    for i in step2:
        e = eps[i]
        x, suffix = prompt_ids(tok, by_id[e.problem_id])
        for ctx, ids, stop, mu in ((x, list(e.y1_ids), e.stop1_id, e.logp1),
                                   (x + list(e.y1_ids) + suffix, list(e.y2_ids), e.stop2_id, e.logp2)):
            cont = ids + ([] if stop is None else [stop])
            if not cont:
                continue
            lr_ = [a - b for a, b in zip(_seq_logp(after1, ctx, cont), mu)]
            log_ratios += lr_
            n_seq += 1
            seq_out += abs(sum(lr_)) > math.log(2)
    ratios = [math.exp(v) for v in log_ratios]
    s = hist[1]
    assert s["behaviour_tokens"] == len(ratios)
    assert s["ratio_mean"] == pytest.approx(sum(ratios) / len(ratios), rel=1e-4)
    assert s["ratio_max"] == pytest.approx(max(ratios), rel=1e-4)
    assert s["clip_frac"] == pytest.approx(sum(abs(r - 1) > hp.clip_eps for r in ratios) / len(ratios), abs=1e-9)
    assert s["seq_ratio_out_frac"] == pytest.approx(seq_out / n_seq, abs=1e-9)
    assert abs(s["ratio_mean"] - 1) > 1e-3  # the policy did move: the second step is off-policy


def test_strict_on_policy_takes_one_step_per_rollout_batch():
    from score_core.config import load_config
    from score_core.steps.train import hyper as _hyper

    cfg = load_config("configs/demo.yaml", {"train.strict_on_policy": True})
    assert cfg.steps_per_iteration == 1
    hp = _hyper(cfg, 1)
    assert hp.minibatch_prompts == cfg.train.prompts_per_iteration and hp.epochs == 1
    loose = load_config("configs/demo.yaml")
    assert loose.steps_per_iteration > 1 and _hyper(loose, 1).correction == "clip"
