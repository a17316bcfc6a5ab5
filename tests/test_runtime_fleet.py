"""One `hume serve system2` serving three System-1 clients (real processes, the tiny model):
each client's chunks answer its own observations only, the node batches them, and a client killed
mid-run does not stop the others from getting chunks."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime_support import (
    TESTS,
    Proc,
    make_tiny_checkpoint,
    node_args,
    secret_of,
    session_of,
    start_fleet_client,
)

pytestmark = pytest.mark.slow

CLIENTS = 3


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _own_chunks(path: Path, session: str) -> list[dict]:
    return [r for r in _records(path) if r["type"] == "chunk" and r["client"] == session]


def _wait_chunks(path: Path, session: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(_own_chunks(path, session)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{session} did not get {count} chunks within {timeout} s")
        time.sleep(0.1)


def test_three_clients_each_get_their_own_chunks_and_survive_one_dying(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    s2 = Proc(["serve", "system2", *node_args(ckpt, tmp_path, torch_threads=1)], tmp_path / "s2.log")
    names = [f"robot-{i}" for i in range(CLIENTS)]
    clients, sessions, logs = [], [session_of(n) for n in names], []
    try:
        s2.wait_for("System 2 .* on observations", 120)
        for i, name in enumerate(names):
            logs.append(tmp_path / f"{name}.jsonl")
            clients.append(start_fleet_client(tmp_path, name, 100 + i, logs[i]))
        for session, log in zip(sessions, logs, strict=True):
            _wait_chunks(log, session, 3, 60)
        clients[0].send_signal(signal.SIGKILL)
        clients[0].wait()
        before = [len(_own_chunks(log, s)) for log, s in zip(logs, sessions, strict=True)]
        for k in (1, 2):
            _wait_chunks(logs[k], sessions[k], before[k] + 3, 30)
    finally:
        for c in clients:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
                c.wait(10)
        assert s2.stop() == 0, s2.text()[-3000:]

    for i, (session, log) in enumerate(zip(sessions, logs, strict=True)):
        records = _records(log)
        assert all(r["type"] == "chunk" for r in records), "no errors expected"
        # Every chunk names the client it answers; a client's own answer its episode, at a tick it
        # had already sent (never from the future).
        assert {r["client"] for r in records} <= set(sessions)
        own = _own_chunks(log, session)
        assert {r["episode"] for r in own} == {100 + i}
        assert all(r["tick"] <= r["now"] for r in own)
    summary = json.loads((tmp_path / "system2.json").read_text())
    assert set(summary["clients"]) == set(sessions)
    for session in sessions:
        assert summary["clients"][session]["chunks_sent"] >= 3
    assert summary["batch_size_max"] >= 2, "observations waiting together must share a think"
    assert summary["chunks_sent"] == sum(c["chunks_sent"] for c in summary["clients"].values())


def test_a_system1_node_in_a_fleet_follows_only_its_own_chunks(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    args = node_args(ckpt, tmp_path, torch_threads=1, robot__max_steps=100000)
    s2 = Proc(["serve", "system2", *args], tmp_path / "s2.log")
    s2.wait_for("System 2 .* on observations", 120)
    s1 = Proc(["serve", "system1", *args], tmp_path / "s1.log")
    log = tmp_path / "robot-0.jsonl"
    robot0 = session_of("robot-0")
    other = subprocess.Popen(
        [sys.executable, str(TESTS / "fleet_client.py"), f"ipc://{tmp_path}/obs", f"ipc://{tmp_path}/chunks"]
        + [secret_of("robot-0"), "100", str(log)]
    )
    try:
        # Both clients are being answered: the raw one sees its own chunks and System 1's.
        deadline = time.monotonic() + 90
        while not (
            len(_own_chunks(log, robot0)) >= 3
            and sum(r["client"] != robot0 for r in _records(log) if r["type"] == "chunk") >= 3
        ):
            assert time.monotonic() < deadline, s1.text()[-3000:]
            time.sleep(0.2)
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait(10)
        rc = s1.stop()
        s2.stop()
    assert rc == 130, s1.text()[-3000:]
    summary = json.loads((tmp_path / "system1.json").read_text())
    assert summary["chunks_received"] >= 1  # only its own are counted as received chunks
    assert summary["dropped_other_client"] >= 3  # robot-0's, seen and left alone
    system2 = json.loads((tmp_path / "system2.json").read_text())
    assert summary["chunks_received"] <= system2["chunks_sent"] - system2["clients"][robot0]["chunks_sent"]
