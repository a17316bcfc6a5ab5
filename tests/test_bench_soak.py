"""`hume bench soak`: both nodes under a hostile sender; and every hostile message is one a node drops."""

import itertools

import pytest
from cli_support import hume, last_json

from hume.bench import hostile
from hume.runtime import protocol
from hume.runtime.policy_spec import PolicySpec
from hume.runtime.protocol import MessageError, SequenceGate


def _accepted(stream, n: int, check=None) -> list:
    """The messages of `stream` that pass the protocol, the sequence gate and `check`."""
    gate, out = SequenceGate(), []
    for frames in itertools.islice(stream, n):
        try:
            msg = protocol.decode(frames)
            gate.check(msg)
            if check is not None:
                check(msg)
        except MessageError:
            continue
        out.append(msg)
    return out


def test_every_hostile_message_is_dropped_by_the_checks_of_the_node_it_is_sent_to():
    spec = PolicySpec(("agentview", "wrist"), 8, 16, 7, 0)  # the default checkpoint's
    assert _accepted(hostile.to_system2(), 2000, lambda m: spec.check_observation(m.arrays)) == []

    def system1(msg):  # System 1's own checks after the protocol's (system1_node._check_chunk)
        if msg.fields["model_id"] != "m@0" or msg.fields["tick"] > 10**6:
            raise MessageError("model_mismatch_or_future")
        spec.check_chunk(msg.arrays)

    assert _accepted(hostile.to_system1("m@0"), 2000, system1) == []
    # Each stream exercises its node's own checks too, not the protocol's alone.
    assert (
        len(_accepted(hostile.to_system2(), 2000)) > 50
        and len(_accepted(hostile.to_system1("m@0"), 2000)) > 200
    )


@pytest.mark.slow
def test_smoke_soak_leaves_both_nodes_alive_and_counting():
    result = last_json(hume("bench", "soak", "--smoke", "--json", timeout=600))
    assert result["exit_codes"] == {"system2": 0, "system1": 0} and result["system2_alive_at_end"]
    assert result["ticks"] == 300 and result["chunks_received"] > 10
    assert result["hostile_sent"] == {"system2": 1000, "system1": 1000}
    for name, counters in result["counters"].items():
        assert counters["received"] == counters["accepted"] + counters["dropped"]
        # PUB/SUB may lose the first few while the subscription travels; none is ever accepted.
        assert counters["dropped"] >= 0.95 * result["hostile_sent"][name], (name, counters)
    for mem in result["rss"].values():
        assert mem["samples"] >= 5 and mem["end_mb"] > 0
