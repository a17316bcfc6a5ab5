"""The wire protocol: round trips, zero-copy arrays, and every kind of bad message dropped with a reason."""

import hashlib
import re
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hume.runtime import protocol
from hume.runtime.protocol import MessageError, SequenceGate, decode, encode

ROOT = Path(__file__).resolve().parents[1]
INT64 = st.integers(-(2**63), 2**63 - 1)


SECRET = "a-client-secret-0123"
S1 = protocol.session_of(SECRET)  # a System-1 session is the hash of its secret


def observation(**over):
    fields = {
        "episode": 0,
        "step": 3,
        "tick": 7,
        "task": "put the bowl on the plate",
        "secret": SECRET,
        **over,
    }
    arrays = {
        "observation.images.agentview": np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3),
        "observation.state": np.linspace(-1, 1, 8, dtype=np.float32),
    }
    return fields, arrays


def chunk_fields(**over):
    return {
        "model_id": "tiny@abc",
        "episode": 0,
        "step": 3,
        "tick": 7,
        "chosen": 1,
        "noise_level": 0.1,
        "think_ms": 12.5,
        **over,
    }


def chunk_arrays():
    return {
        "actions": np.random.default_rng(0).uniform(-1, 1, (16, 7)).astype(np.float32),
        "values": np.array([0.1, 0.9, 0.3], dtype=np.float32),
    }


def header_of(frames) -> dict:
    return msgpack.unpackb(bytes(frames[0]), raw=False)


def with_header(frames, **changes) -> list:
    h = header_of(frames)
    h.update(changes)
    h = {k: v for k, v in h.items() if v is not ...}
    return [msgpack.packb(h), *frames[1:]]


def test_observation_round_trip_is_zero_copy():
    fields, arrays = observation()
    frames = [bytes(f) for f in encode(protocol.OBSERVATION, S1, 5, fields, arrays)]
    msg = decode(frames)
    assert (msg.type, msg.session, msg.seq, msg.fields) == (protocol.OBSERVATION, S1, 5, fields)
    for name, a in arrays.items():
        np.testing.assert_array_equal(msg.arrays[name], a)
        assert msg.arrays[name].dtype == a.dtype
        assert not msg.arrays[name].flags.owndata  # a view of the received frame, not a copy


def test_observation_carries_the_committed_actions():
    fields, arrays = observation()
    committed = np.linspace(-1, 1, 21, dtype=np.float32).reshape(3, 7)
    msg = decode(encode(protocol.OBSERVATION, S1, 0, fields, {**arrays, protocol.COMMITTED_KEY: committed}))
    np.testing.assert_array_equal(msg.arrays[protocol.COMMITTED_KEY], committed)


def test_chunk_and_heartbeat_round_trip():
    msg = decode(encode(protocol.CHUNK, "s2", 0, chunk_fields(), chunk_arrays()))
    assert msg.fields["chosen"] == 1 and msg.arrays["actions"].shape == (16, 7)
    hb = {"role": "system2", "state": "ready", "model_id": "m", "stats": {"dropped": 3, "think": 1.5}}
    assert decode(encode(protocol.HEARTBEAT, "s2", 1, hb)).fields == hb


def test_chunk_with_padded_dims_round_trips_through_the_wire_codec():
    """A converted model's System 1 reads System 2's padded action dims: they travel with the chunk."""
    from hume.policy.chunk import Chunk
    from hume.runtime.chunk_wire import chunk_from_wire, chunk_to_wire

    rng = np.random.default_rng(1)
    chunk = Chunk(
        actions=rng.standard_normal((16, 7)).astype(np.float32),
        noise_level=0.0,
        values=np.array([0.2, 0.5], np.float32),
        index=1,
        padding=rng.standard_normal((16, 25)).astype(np.float32),
    )
    fields, arrays = chunk_to_wire(chunk)
    back = chunk_from_wire(decode(encode(protocol.CHUNK, "s2", 0, {**chunk_fields(), **fields}, arrays)))
    np.testing.assert_array_equal(back.model_actions, chunk.model_actions)
    assert back.model_actions.shape == (16, 32)
    plain = chunk_from_wire(decode(encode(protocol.CHUNK, "s2", 1, chunk_fields(), chunk_arrays())))
    assert plain.padding is None
    for bad in (rng.standard_normal((15, 25)), np.full((16, 25), np.nan)):
        with pytest.raises(MessageError):
            decode(
                encode(protocol.CHUNK, "s2", 2, chunk_fields(), {**arrays, "padding": bad.astype(np.float32)})
            )


def test_header_has_version_and_array_specs():
    h = header_of(encode(protocol.CHUNK, "s2", 4, chunk_fields(), chunk_arrays()))
    assert h["v"] == protocol.PROTOCOL_VERSION
    assert h["arrays"] == [["actions", "<f4", [16, 7]], ["values", "<f4", [3]]]


def test_sender_refuses_what_a_receiver_would_drop():
    with pytest.raises(ValueError, match="dtype"):
        encode(protocol.CHUNK, "s", 0, chunk_fields(), {**chunk_arrays(), "x": np.array(["a"], dtype=object)})
    with pytest.raises(MessageError):
        encode(protocol.CHUNK, "s", 0, chunk_fields(chosen=7), chunk_arrays())


def _bad_messages():
    fields, arrays = observation()
    good = encode(protocol.OBSERVATION, S1, 0, fields, arrays)
    cf, ca = chunk_fields(), chunk_arrays()
    nan_actions = {**ca, "actions": np.full((16, 7), np.nan, dtype=np.float32)}
    huge_values = [msgpack.packb({**header_of(good), "task": "x" * 70000})]
    return {
        "empty": ([], "malformed"),
        "not msgpack": ([b"\xc1\xc1\xc1"], "malformed"),
        "header not a map": ([msgpack.packb([1, 2])], "malformed"),
        "wrong version": (with_header(good, v=1), "wrong_version"),
        "no version": (with_header(good, v=...), "wrong_version"),
        "version true": (with_header(good, v=True), "wrong_version"),
        "version 2.0": (with_header(good, v=2.0), "wrong_version"),
        "another client's session": (with_header(good, session=protocol.session_of("x" * 16)), "impostor"),
        "another secret": (with_header(good, secret="a-guessed-secret-99"), "impostor"),
        "short secret": (with_header(good, secret="short"), "malformed"),
        "shared-memory reference": (with_header(good, shm=["hume-1-0badf00d-1", 0, 2]), "malformed"),
        "unknown type": (with_header(good, type="command"), "malformed"),
        "missing field": (with_header(good, tick=...), "malformed"),
        "extra field": (with_header(good, exec="rm -rf /"), "malformed"),
        "bool as int": (with_header(good, tick=True), "malformed"),
        "negative seq": (with_header(good, seq=-1), "malformed"),
        "header too big": (huge_values, "oversized"),
        "frame missing": (good[:-1], "malformed"),
        "frame extra": ([*good, b"xx"], "malformed"),
        "size mismatch": ([good[0], good[1], b"\x00" * 5], "malformed"),
        "object dtype": (with_header(good, arrays=[["observation.state", "|O", [8]]]), "malformed"),
        "huge dim": (with_header(good, arrays=[["observation.state", "<f4", [10**9]]])[:2], "oversized"),
        "bad name": (with_header(good, arrays=[["../x", "<f4", [8]], ["b", "|u1", [1]]]), "malformed"),
        "state wrong dtype": (
            _raw("observation", fields, {"observation.state": np.zeros(8)}),
            "bad_field",
        ),
        "nan in chunk": (_raw("chunk", cf, nan_actions), "bad_field"),
        "committed not 2-d": (
            _raw("observation", fields, {**arrays, "committed_actions": np.zeros(7, np.float32)}),
            "bad_field",
        ),
        "committed not finite": (
            _raw("observation", fields, {**arrays, "committed_actions": np.full((3, 7), np.inf, np.float32)}),
            "bad_field",
        ),
        "chosen out of range": (_raw("chunk", {**cf, "chosen": 9}, ca), "bad_field"),
    }


def test_hand_built_chunk_passes():
    assert decode(_raw("chunk", chunk_fields(), chunk_arrays())).fields["chosen"] == 1


def _raw(type_, fields, arrays):
    """A message built by hand, bypassing the sender's own checks."""
    specs = [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]
    head = {"v": 2, "type": type_, "session": S1, "seq": 0, **fields, "arrays": specs}
    return [msgpack.packb(head), *(v.tobytes() for v in arrays.values())]


@pytest.mark.parametrize("case", list(_bad_messages()))
def test_bad_message_dropped_with_reason(case):
    frames, reason = _bad_messages()[case]
    with pytest.raises(MessageError) as e:
        decode(frames)
    assert e.value.reason == reason


def test_message_limit():
    fields, arrays = observation()
    frames = encode(protocol.OBSERVATION, S1, 0, fields, arrays)
    with pytest.raises(MessageError, match="oversized"):
        decode(frames, max_message_bytes=100)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=5))
def test_random_frames_only_ever_raise_message_error(frames):
    with pytest.raises(MessageError):
        decode(frames)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "type", "session", "seq", "arrays", "tick", "task", "episode", "step"]),
        st.one_of(INT64, st.text(max_size=5), st.none(), st.lists(INT64, max_size=3)),
    )
)
def test_random_headers_only_ever_raise_message_error(header):
    with pytest.raises(MessageError):
        decode([msgpack.packb(header)])


def _gated(session: str, seq: int) -> protocol.Message:
    return protocol.Message(protocol.HEARTBEAT, session, seq, {})


def test_sequence_gate_drops_out_of_order_and_accepts_a_restarted_sender():
    gate = SequenceGate(max_sessions=4)
    gate.check(_gated("a", 5))
    for seq in (5, 3):
        with pytest.raises(MessageError) as e:
            gate.check(_gated("a", seq))
        assert e.value.reason == "out_of_order"
    gate.check(_gated("a", 6))
    gate.check(_gated("b", 0))  # a restarted sender has a new session id and starts again at 0


def test_churning_sessions_never_reopens_a_replay():
    """More new sessions than the gate remembers: the new ones are refused, the old ones kept, so
    an old message replayed afterwards is still out of order; a session is forgotten only once
    silent for idle_s."""
    now = [0.0]
    gate = SequenceGate(max_sessions=32, idle_s=60.0, clock=lambda: now[0])
    gate.check(_gated("victim", 0))
    gate.check(_gated("victim", 1))
    refused = 0
    for i in range(100):
        try:
            gate.check(_gated(f"churn-{i}", 0))
        except MessageError as e:
            assert e.reason == "sessions_full"
            refused += 1
    assert refused == 100 - 31 and len(gate) == 32
    with pytest.raises(MessageError) as e:
        gate.check(_gated("victim", 1))  # the replay
    assert e.value.reason == "out_of_order"
    gate.check(_gated("victim", 2))  # the victim itself goes on
    now[0] = 61.0  # the churned sessions fell silent; the victim speaks on
    gate.check(_gated("victim", 3))
    gate.check(_gated("newcomer", 0))
    assert len(gate) == 2


def test_a_session_is_the_hash_of_its_secret():
    secret = "0123456789abcdef"
    assert protocol.session_of(secret) == hashlib.sha256(secret.encode()).hexdigest()[:32]
    fields, arrays = observation()
    hb = {"role": "system1", "state": "ready", "model_id": "m", "stats": {}, "secret": SECRET}
    assert decode(encode(protocol.HEARTBEAT, S1, 0, hb)).fields["secret"] == SECRET
    for kind, f, a in ((protocol.OBSERVATION, fields, arrays), (protocol.HEARTBEAT, hb, None)):
        with pytest.raises(MessageError) as e:
            encode(kind, protocol.session_of("someone-else-0000"), 0, f, a)
        assert e.value.reason == "impostor"
    # Without a secret the protocol takes it (System 2's intake does not: test_runtime_transport).
    assert (
        "secret"
        not in decode(with_header(encode(protocol.OBSERVATION, S1, 0, fields, arrays), secret=...)).fields
    )
    with pytest.raises(MessageError, match="unexpected"):  # System 2 never sends a secret
        encode(protocol.CHUNK, S1, 0, {**chunk_fields(), "secret": SECRET}, chunk_arrays())


def test_no_pickle_anywhere_in_the_runtime():
    """No pickle import, no pyzmq *_pyobj (pickle underneath), no np.load of objects."""
    banned = re.compile(r"import pickle|pickle\.|_pyobj\(|allow_pickle|import dill|cloudpickle")
    for folder in ("hume/runtime", "deploy"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not banned.search(path.read_text()), path
