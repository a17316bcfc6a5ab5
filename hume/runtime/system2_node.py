"""The System-2 node (`hume serve system2`): newest observation in, best-of-N chunk out.

It thinks on the newest observation its policy can use (a latest-value cache drops the ones it
had no time for), publishes the chosen chunk with all candidate values and the step/tick of the
observation it answers, and sends heartbeats carrying its counters. An observation the policy
cannot use (a missing camera, a state of the wrong size) or whose think fails is answered with an
error message naming what is wrong. It never waits on System 1.

One node serves many System-1 clients (a fleet of robots, or evaluation workers), told apart by
their session: the newest observation of each waiting client goes into one batched think
(batching.py decides which, within `serving.max_batch` and `serving.max_wait_ms`), and every
chunk names the session it answers, so each client keeps only its own. Chunks travel on PUB, which
drops rather than waits for a subscriber that does not read: a slow or dead client stalls no other.
"""

from __future__ import annotations

import collections
import json
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import zmq

from hume.config import check_checkpoint
from hume.constants import TASK_KEY
from hume.policy.delay import DelayEstimator, steps_for
from hume.policy.schedule import sends_committed
from hume.runtime import protocol
from hume.runtime.batching import Batcher
from hume.runtime.chunk_wire import chunk_to_wire
from hume.runtime.config import DeployConfig
from hume.runtime.policy_spec import PolicySpec
from hume.runtime.protocol import MessageError
from hume.runtime.ratelog import RateLimitedLog
from hume.runtime.transport import LatestObservation, Publisher, Transport

log = logging.getLogger(__name__)

# System 1 counts as connected while its messages arrived within this many heartbeats.
PEER_TIMEOUT_HEARTBEATS = 4
# Clients whose counters the node keeps (the least recently seen beyond that are forgotten), so
# that senders making up sessions cannot grow its memory.
MAX_CLIENTS = 64


@dataclass
class ClientCounters:
    """One System-1 client's traffic, in the node's summary."""

    observations: int = 0  # usable observations received
    superseded: int = 0  # of those, replaced by a newer one of the same client before a think
    chunks_sent: int = 0
    errors_sent: int = 0
    episode: int = -1  # of its last observation thought on
    seen_at: float = 0.0  # monotonic time of its last observation


def observation_dict(msg: protocol.Message) -> dict:
    """A wire observation -> the policy's observation dict (docs/architecture.md)."""
    arrays = {k: v for k, v in msg.arrays.items() if k != protocol.COMMITTED_KEY}
    return {**arrays, TASK_KEY: msg.fields[TASK_KEY]}


class System2Node:
    def __init__(self, cfg: DeployConfig, policy, model_id: str, output: Path | None = None):
        self.cfg, self.policy, self.model_id, self.output = cfg, policy, model_id, output
        obs_endpoint, chunk_endpoint = cfg.transport.endpoints()
        self.spec = PolicySpec.of(policy)
        self.transport = Transport(cfg.transport.keys_dir, cfg.transport.max_message_bytes)
        try:
            self.chunks = Publisher(
                self.transport.socket(zmq.PUB, chunk_endpoint, bind=True), self.transport.session
            )
            self.intake = LatestObservation(self.transport, obs_endpoint, bind=True, check=self._usable)
        except Exception:
            self.transport.close()
            raise
        self.stop = threading.Event()
        # A policy without think_batch (a plug-in class) is served one observation at a time.
        batched = callable(getattr(policy, "think_batch", None))
        self.batcher: Batcher[protocol.Message] = Batcher(
            cfg.serving.max_batch if batched else 1, cfg.serving.max_wait_ms / 1e3
        )
        self.clients: collections.OrderedDict[str, ClientCounters] = collections.OrderedDict()
        self.batch_sizes: list[int] = []
        self.superseded_queued = 0  # observations replaced while waiting for a think (batcher)
        self.think_ms: list[float] = []  # one per chunk sent: the think of its batch
        # Real-time chunking's delay (control steps from an observation to its chunk's first use),
        # from the recent think times; what each think assumed (None: nothing was committed).
        self.delay = DelayEstimator()
        self.sends_committed = sends_committed(getattr(policy, "config", None))
        self.delays: list[int | None] = []
        self._next_heartbeat = 0.0
        self._warm = False
        self.think_errors = 0
        self._unusable: tuple[protocol.Message, MessageError] | None = None
        self._log = RateLimitedLog(log)
        log.info(
            "System 2 (%s) on observations %s, chunks %s; it needs %s",
            model_id,
            obs_endpoint,
            chunk_endpoint,
            self.spec.describe_observation(),
        )

    def stats(self) -> dict:
        return {
            **self.intake.stats(),
            "superseded": self.intake.superseded + self.superseded_queued,
            "chunks_sent": len(self.think_ms),
            "think_errors": self.think_errors,
            "batches": len(self.batch_sizes),
            "batch_size_max": max(self.batch_sizes, default=0),
        }

    def _recent(self, seen: float | None) -> bool:
        timeout = PEER_TIMEOUT_HEARTBEATS * self.cfg.transport.heartbeat_s
        return seen is not None and time.monotonic() - seen < timeout

    def _peer_connected(self) -> bool:
        """System 1's messages arrived lately, or wait in the queue (a long think has not taken them)."""
        return self._recent(self.intake.peer_seen_at) or self.intake.pending()

    def heartbeat(self, state: str = "ready") -> None:
        stats = {
            **self.stats(),
            "system1_connected": int(self._peer_connected()),
            "clients_connected": sum(self._recent(c.seen_at) for c in self.clients.values()),
        }
        self.chunks.send(
            protocol.HEARTBEAT, {"role": "system2", "state": state, "model_id": self.model_id, "stats": stats}
        )

    def _usable(self, msg: protocol.Message) -> None:
        """The intake's check of each observation; the newest one refused gets the error reply."""
        try:
            self.spec.check_observation(msg.arrays)
        except MessageError as e:
            self._unusable = (msg, e)
            raise

    def _client(self, session: str) -> ClientCounters:
        client = self.clients.pop(session, None) or ClientCounters()
        self.clients[session] = client  # most recently seen last
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)
        return client

    def reply_error(self, msg: protocol.Message, reason: str, detail: str) -> None:
        """Tell the sender why the observation of msg's tick got no chunk."""
        f = msg.fields
        self._log(logging.ERROR, reason, "observation of tick %d: %s: %s", f["tick"], reason, detail)
        fields = {"episode": f["episode"], "step": f["step"], "tick": f["tick"], "reason": reason}
        self.chunks.send(
            protocol.ERROR, {**fields, "detail": detail[: protocol.MAX_TEXT], "client": msg.session}
        )
        if msg.session in self.clients:
            self.clients[msg.session].errors_sent += 1

    def think(self, msgs: list[protocol.Message]) -> None:
        """One think for the newest observation of each client in `msgs`; each gets its chunk."""
        clients = [self._client(m.session) for m in msgs]
        if any(c.episode != m.fields["episode"] for c, m in zip(clients, msgs, strict=True)):
            self.policy.reset()
            for c, m in zip(clients, msgs, strict=True):
                c.episode = m.fields["episode"]
        observations = [observation_dict(m) for m in msgs]
        if not self._warm:  # the first think of a fresh process is slow (lazy kernel setup)
            t0 = time.monotonic()
            self.policy.think(observations[0])
            self._warm = True
            log.info("System 2 warmed up in %.0f ms", (time.monotonic() - t0) * 1e3)
        committed = [m.arrays.get(protocol.COMMITTED_KEY) for m in msgs]
        delay = self.delay.steps
        t0 = time.monotonic()
        if len(msgs) == 1:
            chunks = [self.policy.think(observations[0], committed=committed[0], delay=delay)]
        else:
            chunks = self.policy.think_batch(observations, committed=committed, delays=[delay] * len(msgs))
        think_ms = (time.monotonic() - t0) * 1e3
        self.batch_sizes.append(len(msgs))
        if self.sends_committed:
            self.delay.add(steps_for(think_ms, self.cfg.control.control_hz))
        for msg, client, chunk, sent in zip(msgs, clients, chunks, committed, strict=True):
            self.think_ms.append(think_ms)
            self.delays.append(delay if sent is not None else None)
            fields, arrays = chunk_to_wire(chunk)
            fields.update(
                model_id=self.model_id,
                episode=msg.fields["episode"],
                step=msg.fields["step"],
                tick=msg.fields["tick"],
                think_ms=think_ms,
                client=msg.session,
            )
            self.chunks.send(protocol.CHUNK, fields, arrays)
            client.chunks_sent += 1
        log.debug("%d chunk(s) in %.1f ms", len(msgs), think_ms)

    def answer(self, msgs: list[protocol.Message]) -> None:
        """think(msgs); when it fails, each observation alone, so that one client's observation the
        model cannot take costs the others nothing but time."""
        try:
            self.think(msgs)
        except Exception as e:  # an observation the policy cannot use must not stop the node
            if len(msgs) > 1:
                for msg in msgs:
                    self.answer([msg])
                return
            self.think_errors += 1
            self.reply_error(msgs[0], "think_failed", f"{type(e).__name__}: {e}")

    def _intake(self, timeout_s: float) -> None:
        """Take the newest observation of each client that sent one (waiting up to timeout_s)."""
        for msg, superseded in self.intake.wait_each(timeout_s):
            now = time.monotonic()
            client = self._client(msg.session)
            client.observations += 1 + superseded
            client.superseded += superseded
            client.seen_at = now
            if self.batcher.add(msg.session, msg, now):
                client.superseded += 1
                self.superseded_queued += 1

    def run(self) -> None:
        hb = self.cfg.transport.heartbeat_s
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= self._next_heartbeat:
                self.heartbeat()
                self._next_heartbeat = now + hb
            due = self.batcher.due_in(now)
            until_heartbeat = max(0.0, self._next_heartbeat - now)
            self._intake(min(hb if due is None else due, until_heartbeat))
            if self._unusable is not None:  # one reply per wait, however many were refused
                bad, err = self._unusable
                self._unusable = None
                self.reply_error(bad, err.reason, str(err).partition(": ")[2])
            if self.batcher.due_in(time.monotonic()) == 0.0 and not self.stop.is_set():
                self.answer([msg for _, msg in self.batcher.take()])
        self.heartbeat("stopping")

    def summary(self) -> dict:
        ms = np.asarray(self.think_ms or [np.nan])
        return {
            "model_id": self.model_id,
            "chunks_sent": len(self.think_ms),
            "think_ms": [round(x, 3) for x in self.think_ms],
            "think_ms_p50": float(np.nanpercentile(ms, 50)),
            "think_ms_p99": float(np.nanpercentile(ms, 99)),
            "rtc_delay_steps": self.delays,
            "batch_size_mean": float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0,
            "clients": {
                session: {k: v for k, v in asdict(c).items() if k != "seen_at"}
                for session, c in self.clients.items()
            },
            **self.stats(),
        }

    def close(self) -> None:
        self._log.flush()
        self.intake.close()
        self.transport.close()
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / "system2.json").write_text(json.dumps(self.summary(), indent=2))


def serve(cfg: DeployConfig, output: Path | None) -> int:
    """Load the policy and serve until SIGTERM/SIGINT."""
    from hume.runtime.policy_loader import load_policy, model_id
    from hume.runtime.priority import lower_priority

    checkpoint = check_checkpoint(cfg.checkpoint)
    lower_priority(cfg.serving.nice)  # before torch starts its threads: they inherit it
    policy = load_policy(cfg.policy, checkpoint, cfg.device, cfg.torch_threads)
    node = System2Node(cfg, policy, model_id(checkpoint), output)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: node.stop.set())
    try:
        node.run()
    finally:
        node.close()
    log.info("System 2 stopped after %d chunks", len(node.think_ms))
    return 0
