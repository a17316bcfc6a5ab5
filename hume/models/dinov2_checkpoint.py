"""Load a DINOv2 checkpoint directory (transformers `save_pretrained` format) into System 1's encoder.

Only safetensors are read (never pickle). Architecture fields of config.json and every tensor's
name and shape are checked first, so a wrong checkpoint fails naming the file and the key instead
of loading half a model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors.torch import load_file
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
# Checkpoints of task models (e.g. Dinov2ForImageClassification) keep the backbone under this prefix.
BACKBONE_PREFIX = "dinov2."


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message names the file and the key."""


def _weight_files(directory: Path) -> list[Path]:
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / s for s in shards]
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
    found: dict[str, tuple] = {}
    for file in _weight_files(directory):
        for key, tensor in load_file(str(file)).items():
            found[key.removeprefix(BACKBONE_PREFIX)] = (tensor, file)
    ours = encoder.state_dict()
    for key, param in ours.items():
        if key not in found:
            raise CheckpointMismatchError(
                f"{directory}: key {key!r} of System 1's encoder is missing from the checkpoint"
            )
        tensor, file = found[key]
        if tensor.shape != param.shape:
            raise CheckpointMismatchError(
                f"{file}: key {key!r} has shape {list(tensor.shape)}, System 1's encoder expects "
                f"{list(param.shape)}; set the system1.vision_* fields to match the checkpoint"
            )
    ignored = sorted(set(found) - set(ours))
    if ignored:
        log.info(
            "DINOv2 checkpoint %s: ignoring %d tensors outside the backbone (%s...)",
            directory,
            len(ignored),
            ignored[0],
        )
    encoder.load_state_dict({key: found[key][0] for key in ours}, strict=True)
