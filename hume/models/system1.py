"""System 1: the fast policy that refines System 2's chunk on the current observation.

Token layout (one sequence through a Gemma trunk trained from scratch):

    [ image tokens, camera after camera | K state tokens, stamp token | h action tokens ]
      block 0: bidirectional              block 1                       block 2

Each block attends to itself and to the blocks before it, so the first two blocks (the
observation) never see the action tokens: their keys/values are computed once per `refine` call
and reused by every Euler step of the cascaded denoising (hume/models/cascade.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import Dinov2Config, Dinov2Model

from hume.models import flow
from hume.models.cascade import cascaded_denoise
from hume.models.configuration_system1 import System1Config
from hume.models.dinov2_checkpoint import load_dinov2_checkpoint
from hume.models.gemma_stack import GemmaStack, KVCache, gemma_config
from hume.models.joint_attention import block_mask

# DINOv2 was trained on ImageNet-normalised pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dinov2_config(config: System1Config) -> Dinov2Config:
    return Dinov2Config(
        hidden_size=config.vision_hidden_size,
        num_hidden_layers=config.vision_num_layers,
        num_attention_heads=config.vision_num_heads,
        mlp_ratio=config.vision_mlp_ratio,
        patch_size=config.patch_size,
        image_size=config.vision_pos_grid,
    )


@dataclass
class Observation:
    """The encoded observation: trunk keys/values of blocks 0-1, reused by every denoising step."""

    kv: KVCache
    length: int  # number of observation tokens (positions of action tokens start here)


class System1(nn.Module):
    # DINOv2's pixel normalisation: buffers (registered in __init__), so they follow .to(device).
    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(
        self,
        config: System1Config,
        *,
        cameras: Sequence[str],
        chunk_size: int,
        horizon: int,
        state_dim: int,
        action_dim: int,
    ):
        """cameras: the image tokens' order; chunk_size H: System 2's chunk, offsets into it are
        stamped as offset / H; horizon h: actions refined per call; state_dim/action_dim: the widths
        the network reads and writes (the policy's, padded or not: `System1Config.padded_widths`)."""
        super().__init__()
        config.validate()
        self.config = config
        self.cameras = tuple(cameras)
        self.chunk_size = chunk_size
        self.horizon = horizon
        self.state_dim = state_dim
        self.action_dim = action_dim
        w = config.width
        self.vision_encoder = Dinov2Model(dinov2_config(config))
        self.vision_proj = nn.Linear(config.vision_hidden_size, w)
        if config.camera_embedding:
            self.camera_embedding = nn.Parameter(torch.randn(len(self.cameras), w) * 0.02)
        self.state_proj = nn.Linear(state_dim, w)
        if config.stamp_projection:
            self.stamp_proj = nn.Linear(w, w)
        self.action_in = nn.Linear(action_dim, w)
        # pi0's action-time fusion: MLP([linear(action), sinusoidal(t)]).
        self.action_time_mlp = nn.Sequential(nn.Linear(2 * w, w), nn.SiLU(), nn.Linear(w, w))
        self.trunk = GemmaStack(
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
        self.action_out = nn.Linear(w, action_dim)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def load_vision_encoder(self, directory: str | Path) -> None:
        """Load pretrained DINOv2 weights (a transformers `save_pretrained` directory)."""
        load_dinov2_checkpoint(self.vision_encoder, directory)

    def _dtype(self) -> torch.dtype:
        return self.vision_proj.weight.dtype

    def encode_images(self, images: dict[str, Tensor]) -> Tensor:
        """{camera: [B, 3, H, W] in [-1, 1]} -> image tokens [B, cameras * tokens, W]."""
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise KeyError(
                f"System 1 needs images from cameras {list(self.cameras)}; missing {missing} "
                f"(got {sorted(images)})"
            )
        views = [images[c] for c in self.cameras]
        if any(v.shape != views[0].shape for v in views):
            raise ValueError(f"all cameras must share one image shape, got {[list(v.shape) for v in views]}")
        b = views[0].shape[0]
        # All cameras through the encoder as one batch: [cameras * B, 3, H, W].
        x = (torch.cat(views).float() + 1.0) * 0.5
        x = ((x - self.pixel_mean) / self.pixel_std).to(self._dtype())
        tokens = self.vision_proj(self.vision_encoder(pixel_values=x).last_hidden_state)
        tokens = tokens.unflatten(0, (len(views), b))
        if self.config.camera_embedding:
            tokens = tokens + self.camera_embedding[:, None, None]
        return tokens.transpose(0, 1).flatten(1, 2)

    def encode_observation(
        self, images: dict[str, Tensor], state_history: Tensor, offset: Tensor
    ) -> Observation:
        """Run blocks 0-1 through the trunk once; state_history [B, K, S], offset [B] (steps into
        System 2's chunk, stamped as offset / H)."""
        cfg = self.config
        if state_history.dim() != 3 or state_history.shape[1:] != (cfg.state_history, self.state_dim):
            raise ValueError(
                f"state_history must be [B, {cfg.state_history}, {self.state_dim}], "
                f"got {list(state_history.shape)}"
            )
        image_tokens = self.encode_images(images)
        b, dtype = image_tokens.shape[0], image_tokens.dtype
        states = self.state_proj(state_history.to(dtype))
        stamp = flow.sinusoidal_embedding(offset.float() / self.chunk_size, cfg.width).to(dtype)
        if cfg.stamp_projection:
            stamp = self.stamp_proj(stamp)
        x = torch.cat([image_tokens, states, stamp[:, None]], dim=1)
        if cfg.history_mask == "shared":
            history_blocks = torch.ones(cfg.state_history + 1, dtype=torch.long)
        else:  # each state, then the stamp, opens a block of its own
            history_blocks = torch.arange(1, cfg.state_history + 2)
        blocks = torch.cat([torch.zeros(image_tokens.shape[1], dtype=torch.long), history_blocks]).to(
            x.device
        )
        positions = torch.arange(x.shape[1], device=x.device)[None].expand(b, -1)
        _, kv = self.trunk(x, positions, block_mask(blocks)[None].expand(b, -1, -1))
        return Observation(kv=kv, length=x.shape[1])

    def velocity(self, observation: Observation, x_t: Tensor, t: Tensor) -> Tensor:
        """The flow velocity of the action tokens: x_t [B, h, A], t [B] -> v [B, h, A]."""
        b, h, _ = x_t.shape
        # The flow's state may be kept in float32 around a half-precision network.
        dtype = self._dtype()
        time = flow.sinusoidal_embedding(t, self.config.width).to(dtype)
        tokens = self.action_time_mlp(
            torch.cat([self.action_in(x_t.to(dtype)), time[:, None].expand(-1, h, -1)], dim=-1)
        )
        positions = observation.length + torch.arange(h, device=x_t.device)[None].expand(b, -1)
        # Action tokens see the whole observation and each other.
        mask = torch.ones(b, h, observation.length + h, dtype=torch.bool, device=x_t.device)
        out, _ = self.trunk(tokens, positions, mask, prefix=observation.kv)
        return self.action_out(out)

    def _check_slice(self, name: str, chunk: Tensor) -> None:
        if chunk.dim() != 3 or chunk.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(
                f"{name} must be [B, {self.horizon}, {self.action_dim}] (the System-2 slice of h steps), "
                f"got {list(chunk.shape)}"
            )

    def refine(
        self,
        images: dict[str, Tensor],
        state_history: Tensor,
        offset: Tensor,
        start: Tensor,
        theta1: float | None = None,
        num_steps: int | None = None,
        guide: flow.Guide | None = None,
    ) -> Tensor:
        """Cascaded denoising: `start` [B, h, A] (the slice of System 2's chunk that covers the next
        h steps) is taken as a sample at time theta1 and integrated to 0 on this observation;
        with `guide` ([B, h, A] target and weights) steered to agree with its target."""
        self._check_slice("start", start)
        theta1 = self.config.theta1 if theta1 is None else theta1
        num_steps = self.config.num_steps if num_steps is None else num_steps
        observation = self.encode_observation(images, state_history, offset)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.velocity(observation, x, t)

        field: Callable[[Tensor, Tensor], Tensor] = velocity
        if guide is not None:
            field = flow.guided_velocity(velocity, guide.target, guide.weights, guide.max_guidance)
        # The Euler steps run in float32 whatever the network's dtype: in bf16 the sample's own
        # rounding (2^-8 of its size, every step) would add up.
        return cascaded_denoise(field, start.float(), theta1, num_steps)

    def loss(
        self,
        images: dict[str, Tensor],
        state_history: Tensor,
        offset: Tensor,
        s2_slice: Tensor,
        actions: Tensor,
        t: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        theta1: float | None = None,
    ) -> Tensor:
        """Flow matching on the straight path from the ground truth (t = 0) to the System-2 slice,
        which sits at flow time theta1 (HUME.md's x_t = tau * s2_slice + (1 - tau) * actions with
        tau = t / theta1). The target velocity is (s2_slice - actions) / theta1, so that `refine`,
        integrating from theta1 to 0, lands on the actions; when the slice is System 2's partial
        sample theta1 * eps + (1 - theta1) * a this is System 2's own velocity eps - a.
        s2_slice, actions [B, h, A]; t [B] in (0, theta1] (default: Beta(1.5, 1) scaled to it);
        mask [B, h] drops padding."""
        self._check_slice("s2_slice", s2_slice)
        self._check_slice("actions", actions)
        theta1 = self.config.theta1 if theta1 is None else theta1
        dtype = self._dtype()
        s2_slice, actions = s2_slice.to(dtype), actions.to(dtype)
        if t is None:
            t = theta1 * flow.sample_time(actions.shape[0], generator=generator, device=actions.device)
        t = t.to(dtype)
        observation = self.encode_observation(images, state_history, offset)
        x_t = flow.interpolate(actions, s2_slice, t / theta1)
        # flow_matching_loss's target is (noise - actions): the path's end point at t = 1 is
        # actions + (s2_slice - actions) / theta1.
        end = actions + (s2_slice - actions) / theta1
        return flow.flow_matching_loss(self.velocity(observation, x_t, t), actions, end, mask)
