"""Same-host observations through shared memory: the images skip the socket.

When both nodes run on one host, System 1 writes each observation's arrays into a ring of slots
in a shared-memory file (`/dev/shm/hume-<pid>-<token>-<generation>`, mode 0600) and sends only
the message header, which names the segment, the slot and the slot's stamp. System 2 copies the
arrays out of the slot and checks the stamp before and after (a seqlock): a slot that the writer
came round to again meanwhile is dropped and counted (`shm_overwritten`), never read torn.

Segment layout (little-endian):

    0   8 bytes   magic b"HUMESHM1"
    8   u32       number of slots K
    12  u32       reserved (0)
    16  u64       bytes per slot
    24  u64 x K   slot stamps: odd while the writer fills the slot, even when it is complete
    ..  K slots   from the first 64-byte boundary after the stamps; inside a slot the arrays of
                  the header's `arrays` list lie in order, each at a 64-byte boundary

The ring has several slots so that a reader copying slot k never races the writer, which is
filling slot k+1; at 20 Hz a slot is rewritten only every K/20 s. The stamps are plain stores
and loads: on x86-64 (ordered stores, ordered loads) the seqlock is exact; on weakly ordered
CPUs (ARM) a read that stalls for a whole lap of the ring could in principle pass torn.

A reader opens only names of this pattern, only regular files of its own user with no group or
other permissions, without following links or blocking.
"""

from __future__ import annotations

import collections
import logging
import math
import mmap
import os
import secrets
import stat
import struct
import weakref
from pathlib import Path

import numpy as np

from hume.runtime.protocol import SHM_NAME, MessageError

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
PREFIX = "hume-"
MAGIC = b"HUMESHM1"
_HEAD = struct.Struct("<8sIIQ")
ALIGN = 64
DEFAULT_SLOTS = 4
MAX_SLOTS = 64
MAX_SLOT_BYTES = 64 * 1024 * 1024


def available() -> bool:
    """Shared memory as a file system (Linux); elsewhere observations travel in frames."""
    return SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _data_offset(slots: int) -> int:
    return _align(_HEAD.size + 8 * slots)


def slot_layout(specs: list[tuple[str, np.dtype, tuple[int, ...]]]) -> tuple[list[tuple[int, int]], int]:
    """(offset, nbytes) of each array inside a slot, and the bytes the slot needs."""
    out, offset = [], 0
    for _, dtype, shape in specs:
        nbytes = math.prod(shape) * dtype.itemsize
        out.append((offset, nbytes))
        offset = _align(offset + nbytes)
    return out, offset


def remove_segments(pid: int) -> int:
    """Delete the segments a (dead) System-1 process `pid` left behind; returns how many."""
    removed = 0
    for path in SHM_DIR.glob(f"{PREFIX}{pid}-*"):
        if SHM_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class ShmWriter:
    """System 1's side: a ring of observation slots in one segment, created on first use."""

    def __init__(self, slots: int = DEFAULT_SLOTS):
        if not 2 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be in 2..{MAX_SLOTS}, got {slots}")
        self.slots = slots
        self._token = secrets.token_hex(4)
        self._generation = 0
        self._mm: mmap.mmap | None = None
        self._path: Path | None = None
        self._slot_bytes = 0
        self._count = 0

    def _create(self, slot_bytes: int) -> None:
        """A new segment; OSError (e.g. ENOSPC: /dev/shm full) leaves nothing behind."""
        self.close()
        self._generation += 1
        path = SHM_DIR / f"{PREFIX}{os.getpid()}-{self._token}-{self._generation}"
        size = _data_offset(self.slots) + self.slots * slot_bytes
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        # Unlinked at close(), or at interpreter exit by a writer never closed (kill -9 leaves
        # it: `hume deploy` removes a dead System 1's segments, see remove_segments).
        self._unlink = weakref.finalize(self, path.unlink, missing_ok=True)
        try:
            # Allocate every page now: tmpfs otherwise allocates on first write, and a full
            # /dev/shm would then kill this process with SIGBUS instead of raising here.
            os.posix_fallocate(fd, 0, size)
            self._mm = mmap.mmap(fd, size)
        except OSError:
            self._unlink()
            raise
        finally:
            os.close(fd)
        self._path = path
        self._mm[: _HEAD.size] = _HEAD.pack(MAGIC, self.slots, 0, slot_bytes)
        self._stamps = np.ndarray(self.slots, "<u8", self._mm, _HEAD.size)
        self._slot_bytes = slot_bytes
        log.debug("shared-memory ring %s: %d slots of %d bytes", self._path.name, self.slots, slot_bytes)

    def put(self, arrays: dict[str, np.ndarray]) -> list:
        """Copy `arrays` (any memory order) into the next slot; returns the header's `shm` reference."""
        specs = [(name, a.dtype, a.shape) for name, a in arrays.items()]
        places, need = slot_layout(specs)
        if need > MAX_SLOT_BYTES:
            raise ValueError(f"an observation of {need} bytes exceeds the {MAX_SLOT_BYTES}-byte slot limit")
        if self._mm is None or need > self._slot_bytes:
            self._create(need)  # a larger observation than before: a new segment (the old is unlinked)
        slot = self._count % self.slots
        self._count += 1
        base = _data_offset(self.slots) + slot * self._slot_bytes
        stamp = int(self._stamps[slot]) + 1
        self._stamps[slot] = stamp  # odd: being written
        for a, (offset, nbytes) in zip(arrays.values(), places, strict=True):
            if nbytes:
                np.ndarray(a.shape, a.dtype, self._mm, base + offset)[...] = a
        stamp += 1
        self._stamps[slot] = stamp  # even: complete
        return [self._path.name, slot, stamp]

    def close(self) -> None:
        if self._mm is not None:
            self._stamps = None
            self._mm.close()
            self._mm = None
        if self._path is not None:
            self._unlink()
            self._path = None


class _Segment:
    def __init__(self, name: str):
        path = SHM_DIR / name
        try:
            # Never follow a link, never block (a FIFO would), never leak the descriptor.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise MessageError("shm_unavailable", f"cannot open {path}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            # Only a regular file of this user that nobody else can read or write: /dev/shm is
            # writable by everyone, and a file another user could truncate under our mapping
            # would make the next read kill this process (SIGBUS).
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise MessageError("shm_unavailable", f"{path} is not a private file of this user")
            if st.st_size < _HEAD.size:
                raise MessageError("shm_unavailable", f"{path} is too small to be a ring")
            size = st.st_size
            self.mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        magic, self.slots, _, self.slot_bytes = _HEAD.unpack_from(self.mm)
        if (
            magic != MAGIC
            or not 2 <= self.slots <= MAX_SLOTS
            or self.slot_bytes > MAX_SLOT_BYTES
            or size < _data_offset(self.slots) + self.slots * self.slot_bytes
        ):
            self.mm.close()
            raise MessageError("shm_unavailable", f"{path} is not a valid observation ring")
        self.stamps = np.ndarray(self.slots, "<u8", self.mm, _HEAD.size)

    def close(self) -> None:
        self.stamps = None
        self.mm.close()


class ShmReader:
    """System 2's side: attaches to the rings named in headers (the newest few) and copies out."""

    def __init__(self, max_segments: int = 4):
        self._segments: collections.OrderedDict[str, _Segment] = collections.OrderedDict()
        self._max = max_segments

    def _segment(self, name: str) -> _Segment:
        seg = self._segments.get(name)
        if seg is None:
            seg = _Segment(name)
            # A writer's new generation replaces its old segment (unlinked by the writer): let
            # its pages go rather than keep them mapped.
            writer = name.rpartition("-")[0]
            for old in [n for n in self._segments if n.rpartition("-")[0] == writer]:
                self._segments.pop(old).close()
            self._segments[name] = seg
            while len(self._segments) > self._max:
                self._segments.popitem(last=False)[1].close()
        else:
            self._segments.move_to_end(name)
        return seg

    def read(self, ref: list, specs: list[tuple[str, np.dtype, tuple[int, ...]]]) -> dict[str, np.ndarray]:
        """The arrays `specs` describes, copied out of slot `ref[1]` of segment `ref[0]`."""
        name, slot, stamp = ref
        seg = self._segment(name)
        places, need = slot_layout(specs)
        if slot >= seg.slots or need > seg.slot_bytes:
            raise MessageError("malformed", f"shm slot {slot} / {need} bytes outside the ring {name}")
        if int(seg.stamps[slot]) != stamp:
            raise MessageError("shm_overwritten", f"slot {slot} of {name} no longer holds stamp {stamp}")
        base = _data_offset(seg.slots) + slot * seg.slot_bytes
        arrays = {
            spec_name: np.frombuffer(seg.mm, dtype, math.prod(shape), base + offset).reshape(shape).copy()
            for (spec_name, dtype, shape), (offset, _) in zip(specs, places, strict=True)
        }
        if int(seg.stamps[slot]) != stamp:
            raise MessageError("shm_overwritten", f"slot {slot} of {name} was rewritten while read")
        return arrays

    def close(self) -> None:
        while self._segments:
            self._segments.popitem()[1].close()
