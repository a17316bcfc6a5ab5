"""The System-1 node (`hume serve system1`): the control loop, at control_hz, around a robot adapter.

Every tick, in this order: wait for the tick's time -> observe -> decide -> envelope -> act. To
decide, the tick takes the newest chunk without blocking, lands it and any finished System-1
refinement through the control schedule (hume/policy/schedule.py, the same object the
synchronous loop and the async evaluation drive), and takes the action the schedule has prepared
for this tick. No network runs on the tick: System 1 refines ahead of it in a worker thread
(refiner.py) on the newest observation, and its plan takes over, aligned by tick, `lead` ticks
after that observation; until it does, the tick follows the still-valid plan. After acting, the
tick publishes its observation for System 2 (latest-only). A tick that runs past its period
(observe + decide + act) is an overrun: counted, logged (rate-limited), and the clock moves on
without a burst to catch up.

Safety: a chunk replaces the current one only if System 1's policy can refine it (shapes and
values, policy_spec.py). It is followed for at most `chunk_ttl_steps` (and never past its end)
after the observation it answers. A failed refinement leaves the still-valid plan in place
(counted); when no valid plan is left the robot holds (zero motion, gripper unchanged); that is
logged, and control resumes by itself as soon as a fresh chunk arrives. Every action, the hold
included, passes the robot's action envelope (envelope.py) just before the robot adapter gets it.
The robot lives in its driver's process (deploy/robots/driver.py), whose command watchdog holds
it when this loop falls silent or dies; the loop learns of such a hold with its next observation
and ramps from rest. Records survive a crash: ticks.csv is streamed and system1.json rewritten,
both at least every second. All times are this host's monotonic clock; the only thing compared
across hosts is step indices.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from hume.config import ConfigError, check_checkpoint
from hume.constants import STATE_KEY, TASK_KEY
from hume.data.episode_frame import episode_frame
from hume.data.video import VideoWriter
from hume.policy.delay import steps_for
from hume.policy.schedule import ControlSchedule, ScheduleConfig, sends_committed
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
from hume.runtime.refiner import SWITCH_INTERVAL_S, Answer, Refiner
from hume.runtime.transport import OBSERVATION_QUEUE, Inbox, Publisher, Transport

log = logging.getLogger(__name__)

WARMUP_CALLS = 3
# Records on disk are at most this old: a killed System 1 loses at most this much of them.
FLUSH_S = 1.0
# The measured refinement lead gets this margin over the slowest warm refinement.
LEAD_MARGIN = 1.5


class Trace:
    """One row per control tick, streamed to ticks.csv (flushed at least every FLUSH_S):
    `tick_ms` is the policy's share (observation in hand -> action out), `tick_total_ms` the
    whole tick (observe + decide + act), `period_ms` the time since the previous tick started;
    `obs_age` / `obs_age_ms` how old the observation System 1 refined the executed action on is
    (-1 when holding); `envelope` holds the envelope's bits (1 clamped, 2 rate-limited, 4 held,
    8 non-finite; envelope.py), a0.. the action sent. `rows` keeps the current episode's."""

    def __init__(self, action_dim: int, path: Path | None = None):
        self.action_dim = action_dim
        self.rows: list[list] = []
        self._file = None
        self._next_flush = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.columns)
            self._file.flush()

    @property
    def columns(self) -> list[str]:
        head = [
            "tick",
            "episode",
            "step",
            "tick_ms",
            "tick_total_ms",
            "period_ms",
            "sim_step_ms",
            "chunk_age",
            "obs_age",
            "obs_age_ms",
            "hold",
            "refined",
            "chunk_switch",
            "envelope",
        ]
        return head + [f"a{i}" for i in range(self.action_dim)]

    def new_episode(self) -> None:
        self.rows = []

    def add(self, *values, action: np.ndarray) -> None:
        row = [*values, *(round(float(a), 5) for a in action)]
        self.rows.append(row)
        if self._file is not None:
            self._writer.writerow(row)
            now = time.monotonic()
            if now >= self._next_flush:
                self._file.flush()
                self._next_flush = now + FLUSH_S

    def switch_changes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """|Δa| of the actions sent at plan switches, within plans and at chunk switches, this episode."""
        rows = np.asarray(self.rows, np.float64).reshape(-1, len(self.columns))
        return trace_switch_changes(dict(zip(self.columns, rows.T, strict=True)))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SystemTwoSilent(RuntimeError):
    """No chunk arrived for an episode's first observation within first_chunk_timeout_s."""


class System1Node:
    def __init__(self, cfg: DeployConfig, policy, robot, model_id: str, output: Path | None = None):
        self.cfg, self.policy, self.robot, self.model_id, self.output = cfg, policy, robot, model_id, output
        s1 = cfg.control
        self.period = 1.0 / s1.control_hz
        # The schedule's settings are the checkpoint's unless the deploy config sets them.
        self.schedule_cfg = ScheduleConfig.of(
            policy.config, ttl=s1.chunk_ttl_steps, refine_every=s1.s1_replan_steps
        )
        self.schedule = ControlSchedule(self.schedule_cfg)  # its lead is set once System 1 is warm
        self.ttl = self.schedule.cfg.ttl or self.schedule.cfg.chunk_size
        self.replan = self.schedule.cfg.refine_every
        obs_endpoint, chunk_endpoint = cfg.transport.endpoints()
        self.envelope = Envelope(
            resolve(cfg.robot.envelope, robot, cfg.robot.kind),
            cfg.robot.envelope.on_violation,
            s1.control_hz,
        )
        self.spec = PolicySpec.of(policy)
        # Committed actions are built and sent only for a System 2 that reads them.
        self.sends_committed = sends_committed(getattr(policy, "config", None))
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
                self.transport.secret,
            )
            self.inbox = Inbox(
                self.transport.socket(zmq.SUB, chunk_endpoint, bind=False), cfg.transport.max_message_bytes
            )
        except Exception:
            self.transport.close()
            raise
        self.stop = threading.Event()
        self.trace = Trace(self.envelope.limits.action_dim, output / "ticks.csv" if output else None)
        self.refiner = Refiner(policy, self.envelope.limits.action_dim)
        if s1.refine_ahead:
            sys.setswitchinterval(SWITCH_INTERVAL_S)  # the tick gets the GIL back quickly (refiner.py)
        self.lead = 0  # ticks from a refinement's observation to its plan (set when warm)
        self.refine_ms: list[float] = []
        self.refine_late = 0  # refinements not back by the tick their plan was due
        self.overruns = 0  # ticks (observe + decide + act) longer than the period
        self.policy_overruns = 0  # ticks whose policy share alone was longer than the period
        self._obs_times: dict[int, float] = {}  # tick -> when its observation was in hand
        self._next_save = 0.0
        self.tick = 0
        self.chunk: protocol.Message | None = None
        self.chunks_received = 0
        self.stale_chunks = 0
        self.holds = 0
        self.hold_ticks = 0
        self.refine_errors = 0
        self.system2_errors = 0
        self.watchdog_holds = 0  # times the robot's driver held the robot by itself
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
        # (control.realtime false, e.g. a benchmark) would hold a core under SCHED_FIFO nearly all
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
        if self.sends_committed:
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

    def _receive(self, episode: int, timeout_ms: float = 0) -> protocol.Message | None:
        """Take every waiting message; keep the newest usable chunk. The new chunk, if one came."""
        fresh = None
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
            self.chunk = fresh = msg
        return fresh

    # -- control ---------------------------------------------------------------------------------

    def _take_answer(self, answer: Answer) -> None:
        """A refinement's answer into the schedule; a failure is counted and logged, and the
        schedule keeps the still-valid plan."""
        self.refine_ms.append(answer.ms)
        if answer.actions is None:
            self.refine_errors += 1
            self._log(
                logging.ERROR,
                "refine",
                "refinement for tick %d failed: %s (the current plan goes on while valid)",
                answer.request.tick,
                answer.error,
            )
        self.schedule.land_plan(answer.request, answer.actions)

    def _warm_up(self, obs: dict, chunk: protocol.Message) -> None:
        """The first refinements of a fresh process are slow (lazy kernel setup): do them before
        the clock runs, not inside the first control ticks; the warm ones set the lead."""
        times = []
        for _ in range(WARMUP_CALLS):
            t0 = time.monotonic()
            self.policy.refine(obs, chunk_from_wire(chunk), 0)
            times.append((time.monotonic() - t0) * 1e3)
        self.policy.reset()
        self._warm = True
        s1 = self.cfg.control
        if not s1.refine_ahead:
            self.lead = 0
        elif s1.refine_lead_ticks:
            self.lead = s1.refine_lead_ticks
        else:
            self.lead = max(1, steps_for(LEAD_MARGIN * max(times[1:]), s1.control_hz))
        self.schedule = ControlSchedule(dataclasses.replace(self.schedule_cfg, lead=self.lead))
        log.info(
            "System 1 warmed up in %.0f ms (warm refinement %.1f ms): %s",
            sum(times),
            max(times[1:]),
            f"refining ahead of the tick, plans take over {self.lead} tick(s) after their observation"
            if s1.refine_ahead
            else "refining inside the tick",
        )

    def _wait_first_chunk(self, obs: dict, episode: int) -> None:
        """The robot stands still after reset until System 2 answers this episode's observation."""
        deadline = time.monotonic() + self.cfg.control.first_chunk_timeout_s
        next_log = time.monotonic() + 5.0
        while not self.stop.is_set():
            self._heartbeat()
            self._publish(obs, episode, 0)
            chunk = self._receive(episode, timeout_ms=self.period * 1e3)
            if chunk is not None:
                if not self._warm:
                    self._warm_up(obs, chunk)
                return
            now = time.monotonic()
            if now > deadline:
                raise SystemTwoSilent(
                    f"System 2 did not answer within {self.cfg.control.first_chunk_timeout_s:.0f} s "
                    f"(is `hume serve system2` running at {self.cfg.transport.endpoints()[1]}?)"
                )
            if now > next_log:
                log.info("waiting for System 2 (state: %s)", self.system2_state or "not heard from")
                next_log = now + 5.0

    def run_episode(self, episode: int) -> dict:
        self.robot.reset(episode)
        self.policy.reset()
        self.envelope.reset()
        self.trace.new_episode()
        self.chunk = None
        self.schedule.reset(tick=self.tick - 1)
        self._wait_first_chunk(self.robot.observe(), episode)
        self.schedule.reset(tick=self.tick - 1)  # the schedule counts in this node's ticks
        if self.chunk is not None:  # the chunk that ended the wait is the first one followed
            self.schedule.land(chunk_from_wire(self.chunk), self.chunk.fields["tick"])
        holding, held_since, step = False, 0, 0
        next_t = previous_start = None
        while not self.stop.is_set() and not self.robot.done:
            self._heartbeat()
            if next_t is not None and self.cfg.control.realtime:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            start = time.monotonic()
            obs = self.robot.observe()
            self._check_watchdog()
            t0 = time.monotonic()  # observation in hand
            self._obs_times[self.tick] = t0
            self._obs_times.pop(self.tick - 4 * self.schedule.cfg.chunk_size, None)
            self.realtime.enter()
            chunk = self._receive(episode)
            if chunk is not None:
                self.schedule.land(chunk_from_wire(chunk), chunk.fields["tick"])
            answer = self.refiner.poll()
            if answer is not None:
                self._take_answer(answer)
            flight = self.schedule.in_flight
            if flight is not None and self.tick == flight.tick + self.lead and self.refiner.busy:
                self.refine_late += 1
                self._log(
                    logging.WARNING,
                    "refine_late",
                    "System 1's refinement for tick %d is not back after %d tick(s): the current plan "
                    "goes on (raise control.refine_lead_ticks, or lower control_hz)",
                    flight.tick,
                    self.lead,
                )
            request = self.schedule.begin(np.asarray(obs[STATE_KEY], np.float32))
            refined = None
            if request is not None:
                if step == 0 or self.lead == 0:
                    # The episode's first plan is waited for, like its first chunk: the clock
                    # starts after it (the robot stands still until then). With refine_ahead
                    # false, every refinement runs here, inside the tick.
                    answer = self.refiner.refine(obs, request, self.schedule.history())
                    self._take_answer(answer)
                    refined = answer.actions
                    if step == 0:
                        start = t0 = time.monotonic()
                else:
                    self.refiner.submit(obs, request, self.schedule.history())
            planned, kind = self.schedule.end(refined)
            refined_now = kind == "refined"
            if kind != "hold":
                action, bits = self.envelope.apply(planned, obs[STATE_KEY])
                age, obs_age = self.schedule.age, self.schedule.observation_age
                if holding:
                    log.info("chunks are back: resumed control after %d held ticks", self.tick - held_since)
                    holding = False
            else:
                action, bits, age, obs_age = self.envelope.hold(), 0, -1, -1
                if not holding:
                    last = self.chunk.fields["tick"] if self.chunk is not None else None
                    log.warning(
                        "no valid plan (last chunk answered tick %s, now tick %d, TTL %d steps): holding",
                        last,
                        self.tick,
                        self.ttl,
                    )
                    holding, held_since = True, self.tick
                    self.holds += 1
                self.hold_ticks += 1
            acted = time.monotonic()
            tick_ms = (acted - t0) * 1e3  # the policy's share: observation in hand -> action out
            self.realtime.leave()
            self.robot.act(action)
            done = time.monotonic()
            # Published once this tick's plan is made: the committed actions it carries include it.
            self._publish(obs, episode, step)
            total_ms = (done - start) * 1e3
            period_ms = (start - previous_start) * 1e3 if previous_start is not None else 0.0
            obs_age_ms = (acted - self._obs_times[self.tick - obs_age]) * 1e3 if obs_age >= 0 else -1.0
            self._count_overrun(tick_ms, total_ms)
            self.trace.add(
                self.tick,
                episode,
                step,
                round(tick_ms, 3),
                round(total_ms, 3),
                round(period_ms, 3),
                round((done - acted) * 1e3 + (t0 - start) * 1e3, 3),
                age,
                obs_age,
                round(obs_age_ms, 3),
                int(age < 0),
                int(refined_now),
                int(self.schedule.chunk_switch),
                bits,
                action=action,
            )
            if self.video is not None:  # the observation this tick decided on, marked with what it did
                self.video.append(episode_frame(obs, step, episode, kind, self.schedule.chunk_switch))
            self._save_summary()
            self.tick += 1
            step += 1
            previous_start = start
            # The next tick's time; after an overrun the clock moves on from now (no burst).
            next_t = start + self.period if next_t is None else next_t + self.period
            next_t = max(next_t, time.monotonic()) if total_ms > self.period * 1e3 else next_t
        result = {
            "episode": episode,
            "success": bool(self.robot.success),
            "steps": step,
            **episode_record(*self.trace.switch_changes()),
        }
        if self.stop.is_set():
            result["interrupted"] = True
        for key in ("task_id", "init_state"):
            if hasattr(self.robot, key):
                result[key] = getattr(self.robot, key)
        outcome = "success" if result["success"] else "interrupted" if self.stop.is_set() else "no success"
        log.info("episode %d: %s after %d steps", episode, outcome, step)
        self._say_rate()
        return result

    def _check_watchdog(self) -> None:
        """The robot's driver held the robot by itself (this loop was silent for robot.watchdog_s):
        the envelope's next action ramps from that rest, not from the action sent before."""
        held = getattr(self.robot, "watchdog_holds", 0)
        if held > self.watchdog_holds:
            self.watchdog_holds = held
            self.envelope.hold()
            log.warning(
                "the robot's driver held the robot by itself (no command for %.2f s, robot.watchdog_s): "
                "control resumes from rest",
                self.cfg.robot.watchdog_s,
            )

    def _count_overrun(self, tick_ms: float, total_ms: float) -> None:
        period_ms = self.period * 1e3
        if tick_ms > period_ms:
            self.policy_overruns += 1
        if total_ms > period_ms:
            self.overruns += 1
            self._log(
                logging.WARNING,
                "overrun",
                "tick %d took %.1f ms of its %.1f ms period (policy %.1f ms, robot %.1f ms): %s",
                self.tick,
                total_ms,
                period_ms,
                tick_ms,
                total_ms - tick_ms,
                "the robot or simulator is slower than real time"
                if tick_ms <= period_ms
                else "the policy's share ran past the period",
            )

    def _say_rate(self) -> None:
        """Say so when the loop did not keep control_hz (a simulator slower than real time)."""
        periods = [r[self.trace.columns.index("period_ms")] for r in self.trace.rows[1:]]
        if not periods or not self.cfg.control.realtime:
            return
        rate = 1e3 / float(np.mean(periods))
        if rate < 0.95 * self.cfg.control.control_hz:
            log.warning(
                "the control loop ran at %.1f Hz, not %.1f Hz: %d of %d ticks overran their period "
                "(robot/simulator step p50 %.0f ms)",
                rate,
                self.cfg.control.control_hz,
                self.overruns,
                self.tick,
                float(np.median([r[self.trace.columns.index("sim_step_ms")] for r in self.trace.rows])),
            )

    def _save_summary(self, force: bool = False) -> None:
        """system1.json, rewritten at most every FLUSH_S (atomically): a crash loses at most that."""
        now = time.monotonic()
        if self.output is None or (now < self._next_save and not force):
            return
        self._next_save = now + FLUSH_S
        path = self.output / "system1.json"
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(self.summary(), indent=2))
        os.replace(tmp, path)

    def run(self, episodes: int) -> list[dict]:
        for episode in range(episodes):
            if self.stop.is_set():
                break
            self.episodes.append(self.run_episode(episode))
        return self.episodes

    def summary(self) -> dict:
        return {
            "model_id": self.model_id,
            "control_hz": self.cfg.control.control_hz,
            "chunk_ttl_steps": self.ttl,
            "s1_replan_steps": self.replan,
            "episodes": self.episodes,
            "ticks": self.tick,
            "chunks_received": self.chunks_received,
            "stale_chunks": self.stale_chunks,
            "holds": self.holds,
            "hold_ticks": self.hold_ticks,
            "refine_errors": self.refine_errors,
            "refine_ahead": self.cfg.control.refine_ahead,
            "refine_lead_ticks": self.lead,
            "refine_late": self.refine_late,
            "refine_ms": [round(x, 3) for x in self.refine_ms],
            "overruns": self.overruns,
            "policy_overruns": self.policy_overruns,
            "system2_errors": self.system2_errors,
            "watchdog_s": self.cfg.robot.watchdog_s,
            "watchdog_holds": self.watchdog_holds,
            "envelope": self.envelope.summary(),
            "think_ms": [round(x, 3) for x in self.think_ms],
            "interrupted": self.stop.is_set(),
            **self.inbox.stats(),
        }

    def close(self) -> None:
        self._heartbeat("stopping")
        self.realtime.leave()
        self.refiner.close()
        self._log.flush()
        self.envelope.flush_log()
        self.transport.close()
        if self.video is not None:
            self.video.close()
        self.trace.close()
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            self._save_summary(force=True)


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
