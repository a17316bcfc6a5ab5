"""ZeroMQ sockets for the two nodes: endpoint policy, CURVE, send/receive with counters. No models here.

Pattern: the System-2 node binds a SUB socket for observations and a PUB socket for chunks and
heartbeats; the System-1 node connects to both. PUB/SUB never blocks a sender and never
deadlocks when a peer dies (unlike REQ/REP). Observations go through a latest-value intake
(`LatestObservation`): System 2 takes everything queued since its last think and thinks on the
newest observation of each System 1 only. Chunks go to every subscriber; each names the session
of the observation it answers, and a System 1 keeps only its own (docs/protocol.md). A System 1's
session is the hash of a secret only it and System 2 see: System 2 takes no observation or
heartbeat that does not carry the secret of the session it names.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from hume.runtime import protocol
from hume.runtime.key_files import unsafe_key_files
from hume.runtime.protocol import Message, MessageError, SequenceGate

log = logging.getLogger(__name__)

# Observations queued on each side while System 2 thinks (5 s of control ticks at 20 Hz; 30 MB
# of 224² image pairs).
OBSERVATION_QUEUE = 100
# Messages taken per drain call, so that one call (and one control tick) stays bounded.
DRAIN_LIMIT = 256


class EndpointError(ValueError):
    """An endpoint that may not be used as configured; the message says what to do instead."""


def is_loopback(endpoint: str) -> bool:
    """Endpoints that may be used without CURVE keys: inproc://, ipc:// on a file path (the file's
    permissions decide who may connect), and tcp:// to 127.0.0.0/8, ::1 or localhost.

    Not: abstract ipc sockets (`ipc://@name`: no file, so any local user may connect), and
    ZeroMQ's `tcp://source;destination` form (the part before ";" only picks the local interface:
    the connection goes to whatever follows it).
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme == "inproc":
        return True
    if scheme == "ipc":
        return bool(rest) and not rest.startswith("@")
    if scheme != "tcp" or not rest or ";" in rest:
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
            f"refusing {endpoint!r}: not a loopback tcp:// or file-path ipc:// endpoint (abstract "
            "ipc://@ sockets and the tcp://source;destination form are not), and no CURVE keys are "
            "configured. Generate keys with `hume keys --output KEYS_DIR` and pass "
            "--transport.keys_dir=KEYS_DIR, or use ipc:///private/folder/name / tcp://127.0.0.1."
        )


def check_keys_dir(keys_dir: str) -> None:
    """EndpointError when a CURVE key folder is missing or others could change or read it."""
    if not keys_dir:
        return
    if not Path(keys_dir).is_dir():
        raise EndpointError(f"transport.keys_dir {keys_dir} is not a folder (create keys with `hume keys`)")
    problems = unsafe_key_files(keys_dir)
    if problems:
        raise EndpointError(
            f"refusing the CURVE keys in {keys_dir}: other users could change or read them: "
            + "; ".join(problems)
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
        check_keys_dir(keys_dir)
        self.ctx = zmq.Context()
        self.keys = CurveKeys(Path(keys_dir)) if keys_dir else None
        self.max_message_bytes = max_message_bytes
        # New per process (a restarted peer restarts its seq). The secret goes only to System 2,
        # and only from a System 1: a Publisher sends it when it is given it.
        self.secret = secrets.token_hex(16)
        self.session = protocol.session_of(self.secret)
        self._auth: ThreadAuthenticator | None = None

    def _secure_server(self, sock: zmq.Socket, keys: CurveKeys) -> None:
        if self._auth is None:
            if not keys.authorized.is_dir():
                raise EndpointError(f"no authorized client keys in {keys.authorized} (run `hume keys`)")
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(keys.authorized))
        public, secret = keys.pair("server")
        if secret is None:
            raise EndpointError(f"server.key_secret missing in {keys.folder}: this host cannot bind")
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True

    def _secure_client(self, sock: zmq.Socket, keys: CurveKeys) -> None:
        public, secret = keys.pair("client")
        if secret is None:
            raise EndpointError(f"client.key_secret missing in {keys.folder}: this host cannot connect")
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.curve_serverkey = keys.pair("server")[0]

    def socket(self, kind: int, endpoint: str, bind: bool, hwm: int = 1000) -> zmq.Socket:
        """`hwm`: messages queued per peer before ZeroMQ drops (PUB) new ones."""
        check_endpoint(endpoint, secure=self.keys is not None)
        sock = self.ctx.socket(kind)
        sock.linger = 0
        # libzmq hands out a multipart message only once all its frames have arrived, and bounds
        # each frame, not their sum: no frame may be larger than a whole message may be, so a
        # peer sending one is cut off before the frame is buffered (it reconnects by itself).
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.sndhwm = sock.rcvhwm = hwm
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        if self.keys is not None:
            (self._secure_server if bind else self._secure_client)(sock, self.keys)
        try:
            sock.bind(endpoint) if bind else sock.connect(endpoint)
        except zmq.ZMQError as e:
            sock.close()
            raise EndpointError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {e}") from None
        log.debug(
            "%s %s %s", zmq.SocketType(cast(int, sock.type)).name, "bound" if bind else "connected", endpoint
        )
        return sock

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)


class Publisher:
    """Sends messages of one session with one sequence number across all message types; with a
    `secret` (System 1's, whose session is its hash), every message carries it."""

    def __init__(self, sock: zmq.Socket, session: str, secret: str | None = None):
        self.sock, self.session, self.seq = sock, session, 0
        self._secret = {} if secret is None else {protocol.SECRET_KEY: secret}

    def send(self, type_: str, fields: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        frames = protocol.encode(type_, self.session, self.seq, {**fields, **self._secret}, arrays)
        self.seq += 1
        try:
            self.sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB drops when a subscriber is full; the next message supersedes this one


class Inbox:
    """Receives, checks and counts every message on one socket; never raises on bad input.

    Every message received is counted once: as accepted, or as dropped under one reason (the
    node's own checks after the protocol's move an accepted message to dropped with `reject`).
    `require_secret` (System 2's intake): a message without its session's secret is dropped
    (`unauthenticated`) before it can touch the session's sequence; one with another secret
    already is, by the protocol (`impostor`).
    """

    def __init__(self, sock: zmq.Socket, max_message_bytes: int, require_secret: bool = False):
        self.sock = sock
        self.max_message_bytes = max_message_bytes
        self.require_secret = require_secret
        self.backlog = False  # the last drain left messages in the queue
        self.gate = SequenceGate()
        self.received = 0
        self.accepted = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def _take(self, frames: list) -> Message | None:
        self.received += 1
        try:
            msg = protocol.decode(frames, self.max_message_bytes)
            if self.require_secret and protocol.SECRET_KEY not in msg.fields:
                raise MessageError("unauthenticated", f"a {msg.type} without its session's secret")
            self.gate.check(msg)
        except MessageError as e:
            self.dropped[e.reason] += 1
            log.debug("dropped a message: %s", e)
            return None
        self.accepted += 1
        return msg

    def reject(self, reason: str) -> None:
        """An accepted message that the node's own checks drop after all (counted under `reason`)."""
        self.accepted -= 1
        self.dropped[reason] += 1

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
            if not _events(self.sock) & zmq.POLLIN:
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
    """Latest-value intake for observations: each wait_each drains the socket and hands out the
    newest observation of each sender (System 1 session).

    No thread: while System 2 thinks, observations wait in ZeroMQ's queue, at most
    OBSERVATION_QUEUE of them (beyond that the publisher drops new ones, so a think longer than
    that many control ticks answers an old observation, which System 1's chunk TTL then rejects).
    The next wait takes the whole queue at once and keeps only each sender's newest; the older
    ones are counted as superseded.
    """

    def __init__(self, transport: Transport, endpoint: str, bind: bool = True, check=None):
        """`check(msg)` raises MessageError for an observation the caller cannot use: it is
        dropped (counted under its reason) before it can supersede a usable one."""
        sock = transport.socket(zmq.SUB, endpoint, bind, hwm=OBSERVATION_QUEUE)
        self.inbox = Inbox(sock, transport.max_message_bytes, require_secret=True)
        self.check = check
        self.superseded = 0  # valid observations replaced by a newer one before being used
        self.peer_seen_at: float | None = None  # monotonic time of the last System-1 message

    def wait_each(self, timeout_s: float) -> list[tuple[Message, int]]:
        """The newest observation of each sender not handed out before, in the order they arrived,
        each with how many older ones of its sender it superseded; waits up to `timeout_s` for the
        first one; empty when none came."""
        deadline = time.monotonic() + timeout_s
        latest: dict[str, tuple[Message, int]] = {}
        while True:
            wait_ms = 0.0 if latest else max(0.0, deadline - time.monotonic()) * 1e3
            msgs = self.inbox.drain(timeout_ms=wait_ms)
            if msgs:
                self.peer_seen_at = time.monotonic()
            for msg in msgs:
                if msg.type != protocol.OBSERVATION:
                    if msg.type != protocol.HEARTBEAT:  # chunks and errors go the other way
                        self.inbox.reject("unexpected_type")
                    continue
                if self.check is not None:
                    try:
                        self.check(msg)
                    except MessageError as e:
                        self.inbox.reject(e.reason)
                        continue
                older = latest.pop(msg.session, None)
                if older is not None:
                    self.superseded += 1
                latest[msg.session] = (msg, 0 if older is None else older[1] + 1)
            if latest and not self.inbox.backlog:  # the queue is empty: these are the newest
                return list(latest.values())
            if not latest and time.monotonic() >= deadline:
                return []

    def pending(self) -> bool:
        """Messages wait in the queue (System 1 is alive even if no wait_each() took them yet)."""
        return bool(_events(self.inbox.sock) & zmq.POLLIN)

    def stats(self) -> dict[str, int]:
        return {**self.inbox.stats(), "superseded": self.superseded}

    def close(self) -> None:
        self.inbox.sock.close()


def _events(sock: zmq.Socket) -> int:
    """The socket's EVENTS bits (pyzmq types every option's value as int | bytes | str)."""
    return cast(int, sock.get(zmq.EVENTS))
