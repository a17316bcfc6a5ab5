"""`hume serve openpi`: a Hume policy behind the openpi websocket protocol.

The unmodified `openpi-client` (`WebsocketClientPolicy`) drives it. The protocol, as that client
speaks it: after the websocket handshake the server sends one msgpack message of metadata; then
each client message is an observation (msgpack map) and the server answers with a msgpack map
holding "actions". numpy arrays travel as maps {"__ndarray__": true, "data": bytes, "dtype": str,
"shape": [..]} (msgpack bin keys); scalars as {"__npgeneric__": true, "data", "dtype"}. An error
is answered with a text message, after which the server closes the connection (code 1011).

Each observation runs System 2 (`think`) and then System 1 (`refine`, offset 0); the reply holds
the refined actions, the System-2 chunk, the candidate values and the chosen index.

Safety: the actions leave through the robot's action envelope (envelope.py, `robot.envelope` or the
limits `robot.kind` declares), the same as System 1's: finite, within bounds, rate-limited from
one action of the answer to the next, within the workspace predicted from the observation's
state; each connection has its own. An observation with a non-finite number gets an error reply,
not actions.
"""

from __future__ import annotations

import hmac
import http
import logging
import math
import signal
import threading
import time

import msgpack
import numpy as np

from hume.config import ConfigError, check_checkpoint
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
from hume.runtime.chunk_wire import chunk_to_wire
from hume.runtime.config import DeployConfig
from hume.runtime.envelope import Envelope, Limits
from hume.runtime.protocol import MAX_MESSAGE_BYTES
from hume.runtime.transport import is_loopback

log = logging.getLogger(__name__)

# openpi's LIBERO example names -> ours (docs/architecture.md); our own names pass through.
OPENPI_KEYS = {
    "observation/image": IMAGE_KEY.format("agentview"),
    "observation/wrist_image": IMAGE_KEY.format("wrist"),
    "observation/state": STATE_KEY,
    "prompt": TASK_KEY,
}


class BadRequest(ValueError):
    """An observation the server cannot use; the message goes back to the client."""


def _pack_numpy(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"cannot send dtype {obj.dtype}")
        a = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": a.tobytes(), b"dtype": a.dtype.str, b"shape": list(a.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__}")


def _unpack_numpy(obj: dict):
    """msgpack object hook: rebuild arrays from (dtype, shape, bytes), numeric dtypes only."""
    if b"__ndarray__" in obj:
        dtype = np.dtype(str(obj[b"dtype"]))
        shape = tuple(obj[b"shape"])
        if (
            dtype.kind not in "biuf"
            or len(shape) > 6
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise BadRequest(f"unsupported array: dtype {dtype}, shape {shape}")
        data = obj[b"data"]
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise BadRequest(
                f"array data of {len(data)} bytes does not match shape {shape} and dtype {dtype}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        dtype = np.dtype(str(obj[b"dtype"]))
        if dtype.kind not in "biuf":
            raise BadRequest(f"unsupported scalar dtype {dtype}")
        return dtype.type(obj[b"data"])
    return obj


def pack(obj) -> bytes:
    return msgpack.packb(obj, default=_pack_numpy, use_bin_type=True)


def unpack(data: bytes):
    try:
        return msgpack.unpackb(data, object_hook=_unpack_numpy, raw=False, strict_map_key=False)
    except BadRequest:
        raise
    except Exception as e:
        raise BadRequest(f"not a msgpack observation ({type(e).__name__}: {e})") from None


def to_observation(msg) -> dict:
    if not isinstance(msg, dict):
        raise BadRequest("an observation is a map of names to arrays (and 'prompt' / 'task')")
    obs = {}
    for key, value in msg.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        obs[OPENPI_KEYS.get(key, key)] = value
    task = obs.get(TASK_KEY, "")
    obs[TASK_KEY] = task.decode() if isinstance(task, bytes) else str(task)
    state = obs.get(STATE_KEY)
    if not isinstance(state, np.ndarray) or state.ndim != 1:
        raise BadRequest(f"missing 'observation/state' (or {STATE_KEY!r}): float [8]")
    obs[STATE_KEY] = state.astype(np.float32)
    for key, value in obs.items():
        if isinstance(value, np.ndarray | np.generic) and not np.isfinite(value).all():
            raise BadRequest(f"{key} holds non-finite values: no actions for it")
    return obs


class OpenpiServer:
    def __init__(
        self,
        policy,
        model_id: str,
        host: str,
        port: int,
        limits: Limits,
        api_key: str = "",
        on_violation: str = "clamp",
        control_hz: float = 0.0,
    ):
        """`limits`: the robot's action envelope; `control_hz`: the rate a client executes the
        actions at (for the workspace's speed limit)."""
        from websockets.sync.server import serve

        action_dim = getattr(getattr(policy, "config", None), "action_dim", limits.action_dim)
        if action_dim != limits.action_dim:
            raise ConfigError(
                f"the policy acts in {action_dim} dims, the robot's envelope has {limits.action_dim} "
                "(robot.envelope, or the limits robot.kind declares)"
            )
        self.policy, self.model_id, self.api_key = policy, model_id, api_key
        self.limits, self.on_violation, self.control_hz = limits, on_violation, control_hz
        self._lock = threading.Lock()  # one policy, many connections: one inference at a time
        self.server = serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            process_request=self._process_request,
        )
        self.port = self.server.socket.getsockname()[1]

    def _process_request(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        # Compared in constant time: how long a refusal takes says nothing about the key.
        given = request.headers.get("Authorization", "").encode()
        if self.api_key and not hmac.compare_digest(given, f"Api-Key {self.api_key}".encode()):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong api key\n")
        return None

    def envelope(self) -> Envelope:
        """One per connection: each client is a robot of its own."""
        return Envelope(self.limits, self.on_violation, self.control_hz)

    def infer(self, obs: dict, envelope: Envelope) -> dict:
        with self._lock:
            t0 = time.monotonic()
            chunk = self.policy.think(obs)
            t1 = time.monotonic()
            refined = self.policy.refine(obs, chunk, 0)
            t2 = time.monotonic()
        actions, bits = envelope.apply_chunk(refined, obs[STATE_KEY])
        fields, arrays = chunk_to_wire(chunk)
        return {
            "actions": actions,
            # What the envelope did to them (envelope.py's bits, OR-ed over the answer: 1 clamped,
            # 2 rate-limited, 4 held, 8 non-finite, 16 workspace).
            "envelope": bits,
            "chunk": arrays["actions"],
            "values": arrays["values"],
            "chosen": fields["chosen"],
            "server_timing": {
                "infer_ms": (t2 - t0) * 1e3,
                "think_ms": (t1 - t0) * 1e3,
                "refine_ms": (t2 - t1) * 1e3,
            },
        }

    def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self.policy.reset()
        envelope = self.envelope()
        ws.send(
            pack(
                {
                    "model_id": self.model_id,
                    "server": "hume",
                    "action_dim": self.limits.action_dim,
                    "envelope": self.limits.to_dict(),
                    "keys": list(OPENPI_KEYS),
                }
            )
        )
        try:
            while True:
                data = ws.recv()
                try:
                    if not isinstance(data, bytes):
                        raise BadRequest("observations are binary msgpack messages")
                    reply = self.infer(to_observation(unpack(data)), envelope)
                except Exception as e:  # the client gets the error; the server stays up
                    log.warning("request failed: %s", e)
                    ws.send(f"{type(e).__name__}: {e}")
                    ws.close(code=1011, reason="request failed")
                    return
                ws.send(pack(reply))
        except ConnectionClosed:
            return
        finally:
            envelope.flush_log()

    def run_until(self, stop: threading.Event) -> None:
        """Serve (in a thread) until `stop` is set, then close every connection and return."""
        thread = threading.Thread(target=self.server.serve_forever, name="openpi-server")
        thread.start()
        stop.wait()
        self.server.shutdown()
        thread.join()


def serve(cfg: DeployConfig, limits: Limits) -> int:
    """Serve until SIGTERM/SIGINT; `limits`: the robot's action envelope (the CLI resolves it)."""
    from hume.runtime.policy_loader import load_policy, model_id

    o = cfg.openpi
    if not is_loopback(f"tcp://{o.host}:{o.port}") and not o.api_key:
        raise ConfigError(
            f"refusing to listen on {o.host}: not loopback and no --openpi.api_key set "
            "(the openpi protocol has no encryption; use loopback or an SSH tunnel, or set an API key)"
        )
    checkpoint = check_checkpoint(cfg.checkpoint)
    policy = load_policy(cfg.policy, checkpoint, cfg.device, cfg.torch_threads)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection is noise
    server = OpenpiServer(
        policy,
        model_id(checkpoint),
        o.host,
        o.port,
        limits,
        o.api_key,
        cfg.robot.envelope.on_violation,
        cfg.control.control_hz,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("openpi websocket server on ws://%s:%d (model %s)", o.host, server.port, server.model_id)
    server.run_until(stop)
    log.info("openpi server stopped")
    return 0
