"""Round trip of one observation and one chunk through three transports, in one run, same payload.

  ours    the System-1 side of our protocol (hume/runtime/protocol.py + transport.py: Publisher,
          Inbox) against the real System-2 node (System2Node: latest-observation intake,
          chunk publisher), ZeroMQ PUB/SUB with the arrays in frames
  openpi  the real `openpi-client` (WebsocketClientPolicy.infer) against our openpi websocket
          server (`hume serve openpi`, OpenpiServer)
  floor   bare pyzmq on the same PUB/SUB sockets sending the same bytes our protocol puts on the
          wire, prebuilt once: no encoding, no checks, no node

Payload: `cameras` RGB uint8 images (default two 224², `image_width` for non-square ones, e.g.
480×640), a float32 [8] state and an instruction; the answer is a float32 [16, 7] chunk with 5
candidate values. Every server runs in its own process and does no model work
(hume/bench/echo.py answers at once), so only messaging is timed. Round trips are interleaved
(ours, openpi, floor, ours, ...) so that load from elsewhere hits all alike.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from hume.config import ConfigError
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY

log = logging.getLogger(__name__)

TASK = "put the black bowl on the plate"


@dataclass(frozen=True)
class Config:
    # Timed round trips per transport (after `warmup` untimed ones).
    round_trips: int = 1000
    warmup: int = 50
    # Image height (RGB uint8); width too unless image_width is set.
    image_size: int = 224
    image_width: int = 0
    # Cameras in each observation: agentview, wrist, then camera2, camera3, ...
    cameras: int = 2
    # ZeroMQ endpoints for ours and the floor: tcp (127.0.0.1, as openpi's websocket) or ipc.
    endpoint: str = "tcp"
    # Seconds a single round trip may take before the run fails.
    timeout_s: float = 10.0
    # A few-second run (50 round trips) to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if self.round_trips < 1 or self.warmup < 0 or self.image_size < 1 or self.cameras < 1:
            raise ConfigError("round_trips, image_size and cameras must be >= 1, warmup >= 0")
        if self.image_width < 0:
            raise ConfigError(f"image_width must be >= 0 (0: square images), got {self.image_width}")
        if self.endpoint not in ("tcp", "ipc"):
            raise ConfigError(f"endpoint must be tcp or ipc, got {self.endpoint!r}")

    def effective(self) -> Config:
        return dataclasses.replace(self, round_trips=50, warmup=5) if self.smoke else self


def camera_names(cameras: int) -> list[str]:
    return ["agentview", "wrist", *(f"camera{i}" for i in range(2, cameras))][:cameras]


def payload(image_size: int, cameras: int = 2, image_width: int = 0) -> dict:
    """The observation every transport carries, in our keys (docs/architecture.md)."""
    rng = np.random.default_rng(0)
    shape = (image_size, image_width or image_size, 3)
    obs = {IMAGE_KEY.format(c): rng.integers(0, 256, shape, np.uint8) for c in camera_names(cameras)}
    return {**obs, STATE_KEY: rng.standard_normal(8).astype(np.float32), TASK_KEY: TASK}


def _free_tcp_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _endpoints(kind: str, folder: str, name: str) -> tuple[str, str]:
    if kind == "ipc":
        return f"ipc://{folder}/{name}-obs", f"ipc://{folder}/{name}-chunks"
    return _free_tcp_endpoint(), _free_tcp_endpoint()


def _until_answered(send: Callable[[], None], answered: Callable[[float], bool], what: str) -> None:
    """PUB/SUB drops messages sent before the subscription is up: send until the first answer."""
    from hume.bench import echo  # imports torch: not at the command's start (a bad flag fails fast)

    deadline = time.monotonic() + echo.STARTUP_S
    while time.monotonic() < deadline:
        send()
        if answered(0.2):
            return
    raise RuntimeError(f"{what}: no answer within {echo.STARTUP_S:.0f} s")


class OursClient:
    """The System-1 side of our protocol: Publisher + Inbox, as System1Node uses them."""

    def __init__(self, obs_endpoint: str, chunk_endpoint: str, obs: dict, timeout_s: float):
        import zmq

        from hume.runtime import protocol
        from hume.runtime.transport import OBSERVATION_QUEUE, Inbox, Publisher, Transport

        self.protocol = protocol
        self.transport = Transport()
        self.out = Publisher(
            self.transport.socket(zmq.PUB, obs_endpoint, bind=False, hwm=OBSERVATION_QUEUE),
            self.transport.session,
            self.transport.secret,
        )
        self.inbox = Inbox(
            self.transport.socket(zmq.SUB, chunk_endpoint, bind=False), self.transport.max_message_bytes
        )
        self.arrays = {k: v for k, v in obs.items() if k != TASK_KEY}
        self.task = obs[TASK_KEY]
        self.timeout_ms = timeout_s * 1e3
        self.tick = 0
        _until_answered(self._send, lambda s: self._answer(s * 1e3) is not None, "the System-2 node")

    def _send(self) -> None:
        self.tick += 1
        fields = {"episode": 0, "step": self.tick, "tick": self.tick, TASK_KEY: self.task}
        self.out.send(self.protocol.OBSERVATION, fields, self.arrays)

    def _answer(self, timeout_ms: float):
        deadline = time.monotonic() + timeout_ms / 1e3
        while True:
            for msg in self.inbox.drain(max(0.0, (deadline - time.monotonic()) * 1e3)):
                if msg.type == self.protocol.CHUNK and msg.fields["tick"] == self.tick:
                    return msg
            if time.monotonic() >= deadline:
                return None

    def round_trip(self) -> None:
        self._send()
        if self._answer(self.timeout_ms) is None:
            raise RuntimeError(f"ours: no chunk for tick {self.tick} within {self.timeout_ms:.0f} ms")

    def close(self) -> None:
        self.transport.close()


class OpenpiClient:
    """The unmodified openpi-client against `hume serve openpi`."""

    def __init__(self, port: int, obs: dict):
        from openpi_client.websocket_client_policy import WebsocketClientPolicy

        from hume.runtime.openpi_server import OPENPI_KEYS

        self.policy = WebsocketClientPolicy("127.0.0.1", port)
        # openpi's LIBERO keys where they exist; the server takes ours for further cameras.
        renamed = {ours: theirs for theirs, ours in OPENPI_KEYS.items()}
        self.obs = {renamed.get(k, k): v for k, v in obs.items()}

    def round_trip(self) -> None:
        reply = self.policy.infer(self.obs)
        if "chunk" not in reply:
            raise RuntimeError(f"openpi: unexpected reply {sorted(reply)}")

    def close(self) -> None:
        self.policy._ws.close()


class FloorClient:
    """Bare pyzmq: the prebuilt bytes of our observation message out, one multipart message back."""

    def __init__(self, obs_endpoint: str, chunk_endpoint: str, frames: list[bytes], timeout_s: float):
        import zmq

        self.ctx = zmq.Context()
        self.pub, self.sub = self.ctx.socket(zmq.PUB), self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.pub.connect(obs_endpoint)
        self.sub.connect(chunk_endpoint)
        self.frames, self.timeout_ms = frames, int(timeout_s * 1e3)
        _until_answered(self._send, lambda s: self._answer(int(s * 1e3)), "the bare pyzmq server")

    def _send(self) -> None:
        self.pub.send_multipart(self.frames, copy=False)

    def _answer(self, timeout_ms: int) -> bool:
        if not self.sub.poll(timeout_ms):
            return False
        self.sub.recv_multipart(copy=False)
        return True

    def round_trip(self) -> None:
        self._send()
        if not self._answer(self.timeout_ms):
            raise RuntimeError(f"floor: no answer within {self.timeout_ms} ms")

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def _wire_bytes(obs: dict) -> tuple[list[bytes], list[bytes]]:
    """Our observation and chunk messages as bytes, exactly as the protocol frames them."""
    from hume.bench import echo
    from hume.runtime import protocol
    from hume.runtime.chunk_wire import chunk_to_wire

    arrays = {k: v for k, v in obs.items() if k != TASK_KEY}
    secret = "floor-secret-0000"
    fields = {"episode": 0, "step": 1, "tick": 1, TASK_KEY: obs[TASK_KEY], protocol.SECRET_KEY: secret}
    obs_frames = protocol.encode(protocol.OBSERVATION, protocol.session_of(secret), 1, fields, arrays)
    chunk_fields, chunk_arrays = chunk_to_wire(echo.EchoPolicy().chunk)
    chunk_fields.update(model_id="echo", episode=0, step=1, tick=1, think_ms=0.0)
    chunk_frames = protocol.encode(protocol.CHUNK, "floor", 1, chunk_fields, chunk_arrays)
    return [bytes(f) for f in obs_frames], [bytes(f) for f in chunk_frames]


def _summary(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "mean_ms": round(float(a.mean()), 4),
    }


def run(cfg: Config) -> dict:
    from hume.bench import echo

    cfg = cfg.effective()
    obs = payload(cfg.image_size, cfg.cameras, cfg.image_width)
    obs_frames, chunk_frames = _wire_bytes(obs)
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="hume-transport-") as tmp, ExitStack() as stack:
        ours_eps = _endpoints(cfg.endpoint, tmp, "ours")
        floor_eps = _endpoints(cfg.endpoint, tmp, "floor")
        port = ctx.Value("i", 0)
        echo.start(stack, ctx, echo.serve_system2, *ours_eps, echo.CHUNK_SIZE)
        echo.start(stack, ctx, echo.serve_openpi, port)
        echo.start(stack, ctx, echo.serve_bare_zmq, *floor_eps, chunk_frames)
        clients: dict[str, OursClient | OpenpiClient | FloorClient] = {
            "ours": OursClient(*ours_eps, obs, cfg.timeout_s),
            "openpi": OpenpiClient(port.value, obs),
            "floor": FloorClient(*floor_eps, obs_frames, cfg.timeout_s),
        }
        for client in clients.values():
            stack.callback(client.close)
        times: dict[str, list[float]] = {name: [] for name in clients}
        for i in range(cfg.warmup + cfg.round_trips):
            for name, client in clients.items():
                t0 = time.perf_counter()
                client.round_trip()
                if i >= cfg.warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    stats = {name: _summary(ms) for name, ms in times.items()}
    p50 = {name: s["p50_ms"] for name, s in stats.items()}
    return {
        "benchmark": "transport",
        "endpoint": cfg.endpoint,
        "round_trips": cfg.round_trips,
        "cameras": cfg.cameras,
        "image_shape": list(obs[IMAGE_KEY.format("agentview")].shape),
        "observation_bytes": sum(len(f) for f in obs_frames),
        "chunk_bytes": sum(len(f) for f in chunk_frames),
        **stats,
        "speedup_vs_openpi": round(p50["openpi"] / p50["ours"], 2),
        "ratio_to_floor": round(p50["ours"] / p50["floor"], 2),
    }


def table(result: dict) -> str:
    names = ("ours", "openpi", "floor")
    rows = [f"{'transport':<12} {'p50 ms':>9} {'p99 ms':>9}"]
    rows += [f"{n:<12} {result[n]['p50_ms']:>9.3f} {result[n]['p99_ms']:>9.3f}" for n in names]
    rows.append(
        f"ours is {result['speedup_vs_openpi']:.2f}x faster than openpi at p50 and "
        f"{result['ratio_to_floor']:.2f}x the bare-pyzmq floor"
    )
    return "\n".join(rows)
