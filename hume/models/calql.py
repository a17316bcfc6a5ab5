"""Cal-QL losses for the value-query head: pure functions of Q-values and log-probs, no I/O.

Shapes: E critics, B states, N actions per state. Cal-QL = SAC-style TD learning plus the CQL
regulariser, in which the Q-values of policy actions are clipped below by the Monte-Carlo return
(the "calibration": the critic is never pushed below the value the data actually achieved).

Unlike the official code: the done mask (not the reward) gates the bootstrap, the Monte-Carlo
return is a real discounted return-to-go (computed in hume/data), and the critics are independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def td_target(
    reward: Tensor,
    done: Tensor,
    next_q: Tensor,
    gamma: float = 0.98,
    next_log_prob: Tensor | None = None,
    temperature: float | Tensor = 0.0,
) -> Tensor:
    """r + gamma * (1 - done) * (min_E Q_target(s', a') - temperature * log pi(a' | s')).

    reward [B], done [B] (1 where the episode ended with this transition: nothing to bootstrap),
    next_q [E, B]: the target critics at the next state and a policy action. The entropy term is
    added only when next_log_prob [B] is given (Cal-QL's default backs up Q alone). Returns a
    detached target [B].
    """
    next_value = next_q.min(dim=0).values
    if next_log_prob is not None:
        next_value = next_value - temperature * next_log_prob
    return (reward + gamma * (1.0 - done.to(reward.dtype)) * next_value).detach()


@dataclass
class CriticLoss:
    loss: Tensor  # td + cql, what the optimiser minimises
    td: Tensor  # summed over critics of the batch-mean squared TD error
    cql: Tensor  # cql_alpha * summed over critics of the batch-mean (logsumexp - Q(data))
    calibrated: Tensor  # fraction of policy-action Q-values raised to the Monte-Carlo return
    q_data: Tensor  # [E, B] the critics at the dataset actions, detached (for statistics)


def calql_critic_loss(
    q_data: Tensor,
    target: Tensor,
    q_sampled: Tensor,
    sampled_log_density: Tensor | float,
    q_policy: Tensor,
    policy_log_prob: Tensor,
    mc_return: Tensor,
    cql_alpha: float = 5.0,
    cql_temperature: float = 1.0,
) -> CriticLoss:
    """Cal-QL critic loss.

    q_data [E, B]: critics at the dataset actions; target [B] from `td_target`.
    q_sampled [E, B, Ns]: critics at actions from a proposal (e.g. uniform in [-1, 1]) whose
    log-density is sampled_log_density ([B, Ns] or a number).
    q_policy [E, B, Np]: critics at actions of the current policy (at this state and, as in CQL,
    at the next state), with their log-probs policy_log_prob [B, Np].
    mc_return [B]: Monte-Carlo return-to-go of the dataset state, the lower bound for q_policy.

    The regulariser is CQL's importance-sampled soft maximum over out-of-distribution actions
    minus Q at the data: it pushes down Q where the data has no support, but (Cal-QL) never the
    Q of policy actions below the return the data achieved.
    """
    td = (q_data - target.detach()[None]).pow(2).mean(dim=1).sum()
    bound = mc_return.detach()[None, :, None]
    calibrated = (q_policy < bound).float().mean()
    q_policy = torch.maximum(q_policy, bound)
    log_density = torch.as_tensor(sampled_log_density, dtype=q_sampled.dtype, device=q_sampled.device)
    ood = torch.cat([q_sampled - log_density, q_policy - policy_log_prob.detach()], dim=-1)
    soft_max = cql_temperature * torch.logsumexp(ood / cql_temperature, dim=-1)
    cql = cql_alpha * (soft_max - q_data).mean(dim=1).sum()
    return CriticLoss(loss=td + cql, td=td, cql=cql, calibrated=calibrated, q_data=q_data.detach())


def actor_loss(q_policy: Tensor, log_prob: Tensor, temperature: float | Tensor) -> Tensor:
    """SAC actor loss: mean(temperature * log pi(a|s) - min_E Q(s, a)), a ~ pi reparameterised.

    q_policy [E, B, ...], log_prob [B, ...]. The temperature is a constant here (detached)."""
    temperature = torch.as_tensor(temperature, dtype=log_prob.dtype, device=log_prob.device).detach()
    return (temperature * log_prob - q_policy.min(dim=0).values).mean()


def temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """SAC temperature loss: -mean(log_alpha * (log pi + target_entropy)); alpha falls when the
    policy's entropy (-log pi) is above the target and rises when below."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def uniform_log_density(action_dim: int) -> float:
    """log-density of the uniform distribution on [-1, 1]^action_dim (CQL's random actions)."""
    return -action_dim * math.log(2.0)
