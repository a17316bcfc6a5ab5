"""The value-query head trained with Cal-QL: gradient routing and a toy problem it must solve."""

import dataclasses

import torch

from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.value_query_head import ValueQueryHead

CFG = ValueQueryHeadConfig(action_steps=2, critic_hidden=(64, 64), actor_hidden=(64, 64))
ACTION_DIM = 2
PREFIX_DIM = 16


def batch(seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    embs = torch.randn(b, 6, PREFIX_DIM, generator=g)
    mask = torch.ones(b, 6, dtype=torch.bool)
    actions = torch.rand(b, 4, ACTION_DIM, generator=g) * 2 - 1
    reward = torch.tensor([0.0, 1.0, 0.0, 1.0])[:b]
    done = torch.tensor([0.0, 1.0, 0.0, 1.0])[:b]
    return embs, mask, actions, reward, done, reward.clone(), torch.randn(b, 6, PREFIX_DIM, generator=g), mask


def grads(module):
    return {n: p.grad for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_each_loss_reaches_only_its_own_parameters():
    torch.manual_seed(0)
    head = ValueQueryHead(CFG, PREFIX_DIM, ACTION_DIM)
    for part in ("critic", "actor", "temperature"):
        head.zero_grad(set_to_none=True)
        losses = head.losses(*batch(), generator=torch.Generator().manual_seed(1))
        (losses.critic.loss if part == "critic" else getattr(losses, part)).backward()
        reached = {name.split(".")[0] for name in grads(head)}
        expected = {
            "critic": {"input_proj", "query", "encoder", "critics"},
            "actor": {"actor"},
            "temperature": {"log_alpha"},
        }[part]
        assert reached == expected, part
    assert all(not p.requires_grad for p in head.target_critics.parameters())
    assert all(p.requires_grad for p in head.critics.parameters())  # unfrozen after the actor loss


def test_learns_to_prefer_the_rewarded_candidate():
    """One state, two chunks in the data: one ends the episode with success (reward 1), the
    other with failure (reward 0). After training, selection must pick the successful one."""
    torch.manual_seed(0)
    head = ValueQueryHead(dataclasses.replace(CFG, tau=0.05), PREFIX_DIM, ACTION_DIM)
    g = torch.Generator().manual_seed(0)
    embs = torch.randn(1, 6, PREFIX_DIM, generator=g).expand(2, -1, -1)
    mask = torch.ones(2, 6, dtype=torch.bool)
    good, bad = torch.full((4, ACTION_DIM), 0.5), torch.full((4, ACTION_DIM), -0.5)
    actions = torch.stack([good, bad])
    reward = torch.tensor([1.0, 0.0])
    done = torch.ones(2)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(150):
        losses = head.losses(embs, mask, actions, reward, done, reward, embs, mask, generator=g)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
        head.update_targets()
    with torch.no_grad():
        values = head(embs[:1], mask[:1], torch.stack([bad, good])[None], target=True).min(dim=0).values
    assert values.argmax().item() == 1
    assert values[0, 1] - values[0, 0] > 0.2


def test_monte_carlo_target_regresses_on_the_return_without_the_targets_or_the_actor():
    torch.manual_seed(0)
    head = ValueQueryHead(CFG, PREFIX_DIM, ACTION_DIM)
    embs, mask, actions, reward, done, _, next_embs, next_mask = batch()
    mc_return = torch.tensor([0.3, 1.0, 0.0, 0.9])
    with torch.no_grad():  # any use of the target critics would now show as NaN
        for p in head.target_critics.parameters():
            p.fill_(float("nan"))
    args = (embs, mask, actions, reward, done, mc_return, next_embs, next_mask)
    losses = head.losses(*args, generator=torch.Generator().manual_seed(1), bootstrap=False)
    expected = (losses.critic.q_data - mc_return[None]).pow(2).mean(dim=1).sum()
    assert torch.isfinite(losses.critic.td) and torch.allclose(losses.critic.td, expected)
    bootstrapped = head.losses(*args, generator=torch.Generator().manual_seed(1))
    assert torch.isnan(bootstrapped.critic.td)
