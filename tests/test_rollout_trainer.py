"""Rollout and trainer on a tiny random debug model (seconds on a CPU)."""
import dataclasses
import math

import pytest
import torch

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.generation.prompts import render_turn1, render_turn2, turn2_suffix
from score_core.generation.decode import decode_turns
from score_core.generation.rollout import eos_ids, pad_id, episode_token_layout, rollout_two_attempts
from score_core.method.plan import Iteration
from score_core.method.trainer import Hyper, collate, train_on_episodes

TINY = DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


def test_turn2_context_is_turn1_then_attempt_then_instruction(problems, tiny):
    _, tok = tiny
    p = problems[0]
    assert render_turn2(p, "x=5", tok) == render_turn1(p, tok) + "x=5" + turn2_suffix(p, tok)
    assert "correct" not in turn2_suffix(p, tok).lower()  # no hint of correctness


def generate_ids(model, tok, prompts, max_new_tokens, temperature, batch_size):
    """One attempt per prompt through the engine (`decode_turns` with no second turn)."""
    out = decode_turns(model, prompts, None, max_new_tokens=max_new_tokens, temperature=temperature,
                       batch_size=batch_size, eos_ids=eos_ids(tok, model), pad_id=pad_id(tok))
    return [g[0] for g in out]


def test_greedy_batched_equals_one_by_one(tiny, problems):
    model, tok = tiny
    prompts = [tok(render_turn1(p, tok), add_special_tokens=False)["input_ids"] for p in problems]
    prompts[0] = prompts[0] + prompts[1][:3]  # unequal lengths → real left padding
    batched = generate_ids(model, tok, prompts, 10, 0.0, batch_size=8)
    single = [generate_ids(model, tok, [p], 10, 0.0, batch_size=1)[0] for p in prompts]
    assert [(g.ids, g.truncated, g.stop_id) for g in batched] == [(g.ids, g.truncated, g.stop_id) for g in single]
    for a, b in zip(batched, single):  # log-probs agree up to float rounding of padded batches
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_rollout_records_k_samples_tokens_and_truncation(tiny, problems):
    model, tok = tiny
    eps = rollout_two_attempts(model, tok, problems, k=3, temperature=1.0, max_new_tokens=5, batch_size=7,
                               run_id="r", stage="stage1", iteration=1, seed=0)
    assert len(eps) == 3 * len(problems)
    assert sorted({e.sample_index for e in eps}) == [0, 1, 2]
    by_id = {p.problem_id: p for p in problems}
    for e in eps:
        assert e.tokens1 == len(e.y1_ids) <= 5 and e.tokens2 == len(e.y2_ids) <= 5
        assert (not e.truncated1) or len(e.y1_ids) == 5
        assert e.prompt_tokens2 > e.prompt_tokens1 + e.tokens1
        ids, x_len, y1_end, y2_start, stop1 = episode_token_layout(tok, by_id[e.problem_id], e)
        assert stop1 == (None if e.truncated1 else (e.stop1_id if e.stop1_id is not None else tok.eos_token_id))
        assert ids[x_len:y1_end] == list(e.y1_ids)
        assert ids[y2_start:y2_start + len(e.y2_ids)] == list(e.y2_ids)
        assert len(ids[:y2_start]) == e.prompt_tokens2


def test_collate_masks_cover_exactly_the_attempt_tokens(tiny, problems):
    model, tok = tiny
    eps = rollout_two_attempts(model, tok, problems[:2], k=2, temperature=1.0, max_new_tokens=6, batch_size=8,
                               run_id="r", stage="stage2", iteration=1)
    batch = collate(tok, {p.problem_id: p for p in problems}, eps)
    for b, e in enumerate(eps):
        targets = batch["targets"][b]
        stop = lambda s: tok.eos_token_id if s is None else s  # noqa: E731
        y1 = list(e.y1_ids) + ([] if e.truncated1 else [stop(e.stop1_id)])  # y1's stop is a target too
        assert targets[batch["mask_1"][b].bool()].tolist() == y1
        y2 = list(e.y2_ids) + ([] if e.truncated2 else [stop(e.stop2_id)])
        assert targets[batch["mask_2"][b].bool()].tolist() == y2


def test_one_training_step_changes_parameters_and_logs_finite_reward(tiny, problems):
    from accelerate import Accelerator

    model, tok = tiny
    policy = build_model(TINY, tok)
    policy.load_state_dict(model.state_dict())
    eps = rollout_two_attempts(policy, tok, problems, k=2, temperature=1.0, max_new_tokens=6, batch_size=16,
                               run_id="r", stage="stage2", iteration=1)
    eps = [dataclasses.replace(e, reward1=float(i % 2), reward2=float(i % 3 == 0)) for i, e in enumerate(eps)]
    before = [p.detach().clone() for p in policy.parameters()]
    acc = Accelerator(cpu=True)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    policy, opt = acc.prepare(policy, opt)
    hp = Hyper(lr=1e-3, minibatch_prompts=len(problems), micro_batch_episodes=4, epochs=1, max_grad_norm=1.0)
    it = Iteration("stage2", "stage2", alpha=10.0, beta1=0.01)
    hist = train_on_episodes(policy, model, tok, opt, acc, eps, {p.problem_id: p for p in problems}, it, hp)
    assert len(hist) == 1 and math.isfinite(hist[0]["loss"]) and math.isfinite(hist[0]["reward2"])
    assert any((a - b).abs().max() > 0 for a, b in zip(before, policy.parameters()))
