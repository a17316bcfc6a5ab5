"""Loading a checkpoint without a second copy: networks built empty, weights read in place.

`parameters_as(device="meta")` builds a network whose parameters have shapes and dtypes but no
memory and no initialisation (a full-size policy: seconds instead of a minute, and none of the
~14 GiB of random weights a load would throw away); its buffers (rotary tables, pixel statistics,
position ids: computed, never stored) are built as usual. `load_safetensors` then fills every
tensor of a module from a safetensors file, strictly: an empty parameter gets new memory in its own
dtype, a real one is overwritten in place. Tensors are read with plain positional file reads, not
a memory map, so the process holds each weight once (a map's pages would count again in its
resident memory); several threads read pieces at once; a tensor cast on the way (a float32
checkpoint run in bfloat16) goes through bounded pieces, so no whole float32 copy of a large
tensor exists either.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from hume.models.checkpoint_tensors import CheckpointError

# safetensors' dtype names -> torch's (the ones a policy checkpoint can hold).
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Elements per read: 8 MiB of float32 (a cast stages one piece per reader thread).
PIECE = 1 << 21
# Reads in flight: one at a time leaves the disk idle between requests (a full-size bf16 checkpoint,
# cold: 30 s with one reader, 16 s with 8; docs/benchmarks.md).
READERS = 8

_patch_lock = threading.Lock()
# Each reader thread's staging buffer for casts, reused (fresh buffers per piece are not all given
# back to the system at once: measured 0.4 GiB more at the peak of a full-size cast).
_staging = threading.local()


@contextlib.contextmanager
def parameters_as(
    device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> Iterator[None]:
    """Every parameter a module registers inside this block is moved to `device` and/or cast to
    `dtype` as it is registered, before the module initialises it: on "meta" the initialisation
    costs nothing; in a dtype it runs in that dtype. Buffers are left as their module makes them.
    It works by replacing nn.Module.register_parameter for the block's duration, process-wide:
    modules that other threads build meanwhile would be converted too."""
    if device is None and dtype is None:
        yield
        return
    with _patch_lock:
        register = nn.Module.register_parameter

        def register_converted(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
            if param is not None:
                converted = param.data.to(device=device, dtype=dtype if param.is_floating_point() else None)
                param = nn.Parameter(converted, requires_grad=param.requires_grad)
            register(module, name, param)

        # Patched for the duration of the build only (a module method is what torch calls).
        nn.Module.register_parameter = register_converted  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            nn.Module.register_parameter = register  # type: ignore[method-assign]


def read_header(file: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...], int]]:
    """{key: (dtype, shape, byte offset in the file)} of a safetensors file; an unreadable file is a
    CheckpointError naming it (safetensors itself checks the header)."""
    try:
        with safe_open(str(file), "pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None
    with open(file, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    out = {}
    for key, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise CheckpointError(f"{file}: tensor {key!r} has dtype {entry['dtype']}, which no policy holds")
        out[key] = (DTYPES[entry["dtype"]], tuple(entry["shape"]), 8 + size + entry["data_offsets"][0])
    return out


def load_safetensors(module: nn.Module, file: Path) -> None:
    """Fill every parameter and persistent buffer of `module` from `file`, strictly: a missing,
    unexpected or mis-shaped tensor is a CheckpointError naming the file and the key, raised before
    anything is read. Values are cast to each tensor's own dtype (an empty one's too)."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: weights missing from the checkpoint")
    header = read_header(file)
    own = module.state_dict(keep_vars=True)
    for key, tensor in own.items():
        if key not in header:
            raise CheckpointError(f"{file}: missing tensor {key!r} (was it written for another config?)")
        shape = header[key][1]
        if shape != tuple(tensor.shape):
            raise CheckpointError(
                f"{file}: tensor {key!r} has shape {shape}, the config needs {tuple(tensor.shape)}"
            )
    unexpected = sorted(set(header) - set(own))
    if unexpected:
        raise CheckpointError(f"{file}: unexpected tensor {unexpected[0]!r} (and {len(unexpected) - 1} more)")
    targets, filled, staged = [], {}, []
    for key, tensor in own.items():
        if tensor.is_meta:
            filled[key] = target = torch.empty(tensor.shape, dtype=tensor.dtype)
        elif tensor.device.type == "cpu" and tensor.is_contiguous():
            target = tensor.data
        else:  # read into host memory first, then moved (or restrided) in one copy
            target = torch.empty(tensor.shape, dtype=tensor.dtype)
            staged.append((tensor.data, target))
        targets.append((header[key], target))
    read_all(file, targets)
    with torch.no_grad():
        for tensor, target in staged:
            tensor.copy_(target)
    if filled:
        # assign=True makes the read tensors the module's own (each Parameter keeps requires_grad).
        module.load_state_dict(filled, strict=False, assign=True)
    empty = [name for name, t in module.named_buffers() if t.is_meta]
    if empty:
        raise CheckpointError(f"{file}: buffer {empty[0]!r} is neither stored nor computed by its module")


def read_all(
    file: Path, targets: list[tuple[tuple[torch.dtype, tuple[int, ...], int], torch.Tensor]]
) -> None:
    """Read stored tensors (dtype, shape, offset) into contiguous CPU tensors of their shape, each
    cast to its target's dtype, in pieces of PIECE elements that READERS threads read at once."""
    fd = os.open(file, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(READERS) as pool:
            jobs = [
                pool.submit(_read_piece, fd, file, dtype, offset, target.view(-1), start)
                for (dtype, _, offset), target in targets
                for start in range(0, target.numel(), PIECE)
            ]
            for job in jobs:
                job.result()
    finally:
        os.close(fd)


def _read_piece(fd: int, file: Path, dtype: torch.dtype, offset: int, flat: torch.Tensor, start: int) -> None:
    """Elements [start, start + PIECE) of the tensor stored as `dtype` at `offset` into `flat`."""
    part = flat[start : start + PIECE]
    if part.dtype == dtype:
        _pread_exactly(fd, file, part, offset + start * part.element_size())
        return
    size = part.numel() * dtype.itemsize
    if getattr(_staging, "buffer", None) is None or _staging.buffer.numel() < size:
        _staging.buffer = torch.empty(size, dtype=torch.uint8)
    piece = _staging.buffer[:size].view(dtype)
    _pread_exactly(fd, file, piece, offset + start * dtype.itemsize)
    with torch.no_grad():
        part.copy_(piece)


def _pread_exactly(fd: int, file: Path, tensor: torch.Tensor, offset: int) -> None:
    """Fill a contiguous CPU tensor with tensor.nbytes bytes of the file from `offset`."""
    view = tensor.view(torch.uint8).numpy().data
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if not n:
            raise CheckpointError(f"{file}: the file ends inside a tensor (truncated?)")
        got += n
