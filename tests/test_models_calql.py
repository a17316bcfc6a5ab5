"""Cal-QL losses against numbers worked out by hand."""

import math

import pytest
import torch

from hume.models.calql import actor_loss, calql_critic_loss, td_target, temperature_loss, uniform_log_density


def test_td_target_bootstraps_only_where_the_episode_goes_on():
    reward = torch.tensor([0.0, 1.0, -1.0, 0.0])
    done = torch.tensor([0.0, 1.0, 0.0, 1.0])  # the last one: a failed episode's final step
    next_q = torch.tensor([[3.0, 4.0, 1.0, 7.0], [2.0, 5.0, 0.5, 6.0]], requires_grad=True)  # [E, B]
    target = td_target(reward, done, next_q, gamma=0.98)
    # min over critics: [2, 4, 0.5, 6]; done transitions keep their reward only. (With the reward
    # in the mask's place, as in the official code, the last one would bootstrap 0.98 * 6.)
    assert target.tolist() == pytest.approx([0.0 + 0.98 * 2.0, 1.0, -1.0 + 0.98 * 0.5, 0.0])
    assert not target.requires_grad


def test_td_target_with_entropy_backup():
    target = td_target(
        torch.tensor([0.5]),
        torch.tensor([0.0]),
        torch.tensor([[2.0], [3.0]]),
        gamma=0.9,
        next_log_prob=torch.tensor([-1.0]),
        temperature=0.1,
    )
    assert target.item() == pytest.approx(0.5 + 0.9 * (2.0 + 0.1))


def test_calql_critic_loss_hand_computed():
    q_data = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # [E=2, B=2]
    target = torch.tensor([1.96, 1.0])
    q_sampled = torch.tensor([[[0.0], [1.0]], [[2.0], [0.0]]])  # [E, B, Ns=1]
    q_policy = torch.tensor([[[-1.0], [3.0]], [[1.0], [-2.0]]])  # [E, B, Np=1]
    mc_return = torch.tensor([0.5, -1.0])
    out = calql_critic_loss(
        q_data, target, q_sampled, 0.0, q_policy, torch.zeros(2, 1), mc_return, cql_alpha=5.0
    )
    # TD: critic 0: ((1 - 1.96)^2 + (2 - 1)^2) / 2; critic 1: ((0 - 1.96)^2 + 0) / 2.
    td = (0.9216 + 1.0) / 2 + 3.8416 / 2
    # Policy Q clipped below by the return: critic 0 -> [0.5, 3], critic 1 -> [1, -1].
    c0 = (math.log(math.exp(0.0) + math.exp(0.5)) - 1.0) + (math.log(math.exp(1.0) + math.exp(3.0)) - 2.0)
    c1 = (math.log(math.exp(2.0) + math.exp(1.0)) - 0.0) + (math.log(math.exp(0.0) + math.exp(-1.0)) - 1.0)
    cql = 5.0 * (c0 / 2 + c1 / 2)
    assert out.td.item() == pytest.approx(td, rel=1e-5)
    assert out.cql.item() == pytest.approx(cql, rel=1e-5)
    assert out.loss.item() == pytest.approx(td + cql, rel=1e-5)
    assert out.calibrated.item() == pytest.approx(0.5)  # two of the four policy values were raised
    # Without the Monte-Carlo bound it is plain CQL: a different (smaller) regulariser.
    plain = calql_critic_loss(
        q_data, target, q_sampled, 0.0, q_policy, torch.zeros(2, 1), torch.full((2,), -math.inf)
    )
    assert plain.cql.item() < out.cql.item()


def test_calql_importance_weights_and_gradients():
    q_data = torch.tensor([[0.0]], requires_grad=True)
    q_sampled = torch.tensor([[[1.0, 2.0]]], requires_grad=True)
    q_policy = torch.tensor([[[0.0]]], requires_grad=True)
    log_density = uniform_log_density(2)  # = -2 log 2
    assert log_density == pytest.approx(-2 * math.log(2))
    out = calql_critic_loss(
        q_data,
        torch.tensor([0.0]),
        q_sampled,
        log_density,
        q_policy,
        torch.tensor([[-0.5]]),
        torch.tensor([-10.0]),
        cql_alpha=1.0,
        cql_temperature=2.0,
    )
    terms = [1.0 + 2 * math.log(2), 2.0 + 2 * math.log(2), 0.0 + 0.5]
    soft_max = 2.0 * math.log(sum(math.exp(v / 2.0) for v in terms))
    assert out.cql.item() == pytest.approx(soft_max, rel=1e-5)
    out.loss.backward()
    # d loss / d q_data = 2 (q - target) - alpha = -1; the OOD values share a softmax of weight 1.
    assert q_data.grad.item() == pytest.approx(-1.0)
    weights = [math.exp(v / 2.0) for v in terms]
    total = sum(weights)
    assert q_sampled.grad.flatten().tolist() == pytest.approx([weights[0] / total, weights[1] / total])
    assert q_policy.grad.item() == pytest.approx(weights[2] / total)


def test_clipped_policy_values_get_no_gradient():
    q_policy = torch.tensor([[[-3.0, 2.0]]], requires_grad=True)
    out = calql_critic_loss(
        torch.zeros(1, 1),
        torch.zeros(1),
        torch.zeros(1, 1, 0),
        0.0,
        q_policy,
        torch.zeros(1, 2),
        torch.tensor([0.0]),
    )
    out.loss.backward()
    assert q_policy.grad[0, 0, 0].item() == 0.0  # raised to the bound: a constant
    assert q_policy.grad[0, 0, 1].item() > 0.0


def test_actor_loss_hand_computed():
    q_policy = torch.tensor([[1.0, 3.0], [2.0, 0.0]], requires_grad=True)
    log_prob = torch.tensor([0.5, -1.0], requires_grad=True)
    alpha = torch.tensor(0.2, requires_grad=True)
    loss = actor_loss(q_policy, log_prob, alpha)
    # min over critics [1, 0]: mean(0.2 * 0.5 - 1, 0.2 * -1 - 0) = mean(-0.9, -0.2)
    assert loss.item() == pytest.approx(-0.55)
    loss.backward()
    assert alpha.grad is None  # the temperature is not trained by the actor
    assert log_prob.grad.tolist() == pytest.approx([0.1, 0.1])
    assert q_policy.grad.tolist() == [[-0.5, 0.0], [0.0, -0.5]]


def test_temperature_loss_hand_computed():
    log_alpha = torch.tensor(math.log(0.2), requires_grad=True)
    log_prob = torch.tensor([0.5, -1.0], requires_grad=True)
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-2.0)
    # -(log 0.2 * mean(0.5 - 2, -1 - 2)) = -(log 0.2 * -2.25)
    assert loss.item() == pytest.approx(math.log(0.2) * 2.25)
    loss.backward()
    # Entropy (mean -log pi = 0.25) is above the target (-2): descent lowers alpha.
    assert log_alpha.grad.item() == pytest.approx(2.25)
    assert log_prob.grad is None
