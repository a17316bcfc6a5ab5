"""What every checkpoint conversion shares: the source's files read with errors that name them,
its tokenizer found and checked, and our checkpoint folder written only when the conversion is total.

A converter maps each source tensor to one of ours (`SourceTensors.take`, in
hume/models/checkpoint_tensors.py) or says why it is not used (`SourceTensors.drop`);
`write_checkpoint` refuses to write while a source tensor is neither, while one of our tensors has
no source (unless its whole network is initialised afresh), or while a shape differs, naming the
file and the key each time.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from hume.config import to_dict
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors
from hume.models.configuration_hume import HumeConfig
from hume.tokenizer import has_tokenizer, load_tokenizer

log = logging.getLogger(__name__)

PROVENANCE_FILE = "provenance.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


@dataclass
class Conversion:
    config: HumeConfig
    tensors: dict[str, torch.Tensor]  # our state-dict key -> tensor, in the source's dtype
    stats: dict  # {"observation.state": {"mean", "std"}, "action": {"mean", "std"}}
    tokenizer_dir: Path | None  # a folder holding the source's tokenizer files
    dropped: dict[str, str]  # source key -> why it is not used
    fresh: tuple[str, ...] = ()  # our networks with no source ("value_head", "system1"): new weights
    source: dict = field(default_factory=dict)  # provenance: format, path, file hashes, settings
    origins: dict[str, str] = field(default_factory=dict)  # our key -> the source key it came from


class Mapped(dict):
    """Our key -> tensor, remembering which source tensor each came from (for error messages)."""

    def __init__(self, source: SourceTensors):
        super().__init__()
        self.source = source
        self.origins: dict[str, str] = {}

    def take(self, ours: str, theirs: str) -> None:
        self[ours] = self.source.take(theirs)
        self.origins[ours] = theirs

    def put(self, ours: str, tensor: torch.Tensor, theirs: str) -> None:
        """A tensor computed from source tensors (theirs names one of them)."""
        self[ours] = tensor
        self.origins[ours] = theirs


def read_json(path: Path) -> dict:
    """A JSON object from a source's file; anything else fails naming the file."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def need(mapping: dict, key: str, where: Path):
    """`mapping[key]` of a source's config, or an error naming the file and the key."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise CheckpointError(f"{where}: key {key!r} missing")
    return mapping[key]


def find_tokenizer(candidates: Sequence[Path], vocab: int, missing: str) -> Path:
    """The first of `candidates` holding tokenizer files (`missing` is the error when none does),
    checked to fit the checkpoint's token embedding of `vocab` rows."""
    found = [Path(d) for d in candidates if has_tokenizer(Path(d))]
    if not found:
        raise CheckpointError(missing)
    size = load_tokenizer(found[0]).vocab_size
    if size > vocab:
        raise CheckpointError(
            f"{found[0]}: the tokenizer has {size} tokens, the checkpoint's embedding {vocab}: "
            "not its tokenizer"
        )
    return found[0]


def check_total(source: SourceTensors) -> None:
    """Every source tensor is used or dropped with a reason; otherwise fail naming one of them."""
    left = source.remaining()
    if left:
        raise CheckpointError(
            f"{source.where(left[0])}: tensor {left[0]!r} has no place in the converted model "
            f"({len(left)} unmapped in all; is this checkpoint of the layout the converter expects?)"
        )


def expected_tensors(config: HumeConfig) -> dict[str, dict[str, torch.Size]]:
    """Our networks' state-dict shapes, per network, built on the meta device (no memory, no init)."""
    from hume.policy.hume_policy import build_networks

    with torch.device("meta"):
        networks = build_networks(config)
    return {name: {k: v.shape for k, v in net.state_dict().items()} for name, net in networks.items()}


def check_shapes(conversion: Conversion, source: SourceTensors | None = None) -> None:
    """Every tensor the config builds (outside the fresh networks) has a source of the right shape,
    and nothing was mapped to a tensor we lack; errors name the source file and key."""
    expected = expected_tensors(conversion.config)
    where = str(conversion.source.get("path", "the source checkpoint"))

    def named(ours: str) -> str:
        theirs = conversion.origins.get(ours)
        if theirs is None:
            return f"{where}: the tensor mapped to {ours!r}"
        file = source.where(theirs) if source is not None and theirs in source else where
        return f"{file}: tensor {theirs!r}"

    for name, shapes in expected.items():
        if name in conversion.fresh:
            continue
        for key, shape in shapes.items():
            ours = f"{name}.{key}"
            if ours not in conversion.tensors:
                raise CheckpointError(f"{where}: no source tensor for {ours!r} of the converted model")
            tensor = conversion.tensors[ours]
            if tensor.shape != shape:
                raise CheckpointError(
                    f"{named(ours)} has shape {tuple(tensor.shape)}, the converted config's {ours} needs "
                    f"{tuple(shape)} (sizes read off the rest of the checkpoint)"
                )
    for ours in conversion.tensors:
        name, _, key = ours.partition(".")
        if name in conversion.fresh or key not in expected.get(name, {}):
            raise CheckpointError(f"{named(ours)} maps to {ours!r}, which the converted model lacks")


def assemble(conversion: Conversion, seed: int = 0) -> dict[str, torch.Tensor]:
    """The full state dict of the converted policy: the mapped tensors (shapes checked against what
    the config builds), plus fresh weights for the networks listed in `fresh`."""
    from hume.policy.hume_policy import build_networks

    check_shapes(conversion)
    state = dict(conversion.tensors)
    if conversion.fresh:
        torch.manual_seed(seed)
        networks = build_networks(conversion.config, only=conversion.fresh)
        for name, net in networks.items():
            state.update({f"{name}.{k}": v.detach() for k, v in net.state_dict().items()})
    return state


def write_checkpoint(conversion: Conversion, output: Path) -> Path:
    """config.json + model.safetensors + stats.json + tokenizer/ + provenance.json in `output`."""
    from hume.policy.normalize import Normalizer

    config = conversion.config
    config.validate()
    state = assemble(conversion)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(to_dict(config), indent=2) + "\n")
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(output / "model.safetensors"),
        metadata={"format": "pt"},
    )
    Normalizer(conversion.stats, config.state_dim, config.action_dim).save(output)
    if conversion.tokenizer_dir is not None:
        target = output / "tokenizer"
        target.mkdir(exist_ok=True)
        copied = [n for n in TOKENIZER_FILES if (conversion.tokenizer_dir / n).is_file()]
        if not copied:
            raise CheckpointError(
                f"{conversion.tokenizer_dir}: no tokenizer files ({', '.join(TOKENIZER_FILES)})"
            )
        for name in copied:
            shutil.copy2(conversion.tokenizer_dir / name, target / name)
    provenance = {
        **conversion.source,
        "fresh_networks": list(conversion.fresh),
        "dropped": conversion.dropped,
        "tensors_written": len(state),
    }
    (output / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    log.info(
        "converted %s -> %s: %d tensors, %d source tensors dropped, fresh: %s",
        conversion.source.get("path"),
        output,
        len(state),
        len(conversion.dropped),
        list(conversion.fresh) or "none",
    )
    return output
