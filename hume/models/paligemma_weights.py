"""Load a Hugging Face PaliGemma checkpoint directory into System 2's backbone.

Reads `model.safetensors` or a sharded `model.safetensors.index.json`. Tensor names are mapped by
prefix: the original layout (`vision_tower.vision_model.*`, `language_model.model.*`,
`multi_modal_projector.linear.*`), the layout transformers 5 writes with `save_pretrained`
(`vision_tower.*`, `language_model.model.*`) and the nested one (`model.vision_tower.*`,
`model.language_model.*`). Only the vision tower, projector and VLM are loaded: the action expert
and the state/action projections have no PaliGemma counterpart (pi0 trains them). The language
model head and SigLIP's pooling head are not used by System 2 and are skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open

from hume.models.system2 import System2

log = logging.getLogger(__name__)

# (checkpoint prefix, System 2 prefix), most specific first.
PREFIXES: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_model.", "vision_tower."),
    ("vision_tower.vision_model.", "vision_tower."),
    ("model.vision_tower.", "vision_tower."),
    ("vision_tower.", "vision_tower."),
    ("model.multi_modal_projector.linear.", "multi_modal_projector."),
    ("multi_modal_projector.linear.", "multi_modal_projector."),
    ("model.language_model.", "vlm."),
    ("language_model.model.", "vlm."),
)
LOADED = ("vision_tower.", "multi_modal_projector.", "vlm.")


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the file and the tensor."""


def _shards(directory: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index}: not a safetensors index (no weight_map): {e}") from None
        return {name: directory / file for name, file in weight_map.items()}
    single = directory / "model.safetensors"
    if not single.is_file():
        raise CheckpointError(
            f"{directory}: no model.safetensors or model.safetensors.index.json "
            "(expected a PaliGemma directory written by transformers' save_pretrained)"
        )
    with safe_open(str(single), "pt") as f:
        return dict.fromkeys(f.keys(), single)


def _source(directory: Path) -> Path:
    index = directory / "model.safetensors.index.json"
    return index if index.is_file() else directory / "model.safetensors"


def _our_name(name: str) -> str | None:
    for theirs, ours in PREFIXES:
        if name.startswith(theirs):
            return ours + name[len(theirs) :]
    return None


def load_paligemma(system2: System2, path: str | Path) -> None:
    """Copy the PaliGemma vision tower, projector and Gemma decoder of `path` into `system2`.

    Raises CheckpointError naming the file and the tensor when one is missing or has another shape.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"PaliGemma checkpoint directory not found: {directory}")
    files = _shards(directory)
    available = {}
    for name, file in files.items():
        ours = _our_name(name)
        if ours is not None:
            available[ours] = (name, file)

    own = {k: v for k, v in system2.state_dict().items() if k.startswith(LOADED)}
    for key in own:
        if key not in available:
            raise CheckpointError(
                f"{_source(directory)}: no tensor for System 2's {key} (is this a PaliGemma checkpoint "
                "with the sizes of the system2 config?)"
            )
    handles = {}
    with torch.no_grad():
        for key, target in own.items():
            name, file = available[key]
            if file not in handles:
                handles[file] = safe_open(str(file), "pt")
            tensor = handles[file].get_tensor(name)
            if tensor.shape != target.shape:
                raise CheckpointError(
                    f"{file}: tensor {name} has shape {tuple(tensor.shape)}, System 2's {key} needs "
                    f"{tuple(target.shape)} (check the system2 sizes in the config)"
                )
            target.copy_(tensor.to(target.dtype))
    log.info("loaded %d PaliGemma tensors from %s", len(own), directory)
