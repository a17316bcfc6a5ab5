"""Messages a node must drop, for soak runs: every way of breaking docs/protocol.md we know of, in
a fixed rotation, plus chunks that pass the protocol but not the receiving policy's checks.

None of them may be acted on: each is dropped and counted by the node that receives it (or, for
an observation System 2's policy cannot use, answered with an error message). Valid messages are
never produced here, so a node's accepted count is untouched by them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import msgpack
import numpy as np

from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
from hume.runtime import protocol

SECRET = "hostile-secret-0000"
SESSION = protocol.session_of(SECRET)


def _observation(seq: int, state_dim: int = 8) -> list[bytes]:
    arrays: dict[str, np.ndarray] = {
        IMAGE_KEY.format("agentview"): np.zeros((8, 8, 3), np.uint8),
        STATE_KEY: np.zeros(state_dim, np.float32),
    }
    fields = {"episode": 0, "step": 0, "tick": 0, TASK_KEY: "hostile", protocol.SECRET_KEY: SECRET}
    return [bytes(f) for f in protocol.encode(protocol.OBSERVATION, SESSION, seq, fields, arrays)]


def _chunk(seq: int, model_id: str, actions: np.ndarray, tick: int = 0, **arrays) -> list[bytes]:
    """A chunk header with any actions (our encoder refuses NaN: the frames are built by hand)."""
    fields = {
        "model_id": model_id,
        "episode": 0,
        "step": 0,
        "tick": tick,
        "chosen": 0,
        "noise_level": 0.0,
        "think_ms": 1.0,
    }
    frames = {"actions": actions.astype(np.float32), "values": np.zeros(5, np.float32), **arrays}
    specs = [[name, a.dtype.str, list(a.shape)] for name, a in frames.items()]
    head = {
        "v": protocol.PROTOCOL_VERSION,
        "type": "chunk",
        "session": SESSION,
        "seq": seq,
        **fields,
        "arrays": specs,
    }
    return [msgpack.packb(head), *(a.tobytes() for a in frames.values())]


def _edit(frames: list[bytes], **changes) -> list[bytes]:
    head = msgpack.unpackb(frames[0], raw=False)
    head.update(changes)
    return [msgpack.packb({k: v for k, v in head.items() if v is not ...}), *frames[1:]]


def _generic(rng: np.random.Generator, template: list[bytes], seq: int) -> list[list[bytes]]:
    """Breakages of any message type, built around a valid `template`."""
    return [
        [rng.bytes(int(rng.integers(1, 200))) for _ in range(int(rng.integers(1, 4)))],
        [msgpack.packb([1, 2, 3])],
        _edit(template, v=True),
        _edit(template, v=float(protocol.PROTOCOL_VERSION)),
        _edit(template, v=protocol.PROTOCOL_VERSION - 1),
        _edit(template, seq=-1),
        _edit(template, tick="now"),
        _edit(template, type="command"),
        _edit(template, session=""),
        _edit(template, exec="rm -rf /"),
        _edit(template, arrays=[["x", "|O", [1]]]),
        _edit(
            template, arrays=[[n, d, [5000, *s[1:]]] for n, d, s in msgpack.unpackb(template[0])["arrays"]]
        ),
        _edit(template, shm=[f"hume-1-{seq % 16**8:08x}-1", 0, 3]),  # the removed ring's reference
        [template[0], *(f[:-1] for f in template[1:])],  # truncated frames
        [*template, b"extra"],
        [msgpack.packb({"v": protocol.PROTOCOL_VERSION, "pad": "x" * (protocol.MAX_HEADER_BYTES + 10)})],
    ]


def to_system2(seed: int = 0) -> Iterator[list[bytes]]:
    """Observation-side messages: protocol breakages, replays, observations the policy cannot use."""
    rng, seqs = np.random.default_rng(seed), itertools.count(10**9)
    for seq in seqs:
        yield from _generic(rng, _observation(seq), seq)
        yield _observation(next(seqs))[:1]  # arrays declared, no frames
        seq = next(seqs)
        yield _observation(seq, state_dim=6)  # valid wire, unusable: an error message back
        yield _observation(seq - 5)  # a replay: out of order after `seq`
        yield _edit(_observation(next(seqs)), secret="another-secret-0000")  # another's session
        yield _edit(_observation(next(seqs)), secret=...)  # a session without its secret


def to_system1(model_id: str, seed: int = 0) -> Iterator[list[bytes]]:
    """Chunk-side messages: protocol breakages and chunks System 1's policy must not use."""
    rng, seqs = np.random.default_rng(seed), itertools.count(10**9)
    good = np.zeros((16, 7), np.float32)
    for seq in seqs:
        yield from _generic(rng, _chunk(seq, model_id, good), seq)
        yield _chunk(next(seqs), model_id, np.full((16, 7), 1e6))  # out of range
        yield _chunk(next(seqs), model_id, np.full((16, 7), np.nan))  # not finite
        yield _chunk(next(seqs), model_id, np.zeros((16, 8)))  # a 7-dim robot
        yield _chunk(next(seqs), model_id, good, padding=np.zeros((16, 25), np.float32))  # unused padding
        yield _chunk(next(seqs), "other@0123456789ab", good)  # another model
        yield _chunk(next(seqs), model_id, good, tick=2**40)  # from the future
