"""pi0 checkpoints (openpi's PyTorch port, LeRobot's `pi0` policy) -> our checkpoint format.

The result is "System 2 alone": π0's SigLIP + Gemma VLM + Gemma action expert become our System 2
with π0's own sampler (one candidate, 10 Euler steps from t = 1 to 0, every padded action dim
sampled); the value head and System 1 are switched off and initialised fresh, ready for `hume train`.

Source layouts, told apart by their tensor names (R is the root: "" for openpi, "model." for LeRobot;
P = R + "paligemma_with_expert.paligemma."):
- transformers < 4.52 (LeRobot's first pi0, 2025): P + `vision_tower.vision_model.*`,
  `multi_modal_projector.linear.*`, `language_model.model.*`, tied head `language_model.lm_head.weight`;
  normalisation buffers `normalize_inputs.buffer_observation_state.*`, `normalize_targets.*`,
  `unnormalize_outputs.*` at the policy's top level (before LeRobot's processor pipelines).
- transformers 4.52 - 4.x (openpi, which pins 4.53.2; LeRobot's openpi port): P + `model.vision_tower
  .vision_model.*`, `model.multi_modal_projector.linear.*`, `model.language_model.*`, head `lm_head.weight`.
- transformers 5 (LeRobot since 2026): as above, but the vision tower without `vision_model.`.
In every layout the expert is R + `paligemma_with_expert.gemma_expert.model.{layers,norm}` (plus an
unused `lm_head`), and the flow projections are R + `state_proj`, `action_in_proj`, `action_out_proj`,
`action_time_mlp_in`, `action_time_mlp_out`. Both projects save with `safetensors.torch.save_model`,
which stores tensors that share memory once under the alphabetically first name: a tied token
embedding appears as `lm_head.weight` alone.

Beside the weights: openpi keeps `config.json` (action_horizon, variants) and the normalisation
statistics in `assets/<asset_id>/norm_stats.json` (mean/std/q01/q99 of "state" and "actions"; π0 uses
mean/std); LeRobot keeps `config.json` (type "pi0", features, chunk_size, ...) and its statistics either
in the buffers above or in `policy_preprocessor*.json` + `*_normalizer_processor.safetensors` (newer
versions, which also save the tokenizer to `tokenizer/`). Every affine normalisation (mean/std, min/max,
quantiles) is rewritten as the mean/std pair our Normalizer applies, with the source's epsilon folded
into std so normalised values match.

π0.5 (adaRMS expert, `time_mlp_*`), π0-FAST and openpi's JAX checkpoints are refused with a message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hume.config import parse_config
from hume.constants import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from hume.convert.common import TOKENIZER_FILES, Conversion, SourceTensors, check_shapes, check_total
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system2 import System2Config
from hume.models.paligemma_weights import CheckpointError

log = logging.getLogger(__name__)

FULL_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model" / "full.yaml"

PI0 = "paligemma_with_expert."
EXPERT = "gemma_expert.model."
EXPERT_HEAD = "gemma_expert.lm_head.weight"
PROJECTIONS = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out")
# π0's SigLIP is so400m/14 with 16 heads in every release (openpi and LeRobot hard-code it); the head
# count is the one size its tensor shapes do not tell.
SIGLIP_HEADS = 16
# π0's flow settings that our System 2 hard-codes (flow.sinusoidal_embedding's periods).
TIME_PERIODS = (4e-3, 4.0)
OPENPI_TOKEN_LEN = 48  # openpi's Pi0Config.max_token_len for π0 (200 is π0.5's)
OPENPI_REPLAN_STEPS = 5  # openpi's LIBERO client executes 5 actions of each chunk, then replans

# LeRobot's LIBERO camera names (lerobot/envs/libero.py and the LeRobot LIBERO datasets) -> ours.
LEROBOT_CAMERAS = {"image": "agentview", "image2": "wrist", "wrist_image": "wrist"}
# openpi's three image slots, in the order π0 reads them; for LIBERO the third is fed blank and
# masked (openpi's LiberoInputs), which is the same as leaving it out.
OPENPI_SLOTS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
OPENPI_LIBERO_CAMERAS = {"base_0_rgb": "agentview", "left_wrist_0_rgb": "wrist", "right_wrist_0_rgb": ""}


@dataclass(frozen=True)
class Layout:
    """Where the PaliGemma parts sit under `paligemma_with_expert.` in one transformers generation."""

    name: str
    vision: str
    projector: str
    language: str
    lm_head: str


LAYOUTS = (
    Layout(
        "transformers 4.52+ (openpi; LeRobot from mid-2025)",
        "paligemma.model.vision_tower.vision_model.",
        "paligemma.model.multi_modal_projector.linear.",
        "paligemma.model.language_model.",
        "paligemma.lm_head.weight",
    ),
    Layout(
        "transformers 5 (LeRobot)",
        "paligemma.model.vision_tower.",
        "paligemma.model.multi_modal_projector.linear.",
        "paligemma.model.language_model.",
        "paligemma.lm_head.weight",
    ),
    Layout(
        "transformers < 4.52 (LeRobot's first pi0)",
        "paligemma.vision_tower.vision_model.",
        "paligemma.multi_modal_projector.linear.",
        "paligemma.language_model.model.",
        "paligemma.language_model.lm_head.weight",
    ),
)

WHY_EXPERT_HEAD = (
    "the action expert's language-model head: π0 builds the expert as a Gemma causal LM, removes its "
    "token embedding and never decodes tokens, so this head is never used or trained"
)
WHY_EXPERT_EMBED = "the action expert is fed embeddings; a token embedding has no use"
WHY_TIED_HEAD = "the VLM's language-model head, tied to (equal to) the token embedding taken instead"
WHY_UNTIED_HEAD = (
    "the VLM's language-model head, an untied copy that differs from the token embedding π0 reads; "
    "π0 never decodes text, so it is unused"
)
WHY_SIGLIP_HEAD = "SigLIP's attention-pooling head: PaliGemma feeds the patch tokens before it"
WHY_BUFFERS_SUPERSEDED = (
    "normalisation buffer of an older LeRobot version; the processor statistics saved beside it are the "
    "ones LeRobot applies and were taken instead"
)


@dataclass
class Settings:
    """What the source's files beside the weights say (π0's I/O around System 2)."""

    chunk_size: int
    num_steps: int
    max_token_len: int
    image_size: int | None  # the resize target the source states, checked against the tensors
    cameras: list[tuple[str, str]]  # (source image name, our camera name; "" = a slot π0 sees masked)
    state_dim: int
    action_dim: int
    stats: dict
    replan_steps: int
    tokenizer_dirs: list[Path] = field(default_factory=list)  # shipped tokenizer folders, best first
    provenance: dict = field(default_factory=dict)


# ----- entry point ------------------------------------------------------------------------------
def convert_pi0(
    source: Path,
    tokenizer_dir: Path | None = None,
    *,
    asset_id: str | None = None,
    cameras: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    replan_steps: int | None = None,
    fresh_config: HumeConfig | str | Path | None = None,
) -> Conversion:
    """A π0 checkpoint folder -> a Conversion of System 2 alone.

    tokenizer_dir: a PaliGemma tokenizer folder; required when the source ships none (openpi and
        older LeRobot checkpoints download theirs at run time), preferred over a shipped one.
    asset_id: which `assets/<asset_id>/norm_stats.json` of an openpi checkpoint to use (needed when it
        holds several).
    cameras: source image name -> our camera name ("" leaves a slot out: π0 saw it masked). openpi's
        names are its slots base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb; LeRobot's are its
        `observation.images.*` features; names left out of a given mapping are left out of the model.
        Defaults: LIBERO's slots for openpi LIBERO assets; LeRobot's LIBERO names mapped to ours (others
        kept, its blank `empty_camera_*` left out).
    chunk_size: π0's action horizon when the source does not state it (openpi training checkpoints
        carry no config.json; openpi's default is 50).
    replan_steps: control steps between two System-2 calls (default: LeRobot's n_action_steps; 5 for
        openpi, as its LIBERO client).
    fresh_config: a HumeConfig (or its YAML) whose value-head and System-1 sizes the fresh networks
        take (default: configs/model/full.yaml).
    """
    source = Path(source)
    if not source.is_dir():
        raise CheckpointError(f"pi0 checkpoint folder not found: {source}")
    _refuse_unsupported(source)
    tensors = SourceTensors(source)
    root = _root(tensors)
    _refuse_pi05(tensors, root)
    layout = _layout(tensors, root)
    if root:
        settings = _lerobot_settings(source, tensors, cameras, replan_steps, chunk_size)
        fmt = "lerobot"
    else:
        settings = _openpi_settings(source, asset_id, cameras, replan_steps, chunk_size)
        fmt = "openpi"

    mapped, origin = _map_tensors(tensors, root + PI0, root, layout)
    check_total(tensors)
    system2, image_size = _system2_config(tensors, root, layout, settings)
    config = _hume_config(system2, image_size, tensors, root, settings, _fresh_sizes(fresh_config))
    tokenizer = _tokenizer(tokenizer_dir, settings.tokenizer_dirs, system2.vocab_size, source)
    log.info(
        "pi0 (%s, %s): %d tensors mapped, %d dropped, chunk %d, cameras %s",
        fmt,
        layout.name,
        len(mapped),
        len(tensors.dropped),
        settings.chunk_size,
        list(config.cameras),
    )
    conversion = Conversion(
        config=config,
        tensors=mapped,
        origins=origin,
        stats=settings.stats,
        tokenizer_dir=tokenizer,
        dropped=dict(tensors.dropped),
        fresh=("value_head", "system1"),
        source={
            "format": "pi0",
            "pi0_format": fmt,
            "layout": layout.name,
            "path": str(source),
            "files": tensors.file_hashes(),
            "tokenizer": str(tokenizer),
            "cameras": {theirs: ours for theirs, ours in settings.cameras},
            **settings.provenance,
        },
    )
    check_shapes(conversion, tensors)
    return conversion


def parse_camera_map(text: str) -> dict[str, str]:
    """`base_0_rgb=agentview,left_wrist_0_rgb=wrist,right_wrist_0_rgb=` -> a `cameras` mapping."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(
                f"camera mapping {item!r} is not SOURCE=OURS (an empty OURS leaves the slot out)"
            )
        theirs, ours = (s.strip() for s in item.split("=", 1))
        out[theirs.removeprefix(IMAGE_PREFIX)] = ours
    return out


# ----- what the folder is -------------------------------------------------------------------------
def _refuse_unsupported(source: Path) -> None:
    has_weights = (source / "model.safetensors").is_file() or (
        source / "model.safetensors.index.json"
    ).is_file()
    if not has_weights and (source / "params").is_dir():
        raise CheckpointError(
            f"{source}: an openpi JAX (orbax) checkpoint; convert it to PyTorch first with openpi's "
            "examples/convert_jax_model_to_pytorch.py, then convert that folder"
        )
    config = _read_json(source / "config.json") if (source / "config.json").is_file() else {}
    kind = config.get("type")
    if kind in ("pi05", "pi0.5"):
        raise CheckpointError(
            f"{source / 'config.json'}: a π0.5 checkpoint (type {kind!r}); only π0 converts"
        )
    if kind in ("pi0fast", "pi0_fast"):
        raise CheckpointError(
            f"{source / 'config.json'}: a π0-FAST checkpoint (autoregressive action tokens); only π0 converts"
        )
    if kind == "hume":
        raise CheckpointError(f"{source / 'config.json'}: a Hume checkpoint; use --from hume")
    # "system2": the authors' Hume-System2 release, a π0 saved as their System2Policy (LeRobot layout).
    if kind not in (None, "pi0", "system2"):
        raise CheckpointError(f"{source / 'config.json'}: type {kind!r} is not a π0 policy")
    for key in ("paligemma_variant", "action_expert_variant"):
        if "pi05" in str(config.get(key, "")):
            raise CheckpointError(
                f"{source / 'config.json'}: {key} {config[key]!r} is π0.5's; only π0 converts"
            )


def _root(tensors: SourceTensors) -> str:
    for root in ("", "model."):
        if any(k.startswith(root + PI0) for k in tensors.keys()):
            return root
    first = tensors.keys()[0] if tensors.keys() else "(none)"
    raise CheckpointError(
        f"{tensors.where(first) if tensors.keys() else tensors.directory}: no tensor under "
        f"'{PI0}' or 'model.{PI0}' (first key {first!r}): not an openpi or LeRobot π0 checkpoint"
    )


def _refuse_pi05(tensors: SourceTensors, root: str) -> None:
    pi05 = [
        k
        for k in tensors.keys()
        if k.startswith((root + "time_mlp_in.", root + "time_mlp_out."))
        or (k.startswith(root + PI0 + "gemma_expert.") and ".dense." in k)
    ]
    if pi05:
        raise CheckpointError(
            f"{tensors.where(pi05[0])}: tensor {pi05[0]!r} belongs to π0.5 (adaptive RMSNorm conditioned on "
            "time, no state token); only π0 converts"
        )


def _layout(tensors: SourceTensors, root: str) -> Layout:
    base = root + PI0
    found = [lay for lay in LAYOUTS if base + lay.vision + "embeddings.patch_embedding.weight" in tensors]
    language = [lay for lay in LAYOUTS if base + lay.language + "layers.0.self_attn.q_proj.weight" in tensors]
    if not found or not language:
        raise CheckpointError(
            f"{tensors.directory}: no PaliGemma vision tower or language model under {base!r} in any known "
            f"layout ({', '.join(lay.name for lay in LAYOUTS)})"
        )
    layout = found[0]
    if layout.language != language[0].language:
        raise CheckpointError(
            f"{tensors.directory}: the vision tower is laid out as {layout.name} but the language model as "
            f"{language[0].name}"
        )
    return layout


# ----- tensors ------------------------------------------------------------------------------------
def _map_tensors(
    tensors: SourceTensors, base: str, root: str, layout: Layout
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Our key -> tensor, and our key -> the source key it came from (for error messages)."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}

    def put(ours: str, key: str) -> None:
        out[ours] = tensors.take(key)
        origin[ours] = key

    embed = base + layout.language + "embed_tokens.weight"
    head = base + layout.lm_head
    for key in tensors.keys():
        if not key.startswith(base):
            continue
        rest = key[len(base) :]
        if rest.startswith(layout.vision):
            sub = rest[len(layout.vision) :]
            if sub.startswith("head."):
                tensors.drop(key, WHY_SIGLIP_HEAD)
            elif sub.startswith(("embeddings.", "encoder.", "post_layernorm.")):
                put("system2.vision_tower." + sub, key)
        elif rest.startswith(layout.projector):
            put("system2.multi_modal_projector." + rest[len(layout.projector) :], key)
        elif rest.startswith(layout.language) and key != embed:
            sub = rest[len(layout.language) :]
            if sub.startswith(("layers.", "norm.")):
                put("system2.vlm." + sub, key)
        elif rest.startswith(EXPERT):
            sub = rest[len(EXPERT) :]
            if sub.startswith(("layers.", "norm.")):
                put("system2.expert." + sub, key)
            elif sub.startswith("embed_tokens."):
                tensors.drop(key, WHY_EXPERT_EMBED)
        elif rest == EXPERT_HEAD:
            tensors.drop(key, WHY_EXPERT_HEAD)

    # π0 reads the token embedding. Saved once when tied (as the head: save_model keeps the
    # alphabetically first name); saved twice, the head may be an untrained, untied copy.
    if embed in tensors:
        put("system2.vlm.embed_tokens.weight", embed)
        if head in tensors:
            tied = torch.equal(tensors.peek(embed), tensors.peek(head))
            tensors.drop(head, WHY_TIED_HEAD if tied else WHY_UNTIED_HEAD)
    elif head in tensors:
        put("system2.vlm.embed_tokens.weight", head)
    else:
        raise CheckpointError(f"{tensors.directory}: no token embedding ({embed!r} or its tied {head!r})")

    for name in PROJECTIONS:
        for part in ("weight", "bias"):
            key = f"{root}{name}.{part}"
            if key not in tensors:
                raise CheckpointError(f"{tensors.directory}: π0 tensor {key!r} missing")
            put(f"system2.{name}.{part}", key)
    return out, origin


def _layers(tensors: SourceTensors, prefix: str) -> int:
    found = {int(m.group(1)) for k in tensors.keys() if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not found or found != set(range(max(found) + 1)):
        raise CheckpointError(f"{tensors.directory}: no contiguous layers under {prefix!r}")
    return max(found) + 1


def _gemma_sizes(tensors: SourceTensors, prefix: str) -> dict[str, int]:
    """A Gemma stack's sizes from its tensors. Every Gemma in π0 has one KV head, so the key projection's
    rows are head_dim and the query projection's rows heads x head_dim."""
    q = tensors.shape(f"{prefix}layers.0.self_attn.q_proj.weight")
    k = tensors.shape(f"{prefix}layers.0.self_attn.k_proj.weight")
    if q[0] % k[0]:
        raise CheckpointError(
            f"{tensors.where(prefix + 'layers.0.self_attn.q_proj.weight')}: query rows {q[0]} are not a "
            f"multiple of key rows {k[0]} (π0's Gemmas have one KV head)"
        )
    return {
        "width": q[1],
        "depth": _layers(tensors, prefix + "layers."),
        "head_dim": k[0],
        "num_heads": q[0] // k[0],
        "mlp_dim": tensors.shape(f"{prefix}layers.0.mlp.gate_proj.weight")[0],
    }


def _system2_config(
    tensors: SourceTensors, root: str, layout: Layout, settings: Settings
) -> tuple[System2Config, int]:
    """System 2's sizes read off the tensors, and the image size the vision tower's positions cover."""
    base = root + PI0
    vision = base + layout.vision
    patch = tensors.shape(vision + "embeddings.patch_embedding.weight")
    positions = tensors.shape(vision + "embeddings.position_embedding.weight")[0]
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise CheckpointError(
            f"{tensors.where(vision + 'embeddings.position_embedding.weight')}: {positions} positions "
            "are not a square grid of patches"
        )
    image_size = grid * patch[-1]
    if settings.image_size is not None and settings.image_size != image_size:
        raise CheckpointError(
            f"{tensors.directory}: the config resizes images to {settings.image_size} but the vision tower's "
            f"position embedding covers {image_size}"
        )
    vlm = _gemma_sizes(tensors, base + layout.language)
    expert = _gemma_sizes(tensors, base + EXPERT)
    if (vlm["num_heads"], vlm["head_dim"]) != (expert["num_heads"], expert["head_dim"]):
        raise CheckpointError(
            f"{tensors.directory}: the VLM ({vlm['num_heads']} heads x {vlm['head_dim']}) and the expert "
            f"({expert['num_heads']} x {expert['head_dim']}) must share the attention geometry"
        )
    if vlm["depth"] != expert["depth"]:
        raise CheckpointError(
            f"{tensors.directory}: the expert has {expert['depth']} layers, the VLM {vlm['depth']}: "
            "π0 pairs them"
        )
    embed = base + layout.language + "embed_tokens.weight"
    vocab = tensors.shape(embed if embed in tensors else base + layout.lm_head)[0]
    if patch[0] % SIGLIP_HEADS:
        raise CheckpointError(
            f"{tensors.where(vision + 'embeddings.patch_embedding.weight')}: SigLIP width {patch[0]} "
            f"does not split into π0's {SIGLIP_HEADS} heads"
        )
    system2 = System2Config(
        vision_width=patch[0],
        vision_depth=_layers(tensors, vision + "encoder.layers."),
        vision_heads=SIGLIP_HEADS,
        vision_mlp_dim=tensors.shape(vision + "encoder.layers.0.mlp.fc1.weight")[0],
        patch_size=patch[-1],
        vlm_width=vlm["width"],
        vlm_depth=vlm["depth"],
        vlm_mlp_dim=vlm["mlp_dim"],
        vocab_size=vocab,
        num_heads=vlm["num_heads"],
        num_kv_heads=1,
        head_dim=vlm["head_dim"],
        expert_width=expert["width"],
        expert_mlp_dim=expert["mlp_dim"],
        max_token_len=settings.max_token_len,
        num_steps=settings.num_steps,
        # π0 samples and trains every padded action dim (towards the zero padding).
        pin_padded_actions=False,
        # PaliGemma's prompt: the instruction as given, ending in "\n".
        lowercase_instruction=False,
        instruction_suffix="\n",
    )
    return system2, image_size


def _fresh_sizes(fresh: HumeConfig | str | Path | None) -> HumeConfig:
    if isinstance(fresh, HumeConfig):
        return fresh
    path = Path(fresh) if fresh is not None else FULL_CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no model config for the fresh value head and System 1 (pass fresh_config)"
        )
    return parse_config(HumeConfig, ["--config", str(path)])


def _s1_replan_steps(s2_replan: int, horizon: int, chunk: int) -> int:
    """The largest System-1 period (<= its horizon) whose last refinement still fits in the chunk."""
    for k in range(min(horizon, s2_replan), 0, -1):
        if (s2_replan - 1) // k * k + k <= chunk:
            return k
    return 1


def _tiling_patch(image_size: int, patch: int) -> int:
    """The fresh System 1's patch size: the given one, or the largest smaller one that tiles the
    converted model's images (System 1 reads the images System 2 does)."""
    return next(p for p in range(patch, 0, -1) if image_size % p == 0)


def _hume_config(
    system2: System2Config,
    image_size: int,
    tensors: SourceTensors,
    root: str,
    settings: Settings,
    fresh: HumeConfig,
) -> HumeConfig:
    max_state = tensors.shape(f"{root}state_proj.weight")[1]
    max_action = tensors.shape(f"{root}action_in_proj.weight")[1]
    chunk = settings.chunk_size
    if settings.state_dim > max_state or settings.action_dim > max_action:
        raise CheckpointError(
            f"{tensors.directory}: state/action dims {settings.state_dim}/{settings.action_dim} exceed the "
            f"padded widths {max_state}/{max_action} of state_proj/action_in_proj"
        )
    cameras = tuple(ours for _, ours in settings.cameras if ours)
    horizon = min(fresh.s1_horizon, chunk)
    replan = min(settings.replan_steps, chunk)
    config = HumeConfig(
        system2=system2,
        value_head=dataclasses.replace(
            fresh.value_head, action_steps=min(fresh.value_head.action_steps, chunk)
        ),
        system1=dataclasses.replace(
            fresh.system1, patch_size=_tiling_patch(image_size, fresh.system1.patch_size)
        ),
        chunk_size=chunk,
        s1_horizon=horizon,
        action_dim=settings.action_dim,
        state_dim=settings.state_dim,
        max_action_dim=max_action,
        max_state_dim=max_state,
        cameras=cameras,
        image_size=image_size,
        resize_with_padding=True,
        postprocess_gripper=False,
        s2_replan_steps=replan,
        s1_replan_steps=_s1_replan_steps(replan, horizon, chunk),
        # π0's sampler: one chunk from pure noise, steps of exactly 1 / num_steps down to t = 0.
        num_candidates=1,
        candidate_schedule="hume",
        candidate_t0_range=(1.0, 1.0),
        candidate_temperature_range=(1.0, 1.0),
        theta2=0.0,
        use_value_head=False,
        use_system1=False,
    )
    config.validate()
    return config


# ----- openpi -------------------------------------------------------------------------------------
def _openpi_settings(
    source: Path,
    asset_id: str | None,
    cameras: Mapping[str, str] | None,
    replan_steps: int | None,
    chunk_size: int | None,
) -> Settings:
    config = _read_json(source / "config.json") if (source / "config.json").is_file() else {}
    horizon = config.get("action_horizon")
    if horizon is None and chunk_size is None:
        raise CheckpointError(
            f"{source}: no config.json stating action_horizon (openpi's training checkpoints carry none): "
            "pass the chunk size π0 was trained with (openpi's default is 50)"
        )
    if horizon is not None and chunk_size is not None and horizon != chunk_size:
        raise CheckpointError(
            f"{source / 'config.json'}: action_horizon is {horizon}, the chunk size asked for is {chunk_size}"
        )
    chunk = int(horizon if horizon is not None else chunk_size)

    norm_file, asset = _norm_stats_file(source, asset_id)
    raw = _read_json(norm_file).get("norm_stats")
    if not isinstance(raw, dict) or "state" not in raw or "actions" not in raw:
        raise CheckpointError(f"{norm_file}: expected {{'norm_stats': {{'state': ..., 'actions': ...}}}}")
    # openpi's Normalize: (x - mean) / (std + 1e-6) (π0 uses mean/std, not quantiles).
    stats = {
        STATE_KEY: _mean_std(raw["state"], 1e-6, norm_file, "state"),
        ACTION_KEY: _mean_std(raw["actions"], 1e-6, norm_file, "actions"),
    }
    if cameras is None:
        if "libero" not in asset.lower():
            raise CheckpointError(
                f"{norm_file}: say which of π0's image slots {', '.join(OPENPI_SLOTS)} your robot fills and "
                "with which of our cameras (e.g. base_0_rgb=agentview,left_wrist_0_rgb=wrist,"
                "right_wrist_0_rgb= for a slot left blank); only LIBERO's is known"
            )
        cameras = OPENPI_LIBERO_CAMERAS
    unknown = sorted(set(cameras) - set(OPENPI_SLOTS))
    if unknown:
        raise CheckpointError(f"{source}: openpi's π0 has image slots {OPENPI_SLOTS}, not {unknown}")
    return Settings(
        chunk_size=chunk,
        num_steps=10,
        max_token_len=OPENPI_TOKEN_LEN,
        image_size=None,
        cameras=_check_cameras([(slot, cameras.get(slot, "")) for slot in OPENPI_SLOTS], source),
        state_dim=len(stats[STATE_KEY]["mean"]),
        action_dim=len(stats[ACTION_KEY]["mean"]),
        stats=stats,
        replan_steps=replan_steps or OPENPI_REPLAN_STEPS,
        tokenizer_dirs=[source / "tokenizer", source],
        provenance={
            "asset_id": asset,
            "norm_stats": str(norm_file.relative_to(source)),
            "openpi_config": config,
            "normalization": "mean/std (std + 1e-6)",
        },
    )


def _norm_stats_file(source: Path, asset_id: str | None) -> tuple[Path, str]:
    assets = source / "assets"
    found = sorted(assets.rglob("norm_stats.json")) if assets.is_dir() else []
    ids = [str(p.parent.relative_to(assets)) for p in found]
    if asset_id is not None:
        if asset_id not in ids:
            raise CheckpointError(
                f"{assets}: no {asset_id}/norm_stats.json (asset ids here: {ids or 'none'})"
            )
        return assets / asset_id / "norm_stats.json", asset_id
    if not found:
        raise CheckpointError(
            f"{source}: no assets/<asset_id>/norm_stats.json (openpi's normalisation statistics)"
        )
    if len(found) > 1:
        raise CheckpointError(f"{assets}: several asset ids {ids}; name the robot's asset id")
    return found[0], ids[0]


# ----- LeRobot ------------------------------------------------------------------------------------
def _lerobot_settings(
    source: Path,
    tensors: SourceTensors,
    cameras: Mapping[str, str] | None,
    replan_steps: int | None,
    chunk_size: int | None,
) -> Settings:
    path = source / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{source}: no config.json (a LeRobot pi0 policy folder has one)")
    config = _read_json(path)
    if config.get("type") not in ("pi0", "system2"):  # system2: the authors' Hume-System2 release
        raise CheckpointError(f"{path}: type is {config.get('type')!r}, not 'pi0'")
    _refuse_lerobot_options(config, path)
    chunk = int(_need(config, "chunk_size", path))
    if chunk_size is not None and chunk_size != chunk:
        raise CheckpointError(f"{path}: chunk_size is {chunk}, the chunk size asked for is {chunk_size}")
    inputs, outputs = _need(config, "input_features", path), _need(config, "output_features", path)
    state_dim = int(_need(_need(inputs, STATE_KEY, path), "shape", path)[-1])
    action_dim = int(_need(_need(outputs, ACTION_KEY, path), "shape", path)[-1])
    size = config.get("image_resolution", config.get("resize_imgs_with_padding"))
    if size is not None and (len(size) != 2 or size[0] != size[1]):
        raise CheckpointError(f"{path}: images resized to {size}; ours needs one square size")

    preprocessor = _processor(source, "policy_preprocessor.json")
    rename = {}
    for step in preprocessor.get("steps", []):
        if _step_name(step) == "rename_observations_processor":
            rename = step.get("config", {}).get("rename_map", {}) or {}
    stats, normalization = _lerobot_stats(source, tensors, config, preprocessor, state_dim, action_dim)

    original = {v.removeprefix(IMAGE_PREFIX): k.removeprefix(IMAGE_PREFIX) for k, v in rename.items()}
    names = [k[len(IMAGE_PREFIX) :] for k, v in inputs.items() if k.startswith(IMAGE_PREFIX)]
    if cameras is None:
        cameras = {
            n: ""
            if n.startswith("empty_camera_")
            else LEROBOT_CAMERAS.get(original.get(n, n), original.get(n, n))
            for n in names
        }
    unknown = sorted(set(cameras) - set(names))
    if unknown:
        raise CheckpointError(f"{path}: no image feature {unknown[0]!r} (the policy's images: {names})")

    tokenizer_dirs = []
    max_len = config.get("tokenizer_max_length", 48)
    for step in preprocessor.get("steps", []):
        if _step_name(step) == "tokenizer_processor":
            cfg = step.get("config", {})
            max_len = cfg.get("max_length", max_len)
            name = cfg.get("tokenizer_name")
            if name and (source / name).is_dir():
                tokenizer_dirs.append(source / name)
    tokenizer_dirs += [source / "tokenizer", source]
    n_action_steps = int(config.get("n_action_steps", chunk))
    return Settings(
        chunk_size=chunk,
        num_steps=int(config.get("num_inference_steps", config.get("num_steps", 10))),
        max_token_len=int(max_len),
        image_size=None if size is None else int(size[0]),
        cameras=_check_cameras([(n, cameras.get(n, "")) for n in names], path),
        state_dim=state_dim,
        action_dim=action_dim,
        stats=stats,
        replan_steps=replan_steps or n_action_steps,
        tokenizer_dirs=tokenizer_dirs,
        provenance={
            "lerobot_config": {k: config.get(k) for k in _LEROBOT_RECORDED if k in config},
            "normalization": normalization,
            "rename_map": rename,
        },
    )


_LEROBOT_RECORDED = (
    "type",
    "chunk_size",
    "n_action_steps",
    "max_state_dim",
    "max_action_dim",
    "num_steps",
    "num_inference_steps",
    "tokenizer_max_length",
    "resize_imgs_with_padding",
    "image_resolution",
    "paligemma_variant",
    "action_expert_variant",
    "dtype",
    "normalization_mapping",
    "input_features",
    "output_features",
)


def _refuse_lerobot_options(config: dict, path: Path) -> None:
    """Options that change π0's inputs or outputs in ways our policy does not reproduce."""
    for key in ("adapt_to_pi_aloha", "use_delta_joint_actions_aloha", "use_relative_actions"):
        if config.get(key):
            raise CheckpointError(
                f"{path}: {key} is set; the converted policy would not transform state/actions so"
            )
    if config.get("n_obs_steps", 1) != 1:
        raise CheckpointError(f"{path}: n_obs_steps is {config['n_obs_steps']}; π0 reads one observation")
    periods = (config.get("min_period", TIME_PERIODS[0]), config.get("max_period", TIME_PERIODS[1]))
    if tuple(float(p) for p in periods) != TIME_PERIODS:
        raise CheckpointError(f"{path}: time-embedding periods {periods}; ours are π0's {TIME_PERIODS}")


def _processor(source: Path, name: str) -> dict:
    path = source / name
    return _read_json(path) if path.is_file() else {}


def _step_name(step: dict) -> str:
    return str(step.get("registry_name") or step.get("class") or "")


def _lerobot_stats(
    source: Path, tensors: SourceTensors, config: dict, preprocessor: dict, state_dim: int, action_dim: int
) -> tuple[dict, dict]:
    """Statistics of the processor pipeline (newer LeRobot) or of the policy's buffers (older)."""
    buffers = [
        k
        for k in tensors.keys()
        if k.startswith(("normalize_inputs.", "normalize_targets.", "unnormalize_outputs."))
    ]
    modes = {k: str(v).upper() for k, v in (config.get("normalization_mapping") or {}).items()}
    features = {**config.get("input_features", {}), **config.get("output_features", {})}
    processor = _processor_stats(source, preprocessor, "normalizer_processor")
    if processor is None:
        processor = _processor_stats(
            source, _processor(source, "policy_postprocessor.json"), "unnormalizer_processor"
        )
    if processor is not None:
        values, step_modes, eps, file = processor
        modes = step_modes or modes
        for key in buffers:
            tensors.drop(key, WHY_BUFFERS_SUPERSEDED)
        where = file
    elif buffers:
        values, eps, where = _buffer_stats(tensors, buffers), 1e-8, tensors.where(buffers[0])
    else:
        raise CheckpointError(
            f"{source}: no normalisation statistics (neither policy_preprocessor.json with a normalizer step "
            "nor normalize_inputs/... buffers in the weights)"
        )
    visual = any(str(spec.get("type", "")).upper() == "VISUAL" for spec in features.values())
    if visual and modes.get("VISUAL", "IDENTITY") != "IDENTITY":
        raise CheckpointError(
            f"{where}: images are normalised ({modes['VISUAL']}); π0's images (and ours) are only scaled "
            "to [-1, 1]"
        )
    stats = {
        STATE_KEY: _affine(
            values.get(STATE_KEY, {}), modes.get("STATE", "MEAN_STD"), eps, state_dim, where, STATE_KEY
        ),
        ACTION_KEY: _affine(
            values.get(ACTION_KEY, {}), modes.get("ACTION", "MEAN_STD"), eps, action_dim, where, ACTION_KEY
        ),
    }
    return stats, {
        "STATE": modes.get("STATE", "MEAN_STD"),
        "ACTION": modes.get("ACTION", "MEAN_STD"),
        "eps": eps,
    }


def _processor_stats(source: Path, pipeline: dict, step_name: str):
    """(feature -> stat -> list, norm_map, eps, file) of a pipeline's (un)normalizer step, or None."""
    from safetensors.torch import load_file

    for step in pipeline.get("steps", []):
        if _step_name(step) != step_name:
            continue
        cfg = step.get("config", {})
        state_file = step.get("state_file")
        if not state_file or not (source / state_file).is_file():
            raise CheckpointError(
                f"{source}: the {step_name} step's statistics file {state_file!r} is missing"
            )
        flat = load_file(str(source / state_file))
        values: dict[str, dict[str, list[float]]] = {}
        for key, tensor in flat.items():
            feature, stat = key.rsplit(".", 1)
            values.setdefault(feature, {})[stat] = tensor.float().reshape(-1).tolist()
        norm_map = {k.upper(): str(v).upper() for k, v in (cfg.get("norm_map") or {}).items()}
        return values, norm_map, float(cfg.get("eps", 1e-8)), source / state_file
    return None


def _buffer_stats(tensors: SourceTensors, buffers: list[str]) -> dict:
    """Older LeRobot: `normalize_inputs.buffer_observation_state.mean` etc.; the targets' and outputs'
    copies of the action statistics must agree."""
    values: dict[str, dict[str, list[float]]] = {}
    for key in buffers:
        module, buffer, stat = key.split(".", 2)
        feature = buffer.removeprefix("buffer_")
        feature = {"observation_state": STATE_KEY}.get(feature, feature)
        tensor = tensors.take(key).float().reshape(-1)
        if torch.isinf(tensor).any():
            raise CheckpointError(
                f"{tensors.where(key)}: {key!r} is still infinite: the policy was saved without statistics"
            )
        known = values.setdefault(feature, {}).get(stat)
        if known is not None and not torch.allclose(torch.tensor(known), tensor):
            raise CheckpointError(
                f"{tensors.where(key)}: {key!r} disagrees with another copy of {feature}.{stat}"
            )
        values[feature][stat] = tensor.tolist()
    return values


def _affine(values: dict, mode: str, eps: float, dim: int, where: Path, name: str) -> dict:
    """LeRobot's normalisation of one feature as our mean/std: (x - mean) / std."""

    def pair(lo: str, hi: str) -> dict:
        low, high = torch.tensor(_stat(values, lo, where, name)), torch.tensor(_stat(values, hi, where, name))
        span = high - low
        # LeRobot replaces an empty range by eps; x -> 2 (x - lo) / span - 1 is (x - centre) / (span / 2).
        span = torch.where(span == 0, torch.full_like(span, eps), span)
        return {"mean": ((low + high) / 2).tolist(), "std": (span / 2).tolist()}

    if mode == "MEAN_STD":
        out = _mean_std(values, eps, where, name)
    elif mode == "MIN_MAX":
        out = pair("min", "max")
    elif mode == "QUANTILES":
        out = pair("q01", "q99")
    elif mode == "QUANTILE10":
        out = pair("q10", "q90")
    elif mode == "IDENTITY":
        out = {"mean": [0.0] * dim, "std": [1.0] * dim}
    else:
        raise CheckpointError(f"{where}: normalisation mode {mode!r} of {name} is not supported")
    if len(out["mean"]) != dim:
        raise CheckpointError(
            f"{where}: statistics of {name} have {len(out['mean'])} dims, the feature {dim}"
        )
    if name == ACTION_KEY and "min" in values and "max" in values and len(values["min"]) == dim:
        # The value head's action box (the data's range), as our own checkpoints carry it.
        out.update(min=list(values["min"]), max=list(values["max"]))
    return out


def _stat(values: dict, stat: str, where: Path, name: str) -> list[float]:
    if stat not in values:
        raise CheckpointError(f"{where}: no {stat!r} statistics for {name}")
    return [float(v) for v in values[stat]]


def _mean_std(values: dict, eps: float, where: Path, name: str) -> dict:
    mean, std = _stat(values, "mean", where, name), _stat(values, "std", where, name)
    if len(mean) != len(std):
        raise CheckpointError(f"{where}: mean and std of {name} differ in length")
    # The source divides by std + eps; folding eps in makes our (x - mean) / std the same.
    return {"mean": mean, "std": [s + eps for s in std]}


# ----- shared helpers -----------------------------------------------------------------------------
def _check_cameras(pairs: list[tuple[str, str]], where: Path) -> list[tuple[str, str]]:
    ours = [o for _, o in pairs if o]
    if not ours:
        raise CheckpointError(f"{where}: no image slot is mapped to one of our cameras")
    if len(set(ours)) != len(ours):
        raise CheckpointError(f"{where}: two image slots map to the same camera: {pairs}")
    return pairs


def _tokenizer(explicit: Path | None, shipped: Sequence[Path], vocab: int, source: Path) -> Path:
    from hume.tokenizer import load_tokenizer

    if explicit is not None:
        candidates = [Path(explicit)]
        if not _has_tokenizer(candidates[0]):
            raise CheckpointError(f"{explicit}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])})")
    else:
        candidates = [d for d in shipped if _has_tokenizer(d)]
        if not candidates:
            raise CheckpointError(
                f"{source}: the checkpoint ships no tokenizer (openpi and older LeRobot fetch PaliGemma's "
                "at run time); pass a PaliGemma tokenizer folder (tokenizer.model, e.g. openpi's "
                "paligemma_tokenizer.model renamed, or google/paligemma-3b-pt-224's files)"
            )
    directory = candidates[0]
    size = load_tokenizer(directory).vocab_size
    if size > vocab:
        raise CheckpointError(
            f"{directory}: the tokenizer has {size} tokens, the checkpoint's embedding {vocab}: "
            "not its tokenizer"
        )
    return directory


def _has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer.model").is_file() or (directory / "tokenizer.json").is_file()


def _need(mapping: dict, key: str, where: Path):
    if not isinstance(mapping, dict) or key not in mapping:
        raise CheckpointError(f"{where}: key {key!r} missing")
    return mapping[key]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data
