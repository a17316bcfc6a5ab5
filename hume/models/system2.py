"""System 2: a PaliGemma-style VLM and a Gemma action expert joined by joint attention (pi0 design).

Tokens, in order:   [ images (C x n) | language (L) ] [ state (1) ] [ actions (H) ]
                      VLM stack, prefix                 expert stack, suffix
Blocks:               prefix: bidirectional             state: own block; actions: see everything
                                                        before them and each other
The prefix never attends to the suffix, so its keys/values are computed once (`encode_prefix`)
and reused by every Euler step and every candidate (`sample`).

Shapes: B batch, C cameras, L instruction tokens, P = C * n + L prefix tokens, H chunk length,
A padded action width, S padded state width, N candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GemmaConfig, SiglipVisionConfig, SiglipVisionModel

from hume.models import flow
from hume.models.configuration_system2 import System2Config
from hume.models.gemma_stack import GemmaStack, KVCache
from hume.models.joint_attention import block_attention_mask, run_joint_layer


@dataclass
class PrefixCache:
    """Per-layer keys/values [B, kv_heads, P, head_dim] of the encoded prefix, and its padding [B, P]."""

    kv: KVCache
    pad_mask: Tensor

    def repeat(self, n: int) -> PrefixCache:
        """Each batch entry repeated n times in place (b0, b0, ..., b1, ...): one copy per candidate."""
        if n == 1:
            return self
        return PrefixCache(
            kv=[(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in self.kv],
            pad_mask=self.pad_mask.repeat_interleave(n, 0),
        )


def gemma_config(cfg: System2Config, width: int, mlp_dim: int) -> GemmaConfig:
    """The transformers config of one stack; both stacks share the attention geometry."""
    return GemmaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=width,
        intermediate_size=mlp_dim,
        num_hidden_layers=cfg.vlm_depth,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        hidden_act="gelu_pytorch_tanh",
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        pad_token_id=0,
    )


def siglip_config(cfg: System2Config, image_size: int) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=cfg.vision_width,
        intermediate_size=cfg.vision_mlp_dim,
        num_hidden_layers=cfg.vision_depth,
        num_attention_heads=cfg.vision_heads,
        image_size=image_size,
        patch_size=cfg.patch_size,
        vision_use_head=False,
    )


class System2(nn.Module):
    def __init__(
        self,
        cfg: System2Config,
        *,
        image_size: int,
        chunk_size: int,
        action_dim: int,
        state_dim: int,
        robot_action_dim: int | None = None,
    ):
        """action_dim/state_dim are the padded widths the network reads and writes; robot_action_dim
        is how many of the action dims are real (the rest is padding; default: all)."""
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.state_dim = state_dim
        self.robot_action_dim = action_dim if robot_action_dim is None else robot_action_dim
        self.vlm_config = gemma_config(cfg, cfg.vlm_width, cfg.vlm_mlp_dim)
        self.expert_config = gemma_config(cfg, cfg.expert_width, cfg.expert_mlp_dim)

        self.vision_tower = SiglipVisionModel(siglip_config(cfg, image_size))
        self.multi_modal_projector = nn.Linear(cfg.vision_width, cfg.vlm_width)
        # The two stacks share the attention geometry, so either one's rotary table serves both.
        self.vlm = GemmaStack(self.vlm_config, with_embedding=True)
        self.expert = GemmaStack(self.expert_config)

        width = cfg.expert_width
        self.state_proj = nn.Linear(state_dim, width)
        self.action_in_proj = nn.Linear(action_dim, width)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)
        self.action_out_proj = nn.Linear(width, action_dim)
        # Training switch (hume train's activation_checkpointing): the joint training pass
        # recomputes each layer in backward instead of keeping its activations.
        self.activation_checkpointing = False

    @property
    def tokens_per_image(self) -> int:
        return self.vision_tower.embeddings.num_patches

    # ----- embeddings -------------------------------------------------------------------------
    def embed_prefix(
        self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor
    ) -> tuple[Tensor, Tensor]:
        """images [B, C, 3, H, W] in [-1, 1], image_masks [B, C], tokens/token_masks [B, L]
        -> prefix embeddings [B, P, D_vlm] and their validity [B, P]."""
        b, c = images.shape[:2]
        patches = self.vision_tower(pixel_values=images.flatten(0, 1)).last_hidden_state
        image_embs = self.multi_modal_projector(patches).reshape(b, -1, self.config.vlm_width)
        image_pad = image_masks.bool().repeat_interleave(patches.shape[1], dim=1)
        lang_embs = self.vlm.embed_tokens(tokens).to(image_embs.dtype)
        return torch.cat([image_embs, lang_embs], 1), torch.cat([image_pad, token_masks.bool()], 1)

    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """state [B, S], noisy actions x_t [B, H, A], flow time t [B] -> suffix tokens [B, 1 + H, D_exp]."""
        # The flow's state may be kept in float32 around a half-precision network.
        dtype = self.action_in_proj.weight.dtype
        state_tok = self.state_proj(state.to(dtype))[:, None]
        action_tok = self.action_in_proj(x_t.to(dtype))
        time_emb = flow.sinusoidal_embedding(t, self.config.expert_width).to(action_tok.dtype)
        mixed = torch.cat([action_tok, time_emb[:, None].expand_as(action_tok)], -1)
        action_tok = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(mixed)))
        return torch.cat([state_tok, action_tok], 1)

    def _suffix_block_start(self, batch: int, device: torch.device) -> Tensor:
        start = torch.zeros(batch, 1 + self.chunk_size, dtype=torch.bool, device=device)
        start[:, :2] = True  # the state token opens a block, the action tokens open the next one
        return start

    def _velocity_out(self, suffix_normed: Tensor) -> Tensor:
        return self.action_out_proj(suffix_normed[:, -self.chunk_size :])

    # ----- prefix cache + suffix (inference) ---------------------------------------------------
    def encode_prefix(self, prefix_embs: Tensor, prefix_mask: Tensor) -> PrefixCache:
        """Run the VLM over the prefix once and keep every layer's keys/values."""
        positions = torch.cumsum(prefix_mask.long(), 1) - 1
        mask = block_attention_mask(prefix_mask, torch.zeros_like(prefix_mask))
        _, kv = self.vlm(prefix_embs, positions, mask)
        return PrefixCache(kv, prefix_mask)

    def velocity(self, cache: PrefixCache, state: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Predicted velocity [B, H, A] of the expert attending to a cached prefix."""
        suffix = self.embed_suffix(state, x_t, t)
        b, s = suffix.shape[:2]
        suffix_pad = torch.ones(b, s, dtype=torch.bool, device=suffix.device)
        own = block_attention_mask(suffix_pad, self._suffix_block_start(b, suffix.device))
        mask = torch.cat([cache.pad_mask[:, None, :].expand(b, s, -1), own], 2)
        positions = cache.pad_mask.long().sum(1, keepdim=True) + torch.arange(s, device=suffix.device)
        out, _ = self.expert(suffix, positions, mask, prefix=cache.kv)
        return self._velocity_out(out)

    def pin_padding(self, velocity: Tensor, noise: Tensor) -> Tensor:
        """With system2.pin_padded_actions, the padded action dims move with their target velocity
        (noise - 0): they stay on the path x_t = t * noise towards the zero padding, which is what
        training fed the network for them (their loss is masked, so their own velocity is untrained)."""
        if not self.config.pin_padded_actions or self.robot_action_dim == self.action_dim:
            return velocity
        real = self.robot_action_dim
        return torch.cat([velocity[..., :real], noise[..., real:].to(velocity.dtype)], -1)

    @torch.no_grad()
    def sample(
        self,
        cache: PrefixCache,
        state: Tensor,
        noise: Tensor,
        t0: Tensor,
        dt: Tensor,
        steps: Tensor,
        temperature: Tensor,
        guide: flow.Guide | None = None,
    ) -> Tensor:
        """Best-of-N in one batch: noise [B, N, H, A], t0/dt/steps/temperature [B, N] -> candidates
        [B, N, H, A].

        The prefix cache is repeated N times (no recompute) and all B * N candidates go through the
        expert together; candidate i starts at t0[:, i] and takes steps[:, i] Euler steps of dt[:, i]
        with its velocity scaled by temperature[:, i]. With `guide` (target and weights [B, H, A]),
        every candidate is steered to continue the committed actions (real-time chunking).
        """
        b, n = noise.shape[:2]
        cache_n = cache.repeat(n)
        state_n = state.repeat_interleave(n, 0)
        start = noise.flatten(0, 1)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.pin_padding(self.velocity(cache_n, state_n, x, t), start)

        field: Callable[[Tensor, Tensor], Tensor] = velocity
        if guide is not None:
            field = flow.guided_velocity(
                velocity,
                guide.target.repeat_interleave(n, 0),
                guide.weights.repeat_interleave(n, 0),
                guide.max_guidance,
            )

        x = flow.euler_integrate_steps(
            field,
            start,
            t0.flatten(),
            dt.flatten(),
            steps.flatten(),
            temperature.flatten(),
        )
        return x.view(b, n, *x.shape[1:])

    # ----- full joint forward (training, and the naive baseline of hume bench best-of-n) ----------
    def velocity_joint(
        self, prefix_embs: Tensor, prefix_mask: Tensor, state: Tensor, x_t: Tensor, t: Tensor
    ) -> Tensor:
        """Predicted velocity [B, H, A] from one joint pass of both stacks over prefix + suffix."""
        suffix = self.embed_suffix(state, x_t, t)
        b, s = suffix.shape[:2]
        suffix_pad = torch.ones(b, s, dtype=torch.bool, device=suffix.device)
        pad = torch.cat([prefix_mask, suffix_pad], 1)
        block_start = torch.cat(
            [torch.zeros_like(prefix_mask), self._suffix_block_start(b, suffix.device)], 1
        )
        mask = block_attention_mask(pad, block_start)
        cos, sin = self.vlm.rotary(suffix, torch.cumsum(pad.long(), 1) - 1)
        hidden: list[Tensor | None] = [prefix_embs, suffix]
        checkpointed = self.activation_checkpointing and self.training
        for vlm_layer, expert_layer in zip(self.vlm.layers, self.expert.layers, strict=True):
            hidden, _ = run_joint_layer(checkpointed, [vlm_layer, expert_layer], hidden, cos, sin, mask)
        hs = hidden[1]
        assert hs is not None  # both stacks have inputs, so both have outputs
        return self._velocity_out(self.expert.norm(hs))

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Flow-matching loss of a training batch.

        batch: images [B, C, 3, H, W] in [-1, 1], image_masks [B, C], tokens/token_masks [B, L],
        state [B, S], actions [B, H, A] (normalised, padded); optional action_is_pad [B, H],
        and noise [B, H, A] / time [B] to fix the draw. With system2.pin_padded_actions the padded
        action dims are left out of the loss (sampling holds them at 0); without it they are trained
        towards the zero padding, as pi0 does.
        """
        actions = batch["actions"]
        b = actions.shape[0]
        noise = batch.get("noise")
        if noise is None:
            noise = torch.randn_like(actions)
        t = batch.get("time")
        if t is None:
            t = flow.sample_time(b, device=actions.device).to(actions.dtype)
        x_t = flow.interpolate(actions, noise, t)
        prefix_embs, prefix_mask = self.embed_prefix(
            batch["images"], batch["image_masks"], batch["tokens"], batch["token_masks"]
        )
        v = self.velocity_joint(prefix_embs, prefix_mask, batch["state"], x_t, t)
        if self.config.pin_padded_actions:
            real = slice(0, self.robot_action_dim)
            v, actions, noise = v[..., real], actions[..., real], noise[..., real]
        pad = batch.get("action_is_pad")
        return flow.flow_matching_loss(v, actions, noise, mask=None if pad is None else ~pad)
