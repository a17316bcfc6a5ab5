"""Reading a torch.distributed.checkpoint folder without unpickling arbitrary objects.

torch's FileSystemReader unpickles the folder's `.metadata` with plain `pickle.load`, and its
DefaultLoadPlanner reads non-tensor entries (an optimizer's param_groups) with
`torch.load(weights_only=False)`: a checkpoint folder from elsewhere could run code when resumed.
Here the metadata is unpickled with only the classes a checkpoint's metadata is made of (DCP's own
metadata classes, by plain name only, torch.Size, dtypes, layouts, paths), and non-tensor entries with
`weights_only=True`. Anything else is an error naming the class.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch
import torch.distributed.checkpoint.metadata as metadata_module
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

# (module, name) a metadata file may name, besides the classes DCP's metadata module defines.
_ALLOWED = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
}
_METADATA_MODULE = "torch.distributed.checkpoint.metadata"


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # A dotted name would walk attributes ("os.system" through the metadata module's imports):
        # only plain names, and of that module only the classes it defines.
        allowed = "." not in name and (
            (module, name) in _ALLOWED
            or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
            or (module == _METADATA_MODULE and _defined_class(name))
        )
        if not allowed:
            raise pickle.UnpicklingError(
                f"a sharded checkpoint's metadata names {module}.{name}, which a checkpoint's "
                "metadata never holds: refusing to load it"
            )
        return super().find_class(module, name)


def _defined_class(name: str) -> bool:
    obj = getattr(metadata_module, name, None)
    return isinstance(obj, type) and obj.__module__ == _METADATA_MODULE


class SafeFileSystemReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as f:
            metadata = _MetadataUnpickler(f).load()
        if not isinstance(metadata, Metadata):
            raise pickle.UnpicklingError(f"{path} holds a {type(metadata).__name__}, not DCP metadata")
        storage = getattr(metadata, "storage_meta", None)
        if storage is None:
            storage = metadata.storage_meta = StorageMeta()
        storage.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DefaultLoadPlanner with non-tensor entries read by torch.load(weights_only=True)."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        entry = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], entry)
        else:
            self.state_dict[read_item.dest_index.fqn] = entry
