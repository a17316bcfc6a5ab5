"""Load a DINOv2 checkpoint directory (transformers `save_pretrained` format) into System 1's encoder.

transformers itself reads the directory (it knows the on-disk tensor names of every DINOv2 release
and strips task-model prefixes); we only read safetensors, never pickle. Architecture fields of
config.json and every tensor's name and shape are checked against System 1's encoder before
anything is copied, so a wrong checkpoint fails naming the file and the key instead of loading
half a model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

from transformers import Dinov2Model

log = logging.getLogger(__name__)

# config.json fields that change the computation without always changing a tensor shape.
ARCHITECTURE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "patch_size",
    "mlp_ratio",
    "use_swiglu_ffn",
    "qkv_bias",
    "num_channels",
)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message names the file and the key."""


def _weights_file(directory: Path) -> Path:
    for name in ("model.safetensors", "model.safetensors.index.json"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"no model.safetensors (or model.safetensors.index.json) in {directory}: pass a directory written "
        "by transformers' save_pretrained (convert .bin checkpoints to safetensors first)"
    )


def _check_config(directory: Path, encoder: Dinov2Model) -> None:
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}: not a transformers checkpoint directory")
    theirs = json.loads(path.read_text())
    for key in ARCHITECTURE_FIELDS:
        ours = getattr(encoder.config, key)
        if key in theirs and theirs[key] != ours:
            raise CheckpointMismatchError(
                f"{path}: key {key!r} is {theirs[key]!r} but System 1's encoder has {ours!r}; "
                "set the system1.vision_* fields to match the checkpoint"
            )


def load_dinov2_checkpoint(encoder: Dinov2Model, directory: str | Path) -> None:
    """Copy the weights saved in `directory` into `encoder` (in place), after checking them all."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"DINOv2 checkpoint directory not found: {directory}")
    _check_config(directory, encoder)
    weights = _weights_file(directory)
    # With output_loading_info transformers returns (model, loading info); its annotation names
    # the model alone.
    pretrained, info = cast(
        "tuple[Dinov2Model, dict[str, Any]]",
        Dinov2Model.from_pretrained(directory, output_loading_info=True, use_safetensors=True),
    )
    if info["missing_keys"]:
        key = sorted(info["missing_keys"])[0]
        raise CheckpointMismatchError(
            f"{weights}: key {key!r} of the DINOv2 encoder is missing "
            f"({len(info['missing_keys'])} keys missing in all)"
        )
    theirs = pretrained.state_dict()
    ours = encoder.state_dict()
    for key, param in ours.items():
        if key not in theirs:
            raise CheckpointMismatchError(
                f"{weights}: key {key!r} of System 1's encoder is not in the checkpoint"
            )
        if theirs[key].shape != param.shape:
            raise CheckpointMismatchError(
                f"{weights}: key {key!r} has shape {list(theirs[key].shape)}, System 1's encoder expects "
                f"{list(param.shape)}; set the system1.vision_* fields to match the checkpoint"
            )
    encoder.load_state_dict({key: theirs[key] for key in ours}, strict=True)
    log.info("loaded DINOv2 weights from %s", directory)
