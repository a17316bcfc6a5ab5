"""System-2 latency on a virtual clock: the `async` evaluation mode, deterministic and CPU-independent.

Time is counted in control steps. System 2 starts a think on the observation of step t; its chunk
becomes visible at step t + latency, tagged with t. Every step, System 1 refines the newest
visible chunk on the current observation at offset (now - t), as the System-1 node does. Before
the first chunk lands, and after the last one runs out, the robot holds still.
"""

from __future__ import annotations

import math

import numpy as np

from hume.policy.hold import hold_action
from sim.eval_config import LatencyConfig


class LatencyModel:
    """Latency of each think in control steps: fixed, or drawn (seeded) from measured think times."""

    def __init__(self, cfg: LatencyConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)

    def sample(self) -> int:
        if not self.cfg.ms_samples:
            return self.cfg.steps
        ms = float(self.rng.choice(self.cfg.ms_samples))
        # The chunk can only be used at the first control step after it exists.
        return math.ceil(ms * self.cfg.control_hz / 1000.0 - 1e-9)


class VirtualClockPolicy:
    """A Hume policy (think/refine halves) behind `select_action`, with System 2's latency replayed.

    One System-2 worker thinking back to back, as the System-2 node does: a new think starts on
    the newest observation the step its predecessor lands (`think_every` > 0 additionally spaces
    think starts at least that many steps apart). System 1 refines when a new chunk lands, when
    its refined actions run out, and every `s1_replan_steps` steps.
    """

    def __init__(self, policy, latency: LatencyModel, think_every: int = 0):
        cfg = policy.config
        self.policy = policy
        self.latency = latency
        self.chunk_size = cfg.chunk_size
        self.horizon = cfg.s1_horizon
        self.refine_every = cfg.s1_replan_steps
        self.think_every = max(1, think_every)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; with `seed`, the policy's noise and the latency draws depend only on it."""
        if seed is None:
            self.policy.reset()
        else:
            self.policy.reset(seed=seed)
            self.latency.rng = np.random.default_rng(seed)
        self.t = 0
        self.chunk = None
        self.chunk_step = 0
        self.pending = None  # (ready_step, observation_step, chunk)
        self.next_think = 0
        self.queue: list[np.ndarray] = []
        self.since_refine = 0
        self.gripper = -1.0
        self.thinks = 0
        self.holds = 0
        self.ages: list[int] = []

    def _land(self) -> bool:
        if self.pending is None or self.pending[0] > self.t:
            return False
        _, self.chunk_step, self.chunk = self.pending
        self.pending = None
        return True

    def _maybe_think(self, obs: dict) -> None:
        if self.pending is not None or self.t < self.next_think:
            return
        chunk = self.policy.think(obs)
        ready = self.t + self.latency.sample()
        self.pending = (ready, self.t, chunk)
        self.next_think = max(self.t + self.think_every, ready)
        self.thinks += 1

    def _observe(self, obs: dict) -> None:
        # System 1 keeps a history of robot states, one per tick, refined or not.
        observe = getattr(self.policy, "observe", None)
        if callable(observe):
            observe(obs)

    def _hold(self, obs: dict) -> np.ndarray:
        self._observe(obs)
        self.holds += 1
        self.t += 1
        return hold_action(self.gripper)

    def select_action(self, obs: dict) -> np.ndarray:
        landed = self._land()
        self._maybe_think(obs)
        landed = self._land() or landed  # a zero-latency think lands at once
        if self.chunk is None:
            return self._hold(obs)
        offset = self.t - self.chunk_step
        if offset >= self.chunk_size:
            return self._hold(obs)
        if landed or not self.queue or self.since_refine >= self.refine_every:
            # Near the chunk's end System 1 refines its last h steps and skips the ones past.
            start = min(offset, self.chunk_size - self.horizon)
            actions = np.asarray(self.policy.refine(obs, self.chunk, start), dtype=np.float32)
            self.queue = list(actions[offset - start :])
            self.since_refine = 0
        else:
            self._observe(obs)
        action = self.queue.pop(0)
        self.since_refine += 1
        self.gripper = float(action[6])
        self.ages.append(offset)
        self.t += 1
        return action

    def episode_stats(self) -> dict:
        return {
            "thinks": self.thinks,
            "holds": self.holds,
            "chunk_age_mean": float(np.mean(self.ages)) if self.ages else None,
            "chunk_age_max": int(max(self.ages)) if self.ages else None,
        }
