"""ZeroMQ sockets for the two nodes: endpoint policy, CURVE, send/receive with counters. No models here.

Pattern: the System-2 node binds a SUB socket for observations and a PUB socket for chunks and
heartbeats; the System-1 node connects to both. PUB/SUB never blocks a sender and never
deadlocks when a peer dies (unlike REQ/REP). Observations go through a latest-value cache
(`LatestObservation`): a thread drains the socket continuously so a slow System 2 always thinks
on the newest observation and no queue builds up behind it.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from hume.runtime import protocol
from hume.runtime.protocol import Message, MessageError, SequenceGate

log = logging.getLogger(__name__)

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

    def socket(self, kind: int, endpoint: str, bind: bool) -> zmq.Socket:
        check_endpoint(endpoint, secure=self.keys is not None)
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
        sock.sndhwm = sock.rcvhwm = 1000
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
    """Sends messages of one session with a growing sequence number."""

    def __init__(self, sock: zmq.Socket, session: str):
        self.sock, self.session, self.seq = sock, session, 0

    def send(self, type_: str, fields: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        frames = protocol.encode(type_, self.session, self.seq, fields, arrays)
        self.seq += 1
        try:
            self.sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB drops when a subscriber is full; the next message supersedes this one


class Inbox:
    """Receives, checks and counts every message on one socket; never raises on bad input."""

    def __init__(self, sock: zmq.Socket, max_message_bytes: int):
        self.sock = sock
        self.max_message_bytes = max_message_bytes
        self.gate = SequenceGate()
        self.received = 0
        self.accepted = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def _take(self, frames: list) -> Message | None:
        self.received += 1
        try:
            msg = protocol.decode(frames, self.max_message_bytes)
            self.gate.check(msg)
        except MessageError as e:
            self.dropped[e.reason] += 1
            log.debug("dropped a message: %s", e)
            return None
        self.accepted += 1
        return msg

    def drain(self, timeout_ms: float = 0, limit: int = 256) -> list[Message]:
        """The messages waiting now, at most `limit` (so a flood cannot stall a control tick);
        waits up to `timeout_ms` for the first one."""
        out: list[Message] = []
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
        return out

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "dropped": sum(self.dropped.values()),
            **{f"dropped_{k}": v for k, v in sorted(self.dropped.items())},
        }


class LatestObservation:
    """Latest-value cache for observations: a thread keeps only the newest one.

    The thread owns its SUB socket (ZeroMQ sockets are not thread-safe) and drains it
    continuously, also while the main thread is busy thinking, so no backlog can build up.
    """

    def __init__(self, transport: Transport, endpoint: str, bind: bool = True):
        self._transport, self._endpoint, self._bind = transport, endpoint, bind
        self._cond = threading.Condition()
        self._latest: Message | None = None
        self._stop = threading.Event()
        self.superseded = 0  # valid observations replaced by a newer one before being used
        self.peer_seen_at: float | None = None  # monotonic time of the last System-1 message
        self._stats: dict[str, int] = {}
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="observation-intake", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            inbox = Inbox(
                self._transport.socket(zmq.SUB, self._endpoint, self._bind), self._transport.max_message_bytes
            )
        except Exception as e:  # reported to the constructor, which re-raises in the main thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                msgs = inbox.drain(timeout_ms=50)
                with self._cond:
                    for msg in msgs:
                        self.peer_seen_at = time.monotonic()
                        if msg.type != protocol.OBSERVATION:
                            continue
                        if self._latest is not None:
                            self.superseded += 1
                        self._latest = msg
                    self._stats = inbox.stats()
                    if msgs:
                        self._cond.notify_all()
        finally:
            inbox.sock.close()

    def wait(self, timeout_s: float) -> Message | None:
        """The newest observation not handed out before, waiting up to `timeout_s` for one."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None, timeout=timeout_s)
            msg, self._latest = self._latest, None
            return msg

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {**self._stats, "superseded": self.superseded}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
