"""System 2 from a PaliGemma + action-expert checkpoint (π0's structure, which the authors' Hume
keeps under `s2_model.`): the tensors mapped to ours, and System 2's sizes read off their shapes.

`root` is where π0's modules sit: "" for openpi, "model." for LeRobot, "s2_model." for the authors'
Hume. Under it: `paligemma_with_expert.paligemma.` (PaliGemma, in any layout of
hume/models/paligemma_weights.py), `paligemma_with_expert.gemma_expert.model.{layers,norm}` (the
action expert, plus an unused token embedding or head) and the flow projections `state_proj`,
`action_in_proj`, `action_out_proj`, `action_time_mlp_in`, `action_time_mlp_out`.
"""

from __future__ import annotations

import math

from hume.convert.common import Mapped
from hume.convert.sizes import gemma_sizes, layer_count
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors
from hume.models.configuration_system2 import System2Config
from hume.models.paligemma_weights import Layout, find_layout, paligemma_names

PI0 = "paligemma_with_expert."
PALIGEMMA = PI0 + "paligemma."
EXPERT = PI0 + "gemma_expert.model."
EXPERT_HEAD = PI0 + "gemma_expert.lm_head.weight"
PROJECTIONS = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out")

WHY_EXPERT_HEAD = (
    "the action expert's language-model head: π0 builds the expert as a Gemma causal LM, removes its "
    "token embedding and never decodes tokens, so this head is never used or trained"
)
WHY_EXPERT_EMBED = "the action expert is fed embeddings; a token embedding has no use"


def map_system2(source: SourceTensors, root: str, out: Mapped) -> Layout:
    """Map System 2's tensors under `root` into `out` (as `system2.*`); returns PaliGemma's layout."""
    base = root + PALIGEMMA
    layout = find_layout(source, base)
    for ours, theirs in paligemma_names(source, base, layout).items():
        out.take("system2." + ours, theirs)
    expert = root + EXPERT
    for key in source.keys():
        if key.startswith(expert):
            sub = key[len(expert) :]
            if sub.startswith(("layers.", "norm.")):
                out.take("system2.expert." + sub, key)
            elif sub.startswith("embed_tokens."):
                source.drop(key, WHY_EXPERT_EMBED)
        elif key == root + EXPERT_HEAD:
            source.drop(key, WHY_EXPERT_HEAD)
    for name in PROJECTIONS:
        for part in ("weight", "bias"):
            key = f"{root}{name}.{part}"
            if key not in source:
                raise CheckpointError(f"{source.path}: System 2 tensor {key!r} missing")
            out.take(f"system2.{name}.{part}", key)
    return layout


def system2_config(
    source: SourceTensors,
    root: str,
    layout: Layout,
    *,
    vision_heads: int,
    max_token_len: int,
    num_steps: int,
    rope_theta: float = 10000.0,
    image_size: int | None = None,
) -> tuple[System2Config, int]:
    """System 2's sizes read off the tensors, and the image size the vision tower's positions cover
    (checked against `image_size`, the resize target the source states, when it states one).
    `vision_heads` is SigLIP's head count, the one size the shapes do not tell."""
    base = root + PALIGEMMA
    vision = base + layout.vision
    patch_key, positions_key = (
        vision + "embeddings.patch_embedding.weight",
        vision + "embeddings.position_embedding.weight",
    )
    patch = source.shape(patch_key)
    positions = source.shape(positions_key)[0]
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise CheckpointError(
            f"{source.where(positions_key)}: {positions} positions are not a square grid of patches"
        )
    covered = grid * patch[-1]
    if image_size is not None and image_size != covered:
        raise CheckpointError(
            f"{source.directory}: the config resizes images to {image_size} but the vision tower's "
            f"position embedding covers {covered}"
        )
    if patch[0] % vision_heads:
        raise CheckpointError(
            f"{source.where(patch_key)}: SigLIP width {patch[0]} does not split into {vision_heads} heads"
        )
    vlm = gemma_sizes(source, base + layout.language)
    expert = gemma_sizes(source, root + EXPERT)
    if (vlm.num_heads, vlm.head_dim) != (expert.num_heads, expert.head_dim):
        raise CheckpointError(
            f"{source.directory}: the VLM ({vlm.num_heads} heads x {vlm.head_dim}) and the expert "
            f"({expert.num_heads} x {expert.head_dim}) must share the attention geometry"
        )
    if vlm.depth != expert.depth:
        raise CheckpointError(
            f"{source.directory}: the expert has {expert.depth} layers, the VLM {vlm.depth}: π0 pairs them"
        )
    embed = base + layout.embedding
    system2 = System2Config(
        vision_width=patch[0],
        vision_depth=layer_count(source, vision + "encoder.layers."),
        vision_heads=vision_heads,
        vision_mlp_dim=source.shape(vision + "encoder.layers.0.mlp.fc1.weight")[0],
        patch_size=patch[-1],
        vlm_width=vlm.width,
        vlm_depth=vlm.depth,
        vlm_mlp_dim=vlm.mlp_dim,
        vocab_size=source.shape(embed if embed in source else base + layout.lm_head)[0],
        num_heads=vlm.num_heads,
        num_kv_heads=1,
        head_dim=vlm.head_dim,
        expert_width=expert.width,
        expert_mlp_dim=expert.mlp_dim,
        rope_theta=rope_theta,
        max_token_len=max_token_len,
        num_steps=num_steps,
        # π0 samples and trains every padded action dim (towards the zero padding).
        pin_padded_actions=False,
        # PaliGemma's prompt: the instruction as given, ending in "\n".
        lowercase_instruction=False,
        instruction_suffix="\n",
    )
    return system2, covered
