"""The System-2 node (`hume serve system2`): newest observation in, best-of-N chunk out.

It thinks on the newest observation its policy can use (a latest-value cache drops the ones it
had no time for), publishes the chosen chunk with all candidate values and the step/tick of the
observation it answers, and sends heartbeats carrying its counters. An observation the policy
cannot use (a missing camera, a state of the wrong size) or whose think fails is answered with an
error message naming what is wrong. It never waits on System 1.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from hume.constants import TASK_KEY
from hume.policy.delay import DelayEstimator, steps_for
from hume.runtime import protocol
from hume.runtime.chunk_wire import chunk_to_wire
from hume.runtime.config import DeployConfig
from hume.runtime.policy_spec import PolicySpec
from hume.runtime.protocol import MessageError
from hume.runtime.ratelog import RateLimitedLog
from hume.runtime.transport import LatestObservation, Publisher, Transport

log = logging.getLogger(__name__)

# System 1 counts as connected while its messages arrived within this many heartbeats.
PEER_TIMEOUT_HEARTBEATS = 4


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
        self.think_ms: list[float] = []
        # Real-time chunking's delay (control steps from an observation to its chunk's first use),
        # from the recent think times; what each think assumed (None: nothing was committed).
        self.delay = DelayEstimator()
        self.delays: list[int | None] = []
        self.episode: int | None = None
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
        return {**self.intake.stats(), "chunks_sent": len(self.think_ms), "think_errors": self.think_errors}

    def _peer_connected(self) -> bool:
        """System 1's messages arrived lately, or wait in the queue (a long think has not taken them)."""
        seen = self.intake.peer_seen_at
        recent = (
            seen is not None
            and time.monotonic() - seen < PEER_TIMEOUT_HEARTBEATS * self.cfg.transport.heartbeat_s
        )
        return recent or self.intake.pending()

    def heartbeat(self, state: str = "ready") -> None:
        stats = {**self.stats(), "system1_connected": int(self._peer_connected())}
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

    def reply_error(self, msg: protocol.Message, reason: str, detail: str) -> None:
        """Tell the sender why the observation of msg's tick got no chunk."""
        f = msg.fields
        self._log(logging.ERROR, reason, "observation of tick %d: %s: %s", f["tick"], reason, detail)
        fields = {"episode": f["episode"], "step": f["step"], "tick": f["tick"], "reason": reason}
        self.chunks.send(protocol.ERROR, {**fields, "detail": detail[: protocol.MAX_TEXT]})

    def think(self, msg: protocol.Message) -> None:
        episode = msg.fields["episode"]
        if episode != self.episode:
            self.policy.reset()
            self.episode = episode
        obs = observation_dict(msg)
        if not self._warm:  # the first think of a fresh process is slow (lazy kernel setup)
            t0 = time.monotonic()
            self.policy.think(obs)
            self._warm = True
            log.info("System 2 warmed up in %.0f ms", (time.monotonic() - t0) * 1e3)
        committed = msg.arrays.get(protocol.COMMITTED_KEY)
        delay = self.delay.steps
        t0 = time.monotonic()
        chunk = self.policy.think(obs, committed=committed, delay=delay)
        think_ms = (time.monotonic() - t0) * 1e3
        self.think_ms.append(think_ms)
        self.delay.add(steps_for(think_ms, self.cfg.system1.control_hz))
        self.delays.append(delay if committed is not None else None)
        fields, arrays = chunk_to_wire(chunk)
        fields.update(
            model_id=self.model_id,
            episode=episode,
            step=msg.fields["step"],
            tick=msg.fields["tick"],
            think_ms=think_ms,
        )
        self.chunks.send(protocol.CHUNK, fields, arrays)
        log.debug("chunk for tick %d in %.1f ms", msg.fields["tick"], think_ms)

    def run(self) -> None:
        hb = self.cfg.transport.heartbeat_s
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= self._next_heartbeat:
                self.heartbeat()
                self._next_heartbeat = now + hb
            msg = self.intake.wait(timeout_s=min(hb, max(0.0, self._next_heartbeat - now)))
            if self._unusable is not None:  # one reply per wait, however many were refused
                bad, err = self._unusable
                self._unusable = None
                self.reply_error(bad, err.reason, str(err).partition(": ")[2])
            if msg is not None and not self.stop.is_set():
                try:
                    self.think(msg)
                except Exception as e:  # an observation the policy cannot use must not stop the node
                    self.think_errors += 1
                    self.reply_error(msg, "think_failed", f"{type(e).__name__}: {e}")
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

    checkpoint = cfg.check_checkpoint()
    lower_priority(cfg.system2.nice)  # before torch starts its threads: they inherit it
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
