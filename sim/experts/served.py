"""The simulator's own scripted expert, asked through the env server (Meta-World ships one per
task), with our noise model on top so that demonstrations vary and a known share fail.

Noise (ExpertNoise): `action_std` adds Gaussian noise to the motion dims (all but the gripper);
`speed_range` scales the motion dims by a factor drawn per episode; `mistake_prob` is the chance
per episode that the expert freezes (zero motion, gripper as it was) from a step drawn in
MISTAKE_STEPS on, so that the episode fails unless it succeeded before. `waypoint_jitter` has no
meaning here (the expert's waypoints are its own) and is left unused.
"""

from __future__ import annotations

import numpy as np

from sim.experts.base import ExpertNoise

MISTAKE_STEPS = (10, 40)


class ServedExpert:
    def __init__(self, env, noise: ExpertNoise | None = None, seed: int = 0):
        self.env = env
        self.noise = noise or ExpertNoise()
        self.noise.validate()
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Draw this episode's speed and mistake (call after the env's reset)."""
        self.speed = float(self.rng.uniform(*self.noise.speed_range))
        mistake = self.rng.random() < self.noise.mistake_prob
        self.freeze_at = int(self.rng.integers(*MISTAKE_STEPS)) if mistake else None
        self.t = 0
        self.last: np.ndarray | None = None

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        self.t += 1
        if self.freeze_at is not None and self.t > self.freeze_at and self.last is not None:
            action = np.zeros_like(self.last)
            action[-1] = self.last[-1]
            return action
        action = np.asarray(self.env.expert_action(), np.float64)
        action[:-1] *= self.speed
        if self.noise.action_std > 0:
            action[:-1] += self.rng.normal(0, self.noise.action_std, len(action) - 1)
        action = np.clip(action, -1, 1).astype(np.float32)
        self.last = action
        return action
