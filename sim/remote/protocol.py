"""The env-server protocol: a simulator (or robot) in its own process, driven by requests.

Same framing as the System-1/System-2 protocol (hume/runtime/protocol.py): frame 0 a msgpack
header {"v", "type", "session", "seq", fields..., "arrays": [[name, dtype, shape], ...]}, then one
raw C-order frame per array. Nothing is pickled. The client sends one request and waits for its
reply (the reply repeats the request's `seq`); the message types and their fields are below and
in docs/protocol.md, "Env server". Everything received is checked; anything wrong raises
`MessageError`.

This module runs on both sides, so it imports only numpy, msgpack and hume's protocol helpers:
the server side lives in another Python environment (the simulator's own).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from hume.runtime.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DTYPES,
    MAX_TEXT,
    Message,
    MessageError,
    _array_specs,
    _check_header,
    _count,
    _frame_bytes,
    _header,
    _is_int,
    _is_num,
    _text,
)

# Its own version: the System-1/System-2 protocol's changes (its version 2) are not this one's.
PROTOCOL_VERSION = 1


def _start(x) -> bool:  # an official start index, or -1 for one sampled with the request's seed
    return _is_int(x) and -1 <= x < 2**31


def _flag(x) -> bool:
    return isinstance(x, bool)


# Requests (client -> server) and the arrays each carries.
HELLO, RESET, STEP, GET_STATE, SET_STATE, EXPERT_ACTION, CLOSE = (
    "hello", "reset", "step", "get_state", "set_state", "expert_action", "close"
)  # fmt: skip
# Replies (server -> client).
SPEC, OBSERVATION, STATE, ACTION, CLOSED, ERROR = "spec", "observation", "state", "action", "closed", "error"

FIELDS: dict[str, dict] = {
    HELLO: {},
    RESET: {"task": _count, "start": _start, "seed": _count},
    STEP: {},
    GET_STATE: {},
    SET_STATE: {},
    EXPERT_ACTION: {},
    CLOSE: {},
    SPEC: {"spec": lambda x: isinstance(x, dict)},
    OBSERVATION: {"task": _count, "step": _count, "success": _flag, "instruction": _text},
    STATE: {},
    ACTION: {},
    CLOSED: {},
    ERROR: {"reason": lambda x: _text(x) and len(x) <= 64, "detail": _text},
}
OPTIONAL: dict[str, dict] = {
    # A sampled start's distance to the nearest official start (how held out it is), and which.
    OBSERVATION: {"start_distance": _is_num, "nearest_start": _count},
}
# Arrays: required names (or a prefix for observation images) with dtype and rank.
STATE_ARRAY = "state"  # float64 [n]: the full simulator state, opaque to the client
ACTION_ARRAY = "action"  # float32 [action_dim]
ARRAYS: dict[str, dict[str, tuple[str, int]]] = {
    RESET: {},  # optionally STATE_ARRAY: start from that saved state
    STEP: {ACTION_ARRAY: ("<f4", 1)},
    SET_STATE: {STATE_ARRAY: ("<f8", 1)},
    STATE: {STATE_ARRAY: ("<f8", 1)},
    ACTION: {ACTION_ARRAY: ("<f4", 1)},
}
OPTIONAL_ARRAYS = {RESET: {STATE_ARRAY: ("<f8", 1)}}


def encode(
    type_: str, session: str, seq: int, fields: dict | None = None, arrays: dict | None = None
) -> list:
    """Frames for `socket.send_multipart`; the message is checked as the receiver will."""
    arrays = {name: np.ascontiguousarray(a) for name, a in (arrays or {}).items()}
    for name, a in arrays.items():
        if a.dtype.str not in DTYPES:
            raise ValueError(f"array {name!r}: dtype {a.dtype} cannot go on the wire")
    header = {
        "v": PROTOCOL_VERSION,
        "type": type_,
        "session": session,
        "seq": seq,
        **(fields or {}),
        "arrays": [[n, a.dtype.str, list(a.shape)] for n, a in arrays.items()],
    }
    frames = [msgpack.packb(header, use_bin_type=True)]
    frames += [memoryview(a).cast("B") if a.size else b"" for a in arrays.values()]
    decode(frames)  # a bug fails loudly at the sender, not as a dropped message at the receiver
    return frames


def decode(frames: list, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Check and decode one message; raises MessageError (never anything else)."""
    try:
        return _decode(frames, max_message_bytes)
    except MessageError:
        raise
    except Exception as e:
        raise MessageError("malformed", f"{type(e).__name__}: {e}") from None


def _decode(frames: list, max_message_bytes: int) -> Message:
    if not frames:
        raise MessageError("malformed", "empty message")
    bufs = [_frame_bytes(f) for f in frames]
    if sum(len(b) for b in bufs) > max_message_bytes:
        raise MessageError("oversized", f"message larger than {max_message_bytes} bytes")
    h = _header(bufs[0])
    _check_header(h, FIELDS, OPTIONAL, PROTOCOL_VERSION)
    kind, session = h["type"], h["session"]
    required, optional = FIELDS[kind], OPTIONAL.get(kind, {})
    specs = _array_specs(h)
    if len(bufs) - 1 != len(specs):
        raise MessageError("malformed", f"{len(specs)} arrays declared, {len(bufs) - 1} frames sent")
    arrays = {}
    for (name, dtype, shape), buf in zip(specs, bufs[1:], strict=True):
        if len(buf) != math.prod(shape) * dtype.itemsize:
            raise MessageError("malformed", f"array {name!r}: {len(buf)} bytes do not fit {dtype}{shape}")
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape) if len(buf) else np.zeros(shape, dtype)
    _check_arrays(kind, arrays)
    fields = {k: h[k] for k in (*required, *optional) if k in h}
    return Message(kind, session, h["seq"], fields, arrays)


def _check_arrays(kind: str, arrays: dict[str, np.ndarray]) -> None:
    if kind == OBSERVATION:
        for name, a in arrays.items():
            if name == "observation.state":
                ok = a.dtype == np.float32 and a.ndim == 1 and np.isfinite(a).all()
            else:
                ok = name.startswith("observation.images.") and a.dtype == np.uint8 and a.ndim == 3
            if not ok:
                raise MessageError("bad_field", f"observation array {name!r} {a.dtype}{a.shape}")
        if "observation.state" not in arrays:
            raise MessageError("bad_field", "an observation carries observation.state")
        return
    required, optional = ARRAYS.get(kind, {}), OPTIONAL_ARRAYS.get(kind, {})
    if not set(required) <= set(arrays) <= set(required) | set(optional):
        raise MessageError("bad_field", f"{kind} carries arrays {sorted(required)}, got {sorted(arrays)}")
    for name, a in arrays.items():
        dtype, ndim = {**required, **optional}[name]
        if a.dtype.str != dtype or a.ndim != ndim or not np.isfinite(a).all():
            raise MessageError("bad_field", f"{kind}: {name} must be finite {dtype} of rank {ndim}")


def error_fields(reason: str, detail: Any) -> dict:
    return {"reason": reason[:64], "detail": str(detail)[:MAX_TEXT]}
