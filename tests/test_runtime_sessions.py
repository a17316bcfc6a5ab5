"""No client's session can be taken over: one `hume serve system2` (a real process, the tiny
model), a victim and a bystander (fleet_client.py, real processes) and an attacker on its own
sockets. The attacker may send observations (it is on the socket) and reads the victim's session
from the chunks System 2 publishes; what it sends in the victim's name, with a huge sequence number
that would silence the victim's later ones, is dropped and counted, and the victim's episode goes
on exactly as the bystander's does."""

import json
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from runtime_support import (
    Proc,
    make_tiny_checkpoint,
    node_args,
    secret_of,
    session_of,
    start_fleet_client,
)

from hume.runtime import protocol

pytestmark = pytest.mark.slow

ATTACK_EPISODE = 999  # the attacker's observations carry it: a chunk for it was computed on them
HUGE_SEQ = 2**62 - 1


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _own(path: Path, session: str) -> list[dict]:
    return [r for r in _records(path) if r["type"] == "chunk" and r["client"] == session]


def _wait(path: Path, session: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(_own(path, session)) < count:
        assert time.monotonic() < deadline, f"{session} did not get {count} chunks within {timeout} s"
        time.sleep(0.1)


def _in_the_name_of(victim: str, secret: str | None, tick: int) -> list[bytes]:
    """An observation naming the victim's session: the attacker's images and state, its own secret
    (or none), a sequence number beyond any the victim will reach. Built by hand: our encoder
    refuses to send it."""
    arrays = {
        "observation.images.agentview": np.full((64, 64, 3), 255, np.uint8),
        "observation.images.wrist": np.full((64, 64, 3), 255, np.uint8),
        "observation.state": np.ones(8, np.float32),
    }
    head = {"v": protocol.PROTOCOL_VERSION, "type": "observation", "session": victim, "seq": HUGE_SEQ}
    head |= {"episode": ATTACK_EPISODE, "step": tick, "tick": tick, "task": "pick up the black bowl"}
    if secret is not None:
        head["secret"] = secret
    head["arrays"] = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
    return [msgpack.packb(head), *(a.tobytes() for a in arrays.values())]


def test_an_attacker_on_the_socket_cannot_take_over_another_clients_session(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    s2 = Proc(["serve", "system2", *node_args(ckpt, tmp_path, torch_threads=1)], tmp_path / "s2.log")
    names = ("victim", "bystander")
    sessions = {n: session_of(n) for n in names}
    logs = {n: tmp_path / f"{n}.jsonl" for n in names}
    clients, ctx = [], zmq.Context()
    try:
        s2.wait_for("System 2 .* on observations", 120)
        for i, n in enumerate(names):
            clients.append(start_fleet_client(tmp_path, n, 100 + i, logs[n]))
        for n in names:
            _wait(logs[n], sessions[n], 3, 90)
        # The attacker: it learns the victim's session from a chunk everyone receives.
        sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"ipc://{tmp_path}/chunks")
        pub.connect(f"ipc://{tmp_path}/obs")
        while True:
            assert sub.poll(30_000), "no chunk to read a session from"
            head = msgpack.unpackb(sub.recv_multipart()[0], raw=False)
            if head["type"] == "chunk" and head["client"] == sessions["victim"]:
                break
        assert "secret" not in head, "a published chunk must not carry a secret"
        victim = head["client"]
        time.sleep(0.3)  # PUB/SUB joins take a moment
        before = {n: len(_own(logs[n], sessions[n])) for n in names}
        for tick in range(40):  # 2 s: with its own secret, with none; as observations and heartbeats
            pub.send_multipart(_in_the_name_of(victim, secret_of("attacker"), tick))
            pub.send_multipart(_in_the_name_of(victim, None, tick))
            hb = {"v": protocol.PROTOCOL_VERSION, "type": "heartbeat", "session": victim, "seq": HUGE_SEQ}
            hb |= {"role": "system1", "state": "ready", "model_id": "x", "stats": {}, "arrays": []}
            pub.send_multipart([msgpack.packb(hb)])
            time.sleep(0.05)
        # After the attack both clients keep being answered, at the same pace.
        for n in names:
            _wait(logs[n], sessions[n], before[n] + 20, 60)
    finally:
        ctx.destroy(linger=0)
        for c in clients:
            c.terminate()
            c.wait(10)
        assert s2.stop() == 0, s2.text()[-3000:]

    own = {n: _own(logs[n], sessions[n]) for n in names}
    # Nothing computed on the attacker's observations went out in anyone's name.
    assert {r["episode"] for r in own["victim"]} == {100}
    assert not [r for n in names for r in _records(logs[n]) if r.get("episode") == ATTACK_EPISODE]
    # The victim was answered as often as the bystander after the attack began (before the fix:
    # silenced for the rest of its episode).
    after = {n: len(own[n]) - before[n] for n in names}
    assert after["victim"] >= 0.7 * after["bystander"], after
    summary = json.loads((tmp_path / "system2.json").read_text())
    assert summary["dropped_impostor"] == 40 and summary["dropped_unauthenticated"] == 80
    assert set(summary["clients"]) == set(sessions.values())
    assert summary["clients"][sessions["victim"]]["episode"] == 100
