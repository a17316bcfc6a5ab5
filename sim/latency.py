"""System-2 latency on a virtual clock: the `async` evaluation mode, deterministic and CPU-independent.

Time is counted in control steps. System 2 starts a think on the observation of step t; its chunk
becomes visible at step t + latency, tagged with t, and the control schedule (the System-1 node's)
follows it from offset (now - t). As on the System-1 node, an episode's clock starts once the chunk
for its first observation is there (the robot waits for it, standing still, before step 0); when
chunks stop coming the robot holds.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from hume.constants import STATE_KEY
from hume.policy.chunk import think_record
from hume.policy.delay import DelayEstimator, steps_for
from hume.policy.draws import Draws
from hume.policy.schedule import ControlSchedule, ScheduleConfig, sends_committed
from hume.policy.switches import episode_record
from sim.eval_config import LatencyConfig


class LatencyModel:
    """Latency of each think in control steps: fixed, or drawn (seeded) from measured think times."""

    def __init__(self, cfg: LatencyConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)

    def sample(self) -> int:
        if not self.cfg.ms_samples:
            return self.cfg.steps
        return steps_for(float(self.rng.choice(self.cfg.ms_samples)), self.cfg.control_hz)


class VirtualClockPolicy:
    """A Hume policy (think/refine halves) behind `select_action`, with System 2's latency replayed.

    One System-2 worker thinking back to back, as the System-2 node does: a new think starts on
    the newest observation the step its predecessor lands (`think_every` > 0 additionally spaces
    think starts at least that many steps apart). Everything else (which chunk, which offset, when
    System 1 refines, holds, its state history) is the control schedule's, the same object the
    System-1 node and the synchronous loop drive (hume/policy/schedule.py).
    """

    def __init__(self, policy, latency: LatencyModel, think_every: int = 0, refine_lead: int = 0):
        self.policy = policy
        self.latency = latency
        self.think_every = max(1, think_every)
        self.schedule = ControlSchedule(ScheduleConfig.of(policy.config, lead=refine_lead))
        self.delay = DelayEstimator()  # as the System-2 node estimates it, from the thinks so far
        self.draws = Draws.seeded(0)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; with `seed`, the thinks' noise and choices and the latency draws depend
        only on it."""
        if seed is not None:
            self.draws = Draws.seeded(seed)
            self.latency.rng = np.random.default_rng(seed)
        self.schedule.reset()
        self.delay.reset()
        self.pending: tuple[int, int, Any, int] | None = (
            None  # (ready_step, observation_step, chunk, latency)
        )
        self.next_think = 0
        self.thinks: list[tuple[np.ndarray, int]] = []  # every think's (values, index), for episode_stats
        self.holds = 0
        self.ages: list[int] = []

    def _land(self, now: int) -> None:
        if self.pending is not None and self.pending[0] <= now:
            _, observed, chunk, latency = self.pending
            self.pending = None
            self.schedule.land(chunk, observed)
            if sends_committed(self.policy.config):
                self.delay.add(latency)  # what the System-2 node learns from its think time

    def select_action(self, obs: dict) -> np.ndarray:
        now = self.schedule.tick + 1
        self._land(now)
        latency = None
        if self.pending is None and now >= self.next_think:
            latency = self.latency.sample()
            if latency == 0 or not self.thinks:
                # Lands at once, this tick (the episode's first chunk is waited for before its
                # clock starts, as the System-1 node waits).
                self._think(obs, now, latency, ready=now)
                self._land(now)
                latency = None
        request = self.schedule.begin(np.asarray(obs[STATE_KEY], np.float32))
        refined = None
        if request is not None:
            refined = self.policy.refine(
                obs, request.chunk, request.start, self.schedule.history(), continues=request.continues
            )
        # Refined ahead of the tick (lead > 0), the plan takes over `lead` steps later; the
        # episode's first is waited for before the clock starts, as on the System-1 node.
        ahead = request is not None and self.schedule.cfg.lead > 0 and now > 0
        action, kind = self.schedule.end(None if ahead else refined)
        if ahead and request is not None:
            self.schedule.land_plan(request, refined)
        if kind == "hold":
            self.holds += 1
        else:
            self.ages.append(self.schedule.age)
        if latency is not None:
            # After this tick's action, as the System-1 node publishes its observation: the
            # committed actions include the plan System 1 just made.
            self._think(obs, now, latency, ready=now + latency)
        return action

    def needs_images_next(self) -> bool:
        """Whether the next select_action reads the observation's images: System 2 starts a think
        on it, or System 1 refines on it (with whatever chunk lands first). A simulator may skip
        rendering the other steps' cameras (sim/episode.py)."""
        now, pending = self.schedule.tick + 1, self.pending
        lands = pending is not None and pending[0] <= now
        if (pending is None or lands) and now >= self.next_think:
            return True
        schedule = self.schedule
        if pending is not None and lands:
            schedule = copy.copy(schedule)  # land() only rebinds the chunk: the real one stays as is
            schedule.land(pending[2], pending[1])
        return schedule.requests_next()

    def _think(self, obs: dict, now: int, latency: int, ready: int) -> None:
        if sends_committed(self.policy.config):
            committed = self.schedule.committed(self.policy.robot_actions, now)
            chunk = self.policy.think(obs, committed=committed, delay=self.delay.steps, draws=self.draws)
        else:
            chunk = self.policy.think(obs, draws=self.draws)
        self.pending = (ready, now, chunk, latency)
        self.next_think = max(now + self.think_every, ready)
        self.thinks.append((chunk.values, chunk.index))

    def episode_stats(self) -> dict:
        return {
            **episode_record(*self.schedule.switch_changes()),
            "thinks": len(self.thinks),
            "holds": self.holds,
            "chunk_age_mean": float(np.mean(self.ages)) if self.ages else None,
            "chunk_age_max": int(max(self.ages)) if self.ages else None,
            **think_record(self.thinks),
        }
