"""Config of System 2 (SigLIP + Gemma VLM, Gemma action expert, joint attention). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System2Config:
    """Sizes default to the tiny CPU model; the paper's sizes are given as `full: ...`.

    Image size, chunk length and the padded state/action widths are policy-level (HumeConfig)
    and are passed to `System2(...)` so the policy and the network can never disagree.
    """

    # SigLIP vision tower.
    vision_width: int = 96  # full: 1152 (so400m)
    vision_depth: int = 2  # full: 27
    vision_heads: int = 4  # full: 16
    vision_mlp_dim: int = 192  # full: 4304
    patch_size: int = 8  # full: 14 -> 256 tokens per 224² image
    # Gemma decoder of the VLM (PaliGemma's language model).
    vlm_width: int = 192  # full: 2048
    vlm_depth: int = 4  # full: 18
    vlm_mlp_dim: int = 768  # full: 16384
    vocab_size: int = 1024  # full: 257152 (must cover the tokenizer)
    # Attention geometry shared by both stacks: joint attention concatenates their keys/values.
    num_heads: int = 4  # full: 8
    num_kv_heads: int = 1  # full: 1
    head_dim: int = 48  # full: 256
    # Gemma action expert: one layer per VLM layer.
    expert_width: int = 128  # full: 1024
    expert_mlp_dim: int = 512  # full: 4096
    rope_theta: float = 10000.0
    max_token_len: int = 48  # instruction tokens, padded (LIBERO: 48)
    num_steps: int = 10  # Euler steps from t=1 to t=0 (dt = -0.1)
    # Padded action dims (max_action_dim beyond the robot's action_dim). true: held at 0 while
    # sampling and left out of the loss (nothing untrained feeds back through action_in_proj).
    # false: sampled and trained towards the zero padding, as pi0 and the authors' Hume do; their
    # System 1 then receives those dims too.
    pin_padded_actions: bool = True
    # Instruction text before tokenising: ours lower-cases; PaliGemma-based checkpoints keep the case
    # and end the prompt with "\n".
    lowercase_instruction: bool = True
    instruction_suffix: str = ""
    # Optional pretrained parts: a Hugging Face PaliGemma checkpoint directory for the backbone and
    # a tokenizer directory (loaded as the class it was saved with); None uses hume/tokenizer/'s.
    paligemma_path: str | None = None
    tokenizer_path: str | None = None

    def validate(self) -> None:
        for name in (
            "vision_width",
            "vision_depth",
            "vision_heads",
            "vlm_width",
            "vlm_depth",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "expert_width",
            "max_token_len",
            "num_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"system2.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"system2.num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.vision_width % self.vision_heads:
            raise ValueError(
                f"system2.vision_width ({self.vision_width}) must be a multiple of vision_heads "
                f"({self.vision_heads})"
            )
        if self.head_dim % 2 or self.expert_width % 2:
            raise ValueError(
                "system2.head_dim and expert_width must be even (rotary / sinusoidal embeddings)"
            )
