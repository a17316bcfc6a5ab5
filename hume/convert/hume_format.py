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

import json
import logging
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from hume.constants import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from hume.convert.common import Conversion, Mapped, SourceTensors, check_shapes, check_total
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system1 import System1Config
from hume.models.configuration_system2 import System2Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.paligemma_weights import CheckpointError

log = logging.getLogger(__name__)

# LeRobot's LIBERO camera names -> ours (sim/libero_env.py); others keep their names.
CAMERA_NAMES = {"image": "agentview", "wrist_image": "wrist", "image_0": "agentview"}

S2 = "s2_model."
PALIGEMMA = "s2_model.paligemma_with_expert.paligemma."
EXPERT = "s2_model.paligemma_with_expert.gemma_expert."
S1 = "s1_model."
S1_EXPERT = "s1_model.fast_visuo_expert."
VQH = "value_query_head."
VQH_GEMMA = "value_query_head.vqh_backbone.gemma_expert."
CALQL = "value_query_head.calql."
PROJECTIONS = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out")
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
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if raw.get("type") == "system2":  # their System-2-only release: the caller converts it as a π0
        return raw
    if raw.get("type", "hume") != "hume":
        raise CheckpointError(f"{path}: type is {raw.get('type')!r}, not 'hume' (use --from pi0 for pi0)")
    for key in ("paligemma_config", "gemma_expert_config", "s1_dino_config", "s1_gemma_expert_config"):
        if key not in raw:
            raise CheckpointError(f"{path}: key {key!r} missing (not a Hume config.json)")
    return raw


def _field(raw: dict, key: str, path: Path):
    if key not in raw:
        raise CheckpointError(f"{path}: key {key!r} missing")
    return raw[key]


def _layers(source: SourceTensors, prefix: str) -> int:
    found = {int(m.group(1)) for k in source.keys() if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not found or found != set(range(max(found) + 1)):
        raise CheckpointError(f"{source.directory}: no contiguous layers under {prefix!r}")
    return max(found) + 1


def _gemma_sizes(source: SourceTensors, layers_prefix: str) -> dict:
    """Width, depth, heads, head_dim and MLP width of a Gemma stack from its tensors (one KV head,
    as every Gemma the authors use)."""
    q = source.shape(f"{layers_prefix}0.self_attn.q_proj.weight")
    k = source.shape(f"{layers_prefix}0.self_attn.k_proj.weight")
    gate = source.shape(f"{layers_prefix}0.mlp.gate_proj.weight")
    return {
        "width": q[1],
        "num_layers": _layers(source, layers_prefix),
        "head_dim": k[0],
        "num_heads": q[0] // k[0],
        "num_kv_heads": 1,
        "intermediate_size": gate[0],
    }


def _mlp_hidden(source: SourceTensors, prefix: str) -> tuple[int, ...]:
    """Hidden widths of one of their MLPs: Linear layers at even indices (activation between)."""
    sizes, i = [], 0
    while f"{prefix}layers.{i}.weight" in source:
        sizes.append(source.shape(f"{prefix}layers.{i}.weight")[0])
        i += 2
    if not sizes:
        raise CheckpointError(f"{source.directory}: no MLP layers under {prefix!r}")
    return tuple(sizes)


def build_config(raw: dict, source: SourceTensors, path: Path, postprocess_gripper: bool) -> HumeConfig:
    """Their config.json + tensor shapes -> a HumeConfig whose switches reproduce their networks."""
    features = _field(raw, "input_features", path)
    cameras = [k[len(IMAGE_PREFIX) :] for k in features if k.startswith(IMAGE_PREFIX)]
    if not cameras:
        raise CheckpointError(f"{path}: input_features name no camera ({IMAGE_PREFIX}*)")
    cameras = tuple(CAMERA_NAMES.get(c, c) for c in cameras)
    state_dim = _field(features, STATE_KEY, path)["shape"][0]
    action_dim = _field(_field(raw, "output_features", path), ACTION_KEY, path)["shape"][0]
    size = _field(raw, "resize_imgs_with_padding", path)
    if size is None or size[0] != size[1]:
        raise CheckpointError(f"{path}: resize_imgs_with_padding {size} is not square; ours needs one size")
    chunk, horizon = raw["s2_chunk_size"], raw["s1_chunk_size"]
    if raw.get("n_action_steps", chunk) != chunk:
        raise CheckpointError(
            f"{path}: n_action_steps ({raw['n_action_steps']}) differs from s2_chunk_size ({chunk}); their "
            "System 2 samples n_action_steps actions while System 1 slices s2_chunk_size"
        )

    pali, expert = raw["paligemma_config"], raw["gemma_expert_config"]
    text, vision = pali.get("text_config", {}), pali.get("vision_config", {})
    embed_key = _embedding_key(source)
    vlm = _gemma_sizes(source, f"{PALIGEMMA}language_model.model.layers.")
    exp = _gemma_sizes(source, f"{EXPERT}model.layers.")
    if (vlm["num_heads"], vlm["head_dim"]) != (exp["num_heads"], exp["head_dim"]):
        raise CheckpointError(f"{path}: the VLM and the action expert must share heads and head_dim")
    if exp["num_layers"] != vlm["num_layers"]:
        raise CheckpointError(f"{path}: the action expert needs one layer per VLM layer")
    patch = source.shape(f"{PALIGEMMA}vision_tower.vision_model.embeddings.patch_embedding.weight")
    system2 = System2Config(
        vision_width=patch[0],
        vision_depth=_layers(source, f"{PALIGEMMA}vision_tower.vision_model.encoder.layers."),
        vision_heads=vision.get("num_attention_heads", 16),
        vision_mlp_dim=source.shape(f"{PALIGEMMA}vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight")[
            0
        ],
        patch_size=patch[-1],
        vlm_width=vlm["width"],
        vlm_depth=vlm["num_layers"],
        vlm_mlp_dim=vlm["intermediate_size"],
        vocab_size=source.shape(embed_key)[0],
        num_heads=vlm["num_heads"],
        num_kv_heads=text.get("num_key_value_heads", 1),
        head_dim=vlm["head_dim"],
        expert_width=exp["width"],
        expert_mlp_dim=exp["intermediate_size"],
        rope_theta=float(expert.get("rope_theta", 10000.0)),
        max_token_len=raw.get("tokenizer_max_length", 48),
        num_steps=raw.get("num_steps", 10),
        pin_padded_actions=False,
        lowercase_instruction=False,
        instruction_suffix="\n",
    )
    if raw.get("proj_width", exp["width"]) != exp["width"]:
        raise CheckpointError(f"{path}: proj_width ({raw['proj_width']}) must equal the expert width")

    vqh = _gemma_sizes(source, f"{VQH_GEMMA}model.layers.")
    critics = sorted(
        {
            int(m.group(1))
            for k in source.keys()
            if (m := re.match(rf"{re.escape(CALQL)}critics\.networks\.(\d+)\.", k))
        }
    )
    critic_hidden = _mlp_hidden(source, f"{CALQL}critics.networks.0.")
    critic_in = source.shape(f"{CALQL}critics.networks.0.layers.0.weight")[1]
    steps = (critic_in - vqh["width"]) // action_dim
    if vqh["width"] + steps * action_dim != critic_in or steps != raw.get("vqh_chunk_size", steps):
        first = f"{CALQL}critics.networks.0.layers.0.weight"
        raise CheckpointError(
            f"{source.where(first)}: the critic reads {critic_in} inputs, "
            f"not the query feature ({vqh['width']}) + vqh_chunk_size ({raw.get('vqh_chunk_size')}) x "
            f"{action_dim} actions"
        )
    if vqh["width"] != vlm["width"]:
        raise CheckpointError(
            f"{path}: the value-query head's Gemma is {vqh['width']} wide; theirs reads System 2's prefix "
            f"embeddings directly, so it must be the VLM's width ({vlm['width']})"
        )
    value_head = ValueQueryHeadConfig(
        width=None,  # no input projection: the VLM's width
        num_layers=vqh["num_layers"],
        num_heads=vqh["num_heads"],
        num_kv_heads=vqh["num_kv_heads"],
        head_dim=vqh["head_dim"],
        intermediate_size=vqh["intermediate_size"],
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
    trunk = _gemma_sizes(source, f"{S1_EXPERT}gemma_expert.model.layers.")
    system1 = System1Config(
        vision_hidden_size=dino.get("hidden_size", 384),
        vision_num_layers=_layers(source, f"{S1_EXPERT}vision_tower.encoder.layer."),
        vision_num_heads=dino.get("num_attention_heads", 6),
        vision_mlp_ratio=dino.get("mlp_ratio", 4),
        patch_size=dino.get("patch_size", 14),
        vision_pos_grid=dino.get("image_size", 518),
        width=trunk["width"],
        num_layers=trunk["num_layers"],
        num_heads=trunk["num_heads"],
        num_kv_heads=trunk["num_kv_heads"],
        head_dim=trunk["head_dim"],
        intermediate_size=trunk["intermediate_size"],
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


def _embedding_key(source: SourceTensors) -> str:
    for key in (
        f"{PALIGEMMA}language_model.model.embed_tokens.weight",
        f"{PALIGEMMA}language_model.lm_head.weight",
    ):
        if key in source:
            return key
    raise CheckpointError(
        f"{source.directory}: no token embedding of the VLM (embed_tokens or its tied lm_head)"
    )


def _map_system2(source: SourceTensors, out: Mapped) -> None:
    vision = f"{PALIGEMMA}vision_tower.vision_model."
    for key in source.keys():
        if key.startswith(vision):
            out.take("system2.vision_tower." + key[len(vision) :], key)
        elif key.startswith(f"{PALIGEMMA}multi_modal_projector.linear."):
            out.take("system2.multi_modal_projector." + key.rsplit(".", 1)[1], key)
        elif key.startswith(f"{PALIGEMMA}language_model.model.layers.") or key == (
            f"{PALIGEMMA}language_model.model.norm.weight"
        ):
            out.take("system2.vlm." + key[len(f"{PALIGEMMA}language_model.model.") :], key)
        elif key.startswith(f"{EXPERT}model.layers.") or key == f"{EXPERT}model.norm.weight":
            out.take("system2.expert." + key[len(f"{EXPERT}model.") :], key)
    # The token embedding is tied to the language-model head: whichever copy was saved is it.
    embed, head = (
        f"{PALIGEMMA}language_model.model.embed_tokens.weight",
        f"{PALIGEMMA}language_model.lm_head.weight",
    )
    out.take("system2.vlm.embed_tokens.weight", _embedding_key(source))
    if embed in source and head in source:
        if not torch.equal(source.peek(embed), source.peek(head)):
            raise CheckpointError(f"{source.where(head)}: {head!r} is not tied to {embed!r}; ours ties them")
        source.drop(
            head, "the language-model head is tied to the token embedding (System 2 never decodes text)"
        )
    for name in PROJECTIONS:
        for part in ("weight", "bias"):
            out.take(f"system2.{name}.{part}", f"{S2}{name}.{part}")
    for key in source.keys():
        if key.startswith(EXPERT) and ("embed_tokens" in key or "lm_head" in key):
            source.drop(
                key, "the action expert is fed embeddings; it has no use for a token embedding or head"
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


def _map_stats(source: SourceTensors, raw: dict) -> dict:
    """LeRobot's normalisation buffers -> stats.json (MEAN_STD for state and action)."""
    mapping = raw.get("normalization_mapping", {})
    for kind in ("STATE", "ACTION"):
        if mapping.get(kind, "MEAN_STD") != "MEAN_STD":
            raise CheckpointError(
                f"normalization_mapping.{kind} is {mapping[kind]!r}; only MEAN_STD is supported"
            )
    stats = {}
    for ours, buffer in (
        (STATE_KEY, "normalize_inputs.buffer_observation_state"),
        (ACTION_KEY, "unnormalize_outputs.buffer_action"),
    ):
        stats[ours] = {part: source.take(f"{buffer}.{part}").float().tolist() for part in ("mean", "std")}
    for part in ("mean", "std"):
        key = f"normalize_targets.buffer_action.{part}"
        if key in source:
            if not torch.equal(source.peek(key).float(), torch.tensor(stats[ACTION_KEY][part])):
                raise CheckpointError(f"{source.where(key)}: {key!r} differs from unnormalize_outputs' copy")
            source.drop(key, "training-time copy of the action statistics (equal to unnormalize_outputs')")
    for key in source.keys():
        if key.startswith("normalize_inputs.buffer_observation_images"):
            if mapping.get("VISUAL", "IDENTITY") != "IDENTITY":
                raise CheckpointError(f"{source.where(key)}: normalised images ({key!r}) are not supported")
            source.drop(key, "images are not normalised (VISUAL: IDENTITY)")
    return stats


def convert_hume(source_dir: Path, postprocess_gripper: bool = True, **pi0_options) -> Conversion:
    """Read the authors' checkpoint folder into a Conversion (see `write_checkpoint`). Their
    System-2-only checkpoints (type "system2") go through the π0 converter with `pi0_options`."""
    source_dir = Path(source_dir)
    raw = _read_config(source_dir)
    if raw.get("type") == "system2":
        # Their System-2-only release (Hume-System2) is a π0 in their System2Policy's layout.
        from hume.convert.pi0 import convert_pi0

        log.info("%s is a System-2-only checkpoint: converting it as a π0", source_dir)
        return convert_pi0(source_dir, **pi0_options)
    source = SourceTensors(source_dir)
    config = build_config(raw, source, source_dir / "config.json", postprocess_gripper)
    tensors = Mapped(source)
    _map_system2(source, tensors)
    _map_system1(source, tensors)
    _map_value_head(source, config.value_head, tensors)
    stats = _map_stats(source, raw)
    check_total(source)
    tokenizer = (
        source_dir if any((source_dir / n).is_file() for n in ("tokenizer.json", "tokenizer.model")) else None
    )
    if tokenizer is None:
        raise CheckpointError(f"{source_dir}: no tokenizer files (tokenizer.json or tokenizer.model)")
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
            "files": source.file_hashes(),
            "camera_names": {
                k[len(IMAGE_PREFIX) :]: CAMERA_NAMES.get(k[len(IMAGE_PREFIX) :], k[len(IMAGE_PREFIX) :])
                for k in raw["input_features"]
                if k.startswith(IMAGE_PREFIX)
            },
            "dtypes": sorted({str(t.dtype) for t in tensors.values()}),
        },
    )
    check_shapes(conversion, source)
    return conversion
