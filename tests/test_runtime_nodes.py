"""The two nodes as real OS processes over real sockets, with the tiny model.

- a client written from docs/protocol.md alone (raw pyzmq + msgpack) gets a chunk from System 2;
- >= 1000 malformed messages to each node: it stays up and counts every one;
- kill -9 of System 2 mid-run: System 1 holds exactly when the last chunk's TTL runs out (zero
  motion, gripper unchanged), never crashes, and resumes by itself once System 2 is back; its
  video, streamed to the interrupt, marks every tick as ticks.csv does.
"""

import csv
import hashlib
import secrets
import signal
import time

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from runtime_support import (
    Peer,
    Proc,
    banner_marks,
    chunk_frames,
    make_tiny_checkpoint,
    malformed,
    node_args,
    observation_frames,
    secret_of,
    session_of,
    settled,
    tick_mark,
)

from hume.runtime import protocol

pytestmark = pytest.mark.slow
FUZZ = settings(
    max_examples=1000,
    phases=[Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def _fuzz(peer: Peer, template: list, session: str, last_seq: int) -> int:
    sent = 0

    @FUZZ
    @given(malformed(template, session, last_seq))
    def send(frames):
        nonlocal sent
        peer.pub.send_multipart(frames)
        sent += 1

    send()
    return sent


def test_doc_client_and_fuzzing_of_system2(ckpt, tmp_path):
    s2 = Proc(["serve", "system2", *node_args(ckpt, tmp_path)], tmp_path / "s2.log")
    peer = Peer(f"ipc://{tmp_path}/obs", f"ipc://{tmp_path}/chunks", bind=False)
    try:
        peer.heartbeat("system2", timeout=120)
        # A client written from docs/protocol.md alone: msgpack header + raw frames, nothing else.
        state = np.linspace(-0.5, 0.5, 8).astype(np.float32)
        image = np.full((64, 64, 3), 128, np.uint8)
        seq = 0
        secret = secrets.token_hex(16)  # sent to System 2 only; the session is its hash
        session = hashlib.sha256(secret.encode()).hexdigest()[:32]

        def send_observation():
            nonlocal seq
            header = {
                "v": 2, "type": "observation", "session": session, "secret": secret, "seq": seq,
                "episode": 0, "step": 0, "tick": 42, "task": "pick up the black bowl",
                "arrays": [["observation.state", "<f4", [8]],
                           ["observation.images.agentview", "|u1", [64, 64, 3]],
                           ["observation.images.wrist", "|u1", [64, 64, 3]]],
            }  # fmt: skip
            peer.pub.send_multipart(
                [msgpack.packb(header), state.tobytes(), image.tobytes(), image.tobytes()]
            )
            seq += 1

        head, frames = peer.receive(lambda h, f: h["type"] == "chunk", timeout=120, send=send_observation)
        arrays = {
            n: np.frombuffer(f, d).reshape(s) for (n, d, s), f in zip(head["arrays"], frames[1:], strict=True)
        }
        assert head["v"] == 2 and head["tick"] == 42 and head["episode"] == 0
        assert head["client"] == session and secret.encode() not in b"".join(frames)
        assert arrays["actions"].shape == (16, 7) and np.isfinite(arrays["actions"]).all()
        assert arrays["values"].shape == (5,) and head["chosen"] == int(np.argmax(arrays["values"]))
        assert head["think_ms"] > 0 and head["model_id"].startswith("tiny@")

        before = settled(peer, "system2")
        peer.pub.send_multipart(observation_frames("fuzz", 10**6, tick=43))
        sent = _fuzz(peer, observation_frames("fuzz", 0, tick=43), session_of("fuzz"), 10**6)
        assert sent >= 1000
        after = peer.heartbeat(
            "system2", timeout=30, where=lambda s: s["received"] >= before["received"] + sent + 1
        )["stats"]
        assert after["received"] == before["received"] + sent + 1
        assert after["dropped"] == before["dropped"] + sent
        assert after["accepted"] == before["accepted"] + 1
        assert s2.p.poll() is None
        # Valid on the wire but unusable by the policy (no wrist camera, 6-dim state): an error
        # message back naming what System 2 needs (not silence), counted, nothing thought on.
        unusable = {"observation.state": np.zeros(6, np.float32)}
        fields = {"episode": 0, "step": 0, "tick": 44, "task": "x", protocol.SECRET_KEY: secret_of("fuzz")}
        peer.pub.send_multipart(
            protocol.encode(protocol.OBSERVATION, session_of("fuzz"), 10**6 + 1, fields, unusable)
        )
        error, _ = peer.receive(lambda h, f: h["type"] == "error", timeout=30)
        assert error["tick"] == 44 and error["reason"] == "bad_observation"
        assert "observation.images.wrist" in error["detail"] and "[8]" in error["detail"]
        stats = peer.heartbeat("system2", where=lambda s: s.get("dropped_bad_observation") == 1)["stats"]
        assert stats["think_errors"] == 0
        # Still serving: a new observation gets its chunk.
        seq_tick = 45
        peer.pub.send_multipart(observation_frames("fuzz", 10**6 + 2, tick=seq_tick))
        peer.receive(lambda h, f: h["type"] == "chunk" and h["tick"] == seq_tick, timeout=60)
    finally:
        peer.close()
        assert s2.stop() == 0
    summary = (tmp_path / "system2.json").read_text()
    assert '"dropped_out_of_order"' in summary


def test_fuzzing_of_system1(ckpt, tmp_path):
    peer = Peer(f"ipc://{tmp_path}/chunks", f"ipc://{tmp_path}/obs", bind=True)  # we play System 2
    s1 = Proc(["serve", "system1", *node_args(ckpt, tmp_path, robot__max_steps=100000)], tmp_path / "s1.log")
    try:
        model_id = peer.heartbeat("system1", timeout=120)["model_id"]
        head, _ = peer.receive(lambda h, f: h["type"] == "observation", timeout=10)
        peer.pub.send_multipart(chunk_frames("fuzz", 10**6, model_id, tick=head["tick"]))
        # It acts on a valid chunk: its observations' ticks advance.
        peer.receive(lambda h, f: h["type"] == "observation" and h["tick"] >= 3, timeout=30)
        before = peer.heartbeat("system1")["stats"]
        sent = _fuzz(peer, chunk_frames("fuzz", 0, model_id, tick=0), "fuzz", 10**6)
        assert sent >= 1000
        after = peer.heartbeat(
            "system1", timeout=30, where=lambda s: s["received"] >= before["received"] + sent
        )
        stats = after["stats"]
        assert stats["received"] == before["received"] + sent
        assert stats["dropped"] == before["dropped"] + sent
        assert s1.p.poll() is None
    finally:
        peer.close()
        rc = s1.stop(signal.SIGTERM)
    assert rc == 130, s1.text()[-2000:]  # stopped on request, outputs written, no crash
    assert (tmp_path / "system1.json").is_file() and "Traceback" not in s1.text()


def _ticks(path):
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_system2_killed_system1_holds_within_ttl_then_resumes(ckpt, tmp_path):
    ttl = 16
    args = node_args(
        ckpt,
        tmp_path,
        robot__max_steps=100000,
        control__chunk_ttl_steps=ttl,
        control__control_hz=20,
        video="true",
    )
    s2 = Proc(["serve", "system2", *args], tmp_path / "s2.log")
    s2.wait_for("System 2 .* on observations", 120)
    s1 = Proc(["serve", "system1", *args], tmp_path / "s1.log")
    try:
        peer = Peer(f"ipc://{tmp_path}/unused", f"ipc://{tmp_path}/chunks", bind=False)
        peer.heartbeat("system2", timeout=120, where=lambda s: s["chunks_sent"] >= 3)
        peer.close()
        killed_at = len(s1.text())
        s2.p.send_signal(signal.SIGKILL)
        s2.p.wait()
        hold_tick = int(
            s1.wait_for(r"now tick (\d+), TTL \d+ steps\): holding", 30, start=killed_at).group(1)
        )
        assert s1.p.poll() is None
        restarted_at = len(s1.text())
        s2b = Proc(["serve", "system2", *args], tmp_path / "s2b.log")
        try:
            s1.wait_for("resumed control", 180, start=restarted_at)
            time.sleep(1.0)
        finally:
            s2b.stop()
    finally:
        rc = s1.stop()
        s2.stop()
    assert rc == 130 and "Traceback" not in s1.text(), s1.text()[-3000:]
    rows = _ticks(tmp_path / "ticks.csv")
    start = next(i for i, r in enumerate(rows) if r["tick"] == hold_tick)
    assert rows[start]["hold"] == 1 and rows[start - 1]["hold"] == 0
    last_acting = rows[start - 1]
    chunk_tick = last_acting["tick"] - last_acting["chunk_age"]
    # The hold starts exactly when the last chunk's validity ends: not earlier, not later.
    assert hold_tick - chunk_tick == ttl
    end = next((i for i in range(start, len(rows)) if rows[i]["hold"] == 0), len(rows))
    assert end - start > 20  # it held through System 2's restart, not one missed chunk
    for r in rows[start:end]:  # zero motion, the gripper as last commanded
        assert [r[f"a{i}"] for i in range(6)] == [0.0] * 6 and r["a6"] == last_acting["a6"]
    assert end < len(rows) and rows[end]["chunk_age"] >= 0, "never resumed"
    # Filmed as it ran, to the interrupt: one frame per tick, marked as ticks.csv says.
    assert banner_marks(tmp_path / "episodes.mp4") == [tick_mark(r) for r in rows]
