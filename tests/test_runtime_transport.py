"""Transport over real sockets: endpoint policy, CURVE, counting of bad messages, latest-only intake."""

import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from deploy.keys import generate_keys
from hume.runtime import protocol
from hume.runtime.key_files import unsafe_key_files
from hume.runtime.transport import (
    EndpointError,
    Inbox,
    LatestObservation,
    Publisher,
    Transport,
    check_endpoint,
    is_loopback,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "endpoint, loopback",
    [
        ("ipc:///tmp/x", True),
        ("inproc://x", True),
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.8.9.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://10.0.0.5:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://robot.example.com:5555", False),
        # ZeroMQ's source;destination form: the connection goes to what follows ";".
        ("tcp://127.0.0.1:0;192.0.2.2:5555", False),
        ("tcp://127.0.0.1;127.0.0.1:5555", False),
        # Abstract ipc sockets have no file whose permissions keep other users out.
        ("ipc://@hume-observations", False),
        ("ipc://", False),
    ],
)
def test_loopback_detection(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:0;192.0.2.2:5555", "ipc://@hume-observations"])
def test_nodes_refuse_endpoints_other_users_or_hosts_reach_without_keys(endpoint, tmp_path):
    exe = Path(sys.executable).with_name("hume")
    for node in ("system1", "system2"):
        r = subprocess.run(
            [str(exe), "serve", node, f"--transport.observations={endpoint}", f"--output={tmp_path}"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert r.returncode == 2 and f"refusing {endpoint!r}" in r.stderr, r.stderr[-2000:]


def test_non_loopback_bind_refused_without_keys(tmp_path):
    with pytest.raises(EndpointError, match="hume keys"):
        check_endpoint("tcp://0.0.0.0:5555", secure=False)
    with pytest.raises(EndpointError, match="tcp://, ipc://"):
        check_endpoint("udp://127.0.0.1:5", secure=True)
    t = Transport()
    try:
        with pytest.raises(EndpointError):
            t.socket(zmq.PUB, "tcp://*:5555", bind=True)
    finally:
        t.close()


def test_cli_refuses_non_loopback_bind_before_loading_anything(tmp_path):
    exe = Path(sys.executable).with_name("hume")
    t0 = time.monotonic()
    r = subprocess.run(
        [str(exe), "serve", "system2", "--transport.observations=tcp://0.0.0.0:5555", f"--output={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2, r.stderr
    assert "refusing 'tcp://0.0.0.0:5555'" in r.stderr and "hume keys" in r.stderr
    assert time.monotonic() - t0 < 20


def _heartbeat(pub: Publisher, state="ready"):
    pub.send(protocol.HEARTBEAT, {"role": "system2", "state": state, "model_id": "m", "stats": {}})


def _receive_within(inbox: Inbox, pub: Publisher, seconds: float) -> list:
    """Publish heartbeats until one arrives (PUB/SUB joins take a moment) or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _heartbeat(pub)
        msgs = inbox.drain(timeout_ms=100)
        if msgs:
            return msgs
    return []


def test_curve_allows_a_non_loopback_bind_and_only_authorized_clients(tmp_path):
    keys, stranger = tmp_path / "keys", tmp_path / "stranger"
    generate_keys(keys)
    generate_keys(stranger)
    server = Transport(str(keys))
    client = Transport(str(keys))
    intruder = Transport(str(stranger))
    try:
        sock = server.socket(zmq.PUB, "tcp://0.0.0.0:*", bind=True)
        port = sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
        pub = Publisher(sock, server.session)
        good = Inbox(client.socket(zmq.SUB, f"tcp://127.0.0.1:{port}", bind=False), 1 << 20)
        bad = Inbox(intruder.socket(zmq.SUB, f"tcp://127.0.0.1:{port}", bind=False), 1 << 20)
        assert _receive_within(good, pub, 10)
        _heartbeat(pub)
        time.sleep(0.3)
        assert bad.drain(timeout_ms=200) == [] and bad.received == 0
    finally:
        for t in (server, client, intruder):
            t.close()


def test_inbox_counts_every_bad_message_and_survives_a_too_big_one():
    t = Transport(max_message_bytes=64 * 1024)
    try:
        sub = t.socket(zmq.SUB, "inproc://chunks", bind=True)
        inbox = Inbox(sub, t.max_message_bytes)
        raw = t.ctx.socket(zmq.PUB)
        raw.connect("inproc://chunks")
        pub = Publisher(raw, "peer")
        assert _receive_within(inbox, pub, 5)
        before = inbox.stats()
        bad = [[b"junk"], [b"\x80"], [b"x" * 70_000], [b""]]
        for frames in bad:
            raw.send_multipart(frames)
        _heartbeat(pub)
        deadline = time.monotonic() + 5
        while inbox.received < before["received"] + len(bad) + 1 and time.monotonic() < deadline:
            inbox.drain(timeout_ms=100)
        stats = inbox.stats()
        assert stats["dropped"] - before["dropped"] == len(bad)
        assert stats["dropped_oversized"] == 1
        assert stats["accepted"] == before["accepted"] + 1
    finally:
        t.close()


def test_latest_observation_keeps_only_the_newest():
    t = Transport()
    intake = LatestObservation(t, "inproc://observations", bind=True)
    try:
        raw = t.ctx.socket(zmq.PUB)
        raw.connect("inproc://observations")
        secret = "s1-secret-0123456"
        pub = Publisher(raw, protocol.session_of(secret), secret)
        state = {"observation.state": np.zeros(8, dtype=np.float32)}
        obs = lambda tick: pub.send(
            protocol.OBSERVATION, {"episode": 0, "step": tick, "tick": tick, "task": ""}, state
        )  # noqa: E731
        deadline = time.monotonic() + 5
        while not intake.wait_each(0.05) and time.monotonic() < deadline:
            obs(0)
        for tick in range(1, 51):
            obs(tick)
        time.sleep(0.5)  # System 2 is "busy thinking" meanwhile
        assert intake.pending()  # what System 2's heartbeat counts as System 1 being alive
        ((msg, superseded),) = intake.wait_each(1.0)  # one sender: one observation
        assert not intake.pending()
        assert msg.fields["tick"] == 50 and superseded >= 49
        assert intake.wait_each(0.1) == []  # handed out once only
        assert intake.stats()["superseded"] >= 49
    finally:
        intake.close()
        t.close()


def test_system2s_intake_needs_each_sessions_secret_and_no_churn_reopens_a_replay():
    """One sender on a real socket: a message without its session's secret, or with another's, is
    dropped and counted; more sessions than the sequence gate remembers are refused, not swapped
    for the old ones, so the victim's old observation replayed afterwards is still dropped."""
    t = Transport()
    intake = LatestObservation(t, "inproc://observations", bind=True)
    try:
        raw = t.ctx.socket(zmq.PUB)
        raw.sndhwm = 0
        raw.connect("inproc://observations")
        state = {"observation.state": np.zeros(8, dtype=np.float32)}

        def observation(secret: str | None, seq: int, session: str | None = None, tick: int = 0) -> list:
            fields = {"episode": 0, "step": tick, "tick": tick, "task": ""}
            fields |= {} if secret is None else {protocol.SECRET_KEY: secret}
            frames = protocol.encode(
                protocol.OBSERVATION, protocol.session_of(secret or "x" * 16), seq, fields, state
            )
            if session is None:
                return frames
            # Another's session: built by hand, as our encoder refuses to send it.
            return [msgpack.packb({**msgpack.unpackb(frames[0]), "session": session}), *frames[1:]]

        victim = "victim-secret-0000"
        deadline = time.monotonic() + 5
        seq = 0
        while not intake.wait_each(0.05):  # PUB/SUB joins take a moment
            assert time.monotonic() < deadline
            seq += 1
            raw.send_multipart(observation(victim, seq))
        old = observation(victim, seq, tick=1)  # the victim's last accepted, kept for a replay
        before = intake.stats()
        churn = intake.inbox.gate._max + 20
        for i in range(churn):
            raw.send_multipart(observation(f"churn-secret-{i:05d}", 0))
        raw.send_multipart(observation(None, 2**62 - 1, session=protocol.session_of(victim)))
        raw.send_multipart(observation("attacker-secret-00", 2**62 - 1, session=protocol.session_of(victim)))
        raw.send_multipart(old)
        raw.send_multipart(observation(victim, seq + 1, tick=2))
        got = []
        while len(got) < 1 or intake.stats()["received"] < before["received"] + churn + 4:
            got += [m for m, _ in intake.wait_each(0.5)]
            assert time.monotonic() < deadline + 10
        stats = intake.stats()
        assert stats["dropped_unauthenticated"] == 1 and stats["dropped_impostor"] == 1
        assert stats["dropped_out_of_order"] == 1  # the replay, after the churn
        assert stats["dropped_sessions_full"] == churn - (intake.inbox.gate._max - 1)
        mine = [m for m in got if m.session == protocol.session_of(victim)]
        assert [m.fields["tick"] for m in mine] == [2]  # the victim goes on
    finally:
        intake.close()
        t.close()


def test_hume_keys_makes_private_folders_whatever_the_umask_and_nodes_refuse_unsafe_ones(tmp_path):
    exe = str(Path(sys.executable).with_name("hume"))
    keys = tmp_path / "k"
    # umask 0 in a shell that then becomes `hume keys` (no preexec_fn: unsafe with threads).
    r = subprocess.run(
        ["sh", "-c", 'umask 0 && exec "$0" "$@"', exe, "keys", "--output", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(keys) == mode(keys / "authorized") == 0o700
    assert mode(keys / "server.key_secret") == mode(keys / "client.key_secret") == 0o600
    assert mode(keys / "server.key") == mode(keys / "authorized" / "client.key") == 0o644
    assert unsafe_key_files(keys) == []
    t = Transport(str(keys))  # accepted as made
    t.close()
    (keys / "authorized").chmod(0o777)  # anyone could now add a key and connect
    serve = [exe, "serve", "system2", f"--transport.keys_dir={keys}", f"--output={tmp_path}"]
    r = subprocess.run(serve, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "refusing the CURVE keys" in r.stderr and "authorized" in r.stderr
    (keys / "authorized").chmod(0o700)
    (keys / "server.key_secret").chmod(0o640)
    with pytest.raises(EndpointError, match="server.key_secret"):
        Transport(str(keys))


def test_hume_keys_writes_both_pairs_and_never_overwrites(tmp_path):
    exe = str(Path(sys.executable).with_name("hume"))
    r = subprocess.run(
        [exe, "keys", "--output", str(tmp_path / "k")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    for name in (
        "server.key",
        "server.key_secret",
        "client.key",
        "client.key_secret",
        "authorized/client.key",
    ):
        assert (tmp_path / "k" / name).is_file(), name
    assert (tmp_path / "k" / "server.key_secret").stat().st_mode & 0o077 == 0
    again = subprocess.run(
        [exe, "keys", "--output", str(tmp_path / "k")], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "--force" in again.stderr


def test_a_message_over_zmq_maxmsgsize_is_cut_off_and_the_link_recovers(tmp_path):
    t = Transport()
    try:
        inbox = Inbox(t.socket(zmq.SUB, f"ipc://{tmp_path}/s", bind=True), t.max_message_bytes)
        raw = t.ctx.socket(zmq.PUB)
        raw.connect(f"ipc://{tmp_path}/s")
        pub = Publisher(raw, "peer")
        assert _receive_within(inbox, pub, 5)
        raw.send_multipart([b"x" * (t.max_message_bytes + 1)])  # libzmq drops the connection
        assert _receive_within(inbox, pub, 10), "the sender did not reconnect"
        assert inbox.stats()["dropped"] == 0  # never reached the application
    finally:
        t.close()
