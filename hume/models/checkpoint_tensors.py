"""The tensors of a safetensors checkpoint (one file or a sharded index), read on demand, with a
record of which were used and which were dropped, and why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the file and the tensor."""


class SourceTensors:
    """The tensors of a checkpoint folder. `take` marks a tensor used, `drop` records why one is not;
    `remaining` lists those that are neither, so a reader can refuse a checkpoint it does not fully
    understand."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        index = self.directory / "model.safetensors.index.json"
        single = self.directory / "model.safetensors"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"{index}: not a safetensors index (no weight_map): {e}") from None
            self.files = {key: self.directory / name for key, name in weight_map.items()}
            self.path = index
        elif single.is_file():
            with safe_open(str(single), "pt") as f:
                self.files = dict.fromkeys(f.keys(), single)
            self.path = single
        else:
            raise CheckpointError(f"{self.directory}: no model.safetensors or model.safetensors.index.json")
        self._handles: dict[Path, object] = {}
        self.taken: set[str] = set()
        self.dropped: dict[str, str] = {}

    def keys(self) -> list[str]:
        return sorted(self.files)

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def _handle(self, file: Path):
        if file not in self._handles:
            self._handles[file] = safe_open(str(file), "pt")
        return self._handles[file]

    def where(self, key: str) -> Path:
        return self.files[key]

    def shape(self, key: str) -> tuple[int, ...]:
        self._require(key)
        return tuple(self._handle(self.files[key]).get_slice(key).get_shape())

    def peek(self, key: str) -> torch.Tensor:
        """The tensor, without marking it used (for reading sizes and comparing twins)."""
        self._require(key)
        return self._handle(self.files[key]).get_tensor(key)

    def take(self, key: str) -> torch.Tensor:
        tensor = self.peek(key)
        self.taken.add(key)
        return tensor

    def drop(self, key: str, why: str) -> None:
        self._require(key)
        self.dropped[key] = why

    def remaining(self) -> list[str]:
        return sorted(k for k in self.files if k not in self.taken and k not in self.dropped)

    def _require(self, key: str) -> None:
        if key not in self.files:
            raise CheckpointError(f"{self.directory}: the checkpoint has no tensor {key!r}")

    def file_hashes(self) -> dict[str, str]:
        """sha256 of every weights file (what was read), for provenance."""
        out = {}
        for file in sorted(set(self.files.values())):
            digest = hashlib.sha256()
            with file.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[file.name] = digest.hexdigest()
        return out
