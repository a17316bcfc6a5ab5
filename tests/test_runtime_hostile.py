"""Hostile peers against real node processes: what an attacker (or a clumsy client) sends must be
dropped and counted, and nothing outside the robot's envelope may reach the robot adapter.

Each node runs once per module through a scripted attack (the fixtures); the tests check one
finding each on what came out: the actions the robot adapter received, the node's counters, its
log, its peak memory, its exit code.
"""

import itertools
import time

import msgpack
import numpy as np
import pytest
import yaml
from runtime_support import (
    Peer,
    Proc,
    chunk_frames,
    make_tiny_checkpoint,
    node_args,
    observation_frames,
    recorded_actions,
    settled,
)

pytestmark = pytest.mark.slow

LOW, HIGH, MAX_DELTA = -1.0, 1.0, 0.5  # the kinematic robot's envelope (deploy/robots/kinematic.py)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def _raw_chunk(session: str, seq: int, model_id: str, tick: int, actions: np.ndarray) -> list[bytes]:
    """A chunk with any actions, NaN included: built by hand, as our encoder refuses to send them."""
    frames = chunk_frames(session, seq, model_id, tick)
    head = msgpack.unpackb(frames[0], raw=False)
    head["arrays"][0][2] = list(actions.shape)
    return [msgpack.packb(head), actions.astype(np.float32).tobytes(), *frames[2:]]


@pytest.fixture(scope="module")
def attacked_system1(ckpt, tmp_path_factory):
    """System 1 driving a robot that records every action, while we, as System 2, answer each
    observation with a chunk it may use (normalised actions of 50: far outside the robot's range
    once de-normalised) followed by chunks it must drop: actions of 1e6, NaN, a 16x8 chunk for a
    7-dim robot, another model's; then fall silent, so that it holds."""
    run = tmp_path_factory.mktemp("system1")
    record = run / "actions.bin"
    config = run / "robot.yaml"
    config.write_text(yaml.safe_dump({"robot": {"options": {"record": str(record)}}}))
    peer = Peer(f"ipc://{run}/chunks", f"ipc://{run}/obs", bind=True)
    args = node_args(ckpt, run, robot__kind="runtime_support:RecordingRobot", control__chunk_ttl_steps=16)
    s1 = Proc(["serve", "system1", "--config", str(config), *args], run / "s1.log")
    seq = itertools.count(1)
    try:
        model_id = peer.heartbeat("system1", timeout=120)["model_id"]
        for _ in range(300):  # a burst from another model: each one a WARNING before
            peer.pub.send_multipart(chunk_frames("other", next(seq), "other@0123456789ab", 0))
        sent, deadline = 0, time.monotonic() + 5.0
        while time.monotonic() < deadline:
            tick = peer.receive(lambda h, f: h["type"] == "observation", timeout=30)[0]["tick"]
            peer.pub.send_multipart(_raw_chunk("s2", next(seq), model_id, tick, np.full((16, 7), 50.0)))
            bad = [np.full((16, 7), 1e6), np.full((16, 8), 0.1), np.full((16, 7), np.nan)]
            for actions in bad if tick % 2 else bad[::-1]:  # each kind last in turn: before, it replaced
                peer.pub.send_multipart(_raw_chunk("s2", next(seq), model_id, tick, actions))
            sent += len(bad)
        time.sleep(2.0)  # silence: the last chunk's TTL (16 ticks at 20 Hz) runs out
        peer.drain()
        stats = settled(peer, "system1")
    finally:
        peer.close()
        rc = s1.stop()
    return {
        "rc": rc,
        "stats": stats,
        "log": s1.text(),
        "actions": recorded_actions(record),
        "bad_sent": sent,
        "summary": yaml.safe_load((run / "system1.json").read_text()),
    }


def test_no_action_outside_the_envelope_reaches_the_robot(attacked_system1):
    actions, summary = attacked_system1["actions"], attacked_system1["summary"]
    assert len(actions) > 40 and np.isfinite(actions).all()
    assert (actions[:, :6] >= LOW).all() and (actions[:, :6] <= HIGH).all()
    assert (actions[:, 6] >= -1.0).all() and (actions[:, 6] <= 1.0).all()  # the gripper too
    steps = np.abs(np.diff(actions[:, :6], axis=0))
    stopping = (actions[1:, :6] == 0).all(axis=1)  # the hold may stop at once
    # Faster than max_delta only by slowing a dim towards zero (the hold, or the workspace's edge).
    before, after = actions[:-1, :6], actions[1:, :6]
    slowing = (np.abs(after) <= np.abs(before)) & (after * before >= 0)
    assert ((steps <= MAX_DELTA + 1e-6) | slowing)[~stopping].all()
    held = actions[1:][stopping]
    assert len(held) >= 10 and np.isin(held[:, 6], actions[:, 6]).all()  # the hold sends a sent gripper
    envelope = summary["envelope"]
    assert envelope["clamped"] > 0 and envelope["rate_limited"] > 0 and envelope["nonfinite"] == 0
    assert summary["holds"] >= 1 and attacked_system1["rc"] == 130


def test_chunks_the_policy_cannot_use_are_dropped_on_receipt(attacked_system1):
    stats, sent = attacked_system1["stats"], attacked_system1["bad_sent"]
    dropped = {k: v for k, v in stats.items() if k.startswith("dropped_")}
    each = sent // 3
    assert dropped["dropped_out_of_range"] >= each - 2 and dropped["dropped_wrong_shape"] >= each - 2
    assert dropped["dropped_bad_field"] >= each - 2  # NaN: the protocol's own check
    assert dropped["dropped_model_mismatch"] == 300
    # Nothing dropped replaced the chunk in use: no refinement failed, no hold before the silence.
    assert stats["refine_errors"] == 0 and stats["holds"] == 1
    assert stats["received"] == stats["accepted"] + stats["dropped"]


def test_a_flood_of_rejected_chunks_writes_a_few_log_lines(attacked_system1):
    lines = [line for line in attacked_system1["log"].splitlines() if "dropped" in line]
    assert attacked_system1["stats"]["dropped"] > 300
    assert 1 <= len(lines) <= 6, lines  # one per reason (model_mismatch, out_of_range, wrong_shape)


# --- System 2 ----------------------------------------------------------------------------------


def _vm_hwm_mb(pid: int) -> float:
    line = next(x for x in open(f"/proc/{pid}/status") if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def attacked_system2(ckpt, tmp_path_factory):
    """System 2 sent a 240 MB message of 40 MB frames, and observations with `v: true` and
    `v: 2.0`. A step the node fails is recorded, not raised, so that each test reports its own
    finding."""
    run = tmp_path_factory.mktemp("system2")
    s2 = Proc(["serve", "system2", *node_args(ckpt, run)], run / "s2.log")
    peer = Peer(f"ipc://{run}/obs", f"ipc://{run}/chunks", bind=False)
    seq, answered = itertools.count(1), set()
    out = {}

    def send(frames, **header):
        head = {**msgpack.unpackb(frames[0], raw=False), "seq": next(seq), **header}
        peer.pub.send_multipart([msgpack.packb(head), *frames[1:]])

    def chunk(tick, timeout=60) -> bool:
        """Whether System 2 answers a valid observation of `tick` (sent until it does)."""

        def want(head, _):
            if head["type"] == "chunk":
                answered.add(head["tick"])
            return head["type"] == "chunk" and head["tick"] == tick

        try:
            peer.receive(want, timeout, send=lambda: send(observation_frames("hostile", 0), tick=tick))
        except AssertionError:
            return False
        return True

    def stats():
        peer.drain()
        try:
            return settled(peer, "system2", timeout=10)
        except AssertionError:
            return {}

    try:
        peer.heartbeat("system2", timeout=120)
        assert chunk(1, timeout=120)
        hwm = _vm_hwm_mb(s2.p.pid)
        peer.pub.send_multipart([b"\0" * (40 << 20)] * 6)
        out["answers_after_big"] = chunk(2)
        out["hwm_growth_mb"] = _vm_hwm_mb(s2.p.pid) - hwm
        frames = observation_frames("hostile", 0)
        send(frames, tick=3, v=True)
        send(frames, tick=4, v=2.0)
        chunk(5)
        out["version_stats"] = stats()
    finally:
        peer.close()
        out["rc"] = s2.stop()
    out["answered"] = answered
    out["log"] = s2.text()
    return out


def test_frames_larger_than_a_message_may_be_are_cut_off_before_they_are_buffered(attacked_system2):
    assert attacked_system2["answers_after_big"]
    assert attacked_system2["hwm_growth_mb"] < 64, attacked_system2["hwm_growth_mb"]  # 240 MB before


def test_the_version_must_be_exactly_the_integer(attacked_system2):
    assert not {3, 4} & attacked_system2["answered"] and {1, 2, 5} <= attacked_system2["answered"]
    assert attacked_system2["version_stats"]["dropped_wrong_version"] == 2


def test_system2_outlives_the_attack_and_stops_cleanly(attacked_system2):
    assert attacked_system2["rc"] == 0, attacked_system2["log"][-2000:]
