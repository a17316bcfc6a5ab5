"""Config of the value-query head (a small Gemma + critic ensemble + SAC actor). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValueQueryHeadConfig:
    """Sizes default to the tiny CPU model; the paper's sizes are given as `full: ...`.

    The input width (System 2's VLM width) is not here: it is System 2's, and is passed to
    `ValueQueryHead(config, prefix_dim)` so the two can never disagree.
    """

    width: int = 64  # full: 2048
    num_layers: int = 2  # full: 4
    num_heads: int = 2  # full: 8
    num_kv_heads: int = 1  # full: 1
    head_dim: int = 32  # full: 256
    intermediate_size: int = 128  # full: 16384
    action_dim: int = 7  # full: 32 (System 2's padded action width)
    action_steps: int = 8  # k: the critic scores the first k actions of a chunk (full: 10)
    num_critics: int = 2  # ensemble size; every critic is an independent MLP
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_hidden: tuple[int, ...] = (256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    init_temperature: float = 1.0  # SAC's alpha at the start (learned as log alpha)
    # Cal-QL / SAC hyper-parameters (HUME.md): used by the training loop through hume/models/calql.py.
    gamma: float = 0.98
    tau: float = 0.005  # Polyak rate of the target critics
    cql_alpha: float = 5.0
    cql_num_samples: int = 4  # random and policy actions per state in the CQL regulariser
    cql_temperature: float = 1.0

    def validate(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"value_query_head.num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads})"
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
