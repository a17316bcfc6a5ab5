"""ZeroMQ sockets for the two nodes: endpoint policy, CURVE, send/receive with counters. No models here.

Pattern: the System-2 node binds a SUB socket for observations and a PUB socket for chunks and
heartbeats; the System-1 node connects to both. PUB/SUB never blocks a sender and never
deadlocks when a peer dies (unlike REQ/REP). Observations go through a latest-value intake
(`LatestObservation`): System 2 takes everything queued since its last think and thinks on the
newest observation only.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from hume.runtime import protocol, shm
from hume.runtime.protocol import Message, MessageError, SequenceGate
from hume.runtime.shm import ShmReader, ShmWriter

log = logging.getLogger(__name__)

# Observations queued on each side while System 2 thinks (5 s of control ticks at 20 Hz; 30 MB
# of 224² image pairs when they travel in frames).
OBSERVATION_QUEUE = 100
# Receiver heartbeats with a growing count of failed shared-memory reads before frames are used.
SHM_STRIKES = 2
# Messages taken per drain call, so that one call (and one control tick) stays bounded.
DRAIN_LIMIT = 256
# ZMQ_MAXMSGSIZE: a peer sending more than this is disconnected by libzmq before we see anything.
# Per-field limits below it (protocol.decode) are what drop and count smaller bad messages.
HARD_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class EndpointError(ValueError):
    """An endpoint that may not be used as configured; the message says what to do instead."""


def is_loopback(endpoint: str) -> bool:
    """ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost stay on this host."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        return False
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", interface names and DNS names may all reach other hosts


def check_endpoint(endpoint: str, secure: bool) -> None:
    scheme = endpoint.partition("://")[0]
    if scheme not in ("tcp", "ipc", "inproc"):
        raise EndpointError(f"endpoint {endpoint!r} must start with tcp://, ipc:// or inproc://")
    if not secure and not is_loopback(endpoint):
        raise EndpointError(
            f"refusing {endpoint!r}: not a loopback or ipc:// endpoint, and no CURVE keys are configured. "
            "Generate keys with `hume keys --output KEYS_DIR` and pass --transport.keys_dir=KEYS_DIR, "
            "or use ipc:// / tcp://127.0.0.1."
        )


def shm_usable(endpoint: str) -> bool:
    """Whether observations to `endpoint` may go through shared memory: same host, and Linux."""
    return is_loopback(endpoint) and shm.available()


@dataclass(frozen=True)
class CurveKeys:
    """CURVE key material from a `hume keys` folder (see deploy/keys.py for the layout)."""

    folder: Path

    def pair(self, name: str) -> tuple[bytes, bytes | None]:
        secret = self.folder / f"{name}.key_secret"
        public = self.folder / f"{name}.key"
        path = secret if secret.is_file() else public
        if not path.is_file():
            raise EndpointError(
                f"CURVE key {public} not found (create keys with `hume keys --output {self.folder}`)"
            )
        return zmq.auth.load_certificate(str(path))

    @property
    def authorized(self) -> Path:
        return self.folder / "authorized"


class Transport:
    """One context per process; makes sockets that follow the endpoint and CURVE policy."""

    def __init__(self, keys_dir: str = "", max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES):
        self.ctx = zmq.Context()
        self.keys = CurveKeys(Path(keys_dir)) if keys_dir else None
        self.max_message_bytes = max_message_bytes
        self.session = secrets.token_hex(8)  # new per process: a restarted peer restarts its seq
        self._auth: ThreadAuthenticator | None = None

    def _secure_server(self, sock: zmq.Socket) -> None:
        if self._auth is None:
            if not self.keys.authorized.is_dir():
                raise EndpointError(f"no authorized client keys in {self.keys.authorized} (run `hume keys`)")
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.keys.authorized))
        public, secret = self.keys.pair("server")
        if secret is None:
            raise EndpointError(f"server.key_secret missing in {self.keys.folder}: this host cannot bind")
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True

    def _secure_client(self, sock: zmq.Socket) -> None:
        public, secret = self.keys.pair("client")
        if secret is None:
            raise EndpointError(f"client.key_secret missing in {self.keys.folder}: this host cannot connect")
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.curve_serverkey = self.keys.pair("server")[0]

    def socket(self, kind: int, endpoint: str, bind: bool, hwm: int = 1000) -> zmq.Socket:
        """`hwm`: messages queued per peer before ZeroMQ drops (PUB) new ones."""
        check_endpoint(endpoint, secure=self.keys is not None)
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
        sock.sndhwm = sock.rcvhwm = hwm
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        if self.keys is not None:
            (self._secure_server if bind else self._secure_client)(sock)
        try:
            sock.bind(endpoint) if bind else sock.connect(endpoint)
        except zmq.ZMQError as e:
            sock.close()
            raise EndpointError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {e}") from None
        log.debug("%s %s %s", zmq.SocketType(sock.type).name, "bound" if bind else "connected", endpoint)
        return sock

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)


class Publisher:
    """Sends messages of one session with a growing sequence number.

    With a `ring` (same host only), observations put their arrays in shared memory and send
    just the header. It goes back to frames for good when the ring cannot be written (e.g.
    /dev/shm full), or when the receiver's heartbeats (`peer_stats`) show its reads of the ring
    failing in SHM_STRIKES of them (not after one failure: a ring replaced just before the
    receiver opened it fails once, and is no reason to give up).
    """

    def __init__(self, sock: zmq.Socket, session: str, ring: ShmWriter | None = None):
        self.sock, self.session, self.seq, self.ring = sock, session, 0, ring
        self._peer_failed = self._strikes = 0

    def send(self, type_: str, fields: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        shm = None
        if self.ring is not None and type_ == protocol.OBSERVATION:
            try:
                shm = self.ring.put(arrays)
            except (OSError, ValueError) as e:  # e.g. /dev/shm full: frames still work
                self._stop_shared_memory(f"shared memory failed ({e})")
        frames = protocol.encode(type_, self.session, self.seq, fields, arrays, shm)
        self.seq += 1
        try:
            self.sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB drops when a subscriber is full; the next message supersedes this one

    def peer_stats(self, stats: dict) -> None:
        """The receiver's heartbeat counters: a growing `dropped_shm_unavailable` is a strike."""
        failed = stats.get("dropped_shm_unavailable", 0)
        if self.ring is None or failed <= self._peer_failed:
            return
        self._peer_failed, self._strikes = failed, self._strikes + 1
        if self._strikes >= SHM_STRIKES:
            self._stop_shared_memory("the receiver cannot open this host's shared memory")

    def _stop_shared_memory(self, why: str) -> None:
        log.warning("%s: observations go in frames from now on", why)
        self.close()

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None


class Inbox:
    """Receives, checks and counts every message on one socket; never raises on bad input.

    With a `shm` reader it also takes observations whose arrays wait in shared memory: they are
    handed out unread, and the caller reads the ones it uses with `read_shared` (so superseded
    ones cost nothing). Without one, such observations are dropped as `shm_unavailable`.
    """

    def __init__(self, sock: zmq.Socket, max_message_bytes: int, shm: ShmReader | None = None):
        self.sock = sock
        self.max_message_bytes = max_message_bytes
        self.shm = shm
        self.backlog = False  # the last drain left messages in the queue
        self.gate = SequenceGate()
        self.received = 0
        self.accepted = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def _take(self, frames: list) -> Message | None:
        self.received += 1
        try:
            msg = protocol.decode(frames, self.max_message_bytes)
            self.gate.check(msg)
            if msg.shm is not None and self.shm is None:
                raise MessageError("shm_unavailable", "this receiver does not read shared memory")
        except MessageError as e:
            self.dropped[e.reason] += 1
            log.debug("dropped a message: %s", e)
            return None
        self.accepted += 1
        return msg

    def read_shared(self, msg: Message) -> Message | None:
        """`msg` with its shared-memory arrays read and checked; None (counted) when that fails."""
        if msg.shm is None:
            return msg
        try:
            try:
                arrays = self.shm.read(msg.shm, msg.specs)
            except MessageError:
                raise
            except Exception as e:  # as in decode: nothing a peer sends may take the node down
                raise MessageError("malformed", f"shared memory: {type(e).__name__}: {e}") from None
            protocol.check_observation_content(arrays)
        except MessageError as e:
            self.accepted -= 1
            self.dropped[e.reason] += 1
            log.debug("dropped an observation: %s", e)
            return None
        return dataclasses.replace(msg, arrays=arrays, shm=None, specs=[])

    def drain(self, timeout_ms: float = 0, limit: int = DRAIN_LIMIT) -> list[Message]:
        """The messages waiting now, at most `limit` (so a flood cannot stall a control tick);
        waits up to `timeout_ms` for the first one."""
        out: list[Message] = []
        self.backlog = False
        if not self.sock.poll(max(0, int(timeout_ms)), zmq.POLLIN):
            return out
        for _ in range(limit):
            # EVENTS says whether a message waits: cheaper than a NOBLOCK receive raising zmq.Again,
            # and this runs on both ends of every round trip.
            if not self.sock.get(zmq.EVENTS) & zmq.POLLIN:
                return out
            msg = self._take(self.sock.recv_multipart(copy=False))
            if msg is not None:
                out.append(msg)
        self.backlog = True  # stopped at `limit` with messages still waiting
        return out

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "dropped": sum(self.dropped.values()),
            **{f"dropped_{k}": v for k, v in sorted(self.dropped.items())},
        }


class LatestObservation:
    """Latest-value intake for observations: each `wait` drains the socket, hands out the newest.

    No thread: while System 2 thinks, observations wait in ZeroMQ's queue, at most
    OBSERVATION_QUEUE of them (beyond that the publisher drops new ones, so a think longer than
    that many control ticks answers an old observation, which System 1's chunk TTL then rejects).
    The next `wait` takes the whole queue at once and keeps only the newest; the older ones are
    counted as superseded, and their shared-memory arrays are never read.
    """

    def __init__(self, transport: Transport, endpoint: str, bind: bool = True):
        sock = transport.socket(zmq.SUB, endpoint, bind, hwm=OBSERVATION_QUEUE)
        self.inbox = Inbox(sock, transport.max_message_bytes, ShmReader())
        self.superseded = 0  # valid observations replaced by a newer one before being used
        self.peer_seen_at: float | None = None  # monotonic time of the last System-1 message

    def wait(self, timeout_s: float) -> Message | None:
        """The newest observation not handed out before, waiting up to `timeout_s` for one."""
        deadline = time.monotonic() + timeout_s
        latest: Message | None = None
        while True:
            wait_ms = 0.0 if latest is not None else max(0.0, deadline - time.monotonic()) * 1e3
            msgs = self.inbox.drain(timeout_ms=wait_ms)
            if msgs:
                self.peer_seen_at = time.monotonic()
            for msg in msgs:
                if msg.type != protocol.OBSERVATION:
                    continue
                if latest is not None:
                    self.superseded += 1
                latest = msg
            if latest is not None and not self.inbox.backlog:  # the queue is empty: latest is newest
                latest = self.inbox.read_shared(latest)  # None: dropped and counted
                if latest is not None:
                    return latest
            elif latest is None and time.monotonic() >= deadline:
                return None

    def pending(self) -> bool:
        """Messages wait in the queue (System 1 is alive even if no wait() took them yet)."""
        return bool(self.inbox.sock.get(zmq.EVENTS) & zmq.POLLIN)

    def stats(self) -> dict[str, int]:
        return {**self.inbox.stats(), "superseded": self.superseded}

    def close(self) -> None:
        self.inbox.sock.close()
        self.inbox.shm.close()
