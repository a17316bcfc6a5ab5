"""Config of the value-query head (a small Gemma + critic ensemble + SAC actor). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValueQueryHeadConfig:
    """Sizes default to the tiny CPU model; the paper's sizes are given as `full: ...`.

    The input width (System 2's VLM width) and the action width (the robot's action_dim) are not
    here: they are the policy's, and are passed to `ValueQueryHead(config, prefix_dim, action_dim)`
    so they can never disagree. The critic always scores the robot's real action dims.
    """

    # The head's width; its first layer projects System 2's prefix embeddings to it. None: no input
    # projection, the head reads the prefix embeddings directly at System 2's VLM width (the
    # authors' released heads; hume convert sets it).
    width: int | None = 64  # full: 2048
    num_layers: int = 2  # full: 4
    num_heads: int = 2  # full: 8
    num_kv_heads: int = 1  # full: 1
    head_dim: int = 32  # full: 256
    intermediate_size: int = 128  # full: 16384
    action_steps: int = 8  # k: the critic scores the first k actions of a chunk (full: 10)
    num_critics: int = 2  # ensemble size; every critic is an independent MLP
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_hidden: tuple[int, ...] = (256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    # Variants of the authors' released heads (hume convert sets them):
    # "causal": the query token follows the whole prefix (padding included) and only it sees the prefix;
    # "bidirectional": it is inserted right after the last valid prefix token, positions count valid
    # tokens only, and every valid token sees every other (the authors' head).
    query_attention: str = "causal"
    # Each layer's first residual adds the normalised hidden state instead of the raw one.
    residual_from_norm: bool = False
    critic_activation: str = "relu"  # "relu" or "silu" (critic and actor MLPs)
    init_temperature: float = 1.0  # SAC's alpha at the start (learned as log alpha)
    # Cal-QL / SAC hyper-parameters (HUME.md): used by the training loop through hume/models/calql.py.
    gamma: float = 0.98
    tau: float = 0.005  # Polyak rate of the target critics
    cql_alpha: float = 5.0
    cql_num_samples: int = 4  # random and policy actions per state in the CQL regulariser
    cql_temperature: float = 1.0

    def validate(self) -> None:
        if self.width is not None and self.width < 1:
            raise ValueError(
                f"value_query_head.width must be >= 1 (or null: System 2's VLM width), got {self.width}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"value_query_head.num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads})"
            )
        if self.query_attention not in ("causal", "bidirectional"):
            raise ValueError(
                "value_query_head.query_attention must be 'causal' or 'bidirectional', "
                f"got {self.query_attention!r}"
            )
        if self.critic_activation not in ("relu", "silu"):
            raise ValueError(
                f"value_query_head.critic_activation must be 'relu' or 'silu', got {self.critic_activation!r}"
            )
        if self.num_critics < 1:
            raise ValueError(f"value_query_head.num_critics must be >= 1, got {self.num_critics}")
        if self.action_steps < 1:
            raise ValueError(f"value_query_head.action_steps must be >= 1, got {self.action_steps}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"value_query_head.tau must be in (0, 1], got {self.tau}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"value_query_head.gamma must be in [0, 1), got {self.gamma}")
        if self.init_temperature <= 0:
            raise ValueError(f"value_query_head.init_temperature must be > 0, got {self.init_temperature}")
