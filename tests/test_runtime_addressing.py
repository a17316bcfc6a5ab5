"""Chunks and errors name the client (session) they answer: optional on the wire, checked."""

import msgpack
import pytest
from runtime_support import chunk_frames

from hume.runtime import protocol
from hume.runtime.protocol import MessageError


def _with(frames: list, **header) -> list:
    head = {**msgpack.unpackb(frames[0], raw=False), **header}
    return [msgpack.packb(head), *frames[1:]]


def test_a_chunk_may_name_its_client_or_not():
    frames = chunk_frames("s2", 0, "tiny@0", tick=3)
    assert "client" not in protocol.decode(frames).fields  # a System 2 serving one client, or older
    assert protocol.decode(_with(frames, client="robot-1")).fields["client"] == "robot-1"


@pytest.mark.parametrize("bad", ["", "x" * 65, 1, None, b"robot"])
def test_a_bad_client_is_malformed(bad):
    with pytest.raises(MessageError) as e:
        protocol.decode(_with(chunk_frames("s2", 0, "tiny@0", tick=3), client=bad))
    assert e.value.reason == "malformed"


def test_observations_and_heartbeats_name_no_client():
    secret = "robot-1-secret-0000"
    fields = {"episode": 0, "step": 0, "tick": 0, "task": "x", "secret": secret}
    with pytest.raises(MessageError, match="unexpected"):
        protocol.encode(protocol.OBSERVATION, protocol.session_of(secret), 0, {**fields, "client": "robot-1"})


def test_an_error_names_its_client():
    fields = {"episode": 0, "step": 0, "tick": 5, "reason": "think_failed", "detail": "x", "client": "r"}
    frames = [bytes(f) for f in protocol.encode(protocol.ERROR, "s2", 0, fields)]
    assert protocol.decode(frames).fields == fields
