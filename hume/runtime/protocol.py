"""The wire protocol between the System-1 and System-2 nodes: a msgpack header + raw numpy frames.

A message is one ZeroMQ multipart message:

    frame 0      msgpack map (the header): "v", "type", "session", "seq", type fields, "arrays"
    frame 1..n   the raw bytes of each array, C order, in the order "arrays" lists them

`header["arrays"]` is a list of `[name, dtype, shape]` (dtype as numpy's `dtype.str`, e.g. "<f4").
Nothing here ever unpickles: arrays are rebuilt from (dtype, shape, bytes), zero-copy from the
received frames. Every field is checked; anything wrong raises `MessageError` with a short
`reason` the receiver counts. The full description is in docs/protocol.md.
"""

from __future__ import annotations

import collections
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from hume.constants import IMAGE_PREFIX, STATE_KEY, TASK_KEY

# 2: a System-1 session is the hash of a secret its observations and heartbeats carry.
PROTOCOL_VERSION = 2

OBSERVATION = "observation"
CHUNK = "chunk"
HEARTBEAT = "heartbeat"
ERROR = "error"

# Hard caps, independent of configuration: they bound what a hostile peer can make us allocate.
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 16
MAX_NDIM = 4
MAX_DIM = 4096
MAX_NAME = 64
MAX_TEXT = 1024
# The largest whole message any of our sockets accepts (transport.max_message_bytes may lower it;
# the openpi websocket takes it as its frame limit).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Little-endian numeric dtypes only: no objects, no structured or pointer types.
DTYPES = frozenset({"|u1", "|b1", "<i4", "<i8", "<f2", "<f4", "<f8"})
_NP_DTYPES = {s: np.dtype(s) for s in DTYPES}
_INT = {int}  # exactly int: bool (a subclass) is not a dimension
_SEQ = (list, tuple)  # msgpack arrays: tuples when received, lists when built here
ROLES = frozenset({"system1", "system2"})
STATES = frozenset({"starting", "ready", "stopping"})
# Used with fullmatch: "$" alone would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_IMAGE = re.compile(re.escape(IMAGE_PREFIX) + r"[A-Za-z0-9_\-]+")
# Optional in an observation: the robot actions System 1 will execute from its tick on whatever
# System 2 answers (real-time chunking guides the answer to continue them).
COMMITTED_KEY = "committed_actions"
# System 1's secret: picked once per process, sent only to System 2 (never published), and its
# hash is the client's session, which chunks name. A peer that may send observations but does not
# hold a client's secret cannot speak or be answered in that client's name.
SECRET_KEY = "secret"
SECRET_CHARS = (16, 64)
SESSION_HEX = 32  # hex digits of SHA-256(secret) that make the session: 128 bits


def session_of(secret: str) -> str:
    """The session a client with this secret speaks and is answered under."""
    return hashlib.sha256(secret.encode()).hexdigest()[:SESSION_HEX]


class MessageError(ValueError):
    """A message that must be dropped; `reason` is the counter it is filed under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    """A decoded, checked message. `arrays` may be read-only views of the received frames."""

    type: str
    session: str
    seq: int
    fields: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _text(x) -> bool:
    return isinstance(x, str) and len(x) <= MAX_TEXT


def _count(x) -> bool:
    return _is_int(x) and 0 <= x < 2**62


def _reason(x) -> bool:
    return isinstance(x, str) and len(x) <= MAX_NAME and _NAME.fullmatch(x) is not None


def _session(x) -> bool:
    return isinstance(x, str) and 0 < len(x) <= MAX_NAME


def _secret(x) -> bool:
    return isinstance(x, str) and SECRET_CHARS[0] <= len(x) <= SECRET_CHARS[1]


def _stats(x) -> bool:
    return (
        isinstance(x, dict)
        and len(x) <= 64
        and all(isinstance(k, str) and len(k) <= MAX_NAME and _is_num(v) for k, v in x.items())
    )


# The fields each message type carries besides v/type/session/seq/arrays, with their checks.
FIELDS = {
    OBSERVATION: {"episode": _count, "step": _count, "tick": _count, TASK_KEY: _text},
    CHUNK: {
        "model_id": _text,
        "episode": _count,
        "step": _count,
        "tick": _count,
        "chosen": _count,
        "noise_level": lambda x: _is_num(x) and 0 <= x <= 1,
        "think_ms": lambda x: _is_num(x) and x >= 0,
    },
    HEARTBEAT: {
        "role": lambda x: isinstance(x, str) and x in ROLES,
        "state": lambda x: isinstance(x, str) and x in STATES,
        "model_id": _text,
        "stats": _stats,
    },
    # System 2 -> System 1: the observation of `tick` could not be used; `detail` says why.
    ERROR: {"episode": _count, "step": _count, "tick": _count, "reason": _reason, "detail": _text},
}
# Fields a message of the type may carry or leave out. `client`: the session of the observation a
# chunk or error answers, so that each System 1 of many served by one System 2 keeps only its own.
# `secret`: System 1's, on everything it sends (System 2 takes nothing without it, transport.py);
# never on what System 2 sends (that is published to every client).
OPTIONAL = {
    OBSERVATION: {SECRET_KEY: _secret},
    CHUNK: {"client": _session},
    ERROR: {"client": _session},
    HEARTBEAT: {SECRET_KEY: _secret},
}
_COMMON = {"v", "type", "session", "seq", "arrays"}
# Array layouts this process has sent and checked once (per type): a sender's layout rarely changes.
_SENT_LAYOUTS: set = set()


def encode(
    type_: str, session: str, seq: int, fields: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> list:
    """Frames for `socket.send_multipart(frames, copy=False)`; arrays are sent without copying."""
    arrays = {name: np.ascontiguousarray(value) for name, value in (arrays or {}).items()}
    specs, frames = [], []
    for name, a in arrays.items():
        if a.dtype.str not in DTYPES:
            raise ValueError(
                f"array {name!r}: dtype {a.dtype} cannot go on the wire (allowed: {sorted(DTYPES)})"
            )
        specs.append([name, a.dtype.str, list(a.shape)])
        frames.append(a.data.cast("B") if a.size else b"")
    header = {"v": PROTOCOL_VERSION, "type": type_, "session": session, "seq": seq, **fields, "arrays": specs}
    msg = [msgpack.packb(header, use_bin_type=True), *frames]
    # What we send must pass our own checks (a bug fails loudly at the sender). The header and the
    # arrays are checked as built, without parsing the frames back; an array layout is checked
    # the first time this process sends it, the values every time.
    total = sum(len(f) for f in msg)
    if total > DEFAULT_MAX_MESSAGE_BYTES:
        raise MessageError("oversized", f"{total} bytes > limit {DEFAULT_MAX_MESSAGE_BYTES}")
    specs_np = [(name, a.dtype, a.shape) for name, a in arrays.items()]
    layout = (type_, *specs_np)
    try:
        _check_sent(header, specs_np, arrays, len(msg[0]), layout_checked=layout in _SENT_LAYOUTS)
    except MessageError:
        raise
    except Exception as e:  # as in decode: anything unexpected is a malformed message
        raise MessageError("malformed", f"{type(e).__name__}: {e}") from None
    if len(_SENT_LAYOUTS) < 256:
        _SENT_LAYOUTS.add(layout)
    return msg


def _frame_bytes(frame) -> memoryview:
    buf = getattr(frame, "buffer", frame)  # zmq.Frame (copy=False) or plain bytes
    return memoryview(buf).cast("B")


def _header(raw: memoryview) -> dict:
    if len(raw) > MAX_HEADER_BYTES:
        raise MessageError("oversized", f"header of {len(raw)} bytes > {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=0,
            max_array_len=MAX_ARRAYS * 2,
            max_map_len=128,
            max_ext_len=0,
            use_list=False,  # tuples: a received array layout is hashable, so its checks are cached
        )
    except Exception as e:  # msgpack raises many types on garbage; all mean the same here
        raise MessageError("malformed", f"header is not msgpack ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise MessageError("malformed", "header is not a map")
    return header


def _check_header(
    h: dict, fields: dict | None = None, optional: dict | None = None, version: int = PROTOCOL_VERSION
) -> None:
    """Version, type, session, seq and the type's fields; `fields` / `optional` / `version`:
    another protocol's on the same framing (sim/remote/protocol.py), by default this one's."""
    fields = FIELDS if fields is None else fields
    optional = OPTIONAL if optional is None else optional
    v = h.get("v")
    # Exactly the integer: msgpack's true and 1.0 compare equal to 1 in Python, but are not it.
    if not (_is_int(v) and v == version):
        raise MessageError("wrong_version", f"version {v!r}, expected {version}")
    kind = h.get("type")
    if not isinstance(kind, str) or kind not in fields:
        raise MessageError("malformed", f"unknown type {kind!r}")
    if not _session(h.get("session")):
        raise MessageError("malformed", "session must be a non-empty string of <= 64 chars")
    if not _count(h.get("seq")):
        raise MessageError("malformed", "seq must be a non-negative integer")
    required, optional = fields[kind], optional.get(kind, {})
    keys = set(h) - _COMMON
    if not set(required) <= keys <= set(required) | set(optional):
        missing, extra = sorted(set(required) - keys), sorted(keys - set(required) - set(optional))
        raise MessageError("malformed", f"{kind}: missing {missing}, unexpected {extra}")
    for name, check in {**required, **optional}.items():
        if name in h and not check(h[name]):
            raise MessageError("malformed", f"{kind}: bad value for {name!r}")
    if SECRET_KEY in h and h["session"] != session_of(h[SECRET_KEY]):
        # Another client's session claimed without its secret (the detail names neither secret).
        raise MessageError("impostor", f"session {h['session']} is not the one its secret makes")


Spec = tuple[str, np.dtype, tuple[int, ...]]
MAX_CACHED_LAYOUTS = 64
_LAYOUTS: dict[tuple, list[Spec]] = {}


def _array_specs(h: dict) -> list[Spec]:
    specs = h.get("arrays")
    if not isinstance(specs, _SEQ) or len(specs) > MAX_ARRAYS:
        raise MessageError("malformed", f"arrays must be a list of at most {MAX_ARRAYS} entries")
    # A peer sends the same layout every time: checked once, then looked up. Received headers
    # hold tuples (hashable); the ones a sender builds hold lists and are always checked.
    cached = _LAYOUTS.get(specs) if type(specs) is tuple else None
    if cached is not None:
        return cached
    out, names = [], set()
    for spec in specs:
        if not (isinstance(spec, _SEQ) and len(spec) == 3):
            raise MessageError("malformed", "each array spec is [name, dtype, shape]")
        name, dtype, shape = spec
        if not (isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name)) or name in names:
            raise MessageError("malformed", f"bad or repeated array name {name!r}")
        if dtype not in DTYPES:
            raise MessageError("malformed", f"array {name!r}: dtype {dtype!r} not allowed")
        if not (isinstance(shape, _SEQ) and len(shape) <= MAX_NDIM and set(map(type, shape)) <= _INT):
            raise MessageError("malformed", f"array {name!r}: shape must be <= {MAX_NDIM} integers")
        if shape and not (min(shape) >= 0 and max(shape) <= MAX_DIM):
            raise MessageError("oversized", f"array {name!r}: dims must be in 0..{MAX_DIM}")
        names.add(name)
        out.append((name, _NP_DTYPES[dtype], tuple(shape)))
    if type(specs) is tuple:
        if len(_LAYOUTS) >= MAX_CACHED_LAYOUTS:
            _LAYOUTS.clear()  # a peer cycling through layouts cannot grow memory
        _LAYOUTS[specs] = out
    return out


# Layout rules (names, dtypes, shapes) work on specs, checked once per layout; content rules
# need the values.


def _check_observation_layout(specs: list[Spec]) -> None:
    layout = {name: (dtype, shape) for name, dtype, shape in specs}
    dtype, shape = layout.pop(STATE_KEY, (None, ()))
    if dtype != np.float32 or len(shape) != 1 or not 0 < shape[0] <= 64:
        raise MessageError("bad_field", f"{STATE_KEY} must be float32 [d] with 0 < d <= 64")
    if COMMITTED_KEY in layout:
        dtype, shape = layout.pop(COMMITTED_KEY)
        if dtype != np.float32 or len(shape) != 2 or shape[0] < 1 or not 0 < shape[1] <= 64:
            raise MessageError("bad_field", f"{COMMITTED_KEY} must be float32 [k >= 1, action_dim]")
    for name, (dtype, shape) in layout.items():
        if not _IMAGE.fullmatch(name):
            raise MessageError("bad_field", f"unexpected observation array {name!r}")
        if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 1:
            raise MessageError("bad_field", f"{name} must be uint8 [H, W, 3]")


def _check_observation_content(arrays: dict[str, np.ndarray]) -> None:
    if not np.isfinite(arrays[STATE_KEY]).all():
        raise MessageError("bad_field", f"{STATE_KEY} is not finite")
    if COMMITTED_KEY in arrays and not np.isfinite(arrays[COMMITTED_KEY]).all():
        raise MessageError("bad_field", f"{COMMITTED_KEY} is not finite")


def _check_chunk_layout(specs: list[Spec]) -> None:
    layout = {name: (dtype, shape) for name, dtype, shape in specs}
    if not {"actions", "values"} <= set(layout) <= {"actions", "values", "padding"}:
        raise MessageError(
            "bad_field", f"a chunk carries actions, values and optionally padding, got {sorted(layout)}"
        )
    dtype, shape = layout["actions"]
    if dtype != np.float32 or len(shape) != 2 or 0 in shape:
        raise MessageError("bad_field", "actions must be float32 [H, action_dim]")
    horizon = shape[0]
    dtype, shape = layout["values"]
    if dtype != np.float32 or len(shape) != 1 or shape[0] == 0:
        raise MessageError("bad_field", "values must be float32 [num_candidates]")
    if "padding" in layout:
        dtype, pad_shape = layout["padding"]
        if dtype != np.float32 or len(pad_shape) != 2 or pad_shape[0] != horizon:
            raise MessageError("bad_field", "padding must be float32 [H, padded dims] with the actions' H")


def _check_chunk_content(fields: dict, arrays: dict[str, np.ndarray]) -> None:
    values = arrays["values"]
    if fields["chosen"] >= values.size:
        raise MessageError(
            "bad_field", f"chosen {fields['chosen']} out of range for {values.size} candidates"
        )
    if not np.isfinite(arrays["actions"]).all():
        raise MessageError("bad_field", "actions are not finite")
    if "padding" in arrays and not np.isfinite(arrays["padding"]).all():
        raise MessageError("bad_field", "padding is not finite")
    if np.isinf(values).any():  # NaN is allowed: it means "no value head"
        raise MessageError("bad_field", "values are infinite")


def _check_layout(kind: str, specs: list[Spec]) -> None:
    if kind == OBSERVATION:
        _check_observation_layout(specs)
    elif kind == CHUNK:
        _check_chunk_layout(specs)
    elif specs:
        raise MessageError("bad_field", f"a {kind} carries no arrays")


def decode(frames: list, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Check and decode one multipart message; raises MessageError (never anything else)."""
    try:
        return _decode(frames, max_message_bytes)
    except MessageError:
        raise
    except Exception as e:  # a check we did not think of must still not take a node down
        raise MessageError("malformed", f"{type(e).__name__}: {e}") from None


def _decode(frames: list, max_message_bytes: int) -> Message:
    if not frames:
        raise MessageError("malformed", "empty message")
    bufs = [_frame_bytes(f) for f in frames]
    total = sum(len(b) for b in bufs)
    if total > max_message_bytes:
        raise MessageError("oversized", f"{total} bytes > limit {max_message_bytes}")
    header = _header(bufs[0])
    _check_header(header)
    specs = _array_specs(header)
    if len(bufs) - 1 != len(specs):
        raise MessageError("malformed", f"{len(specs)} arrays declared, {len(bufs) - 1} frames sent")
    kind = header["type"]
    _check_layout(kind, specs)
    fields = {k: header[k] for k in (*FIELDS[kind], *OPTIONAL.get(kind, ())) if k in header}
    arrays = {}
    for (name, dtype, shape), buf in zip(specs, bufs[1:], strict=True):
        expected = math.prod(shape) * dtype.itemsize
        if len(buf) != expected:
            raise MessageError("malformed", f"array {name!r}: {len(buf)} bytes, shape/dtype need {expected}")
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.zeros(shape, dtype)
    _check_content(kind, fields, arrays)
    return Message(kind, header["session"], header["seq"], fields, arrays)


def _check_content(kind: str, fields: dict, arrays: dict[str, np.ndarray]) -> None:
    if kind == OBSERVATION:
        _check_observation_content(arrays)
    elif kind == CHUNK:
        _check_chunk_content(fields, arrays)


def _check_sent(
    header: dict, specs: list[Spec], arrays: dict, header_bytes: int, layout_checked: bool
) -> None:
    """The sender's checks of its own message: the receiver's, without parsing the bytes back."""
    if header_bytes > MAX_HEADER_BYTES:
        raise MessageError("oversized", f"header of {header_bytes} bytes > {MAX_HEADER_BYTES}")
    _check_header(header)
    kind = header["type"]
    if not layout_checked:
        _array_specs(header)
        _check_layout(kind, specs)
    _check_content(kind, header, arrays)


class SequenceGate:
    """Drops out-of-order and repeated messages: `seq` must grow within each sender session.

    A restarted sender has a new session id, so its counter may start again from 0. At most
    `max_sessions` sessions are remembered; one is forgotten only after `idle_s` without a
    message. When all are in use a new session is refused (`sessions_full`) rather than an old
    one forgotten: however many sessions a sender makes up, no remembered session's old
    messages become new again (a replay). Only a session silent for `idle_s` can be replayed,
    and that one's client has gone.
    """

    def __init__(self, max_sessions: int = 256, idle_s: float = 60.0, clock=time.monotonic):
        self._last: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self._max, self._idle, self._clock = max_sessions, idle_s, clock

    def check(self, msg: Message) -> None:
        now = self._clock()
        known = self._last.get(msg.session)
        if known is not None:
            if msg.seq <= known[0]:
                raise MessageError("out_of_order", f"seq {msg.seq} <= {known[0]} from session {msg.session}")
            self._last.move_to_end(msg.session)  # least recently heard first
        else:
            while self._last and now - next(iter(self._last.values()))[1] >= self._idle:
                self._last.popitem(last=False)
            if len(self._last) >= self._max:
                raise MessageError("sessions_full", f"{self._max} sessions heard within {self._idle:g} s")
        self._last[msg.session] = (msg.seq, now)

    def __len__(self) -> int:
        return len(self._last)
