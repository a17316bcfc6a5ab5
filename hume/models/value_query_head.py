"""Value-query head: scores System 2's candidate chunks with Q(state, first k actions).

A small Gemma reads the *detached* System-2 prefix embeddings (image + language tokens) plus one
learnable query token; the query token's output is the state feature. An ensemble of independent
critic MLPs maps [state feature, first k actions] to Q; target copies of the critics (Polyak
averaged) give the pessimistic score used for selection. A tanh-Gaussian actor and a learned
temperature make the SAC half of Cal-QL (losses in hume/models/calql.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hume.models.calql import (
    CriticLoss,
    actor_loss,
    calql_critic_loss,
    td_target,
    temperature_loss,
    uniform_log_density,
)
from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.gemma_stack import GemmaStack, gemma_config
from hume.models.joint_attention import block_attention_mask

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str = "relu") -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), ACTIVATIONS[activation]()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TanhGaussianActor(nn.Module):
    """pi(a | s) = tanh(N(mean(s), std(s))): bounded actions in [-1, 1] with a tractable log-prob."""

    def __init__(
        self, feature_dim: int, action_dim: int, hidden: tuple[int, ...], log_std_range, activation: str
    ):
        super().__init__()
        self.net = mlp(feature_dim, hidden, 2 * action_dim, activation)
        self.log_std_min, self.log_std_max = log_std_range

    def forward(
        self,
        feature: Tensor,
        num_samples: int = 1,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """feature [B, F] -> actions [B, n, D] (reparameterised) and their log-probs [B, n]."""
        mean, log_std = self.net(feature).chunk(2, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        mean = mean[:, None].expand(-1, num_samples, -1)
        log_std = log_std[:, None].expand(-1, num_samples, -1)
        std = log_std.exp()
        if deterministic:
            eps = torch.zeros_like(mean)
        else:
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        u = mean + std * eps
        gaussian = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # log |d tanh(u)/du| = log(1 - tanh(u)^2), written stably as 2 (log 2 - u - softplus(-2u)).
        log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return torch.tanh(u), (gaussian - log_det).sum(-1)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Use `module` as a constant: gradients flow through it to its inputs, never to its weights."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


@dataclass
class ValueHeadLosses:
    critic: CriticLoss  # trains the critics and the query encoder
    actor: Tensor  # trains the actor only
    temperature: Tensor  # trains log alpha only

    @property
    def total(self) -> Tensor:
        """One sum to backpropagate: each part reaches only its own parameters."""
        return self.critic.loss + self.actor + self.temperature


class ValueQueryHead(nn.Module):
    def __init__(self, config: ValueQueryHeadConfig, prefix_dim: int, action_dim: int):
        """prefix_dim: System 2's VLM width; action_dim: the robot's (unpadded) action width."""
        super().__init__()
        config.validate()
        self.config = config
        self.prefix_dim = prefix_dim
        self.action_dim = action_dim
        # width None: the head runs at the prefix's own width, with no projection into it.
        w = prefix_dim if config.width is None else config.width
        if config.width is not None:
            self.input_proj = nn.Linear(prefix_dim, w)
        self.query = nn.Parameter(torch.randn(w) * 0.02)
        self.encoder = GemmaStack(
            gemma_config(
                width=w,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                num_kv_heads=config.num_kv_heads,
                head_dim=config.head_dim,
                intermediate_size=config.intermediate_size,
            ),
            residual_from_norm=config.residual_from_norm,
        )
        critic_in = w + config.action_steps * action_dim
        # Independent MLPs, each with its own output layer (the official code shares one).
        self.critics = nn.ModuleList(
            mlp(critic_in, config.critic_hidden, 1, config.critic_activation)
            for _ in range(config.num_critics)
        )
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor = TanhGaussianActor(
            w,
            config.action_steps * action_dim,
            config.actor_hidden,
            (config.log_std_min, config.log_std_max),
            config.critic_activation,
        )
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))

    @property
    def temperature(self) -> Tensor:
        return self.log_alpha.exp()

    def state_feature(self, prefix_embs: Tensor, prefix_mask: Tensor) -> Tensor:
        """prefix_embs [B, L, D] (System 2's image + language embeddings), prefix_mask [B, L] bool
        -> state feature [B, W]. The prefix is detached: critic gradients never reach System 2."""
        if prefix_embs.shape[-1] != self.prefix_dim:
            raise ValueError(
                f"value-query head expects prefix embeddings of width {self.prefix_dim}, got "
                f"{prefix_embs.shape[-1]} (System 2's VLM width and the head's prefix_dim must match)"
            )
        b, length, _ = prefix_embs.shape
        x = prefix_embs.detach().to(self.query.dtype)
        if self.config.width is not None:
            x = self.input_proj(x)
        x = torch.cat([x, self.query.to(x.dtype).expand(b, 1, -1)], dim=1)
        prefix_mask = prefix_mask.bool()
        valid = torch.cat([prefix_mask, prefix_mask.new_ones(b, 1)], dim=1)
        # The query token opens a block of its own ("causal") or joins the prefix's.
        opens_block = torch.zeros(length + 1, dtype=torch.bool, device=x.device)
        if self.config.query_attention == "causal":
            # Prefix tokens attend among themselves (bidirectionally); the query token attends to all
            # and sits after the whole prefix, padding included.
            opens_block[-1] = True
            positions = torch.arange(length + 1, device=x.device)[None].expand(b, -1)
        else:
            # Every valid token sees every other; the query takes the position right after the last
            # valid prefix token. Where it sits in the sequence does not matter under this mask:
            # rotary positions alone carry the order.
            positions = torch.cat(
                [torch.cumsum(prefix_mask.long(), 1) - 1, prefix_mask.sum(1, keepdim=True)], 1
            )
        out, _ = self.encoder(x, positions, block_attention_mask(valid, opens_block))
        return out[:, -1]

    def critic_actions(self, actions: Tensor) -> Tensor:
        """actions [B, N, H, A] -> the first k actions, flattened: [B, N, k * A]."""
        k, a = self.config.action_steps, self.action_dim
        if actions.dim() != 4 or actions.shape[2] < k or actions.shape[3] != a:
            raise ValueError(f"candidate actions must be [B, N, H >= {k}, {a}], got {list(actions.shape)}")
        return actions[:, :, :k].flatten(2)

    def q_values(self, feature: Tensor, actions: Tensor, target: bool = False) -> Tensor:
        """feature [B, W], actions [B, N, H, A] -> Q of every critic [E, B, N]."""
        flat = self.critic_actions(actions).to(feature.dtype)
        x = torch.cat([feature[:, None].expand(-1, flat.shape[1], -1), flat], dim=-1)
        critics = self.target_critics if target else self.critics
        return torch.stack([critic(x).squeeze(-1) for critic in critics])

    def forward(
        self, prefix_embs: Tensor, prefix_mask: Tensor, actions: Tensor, target: bool = False
    ) -> Tensor:
        """prefix_embs [B, L, D], prefix_mask [B, L], candidates [B, N, H, A] -> q [E, B, N]."""
        return self.q_values(self.state_feature(prefix_embs, prefix_mask), actions, target=target)

    def act(
        self, feature: Tensor, num_samples: int = 1, deterministic: bool = False, generator=None
    ) -> tuple[Tensor, Tensor]:
        """Actor samples as chunks: feature [B, W] -> actions [B, n, k, A], log-probs [B, n]."""
        flat, log_prob = self.actor(feature, num_samples, deterministic=deterministic, generator=generator)
        return flat.unflatten(-1, (self.config.action_steps, self.action_dim)), log_prob

    @torch.no_grad()
    def update_targets(self, tau: float | None = None) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        tau = self.config.tau if tau is None else tau
        for online, target in zip(self.critics.parameters(), self.target_critics.parameters(), strict=True):
            target.lerp_(online, tau)

    def losses(
        self,
        prefix_embs: Tensor,
        prefix_mask: Tensor,
        actions: Tensor,
        reward: Tensor,
        done: Tensor,
        mc_return: Tensor,
        next_prefix_embs: Tensor,
        next_prefix_mask: Tensor,
        generator: torch.Generator | None = None,
        bootstrap: bool = True,
    ) -> ValueHeadLosses:
        """Cal-QL on one batch of transitions (s, a, r, done, s'), with a = the dataset chunk
        [B, H, A] (its first k actions are scored), s and s' given by System 2's prefixes, and
        mc_return [B] the Monte-Carlo return-to-go of s.

        bootstrap: the critics regress on the TD target r + gamma Q_target(s', actor) (Cal-QL);
        False: on mc_return itself, the value of the policies that collected the data (no
        bootstrap through the actor, so nothing it extrapolates to feeds back into the targets).

        Gradient routing: the critic loss trains the critics and the query encoder; the actor loss
        sees the state feature and the critics as constants; the temperature loss trains log alpha.
        """
        cfg = self.config
        b, n = actions.shape[0], cfg.cql_num_samples
        feature = self.state_feature(prefix_embs, prefix_mask)
        with torch.no_grad():
            next_feature = self.state_feature(next_prefix_embs, next_prefix_mask)
            if bootstrap:
                next_actions, _ = self.act(next_feature, generator=generator)
                next_q = self.q_values(next_feature, next_actions, target=True)[..., 0]
                target = td_target(reward, done, next_q, gamma=cfg.gamma)
            else:
                target = mc_return
            # CQL's out-of-distribution actions: uniform ones, and the policy's at s and at s'.
            uniform = torch.rand(
                (b, n, cfg.action_steps, self.action_dim),
                generator=generator,
                dtype=feature.dtype,
                device=feature.device,
            )
            policy_now, log_prob_now = self.act(feature, n, generator=generator)
            policy_next, log_prob_next = self.act(next_feature, n, generator=generator)
        critic = calql_critic_loss(
            self.q_values(feature, actions[:, None])[..., 0],
            target,
            self.q_values(feature, uniform * 2.0 - 1.0),
            uniform_log_density(cfg.action_steps * self.action_dim),
            self.q_values(feature, torch.cat([policy_now, policy_next], dim=1)),
            torch.cat([log_prob_now, log_prob_next], dim=1),
            mc_return,
            cql_alpha=cfg.cql_alpha,
            cql_temperature=cfg.cql_temperature,
        )
        new_actions, log_prob = self.act(feature.detach(), generator=generator)
        with frozen(self.critics):
            q_new = self.q_values(feature.detach(), new_actions)
        return ValueHeadLosses(
            critic=critic,
            actor=actor_loss(q_new, log_prob, self.temperature.detach()),
            temperature=temperature_loss(self.log_alpha, log_prob, self.target_entropy),
        )

    @property
    def target_entropy(self) -> float:
        """SAC's usual target: minus the number of action dimensions (k * A)."""
        return -float(self.config.action_steps * self.action_dim)
