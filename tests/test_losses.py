"""Hand-computed values for every SCoRe loss and reward-shaping function."""
import math

import pytest
import torch

from score_core.method.losses import rloo_advantages, score_loss, shaped_rewards, token_kl, token_logprobs
from score_core.method.trainer import episode_advantages
from score_core.schema import Episode


def test_shaping_effective_y2_rewards_alpha_10():
    r1 = torch.tensor([0.0, 1.0, 1.0, 0.0])  # i→c, c→c, c→i, i→i
    r2 = torch.tensor([1.0, 1.0, 0.0, 0.0])
    hat1, hat2 = shaped_rewards(r1, r2, alpha=10.0)
    assert hat2.tolist() == [11.0, 1.0, -10.0, 0.0]
    assert hat1.tolist() == r1.tolist()


def test_shaping_alpha_zero_is_plain_reward():
    r1, r2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert shaped_rewards(r1, r2, 0.0)[1].tolist() == [0.0, 1.0]


def test_rloo_hand_computed():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    adv = rloo_advantages(rewards, torch.ones_like(rewards, dtype=torch.bool))
    # sample 0: 1 − (0+0+1)/3 = 2/3; sample 1: 0 − (1+0+1)/3 = −2/3
    assert adv[0].tolist() == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])


def test_rloo_excludes_unknown_rewards():
    rewards = torch.tensor([[1.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    adv = rloo_advantages(rewards, valid)
    assert adv[0].tolist() == pytest.approx([1.0, -1.0, 0.0])  # the 5.0 is ignored
    assert adv[1].tolist() == [0.0, 0.0, 0.0]  # one valid sample: no baseline


def _rloo_loop(rewards, valid):
    out = torch.zeros_like(rewards)
    for p in range(rewards.shape[0]):
        idx = [j for j in range(rewards.shape[1]) if valid[p, j]]
        if len(idx) < 2:
            continue
        for i in idx:
            others = [rewards[p, j].item() for j in idx if j != i]
            out[p, i] = rewards[p, i] - sum(others) / len(others)
    return out


def test_rloo_loop_matches_vectorised():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (50, 6), generator=g).float() * 11 - 10 * torch.rand(50, 6, generator=g)
    valid = torch.rand(50, 6, generator=g) > 0.2
    assert torch.allclose(rloo_advantages(rewards, valid), _rloo_loop(rewards, valid), atol=1e-6)


def test_token_logprobs_and_kl_hand_computed():
    ids = torch.tensor([[0, 1]])
    logits = torch.log(torch.tensor([[[0.25, 0.75], [0.5, 0.5]]]))
    ref = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]))
    assert token_logprobs(logits, ids).item() == pytest.approx(math.log(0.75))
    full = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert token_kl(logits, ref, ids, "full").item() == pytest.approx(full, abs=1e-6)
    d = math.log(0.5) - math.log(0.75)
    assert token_kl(logits, ref, ids, "k3").item() == pytest.approx(math.exp(d) - d - 1, abs=1e-6)
    assert token_kl(logits, logits, ids, "full").abs().max() < 1e-7


def test_score_loss_hand_computed():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0]], requires_grad=True)
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    m1 = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    m2 = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    loss, stats = score_loss(logp, kl, m1, m2, torch.tensor([0.5]), torch.tensor([2.0]), beta1=0.1, beta2=1.0)
    # pg = −(0.5·(−3) + 2·(−7)) = 15.5; KL = 0.1·(0.3 + 0.7) + 1.0·0.3 = 0.4
    assert loss.item() == pytest.approx(15.9)
    assert stats["kl_t1"] == pytest.approx(0.3) and stats["kl_t2"] == pytest.approx(0.7)
    loss.backward()
    assert logp.grad.tolist() == [[-0.5, -0.5, -2.0, -2.0]]


def _ep(pid, s, r1, r2):
    return Episode("run", "stage", 1, pid, s, "a", "b", reward1=r1, reward2=r2)


def test_stage1_puts_no_policy_gradient_on_attempt_1():
    eps = [_ep("p", 0, 1.0, 0.0), _ep("p", 1, 0.0, 1.0), _ep("q", 0, 1.0, 1.0), _ep("q", 1, 0.0, 0.0)]
    _, adv_1, adv_2 = episode_advantages(eps, _it("stage1", 10.0))
    assert adv_1.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert adv_2.tolist() == [-1.0, 1.0, 1.0, -1.0]
    logp = torch.zeros(4, 4, requires_grad=True)
    m1 = torch.tensor([[1.0, 1.0, 0, 0]] * 4)
    loss, _ = score_loss(logp, torch.zeros(4, 4), m1, 1 - m1, adv_1, adv_2, beta1=0.0, beta2=0.0)
    loss.backward()
    assert (logp.grad * m1).abs().sum() == 0  # nothing reaches y1 tokens
    assert (logp.grad * (1 - m1)).abs().sum() > 0


def test_stage2_advantages_use_shaped_rewards():
    eps = [_ep("p", 0, 0.0, 1.0), _ep("p", 1, 1.0, 0.0)]
    _, adv_1, adv_2 = episode_advantages(eps, _it("stage2", 10.0))
    assert adv_1.tolist() == [-1.0, 1.0]
    assert adv_2.tolist() == [21.0, -21.0]  # 11 − (−10), −10 − 11


def test_unknown_r1_makes_shaped_r2_unknown():
    eps = [_ep("p", 0, None, 1.0), _ep("p", 1, 1.0, 0.0), _ep("p", 2, 0.0, 0.0)]
    _, adv_1, adv_2 = episode_advantages(eps, _it("stage2", 10.0))
    assert adv_1[0] == 0 and adv_2[0] == 0
    assert adv_2[1:].tolist() == pytest.approx([-10.0, 10.0])


def test_shape_checks():
    with pytest.raises(ValueError):
        shaped_rewards(torch.zeros(2), torch.zeros(3), 1.0)
    with pytest.raises(ValueError):
        rloo_advantages(torch.zeros(4), torch.ones(4, dtype=torch.bool))


def test_pg_objective_clip_hand_computed():
    from score_core.method.losses import pg_objective

    # ρ = [2, 1, 0.5, 0.5]; A = [+1, −1, +1, −1]; ε = 0.2
    logp = torch.log(torch.tensor([[0.5, 0.9, 0.1, 0.1]])).requires_grad_()
    mu = torch.log(torch.tensor([[0.25, 0.9, 0.2, 0.2]]))
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    j = pg_objective(logp, mu, adv, "clip", clip_eps=0.2)
    # min(2·1, 1.2·1) = 1.2 (clipped); −1; min(0.5, 0.8) = 0.5; min(−0.5, −0.8) = −0.8 (clipped)
    assert j.detach().tolist()[0] == pytest.approx([1.2, -1.0, 0.5, -0.8])
    j.sum().backward()
    # d/dlogp of ρ·A is ρ·A where unclipped, 0 where the clipped term is the minimum
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -1.0, 0.5, 0.0])


def test_pg_objective_truncate_and_none_hand_computed():
    from score_core.method.losses import pg_objective

    logp = torch.log(torch.tensor([[0.6, 0.1]])).requires_grad_()
    mu = torch.log(torch.tensor([[0.2, 0.2]]))  # ρ = [3, 0.5]
    adv = torch.tensor([[2.0, -1.0]])
    pg_objective(logp, mu, adv, "truncate", truncate_at=2.0).sum().backward()
    assert logp.grad.tolist()[0] == pytest.approx([2.0 * 2.0, 0.5 * -1.0])  # min(ρ, 2)·A
    logp.grad = None
    pg_objective(logp, mu, adv, "none").sum().backward()
    assert logp.grad.tolist()[0] == pytest.approx([2.0, -1.0])  # REINFORCE ignores μ
    with pytest.raises(ValueError):
        pg_objective(logp, mu, adv, "ppo")


def test_clipped_loss_equals_reinforce_gradient_on_policy():
    """At ρ = 1 (the first minibatch) every correction has REINFORCE's gradient."""
    g = torch.Generator().manual_seed(1)
    logp0 = -torch.rand(3, 5, generator=g)
    m1 = (torch.rand(3, 5, generator=g) > 0.5).float()
    m2 = 1 - m1
    a1, a2 = torch.randn(3, generator=g), torch.randn(3, generator=g)
    grads = []
    for corr in ("none", "clip", "truncate"):
        logp = logp0.clone().requires_grad_()
        loss, _ = score_loss(logp, torch.zeros(3, 5), m1, m2, a1, a2, 0.0, 0.0,
                             behaviour_logp=logp0.clone(), correction=corr)
        loss.backward()
        grads.append(logp.grad)
    expected = -(a1.unsqueeze(1) * m1 + a2.unsqueeze(1) * m2) / 3  # −mean_b A·∇Σ logp
    for g_ in grads:
        assert torch.allclose(g_, expected, atol=1e-6)


def test_ratio_stats_hand_computed():
    from score_core.method.losses import ratio_stats

    logp = torch.log(torch.tensor([[0.5, 0.9, 0.3]]))
    mu = torch.log(torch.tensor([[0.2, 0.9, 0.0001]]))  # ρ = [2.5, 1, (unknown)]
    known = torch.tensor([[1.0, 1.0, 0.0]])
    m1, m2 = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0]])
    s = ratio_stats(logp, mu, known, m1, m2, clip_eps=0.2)
    assert s["n_tok"] == 2 and s["n_seq"] == 2
    assert s["absdiff_sum"] == pytest.approx(math.log(2.5), abs=1e-6)
    assert s["absdiff_max"] == pytest.approx(math.log(2.5), abs=1e-6)
    assert s["ratio_sum"] == pytest.approx(3.5, abs=1e-5) and s["ratio_max"] == pytest.approx(2.5, abs=1e-5)
    assert s["clipped"] == 1  # only ρ = 2.5 lies outside [0.8, 1.2]
    assert s["seq_out"] == 1  # attempt 1's sequence ratio 2.5 > 2; attempt 2's is 1


def _it(objective, alpha):
    """The plan entry of `objective` (α only where Stage II reads it)."""
    from score_core.method.plan import Iteration

    return Iteration(objective, objective, alpha=alpha if objective == "stage2" else 0.0)
