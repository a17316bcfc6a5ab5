"""The System-1 node (`hume serve system1`): the control loop, at control_hz, around a robot adapter.

Every tick: observe, publish the observation for System 2 (latest-only), take the newest chunk
without blocking, and let the control schedule (hume/policy/schedule.py, the same object the
synchronous loop and the async evaluation drive) align it to now by the steps elapsed since the
observation it answers and say when System 1 refines (on the current observation and the
schedule's state history); then send the action.

Safety: a chunk replaces the current one only if System 1's policy can refine it (shapes and
values, policy_spec.py). It is followed for at most `chunk_ttl_steps` (and never past its end)
after the observation it answers. When no valid chunk is left the robot holds (zero motion,
gripper unchanged); that is logged, and control resumes by itself as soon as a fresh chunk
arrives. Every action, the hold included, passes the robot's action envelope (envelope.py) just
before the robot adapter gets it. All times are this host's monotonic clock; the only thing
compared across hosts is step indices.
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from hume.config import ConfigError, check_checkpoint
from hume.constants import STATE_KEY, TASK_KEY
from hume.data.episode_frame import episode_frame
from hume.data.video import VideoWriter
from hume.policy.schedule import ControlSchedule, RefineRequest, ScheduleConfig
from hume.policy.switches import episode_record, trace_switch_changes
from hume.runtime import protocol
from hume.runtime.chunk_wire import chunk_from_wire
from hume.runtime.config import DeployConfig
from hume.runtime.envelope import Envelope, resolve
from hume.runtime.policy_loader import load_policy, model_id, same_model
from hume.runtime.policy_spec import PolicySpec
from hume.runtime.priority import RealtimeSection
from hume.runtime.protocol import MessageError
from hume.runtime.ratelog import RateLimitedLog
from hume.runtime.transport import OBSERVATION_QUEUE, Inbox, Publisher, Transport

log = logging.getLogger(__name__)

WARMUP_CALLS = 2


@dataclass
class Trace:
    """One row per control tick, written to ticks.csv: `envelope` holds the envelope's bits
    (1 clamped, 2 rate-limited, 4 held, 8 non-finite; envelope.py), a0.. the action sent."""

    action_dim: int
    rows: list[list] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        head = [
            "tick",
            "episode",
            "step",
            "tick_ms",
            "sim_step_ms",
            "chunk_age",
            "hold",
            "refined",
            "chunk_switch",
            "envelope",
        ]
        return head + [f"a{i}" for i in range(self.action_dim)]

    def add(self, *values, action: np.ndarray) -> None:
        self.rows.append([*values, *(round(float(a), 5) for a in action)])

    def switch_changes(self, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """|Δa| of the actions sent at plan switches, within plans and at chunk switches, over the
        `last` rows."""
        rows = np.asarray(self.rows[len(self.rows) - last :], np.float64).reshape(-1, len(self.columns))
        return trace_switch_changes(dict(zip(self.columns, rows.T, strict=True)))

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(self.rows)


class SystemTwoSilent(RuntimeError):
    """No chunk arrived for an episode's first observation within first_chunk_timeout_s."""


class System1Node:
    def __init__(self, cfg: DeployConfig, policy, robot, model_id: str, output: Path | None = None):
        self.cfg, self.policy, self.robot, self.model_id, self.output = cfg, policy, robot, model_id, output
        s1 = cfg.system1
        self.period = 1.0 / s1.control_hz
        # The schedule's settings are the checkpoint's unless the deploy config sets them.
        self.schedule = ControlSchedule(
            ScheduleConfig.of(policy.config, ttl=s1.chunk_ttl_steps, refine_every=s1.s1_replan_steps)
        )
        self.ttl = self.schedule.cfg.ttl or self.schedule.cfg.chunk_size
        self.replan = self.schedule.cfg.refine_every
        obs_endpoint, chunk_endpoint = cfg.transport.endpoints()
        self.envelope = Envelope(
            resolve(cfg.robot.envelope, robot, cfg.robot.kind), cfg.robot.envelope.on_violation
        )
        self.spec = PolicySpec.of(policy)
        if self.spec.action_dim not in (None, self.envelope.limits.action_dim):
            raise ConfigError(
                f"the policy acts in {self.spec.action_dim} dims, the robot's envelope has "
                f"{self.envelope.limits.action_dim} (robot.envelope, or the adapter's action_envelope())"
            )
        self.transport = Transport(cfg.transport.keys_dir, cfg.transport.max_message_bytes)
        try:
            self.obs_out = Publisher(
                self.transport.socket(zmq.PUB, obs_endpoint, bind=False, hwm=OBSERVATION_QUEUE),
                self.transport.session,
            )
            self.inbox = Inbox(
                self.transport.socket(zmq.SUB, chunk_endpoint, bind=False), cfg.transport.max_message_bytes
            )
        except Exception:
            self.transport.close()
            raise
        self.stop = threading.Event()
        self.trace = Trace(self.envelope.limits.action_dim)
        self.tick = 0
        self.chunk: protocol.Message | None = None
        self.chunks_received = 0
        self.stale_chunks = 0
        self.holds = 0
        self.hold_ticks = 0
        self.refine_errors = 0
        self.system2_errors = 0
        self.think_ms: list[float] = []
        self.system2_state: str | None = None
        self.episodes: list[dict] = []
        self._next_heartbeat = 0.0
        # Each tick's frame goes to the file as it is made: a run of any length holds one frame.
        self.video = (
            VideoWriter(output / "episodes.mp4", fps=s1.control_hz)
            if cfg.video and output is not None
            else None
        )
        self._warm = False
        self._log = RateLimitedLog(log)
        # Real-time priority only for a loop that keeps real time: one that runs as fast as it can
        # (system1.realtime false, e.g. a benchmark) would hold a core under SCHED_FIFO nearly all
        # the time and set off the kernel's RT throttling, starving everything else on the host.
        self.realtime = RealtimeSection(s1.realtime_priority if s1.realtime else 0)
        log.info(
            "System 1 at %.1f Hz; observations -> %s, chunks <- %s; envelope %s (%s)",
            s1.control_hz,
            obs_endpoint,
            chunk_endpoint,
            self.envelope.limits.to_dict(),
            self.envelope.on_violation,
        )

    # -- messaging -------------------------------------------------------------------------------

    def _publish(self, obs: dict, episode: int, step: int) -> None:
        fields = {
            "episode": episode,
            "step": step,
            "tick": self.tick,
            TASK_KEY: str(obs.get(TASK_KEY, "")),
        }
        arrays = {k: v for k, v in obs.items() if k != TASK_KEY}
        arrays[STATE_KEY] = np.asarray(arrays[STATE_KEY], dtype=np.float32)
        committed = self.schedule.committed(self.policy.robot_actions, self.tick)
        if len(committed):
            arrays[protocol.COMMITTED_KEY] = committed
        self.obs_out.send(protocol.OBSERVATION, fields, arrays)

    def _heartbeat(self, state: str = "ready") -> None:
        now = time.monotonic()
        if now < self._next_heartbeat and state == "ready":
            return
        self._next_heartbeat = now + self.cfg.transport.heartbeat_s
        stats = {
            **self.inbox.stats(),
            "ticks": self.tick,
            "holds": self.holds,
            "chunks_received": self.chunks_received,
            "refine_errors": self.refine_errors,
            "system2_errors": self.system2_errors,
            **{f"envelope_{k}": v for k, v in self.envelope.counts.items()},
        }
        self.obs_out.send(
            protocol.HEARTBEAT,
            {"role": "system1", "state": state, "model_id": self.model_id, "stats": stats},
        )

    def _check_chunk(self, msg: protocol.Message) -> None:
        """MessageError for a chunk that must not replace the current one (counted by its reason)."""
        f = msg.fields
        if not same_model(f["model_id"], self.model_id):
            raise MessageError(
                "model_mismatch", f"a chunk from model {f['model_id']} (this node runs {self.model_id})"
            )
        if f["tick"] > self.tick:
            raise MessageError("from_future", f"a chunk for tick {f['tick']}, now tick {self.tick}")
        self.spec.check_chunk(msg.arrays)

    def _receive(self, episode: int, timeout_ms: float = 0) -> bool:
        """Take every waiting message; keep the newest usable chunk. True when a new chunk came."""
        fresh = False
        for msg in self.inbox.drain(timeout_ms):
            if msg.type == protocol.HEARTBEAT:
                self.system2_state = msg.fields["state"]
                continue
            # A System 2 serving many clients sends every client's chunks and errors on one PUB
            # socket, each naming the session it answers: this node's are the only ones it may use.
            if msg.fields.get("client", self.transport.session) != self.transport.session:
                self.inbox.reject("other_client")
                continue
            if msg.type == protocol.ERROR:
                self.system2_errors += 1
                f = msg.fields
                self._log(
                    logging.ERROR,
                    "system2_error",
                    "System 2: %s at tick %d: %s",
                    f["reason"],
                    f["tick"],
                    f["detail"],
                )
                continue
            if msg.type != protocol.CHUNK:
                self.inbox.reject("unexpected_type")
                continue
            try:
                self._check_chunk(msg)
            except MessageError as e:
                self.inbox.reject(e.reason)
                if e.reason != "from_future":
                    self._log(logging.WARNING, e.reason, "dropped %s", e)
                continue
            f = msg.fields
            self.chunks_received += 1
            self.think_ms.append(f["think_ms"])
            if f["episode"] != episode or (self.chunk is not None and f["tick"] < self.chunk.fields["tick"]):
                self.stale_chunks += 1
                continue
            self.chunk, fresh = msg, True
        return fresh

    # -- control ---------------------------------------------------------------------------------

    def _refine(self, obs: dict, request: RefineRequest) -> np.ndarray | None:
        """System 1 on what the schedule asks for; None (counted, logged) when it fails."""
        try:
            actions = self.policy.refine(
                obs, request.chunk, request.start, self.schedule.history(), continues=request.continues
            )
            actions = np.asarray(actions, dtype=np.float32).reshape(-1, self.envelope.limits.action_dim)
            if not np.isfinite(actions).all():
                raise ValueError("non-finite actions")
        except Exception as e:  # the robot holds rather than act on, or die of, a failed refinement
            self.refine_errors += 1
            self._log(
                logging.ERROR,
                "refine",
                "refinement failed at tick %d: %s: %s",
                self.tick,
                type(e).__name__,
                e,
            )
            return None
        return actions

    def _warm_up(self, obs: dict) -> None:
        """The first refinements of a fresh process are slow (lazy kernel setup): do them before
        the clock runs, not inside the first control ticks."""
        t0 = time.monotonic()
        for _ in range(WARMUP_CALLS):
            self.policy.refine(obs, chunk_from_wire(self.chunk), 0)
        self.policy.reset()
        self._warm = True
        log.info("System 1 warmed up in %.0f ms", (time.monotonic() - t0) * 1e3)

    def _wait_first_chunk(self, obs: dict, episode: int) -> None:
        """The robot stands still after reset until System 2 answers this episode's observation."""
        deadline = time.monotonic() + self.cfg.system1.first_chunk_timeout_s
        next_log = time.monotonic() + 5.0
        while not self.stop.is_set():
            self._heartbeat()
            self._publish(obs, episode, 0)
            if self._receive(episode, timeout_ms=self.period * 1e3):
                if not self._warm:
                    self._warm_up(obs)
                return
            now = time.monotonic()
            if now > deadline:
                raise SystemTwoSilent(
                    f"System 2 did not answer within {self.cfg.system1.first_chunk_timeout_s:.0f} s "
                    f"(is `hume serve system2` running at {self.cfg.transport.endpoints()[1]}?)"
                )
            if now > next_log:
                log.info("waiting for System 2 (state: %s)", self.system2_state or "not heard from")
                next_log = now + 5.0

    def run_episode(self, episode: int) -> dict:
        self.robot.reset(episode)
        self.policy.reset()
        self.envelope.reset()
        self.schedule.reset(tick=self.tick - 1)  # the schedule counts in this node's ticks
        self.chunk = None
        obs = self.robot.observe()
        self._wait_first_chunk(obs, episode)
        if self.chunk is not None:  # the chunk that ended the wait is the first one followed
            self.schedule.land(chunk_from_wire(self.chunk), self.chunk.fields["tick"])
        holding, held_since, step = False, 0, 0
        next_t = time.monotonic()
        while not self.stop.is_set() and not self.robot.done:
            self._heartbeat()
            self.realtime.enter()
            t0 = time.monotonic()  # observation in hand
            if self._receive(episode):
                self.schedule.land(chunk_from_wire(self.chunk), self.chunk.fields["tick"])
            request = self.schedule.begin(np.asarray(obs[STATE_KEY], np.float32))
            planned, kind = self.schedule.end(None if request is None else self._refine(obs, request))
            # Published once this tick's plan is made: the committed actions it carries include it.
            self._publish(obs, episode, step)
            refined = kind == "refined"
            if kind != "hold":
                action, bits = self.envelope.apply(planned)
                age = self.schedule.age
                if holding:
                    log.info("chunks are back: resumed control after %d held ticks", self.tick - held_since)
                    holding = False
            else:
                action, bits, age = self.envelope.hold(), 0, -1
                if not holding:
                    last = self.chunk.fields["tick"] if self.chunk is not None else None
                    log.warning(
                        "no valid chunk (last one answered tick %s, now tick %d, TTL %d steps): holding",
                        last,
                        self.tick,
                        self.ttl,
                    )
                    holding, held_since = True, self.tick
                    self.holds += 1
                self.hold_ticks += 1
            tick_ms = (time.monotonic() - t0) * 1e3  # the policy's share: observation in hand -> action out
            self.realtime.leave()
            t1 = time.monotonic()
            self.robot.act(action)
            acted_on, obs = obs, self.robot.observe()
            sim_ms = (time.monotonic() - t1) * 1e3
            self.trace.add(
                self.tick,
                episode,
                step,
                round(tick_ms, 3),
                round(sim_ms, 3),
                age,
                int(age < 0),
                int(refined),
                int(self.schedule.chunk_switch),
                bits,
                action=action,
            )
            if self.video is not None:  # the observation this tick decided on, marked with what it did
                self.video.append(episode_frame(acted_on, step, episode, kind, self.schedule.chunk_switch))
            self.tick += 1
            step += 1
            if self.cfg.system1.realtime:
                next_t += self.period
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = time.monotonic()  # slower than real time: no burst to catch up
        result = {
            "episode": episode,
            "success": bool(self.robot.success),
            "steps": step,
            **episode_record(*self.trace.switch_changes(step)),
        }
        if self.stop.is_set():
            result["interrupted"] = True
        for key in ("task_id", "init_state"):
            if hasattr(self.robot, key):
                result[key] = getattr(self.robot, key)
        outcome = "success" if result["success"] else "interrupted" if self.stop.is_set() else "no success"
        log.info("episode %d: %s after %d steps", episode, outcome, step)
        return result

    def run(self, episodes: int) -> list[dict]:
        for episode in range(episodes):
            if self.stop.is_set():
                break
            self.episodes.append(self.run_episode(episode))
        return self.episodes

    def summary(self) -> dict:
        return {
            "model_id": self.model_id,
            "control_hz": self.cfg.system1.control_hz,
            "chunk_ttl_steps": self.ttl,
            "s1_replan_steps": self.replan,
            "episodes": self.episodes,
            "ticks": self.tick,
            "chunks_received": self.chunks_received,
            "stale_chunks": self.stale_chunks,
            "holds": self.holds,
            "hold_ticks": self.hold_ticks,
            "refine_errors": self.refine_errors,
            "system2_errors": self.system2_errors,
            "envelope": self.envelope.summary(),
            "think_ms": [round(x, 3) for x in self.think_ms],
            "interrupted": self.stop.is_set(),
            **self.inbox.stats(),
        }

    def close(self) -> None:
        self._heartbeat("stopping")
        self.realtime.leave()
        self._log.flush()
        self.envelope.flush_log()
        self.transport.close()
        if self.video is not None:
            self.video.close()
        if self.output is None:
            return
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "system1.json").write_text(json.dumps(self.summary(), indent=2))
        self.trace.write(self.output / "ticks.csv")


def serve(cfg: DeployConfig, output: Path | None, robot) -> int:
    """Run `cfg.episodes` episodes on `robot` (deploy/robots/base.py); SIGTERM/SIGINT stop early."""
    checkpoint = check_checkpoint(cfg.checkpoint)
    policy = load_policy(cfg.policy, checkpoint, cfg.device, cfg.torch_threads)
    node = System1Node(cfg, policy, robot, model_id(checkpoint), output)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: node.stop.set())
    try:
        node.run(cfg.episodes)
    except SystemTwoSilent as e:
        log.error("%s", e)
        return 1
    finally:
        node.close()
    return 130 if node.stop.is_set() else 0
