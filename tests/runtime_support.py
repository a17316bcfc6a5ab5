"""Helpers for the runtime tests: a tiny checkpoint, node processes, and malformed-message strategies."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq
from hypothesis import strategies as st

from hume.runtime import protocol

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
HUME = str(Path(sys.executable).with_name("hume"))


def make_tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised tiny HumePolicy, saved as a checkpoint folder."""
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    HumePolicy.from_config(HumeConfig()).save_pretrained(path)
    return path


class Proc:
    """A `hume ...` process whose output goes to a log file we can wait on."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self._f = log.open("w")
        # tests/ on the path: a node may drive a robot adapter defined here (RecordingRobot).
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        self.p = subprocess.Popen([HUME, *args], stdout=self._f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text()[start:])
            if m:
                return m
            if self.p.poll() is not None:
                raise AssertionError(
                    f"process exited ({self.p.returncode}) before {pattern!r}:\n{self.text()[-3000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._f.close()
        return self.p.returncode


class Peer:
    """The test's own sockets, standing in for the other node."""

    def __init__(self, pub: str, sub: str, bind: bool):
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.sndhwm = 0  # never drop on our side: every message sent must reach the node
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        for sock, endpoint in ((self.pub, pub), (self.sub, sub)):
            sock.linger = 0
            sock.bind(endpoint) if bind else sock.connect(endpoint)

    def receive(self, want, timeout: float, send=None):
        """The first message for which want(header, frames) is true; `send()` is called meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if send is not None:
                send()
            if self.sub.poll(100):
                frames = self.sub.recv_multipart()
                head = msgpack.unpackb(frames[0], raw=False)
                if want(head, frames):
                    return head, frames
        raise AssertionError("no matching message in time")

    def heartbeat(self, role: str, timeout: float = 10, where=lambda stats: True) -> dict:
        head, _ = self.receive(
            lambda h, f: h["type"] == "heartbeat" and h["role"] == role and where(h["stats"]), timeout
        )
        return head

    def drain(self) -> None:
        """Discard what is queued: the next message received is a fresh one."""
        while self.sub.poll(0):
            self.sub.recv_multipart()

    def close(self):
        self.ctx.destroy(linger=0)


def settled(peer: Peer, role: str, timeout: float = 30) -> dict:
    """A node's counters once they stop moving: two heartbeats in a row with the same `received`
    (observations sent while it was thinking are counted when it next takes its queue)."""
    deadline = time.monotonic() + timeout
    last = peer.heartbeat(role)["stats"]
    while time.monotonic() < deadline:
        stats = peer.heartbeat(role)["stats"]
        if stats["received"] == last["received"]:
            return stats
        last = stats
    raise AssertionError(f"{role}'s counters did not settle within {timeout} s")


def node_args(ckpt: Path, run: Path, **over) -> list[str]:
    base = {
        "checkpoint": str(ckpt),
        "output": str(run),
        "transport.observations": f"ipc://{run}/obs",
        "transport.chunks": f"ipc://{run}/chunks",
        "transport.heartbeat_s": "0.2",
        "robot.kind": "kinematic",
        "robot.image_size": "64",
        "video": "false",
    }
    base.update({k.replace("__", "."): str(v) for k, v in over.items()})
    return [f"--{k}={v}" for k, v in base.items()]


def _replace(frames: list, **changes) -> list:
    head = msgpack.unpackb(bytes(frames[0]), raw=False)
    head.update(changes)
    return [msgpack.packb({k: v for k, v in head.items() if v is not ...}), *frames[1:]]


# Values that are wrong for every header key (each key wants a str, a non-negative int, a finite
# float in range, a list of array specs or a map): so a mutated message is always invalid.
_WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=-1),
    st.floats(max_value=-1e-6) | st.just(float("nan")),
    st.binary(max_size=8),
    st.lists(st.none(), min_size=1, max_size=2),
    st.dictionaries(st.integers(0, 3), st.none(), min_size=1, max_size=2),
)


def malformed(template: list, session: str, last_seq: int) -> st.SearchStrategy:
    """Messages a node must drop, built around a valid `template` message.

    `session`/`last_seq`: a valid message with this session and seq was already accepted, so a
    replay with a smaller seq is out of order.
    """
    keys = sorted(msgpack.unpackb(bytes(template[0]), raw=False))
    random_frames = st.lists(st.binary(max_size=200), min_size=1, max_size=4)
    wrong_value = st.builds(lambda k, v: _replace(template, **{k: v}), st.sampled_from(keys), _WRONG)
    missing_key = st.builds(lambda k: _replace(template, **{k: ...}), st.sampled_from(keys))
    extra_key = st.builds(
        lambda k: _replace(template, **{k: 1}),
        st.text(min_size=1, max_size=8).filter(lambda k: k not in keys),
    )
    # 2.0 equals 2 in Python (and True 1); on the wire they are not the version.
    v = protocol.PROTOCOL_VERSION
    not_one = st.integers(-5, 100).filter(lambda x: x != v) | st.sampled_from([True, float(v), str(v)])
    version = st.builds(lambda v: _replace(template, v=v), not_one)
    replay = st.builds(lambda s: _replace(template, session=session, seq=s), st.integers(0, last_seq))
    huge_dim = st.builds(
        lambda d: _replace(
            template, arrays=[[n, t, [d, *s[1:]] if s else [d]] for n, t, s in _specs(template)]
        ),
        st.integers(protocol.MAX_DIM + 1, 10**9),
    )
    truncated = st.builds(lambda n: [template[0], *(bytes(f)[:-n] for f in template[1:])], st.integers(1, 3))
    extra_frame = st.builds(lambda b: [*template, b], st.binary(max_size=16))
    return st.one_of(
        random_frames, wrong_value, missing_key, extra_key, version, replay, huge_dim, truncated, extra_frame
    )


def _specs(frames: list) -> list:
    return msgpack.unpackb(bytes(frames[0]), raw=False)["arrays"]


def secret_of(name: str) -> str:
    """A test client's secret; its session is `session_of(name)`."""
    return f"test-client-{name}".ljust(protocol.SECRET_CHARS[0], "0")


def session_of(name: str) -> str:
    return protocol.session_of(secret_of(name))


def observation_frames(name: str, seq: int, tick: int = 0, episode: int = 0, state=None) -> list[bytes]:
    """An observation of the test client `name` (its session and secret: session_of, secret_of)."""
    arrays = {
        "observation.images.agentview": np.zeros((64, 64, 3), np.uint8),
        "observation.images.wrist": np.zeros((64, 64, 3), np.uint8),
        "observation.state": np.zeros(8, np.float32) if state is None else np.asarray(state, np.float32),
    }
    fields = {"episode": episode, "step": tick, "tick": tick, "task": "pick up the black bowl"}
    fields[protocol.SECRET_KEY] = secret_of(name)
    return [bytes(f) for f in protocol.encode(protocol.OBSERVATION, session_of(name), seq, fields, arrays)]


def chunk_frames(
    session: str, seq: int, model_id: str, tick: int, episode: int = 0, actions: np.ndarray | None = None
) -> list[bytes]:
    fields = {
        "model_id": model_id,
        "episode": episode,
        "step": tick,
        "tick": tick,
        "chosen": 0,
        "noise_level": 0.1,
        "think_ms": 1.0,
    }
    actions = np.zeros((16, 7), np.float32) if actions is None else actions
    arrays = {"actions": actions, "values": np.zeros(5, np.float32)}
    return [bytes(f) for f in protocol.encode(protocol.CHUNK, session, seq, fields, arrays)]


class RecordingRobot:
    """The kinematic robot, appending every action it is sent to `record` (float32 rows): what
    reached the robot adapter, for tests to check against the envelope. Used as
    `robot.kind: runtime_support:RecordingRobot` with `robot.options.record`."""

    def __init__(self, record: str, max_steps: int = 100000, **options):
        from deploy.robots.kinematic import KinematicRobot

        self._robot = KinematicRobot(image_size=64, max_steps=max_steps, **options)
        self._record = open(record, "ab", buffering=0)  # noqa: SIM115 (closed in close())

    def action_envelope(self) -> dict:
        return self._robot.action_envelope()

    def __getattr__(self, name):
        return getattr(self._robot, name)

    @property
    def done(self) -> bool:
        return self._robot.done

    @property
    def success(self) -> bool:
        return self._robot.success

    def reset(self, episode: int) -> None:
        self._robot.reset(episode)

    def observe(self) -> dict:
        return self._robot.observe()

    def act(self, action: np.ndarray) -> None:
        self._record.write(np.asarray(action, np.float32).reshape(-1).tobytes())
        self._robot.act(action)

    def close(self) -> None:
        self._record.close()
        self._robot.close()


def recorded_actions(path: Path, action_dim: int = 7) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), np.float32).reshape(-1, action_dim)


def banner_marks(video: Path) -> list[str]:
    """Per frame of a System-1 node's episodes.mp4, the mark its banner's colour shows ("" plain)."""
    from hume.data.episode_frame import BANNER, MARKS, PLAIN
    from hume.data.video import read_video

    colours = {"": PLAIN[1], **{mark: colour for mark, (_, colour) in MARKS.items()}}
    names, table = list(colours), np.array(list(colours.values()), np.float32)
    # The banner's right end, clear of its text; the nearest colour survives lossy encoding.
    corners = np.array([frame[4 : BANNER - 4, -12:-4].mean(axis=(0, 1)) for frame in read_video(video)])
    return [names[i] for i in np.linalg.norm(corners[:, None] - table, axis=-1).argmin(axis=1)]


def tick_mark(row: dict) -> str:
    """The mark a ticks.csv row's frame should show."""
    for mark in ("hold", "chunk_switch", "refined"):
        if int(float(row[mark])):
            return mark
    return ""


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def start_fleet_client(folder: Path, name: str, seed: int, log: Path) -> subprocess.Popen:
    """fleet_client.py as client `name` (its secret: secret_of) of the System-2 node serving on
    `folder`'s ipc endpoints, its images drawn from `seed`, its chunks logged to `log`."""
    endpoints = [f"ipc://{folder}/obs", f"ipc://{folder}/chunks"]
    args = [*endpoints, secret_of(name), str(seed), str(log)]
    return subprocess.Popen([sys.executable, str(TESTS / "fleet_client.py"), *args])
