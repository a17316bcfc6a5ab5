"""Value-query head: state feature over the detached prefix, independent critics, target selection."""

import math

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.value_query_head import ValueQueryHead

CFG = ValueQueryHeadConfig()
PREFIX_DIM = 48
ACTION_DIM = 7


@pytest.fixture()
def head():
    torch.manual_seed(0)
    return ValueQueryHead(CFG, prefix_dim=PREFIX_DIM, action_dim=ACTION_DIM)


def prefix(batch=2, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    embs = torch.randn(batch, length, PREFIX_DIM, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 9:] = False  # sample 1 has 3 padding tokens
    return embs, mask


def candidates(batch=2, n=5, horizon=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, horizon, ACTION_DIM, generator=g)


def test_forward_shape_and_critics_are_independent(head):
    embs, mask = prefix()
    q = head(embs, mask, candidates())
    assert q.shape == (CFG.num_critics, 2, 5)
    assert not torch.allclose(q[0], q[1])
    # No parameter is shared between critics (the official code shares the output layer).
    ptrs = [{p.data_ptr() for p in c.parameters()} for c in head.critics]
    assert not ptrs[0] & ptrs[1]
    with torch.no_grad():
        head.critics[1][-1].bias.add_(1.0)
    q2 = head(embs, mask, candidates())
    torch.testing.assert_close(q2[0], q[0])
    torch.testing.assert_close(q2[1], q[1] + 1.0)


def test_only_the_first_k_actions_matter(head):
    embs, mask = prefix()
    acts = candidates()
    changed = acts.clone()
    changed[:, :, CFG.action_steps :] += 5.0
    torch.testing.assert_close(head(embs, mask, changed), head(embs, mask, acts))
    changed[:, :, CFG.action_steps - 1] += 1.0
    assert not torch.allclose(head(embs, mask, changed), head(embs, mask, acts))


def test_prefix_is_detached_and_padding_is_ignored(head):
    embs, mask = prefix()
    embs.requires_grad_(True)
    q = head(embs, mask, candidates())
    q.sum().backward()
    assert embs.grad is None
    assert head.query.grad is not None and head.query.grad.abs().sum() > 0
    assert head.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        garbage = embs.detach().clone()
        garbage[1, 9:] = 100.0
        torch.testing.assert_close(head.state_feature(garbage, mask), head.state_feature(embs.detach(), mask))


def test_target_critics_score_apart_from_the_online_ones(head):
    embs, mask = prefix()
    acts = candidates()
    with torch.no_grad():
        before = head(embs, mask, acts, target=True)
        # Make online and target critics disagree: the targets (what selection reads) stay put.
        for p in head.critics.parameters():
            p.add_(torch.randn_like(p))
        target_q = head(embs, mask, acts, target=True)
        online = head(embs, mask, acts)
    assert target_q.shape == (2, 2, 5)
    torch.testing.assert_close(target_q, before)
    assert not torch.allclose(online, target_q)


def test_polyak_update(head):
    with torch.no_grad():
        for p in head.critics.parameters():
            p.add_(1.0)
    before = [p.clone() for p in head.target_critics.parameters()]
    online = [p.clone() for p in head.critics.parameters()]
    head.update_targets()
    for b, o, t in zip(before, online, head.target_critics.parameters(), strict=True):
        torch.testing.assert_close(t, 0.995 * b + 0.005 * o)
        assert not t.requires_grad
    head.update_targets(tau=1.0)
    for o, t in zip(online, head.target_critics.parameters(), strict=True):
        torch.testing.assert_close(t, o)


def test_actor_log_prob_has_the_tanh_correction(head):
    embs, mask = prefix()
    with torch.no_grad():
        feature = head.state_feature(embs, mask)
    g = torch.Generator().manual_seed(3)
    actions, log_prob = head.act(feature, num_samples=4, generator=g)
    assert actions.shape == (2, 4, CFG.action_steps, ACTION_DIM) and log_prob.shape == (2, 4)
    assert actions.abs().max() < 1.0
    mean, log_std = head.actor.net(feature).chunk(2, dim=-1)
    std = log_std.clamp(CFG.log_std_min, CFG.log_std_max).exp()
    reference = TransformedDistribution(Normal(mean[:, None], std[:, None]), [TanhTransform()])
    expected = reference.log_prob(actions.flatten(2).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)
    det, _ = head.act(feature, deterministic=True)
    torch.testing.assert_close(det.flatten(2)[:, 0], torch.tanh(mean))


def test_temperature_and_errors(head):
    assert math.isclose(head.temperature.item(), CFG.init_temperature, rel_tol=1e-6)
    embs, mask = prefix()
    with pytest.raises(ValueError, match="width 48"):
        head(torch.randn(2, 12, 32), mask, candidates())
    with pytest.raises(ValueError, match="candidate actions"):
        head(embs, mask, candidates(horizon=CFG.action_steps - 1))


def test_full_config_builds_on_meta_device():
    full = ValueQueryHeadConfig(
        width=2048,
        num_layers=4,
        num_heads=8,
        head_dim=256,
        intermediate_size=4096,
        action_steps=10,
    )
    with torch.device("meta"):
        model = ValueQueryHead(full, prefix_dim=2048, action_dim=7)
    n = sum(p.numel() for p in model.parameters())
    assert 4 * 2048 * 4096 * 3 < n < 1e9
    # The critics score the robot's 7 real action dims over 10 steps, not padded ones.
    assert model.critics[0][0].in_features == 2048 + 10 * 7


def test_runs_in_bfloat16(head):
    embs, mask = prefix()
    with torch.no_grad():
        q = head.to(torch.bfloat16)(embs, mask, candidates(), target=True)
    assert q.dtype == torch.bfloat16 and torch.isfinite(q).all() and q.shape == (2, 2, 5)
