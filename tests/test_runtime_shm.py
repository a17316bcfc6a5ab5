"""Observations through shared memory: the ring, its seqlock, what a reader refuses, and the
System-1 node's fallback to frames when System 2 cannot open the ring."""

import os
import signal
import time

import msgpack
import numpy as np
import pytest
import zmq
from runtime_support import Proc, make_tiny_checkpoint, node_args

from hume.runtime import protocol, shm
from hume.runtime.protocol import MessageError
from hume.runtime.shm import ShmReader, ShmWriter
from hume.runtime.transport import Inbox, Publisher, Transport

pytestmark = pytest.mark.skipif(not shm.available(), reason="no /dev/shm on this host")

FIELDS = {"episode": 0, "step": 0, "tick": 0, "task": "pick up the bowl"}


def observation(value: int = 7, size: int = 32) -> dict[str, np.ndarray]:
    return {
        "observation.images.agentview": np.full((size, size, 3), value, np.uint8),
        "observation.images.wrist": np.arange(size * size * 3, dtype=np.uint8).reshape(size, size, 3),
        "observation.state": np.linspace(-1, 1, 8).astype(np.float32),
    }


def specs(arrays: dict) -> list:
    return [(name, a.dtype, a.shape) for name, a in arrays.items()]


@pytest.fixture
def ring():
    writer = ShmWriter(slots=4)
    yield writer
    writer.close()


def test_round_trip_copies_out_and_the_ring_is_private(ring):
    arrays = observation()
    ref = ring.put(arrays)
    path = shm.SHM_DIR / ref[0]
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
    reader = ShmReader()
    got = reader.read(ref, specs(arrays))
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and np.array_equal(got[name], a)
    ring.put(observation(value=99))  # the next slot; what was read is a copy and stays as it was
    assert (got["observation.images.agentview"] == 7).all()
    reader.close()
    ring.close()
    assert not path.exists()


def test_a_slot_written_again_is_refused_not_read_torn(ring):
    arrays = observation()
    first = ring.put(arrays)
    for _ in range(ring.slots):  # the writer comes round to slot 0 again
        ring.put(observation(value=1))
    with pytest.raises(MessageError) as e:
        ShmReader().read(first, specs(arrays))
    assert e.value.reason == "shm_overwritten"


def test_a_larger_observation_gets_a_new_ring_and_the_old_one_is_removed(ring):
    small = ring.put(observation(size=16))
    large = ring.put(observation(size=64))
    assert large[0] != small[0] and not (shm.SHM_DIR / small[0]).exists()
    got = ShmReader().read(large, specs(observation(size=64)))
    assert got["observation.images.wrist"].shape == (64, 64, 3)


def test_reader_refuses_what_is_not_a_ring_of_ours(ring, tmp_path):
    arrays = observation()
    ref = ring.put(arrays)
    reader = ShmReader()
    with pytest.raises(MessageError) as e:
        reader.read([f"hume-{os.getpid()}-00000000-9", 0, 2], specs(arrays))
    assert e.value.reason == "shm_unavailable"
    fake = shm.SHM_DIR / f"hume-{os.getpid()}-0badf00d-1"
    fake.write_bytes(b"not a ring" * 100)
    try:
        with pytest.raises(MessageError) as e:
            reader.read([fake.name, 0, 2], specs(arrays))
        assert e.value.reason == "shm_unavailable"
    finally:
        fake.unlink()
    with pytest.raises(MessageError) as e:
        reader.read([ref[0], ring.slots, ref[2]], specs(arrays))
    assert e.value.reason == "malformed"
    with pytest.raises(MessageError) as e:  # a layout larger than the slot
        reader.read(ref, specs(observation(size=64)))
    assert e.value.reason == "malformed"


def test_reader_opens_only_private_regular_files_of_this_user(ring, tmp_path):
    arrays = observation()
    ref = ring.put(arrays)
    reader = ShmReader()
    base = f"hume-{os.getpid()}-0badf00d-"
    fifo, link, shared = (shm.SHM_DIR / f"{base}{n}" for n in (1, 2, 3))
    os.mkfifo(fifo, 0o600)  # opening a FIFO for reading would block forever
    link.symlink_to(shm.SHM_DIR / ref[0])
    shared.write_bytes((shm.SHM_DIR / ref[0]).read_bytes())
    shared.chmod(0o644)  # readable by others: somebody else could have written it
    try:
        for path in (fifo, link, shared):
            t0 = time.monotonic()
            with pytest.raises(MessageError) as e:
                reader.read([path.name, 0, ref[2]], specs(arrays))
            assert e.value.reason == "shm_unavailable" and time.monotonic() - t0 < 5
    finally:
        for path in (fifo, link, shared):
            path.unlink()


def test_a_full_dev_shm_fails_cleanly_and_the_publisher_falls_back_to_frames(monkeypatch, tmp_path):
    import errno

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    writer = ShmWriter()
    before = set(shm.SHM_DIR.glob(f"hume-{os.getpid()}-*"))
    with pytest.raises(OSError):
        writer.put(observation())
    assert set(shm.SHM_DIR.glob(f"hume-{os.getpid()}-*")) == before  # nothing left behind
    t = Transport()
    try:
        endpoint = f"ipc://{tmp_path}/obs"
        inbox = Inbox(t.socket(zmq.SUB, endpoint, bind=True), t.max_message_bytes, ShmReader())
        pub = Publisher(t.socket(zmq.PUB, endpoint, bind=False), "s1", ShmWriter())
        deadline, got = time.monotonic() + 10, []
        while time.monotonic() < deadline and not got:
            pub.send(protocol.OBSERVATION, FIELDS, observation())  # the ring fails: frames instead
            got = inbox.drain(timeout_ms=50)
        assert pub.ring is None and got and got[0].arrays["observation.images.agentview"].shape == (32, 32, 3)
    finally:
        t.close()


def test_arrays_in_shared_memory_count_towards_the_size_limit(ring):
    arrays = observation(size=64)
    frames = protocol.encode(protocol.OBSERVATION, "s1", 0, FIELDS, arrays, shm=ring.put(arrays))
    assert protocol.decode(frames).shm is not None
    with pytest.raises(MessageError) as e:
        protocol.decode(frames, max_message_bytes=64 * 64 * 3)  # the header alone is far smaller
    assert e.value.reason == "oversized"


def test_headers_naming_other_files_or_carrying_frames_are_malformed(ring):
    arrays = observation()
    ref = ring.put(arrays)
    good = protocol.encode(protocol.OBSERVATION, "s1", 0, FIELDS, arrays, shm=ref)
    assert len(good) == 1  # the header only
    msg = protocol.decode(good)
    assert msg.shm == tuple(ref) and msg.arrays == {} and [s[0] for s in msg.specs] == list(arrays)
    head = msgpack.unpackb(good[0], raw=False)
    bad_refs = (
        ["../../etc/passwd", 0, 2],
        ["hume-1-abc", 0, 2],
        [ref[0] + "\n", 0, 2],
        [ref[0], -1, 2],
        [ref[0], 0],
    )
    for bad_ref in bad_refs:
        frames = [msgpack.packb({**head, "shm": bad_ref})]
        with pytest.raises(MessageError, match="shm"):
            protocol.decode(frames)
    with pytest.raises(MessageError, match="no array frames"):
        protocol.decode([good[0], b"\0" * 8])
    chunk = {"model_id": "m", "episode": 0, "step": 0, "tick": 0, "chosen": 0, "noise_level": 0.0}
    chunk_head = {**head, **chunk, "type": "chunk", "think_ms": 1.0, "arrays": [["actions", "<f4", [2, 7]]]}
    del chunk_head["task"]
    with pytest.raises(MessageError):
        protocol.decode([msgpack.packb(chunk_head)])


def test_over_a_socket_with_and_without_a_reader(tmp_path, ring):
    t = Transport()
    endpoint = f"ipc://{tmp_path}/obs"
    readers = {
        "reader": Inbox(t.socket(zmq.SUB, endpoint, bind=True), t.max_message_bytes, ShmReader()),
    }
    other = f"ipc://{tmp_path}/obs2"
    readers["none"] = Inbox(t.socket(zmq.SUB, other, bind=True), t.max_message_bytes)
    try:
        arrays = observation()
        results = {}
        for name, endpoint_ in ((name, e) for name, e in (("reader", endpoint), ("none", other))):
            pub = Publisher(t.socket(zmq.PUB, endpoint_, bind=False), "s1", ring)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and readers[name].received == 0:
                pub.send(protocol.OBSERVATION, FIELDS, arrays)
                results[name] = readers[name].drain(timeout_ms=50)
        (msg,) = results["reader"][:1]
        assert msg.shm is not None and msg.arrays == {}  # handed out unread: the caller reads it
        msg = readers["reader"].read_shared(msg)
        assert np.array_equal(msg.arrays["observation.images.wrist"], arrays["observation.images.wrist"])
        assert msg.shm is None
        assert results["none"] == [] and readers["none"].dropped["shm_unavailable"] >= 1
    finally:
        t.close()


def test_remove_segments_of_a_dead_writer(ring):
    ref = ring.put(observation())
    assert shm.remove_segments(os.getpid()) == 1
    assert not (shm.SHM_DIR / ref[0]).exists()


@pytest.mark.slow
def test_system1_falls_back_to_frames_when_system2_cannot_open_the_ring(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)  # we play System 2
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    pub.bind(f"ipc://{tmp_path}/chunks")
    sub.bind(f"ipc://{tmp_path}/obs")
    s1 = Proc(["serve", "system1", *node_args(ckpt, tmp_path)], tmp_path / "s1.log")

    def next_observation(timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sub.poll(100):
                frames = sub.recv_multipart()
                head = msgpack.unpackb(frames[0], raw=False)
                if head["type"] == "observation":
                    return head, frames
        raise AssertionError("no observation from System 1")

    try:
        head, frames = next_observation()
        assert "shm" in head and len(frames) == 1  # same host: arrays in shared memory
        deadline, failed = time.monotonic() + 30, 0
        while time.monotonic() < deadline:
            failed += 1  # every heartbeat reports one more failed read
            stats = {"received": failed, "accepted": 0, "dropped": failed, "dropped_shm_unavailable": failed}
            hb = {"role": "system2", "state": "ready", "model_id": "x", "stats": stats}
            pub.send_multipart(protocol.encode(protocol.HEARTBEAT, "s2", failed, hb))
            head, frames = next_observation()
            if "shm" not in head:
                break
        assert "shm" not in head and len(frames) == 1 + len(head["arrays"])
        assert "frames" in s1.text()
    finally:
        ctx.destroy(linger=0)
        s1.stop(signal.SIGTERM)
    assert not list(shm.SHM_DIR.glob(f"hume-{s1.p.pid}-*"))  # its ring is gone with it


def test_a_writer_never_closed_is_removed_at_exit():
    import subprocess
    import sys

    code = (
        "import numpy as np; from hume.runtime.shm import ShmWriter; "
        "print(ShmWriter().put({'observation.state': np.zeros(8, np.float32)})[0])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.startswith("hume-") and not (shm.SHM_DIR / r.stdout.strip()).exists()
