"""pi0 checkpoints (openpi's PyTorch port, LeRobot's `pi0` policy) -> our checkpoint format.

The result is "System 2 alone": π0's SigLIP + Gemma VLM + Gemma action expert become our System 2
with π0's own sampler (one candidate, 10 Euler steps from t = 1 to 0, every padded action dim
sampled); the value head and System 1 are switched off and initialised fresh, ready for `hume train`.

The jobs, one file each: telling the folder apart and assembling the converted config (here); the
tensors and System 2's sizes (system2.py, every transformers layout: R is the root, "" for openpi,
"model." for LeRobot); what openpi's and LeRobot's files beside the weights say (pi0_settings.py);
their normalisation statistics (normalization.py). Both projects save with
`safetensors.torch.save_model`, which stores tensors that share memory once under the alphabetically
first name: a tied token embedding appears as the language-model head alone.

π0.5 (adaRMS expert, `time_mlp_*`), π0-FAST and openpi's JAX checkpoints are refused with a message.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from hume.config import parse_config
from hume.constants import IMAGE_PREFIX
from hume.convert.common import (
    TOKENIZER_FILES,
    Conversion,
    Mapped,
    check_shapes,
    check_total,
    find_tokenizer,
    read_json,
)
from hume.convert.pi0_settings import Settings, lerobot_settings, openpi_settings
from hume.convert.system2 import PI0, map_system2, system2_config
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system2 import System2Config

log = logging.getLogger(__name__)

FULL_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model" / "full.yaml"
# π0's SigLIP is so400m/14 with 16 heads in every release (openpi and LeRobot hard-code it); the head
# count is the one size its tensor shapes do not tell.
SIGLIP_HEADS = 16


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
        Defaults: LIBERO's slots for openpi LIBERO assets; LeRobot's LIBERO names mapped to ours
        (hume/convert/cameras.py; others kept, its blank `empty_camera_*` left out).
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
    if root:
        settings = lerobot_settings(source, tensors, cameras, replan_steps, chunk_size)
        fmt = "lerobot"
    else:
        settings = openpi_settings(source, asset_id, cameras, replan_steps, chunk_size)
        fmt = "openpi"

    mapped = Mapped(tensors)
    layout = map_system2(tensors, root, mapped)
    check_total(tensors)
    system2, image_size = system2_config(
        tensors,
        root,
        layout,
        vision_heads=SIGLIP_HEADS,
        max_token_len=settings.max_token_len,
        num_steps=settings.num_steps,
        image_size=settings.image_size,
    )
    config = _hume_config(system2, image_size, tensors, root, settings, _fresh_sizes(fresh_config))
    tokenizer = _tokenizer(tokenizer_dir, settings, system2.vocab_size, source)
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
        tensors=dict(mapped),
        origins=mapped.origins,
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
    config = read_json(source / "config.json") if (source / "config.json").is_file() else {}
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
        f"{tensors.path}: no tensor under '{PI0}' or 'model.{PI0}' (first key {first!r}): not an openpi or "
        "LeRobot π0 checkpoint"
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


def _tokenizer(explicit: Path | None, settings: Settings, vocab: int, source: Path) -> Path:
    if explicit is not None:
        return find_tokenizer(
            [Path(explicit)], vocab, f"{explicit}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])})"
        )
    return find_tokenizer(
        settings.tokenizer_dirs,
        vocab,
        f"{source}: the checkpoint ships no tokenizer (openpi and older LeRobot fetch PaliGemma's at run "
        "time); pass a PaliGemma tokenizer folder (tokenizer.model, e.g. openpi's paligemma_tokenizer.model "
        "renamed, or google/paligemma-3b-pt-224's files)",
    )


# ----- the converted config -----------------------------------------------------------------------
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
