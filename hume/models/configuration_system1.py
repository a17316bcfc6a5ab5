"""Config of System 1 (DINOv2-style encoder per camera + Gemma trunk, cascaded denoising). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System1Config:
    """Sizes default to the tiny CPU model; the paper's sizes are given as `full: ...`.

    The cameras, image size, chunk length H, horizon h and state/action widths are policy-level
    (HumeConfig's `cameras`, `image_size`, `chunk_size`, `s1_horizon`, and `s1_state_dim` /
    `s1_action_dim`, which `padded_widths` picks) and are passed to `System1(...)`, so the policy
    and the network can never disagree.
    """

    # Vision encoder (transformers Dinov2). `vision_pos_grid` is the image size the position
    # embeddings were trained for (518 in released DINOv2 checkpoints); other sizes interpolate.
    vision_hidden_size: int = 64  # full: 384 (DINOv2-small)
    vision_num_layers: int = 2  # full: 12
    vision_num_heads: int = 2  # full: 6
    vision_mlp_ratio: int = 2  # full: 4
    patch_size: int = 16  # full: 14 -> 257 tokens per 224² image
    vision_pos_grid: int = 64  # full: 518
    # Gemma trunk, trained from scratch.
    width: int = 128  # full: 512
    num_layers: int = 3  # full: 13
    num_heads: int = 4  # full: 8
    num_kv_heads: int = 1  # full: 1
    head_dim: int = 32  # full: 128
    intermediate_size: int = 256  # full: 2048
    # Inputs and outputs. padded_widths true: states and actions at the padded widths
    # max_state_dim / max_action_dim, as System 2's (full, and the authors'); false: the robot's
    # state_dim / action_dim.
    padded_widths: bool = False  # full: true
    state_history: int = 2  # K robot states, oldest first
    # Cascaded denoising: start from the System-2 slice at theta1 and integrate to 0.
    theta1: float = 0.1
    num_steps: int = 2
    # Variants of the authors' released System 1 (hume convert sets them):
    # residual_from_norm: each trunk layer's first residual adds the normalised hidden state;
    # stamp_projection false: the stamp token is the raw sinusoidal embedding;
    # camera_embedding false: no learned per-camera embedding on the image tokens;
    # history_mask "causal": each history state and the stamp are blocks of their own (a state sees
    # the older ones only); "shared": states and stamp form one bidirectional block.
    residual_from_norm: bool = False
    stamp_projection: bool = True
    camera_embedding: bool = True
    history_mask: str = "shared"
    # Optional pretrained vision encoder: a transformers DINOv2 `save_pretrained` directory, read
    # when the policy is built from its config (a checkpoint carries the weights itself).
    dinov2_path: str | None = None

    def validate(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"system1.num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.vision_hidden_size % self.vision_num_heads:
            raise ValueError(
                f"system1.vision_hidden_size ({self.vision_hidden_size}) must be a multiple of "
                f"vision_num_heads ({self.vision_num_heads})"
            )
        if self.width % 2:
            raise ValueError(f"system1.width must be even (sinusoidal embeddings), got {self.width}")
        if not 0.0 < self.theta1 <= 1.0:
            raise ValueError(f"system1.theta1 must be in (0, 1], got {self.theta1}")
        if self.num_steps < 1:
            raise ValueError(f"system1.num_steps must be >= 1, got {self.num_steps}")
        if self.history_mask not in ("shared", "causal"):
            raise ValueError(f"system1.history_mask must be 'shared' or 'causal', got {self.history_mask!r}")
        if self.state_history < 1:
            raise ValueError(f"system1.state_history must be >= 1, got {self.state_history}")
