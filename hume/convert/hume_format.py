"""The authors' released Hume checkpoints -> our checkpoint format.

Their folder (a LeRobot `save_pretrained` of their HumePolicy): `config.json` with their HumeConfig
fields and four sub-config dicts, `model.safetensors` (mixed bf16/f32; tensors that share storage
were dropped on save, so the value head's alias of System 2 is absent and tied token embeddings are
stored once, as `lm_head.weight`), and their tokenizer files. The value-query backbone and the
critics are not described in config.json: their sizes are read off the tensor shapes.

Where their networks differ from ours, the converted config sets our switches (see
docs/weights.md): the value head reads System 2's prefix directly with a bidirectional query token,
SiLU critics and the normalised first residual; System 1 has no stamp projection or camera
embedding, gives each history state its own block and uses the normalised first residual too;
System 2 samples the padded action dims; candidates follow their schedule.

Two mappings change the parameterisation but not a single output: the critics' shared output layer
is copied into each critic's own (they stay independent if trained further), and the temperature's
softplus multiplier becomes our log alpha = log(softplus(m)).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from hume.constants import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from hume.convert.cameras import check_cameras, our_camera
from hume.convert.common import Conversion, Mapped, check_shapes, check_total, find_tokenizer, need, read_json
from hume.convert.normalization import lerobot_stats
from hume.convert.sizes import gemma_sizes, layer_count
from hume.convert.system2 import map_system2, system2_config
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system1 import System1Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.paligemma_weights import Layout

log = logging.getLogger(__name__)

S2 = "s2_model."  # their System 2: π0's modules (hume/convert/system2.py)
S1 = "s1_model."
S1_EXPERT = "s1_model.fast_visuo_expert."
VQH = "value_query_head."
VQH_GEMMA = "value_query_head.vqh_backbone.gemma_expert."
CALQL = "value_query_head.calql."
S1_PROJECTIONS = {
    "state_proj": "state_proj",
    "action_in_proj": "action_in",
    "action_out_proj": "action_out",
    "action_time_mlp_in": "action_time_mlp.0",
    "action_time_mlp_out": "action_time_mlp.2",
}
# transformers 4.x Dinov2 attention names -> transformers 5's.
DINOV2_RENAMES = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)


def _read_config(source: Path) -> dict:
    path = source / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{source}: no config.json (expected the authors' Hume checkpoint folder)")
    raw = read_json(path)
    if raw.get("type") == "system2":  # their System-2-only release: the caller converts it as a π0
        return raw
    if raw.get("type", "hume") != "hume":
        raise CheckpointError(f"{path}: type is {raw.get('type')!r}, not 'hume' (use --from pi0 for pi0)")
    for key in ("paligemma_config", "gemma_expert_config", "s1_dino_config", "s1_gemma_expert_config"):
        if key not in raw:
            raise CheckpointError(f"{path}: key {key!r} missing (not a Hume config.json)")
    return raw


def _mlp_hidden(source: SourceTensors, prefix: str) -> tuple[int, ...]:
    """Hidden widths of one of their MLPs: Linear layers at even indices (activation between)."""
    sizes, i = [], 0
    while f"{prefix}layers.{i}.weight" in source:
        sizes.append(source.shape(f"{prefix}layers.{i}.weight")[0])
        i += 2
    if not sizes:
        raise CheckpointError(f"{source.directory}: no MLP layers under {prefix!r}")
    return tuple(sizes)


def build_config(
    raw: dict, source: SourceTensors, layout: Layout, path: Path, postprocess_gripper: bool
) -> HumeConfig:
    """Their config.json + tensor shapes -> a HumeConfig whose switches reproduce their networks."""
    features = need(raw, "input_features", path)
    theirs = [k[len(IMAGE_PREFIX) :] for k in features if k.startswith(IMAGE_PREFIX)]
    if not theirs:
        raise CheckpointError(f"{path}: input_features name no camera ({IMAGE_PREFIX}*)")
    cameras = tuple(ours for _, ours in check_cameras([(c, our_camera(c)) for c in theirs], path))
    state_dim = need(features, STATE_KEY, path)["shape"][0]
    action_dim = need(need(raw, "output_features", path), ACTION_KEY, path)["shape"][0]
    size = need(raw, "resize_imgs_with_padding", path)
    if size is None or size[0] != size[1]:
        raise CheckpointError(f"{path}: resize_imgs_with_padding {size} is not square; ours needs one size")
    chunk, horizon = raw["s2_chunk_size"], raw["s1_chunk_size"]
    if raw.get("n_action_steps", chunk) != chunk:
        raise CheckpointError(
            f"{path}: n_action_steps ({raw['n_action_steps']}) differs from s2_chunk_size ({chunk}); their "
            "System 2 samples n_action_steps actions while System 1 slices s2_chunk_size"
        )

    pali = raw["paligemma_config"]
    if pali.get("text_config", {}).get("num_key_value_heads", 1) != 1:
        raise CheckpointError(f"{path}: paligemma_config.text_config.num_key_value_heads must be 1 (Gemma's)")
    system2, _ = system2_config(
        source,
        S2,
        layout,
        vision_heads=pali.get("vision_config", {}).get("num_attention_heads", 16),
        max_token_len=raw.get("tokenizer_max_length", 48),
        num_steps=raw.get("num_steps", 10),
        rope_theta=float(raw["gemma_expert_config"].get("rope_theta", 10000.0)),
        image_size=size[0],
    )
    if raw.get("proj_width", system2.expert_width) != system2.expert_width:
        raise CheckpointError(f"{path}: proj_width ({raw['proj_width']}) must equal the expert width")

    vqh = gemma_sizes(source, f"{VQH_GEMMA}model.")
    critics = sorted(
        {
            int(m.group(1))
            for k in source.keys()
            if (m := re.match(rf"{re.escape(CALQL)}critics\.networks\.(\d+)\.", k))
        }
    )
    critic_hidden = _mlp_hidden(source, f"{CALQL}critics.networks.0.")
    critic_in = source.shape(f"{CALQL}critics.networks.0.layers.0.weight")[1]
    steps = (critic_in - vqh.width) // action_dim
    if vqh.width + steps * action_dim != critic_in or steps != raw.get("vqh_chunk_size", steps):
        first = f"{CALQL}critics.networks.0.layers.0.weight"
        raise CheckpointError(
            f"{source.where(first)}: the critic reads {critic_in} inputs, "
            f"not the query feature ({vqh.width}) + vqh_chunk_size ({raw.get('vqh_chunk_size')}) x "
            f"{action_dim} actions"
        )
    if vqh.width != system2.vlm_width:
        raise CheckpointError(
            f"{path}: the value-query head's Gemma is {vqh.width} wide; theirs reads System 2's prefix "
            f"embeddings directly, so it must be the VLM's width ({system2.vlm_width})"
        )
    value_head = ValueQueryHeadConfig(
        width=None,  # no input projection: the VLM's width
        num_layers=vqh.depth,
        num_heads=vqh.num_heads,
        num_kv_heads=1,
        head_dim=vqh.head_dim,
        intermediate_size=vqh.mlp_dim,
        action_steps=steps,
        num_critics=len(critics),
        critic_hidden=critic_hidden,
        actor_hidden=_mlp_hidden(source, f"{CALQL}policy.network."),
        # Their actor clamps std to [1e-5, 10].
        log_std_min=math.log(1e-5),
        log_std_max=math.log(10.0),
        gamma=raw.get("discount", 0.98),
        query_attention="bidirectional",
        residual_from_norm=True,
        critic_activation="silu",
    )

    dino = raw["s1_dino_config"]
    for key, ours in (("use_swiglu_ffn", False), ("qkv_bias", True), ("hidden_act", "gelu")):
        if dino.get(key, ours) != ours:
            raise CheckpointError(f"{path}: s1_dino_config.{key} is {dino[key]!r}; ours supports {ours!r}")
    trunk = gemma_sizes(source, f"{S1_EXPERT}gemma_expert.model.")
    system1 = System1Config(
        vision_hidden_size=dino.get("hidden_size", 384),
        vision_num_layers=layer_count(source, f"{S1_EXPERT}vision_tower.encoder.layer."),
        vision_num_heads=dino.get("num_attention_heads", 6),
        vision_mlp_ratio=dino.get("mlp_ratio", 4),
        patch_size=dino.get("patch_size", 14),
        vision_pos_grid=dino.get("image_size", 518),
        width=trunk.width,
        num_layers=trunk.depth,
        num_heads=trunk.num_heads,
        num_kv_heads=1,
        head_dim=trunk.head_dim,
        intermediate_size=trunk.mlp_dim,
        padded_widths=True,  # max_state_dim / max_action_dim
        state_history=raw.get("s1_his_state_size", 1),
        theta1=float(raw.get("theta1", 1.0)),
        num_steps=raw.get("s1_num_steps", 10),
        residual_from_norm=True,
        stamp_projection=False,
        camera_embedding=False,
        history_mask="causal",
    )
    return HumeConfig(
        system2=system2,
        value_head=value_head,
        system1=system1,
        chunk_size=chunk,
        s1_horizon=horizon,
        action_dim=action_dim,
        state_dim=state_dim,
        max_action_dim=raw.get("max_action_dim", 32),
        max_state_dim=raw.get("max_state_dim", 32),
        cameras=cameras,
        image_size=size[0],
        resize_with_padding=True,
        postprocess_gripper=postprocess_gripper,
        # Their LIBERO evaluation: System 2 every chunk, System 1 every h steps, best of 5.
        s2_replan_steps=chunk,
        s1_replan_steps=horizon,
        num_candidates=5,
        candidate_schedule="hume",
        candidate_t0_range=(0.9, 1.0),
        candidate_temperature_range=(1.0, 2.0),
        # Their theta2 is the fraction System 2 denoises; ours is the flow time it stops at.
        theta2=1.0 - float(raw.get("theta2", 1.0)),
    )


def _map_system1(source: SourceTensors, out: Mapped) -> None:
    vision = f"{S1_EXPERT}vision_tower."
    for key in source.keys():
        if key.startswith(vision):
            ours = key[len(vision) :]
            for old, new in DINOV2_RENAMES:
                ours = ours.replace(old, new)
            out.take("system1.vision_encoder." + ours, key)
        elif key.startswith(f"{S1_EXPERT}multi_modal_projector."):
            out.take("system1.vision_proj." + key.rsplit(".", 1)[1], key)
        elif key.startswith(f"{S1_EXPERT}gemma_expert.model.layers.") or key == (
            f"{S1_EXPERT}gemma_expert.model.norm.weight"
        ):
            out.take("system1.trunk." + key[len(f"{S1_EXPERT}gemma_expert.model.") :], key)
        elif key.startswith(f"{S1_EXPERT}gemma_expert.") and ("embed_tokens" in key or "lm_head" in key):
            source.drop(
                key, "System 1's trunk is fed embeddings; it has no use for a token embedding or head"
            )
    for theirs, ours in S1_PROJECTIONS.items():
        for part in ("weight", "bias"):
            out.take(f"system1.{ours}.{part}", f"{S1}{theirs}.{part}")


def _map_value_head(source: SourceTensors, config: ValueQueryHeadConfig, out: Mapped) -> None:
    out.take("value_head.query", f"{VQH}query_embedding")
    for key in source.keys():
        if key.startswith(f"{VQH_GEMMA}model.layers.") or key == f"{VQH_GEMMA}model.norm.weight":
            out.take("value_head.encoder." + key[len(f"{VQH_GEMMA}model.") :], key)
        elif key.startswith(VQH_GEMMA) and ("embed_tokens" in key or "lm_head" in key):
            source.drop(
                key, "the value-query backbone is fed System 2's embeddings; its token embedding is unused"
            )
        elif key.startswith(f"{VQH}paligemma_with_expert."):
            source.drop(key, "the value head's alias of System 2's backbone (the same weights as s2_model's)")
    depth = len(config.critic_hidden)
    for group in ("critics", "target_critics"):
        # Their critics share one output layer: each of ours gets a copy (same outputs, and they stay
        # independent if trained further).
        head = {part: f"{CALQL}{group}.output_layer.{part}" for part in ("weight", "bias")}
        shared = {part: source.take(key) for part, key in head.items()}
        for i in range(config.num_critics):
            for layer in range(depth):
                for part in ("weight", "bias"):
                    out.take(
                        f"value_head.{group}.{i}.{2 * layer}.{part}",
                        f"{CALQL}{group}.networks.{i}.layers.{2 * layer}.{part}",
                    )
            for part in ("weight", "bias"):
                out.put(f"value_head.{group}.{i}.{2 * depth}.{part}", shared[part].clone(), head[part])
    actor_depth = len(config.actor_hidden)
    for layer in range(actor_depth):
        for part in ("weight", "bias"):
            out.take(
                f"value_head.actor.net.{2 * layer}.{part}", f"{CALQL}policy.network.layers.{2 * layer}.{part}"
            )
    # Their actor has separate mean and log-std layers; ours one layer whose outputs split in two
    # (mean first).
    for part in ("weight", "bias"):
        mean_key = f"{CALQL}policy.mean_layer.{part}"
        mean, log_std = source.take(mean_key), source.take(f"{CALQL}policy.std_layer.{part}")
        out.put(f"value_head.actor.net.{2 * actor_depth}.{part}", torch.cat([mean, log_std], 0), mean_key)
    temperature = f"{CALQL}temperature.multiplier"
    out.put("value_head.log_alpha", torch.log(F.softplus(source.take(temperature).float())), temperature)


def convert_hume(
    source_dir: Path, postprocess_gripper: bool = True, tokenizer_dir: Path | None = None, **pi0_options
) -> Conversion:
    """Read the authors' checkpoint folder into a Conversion (see `write_checkpoint`). Their
    System-2-only checkpoints (type "system2") go through the π0 converter with `pi0_options`.
    tokenizer_dir: a tokenizer folder preferred over the one the checkpoint ships."""
    source_dir = Path(source_dir)
    raw = _read_config(source_dir)
    if raw.get("type") == "system2":
        # Their System-2-only release (Hume-System2) is a π0 in their System2Policy's layout.
        from hume.convert.pi0 import convert_pi0

        log.info("%s is a System-2-only checkpoint: converting it as a π0", source_dir)
        return convert_pi0(source_dir, tokenizer_dir, **pi0_options)
    source = SourceTensors(source_dir)
    tensors = Mapped(source)
    layout = map_system2(source, S2, tensors)
    config = build_config(raw, source, layout, source_dir / "config.json", postprocess_gripper)
    _map_system1(source, tensors)
    _map_value_head(source, config.value_head, tensors)
    stats, normalization = lerobot_stats(source_dir, source, raw, config.state_dim, config.action_dim)
    check_total(source)
    tokenizer = find_tokenizer(
        [Path(tokenizer_dir) if tokenizer_dir is not None else source_dir],
        config.system2.vocab_size,
        f"{tokenizer_dir or source_dir}: no tokenizer files (tokenizer.json or tokenizer.model)",
    )
    conversion = Conversion(
        config=config,
        tensors=dict(tensors),
        origins=tensors.origins,
        stats=stats,
        tokenizer_dir=tokenizer,
        dropped=dict(source.dropped),
        source={
            "format": "hume",
            "path": str(source_dir.resolve()),
            "layout": layout.name,
            "files": source.file_hashes(),
            "camera_names": {
                name: our_camera(name)
                for name in (
                    k[len(IMAGE_PREFIX) :] for k in raw["input_features"] if k.startswith(IMAGE_PREFIX)
                )
            },
            "normalization": normalization,
            "dtypes": sorted({str(t.dtype) for t in tensors.values()}),
        },
    )
    check_shapes(conversion, source)
    return conversion
