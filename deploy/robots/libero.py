"""A simulated suite as a robot adapter (base.py): LIBERO in this process (sim/libero_env.py), or
Meta-World in its own behind the env server (sim/remote/), through the evaluator's holder."""

from __future__ import annotations

import numpy as np

from hume.runtime.config import RobotConfig
from sim.jobs import TaskEnv


class LiberoRobot:
    """A suite's tasks (robot.kind libero or metaworld, robot.suite); episode i runs task
    `tasks[i % n]` (or `task` alone) from official initial state `init_state + i // n`, on the
    evaluator's one-simulator-per-current-task holder."""

    def __init__(self, cfg: RobotConfig, seed: int = 0):
        self.cfg = cfg
        self.tasks = list(cfg.tasks) or [cfg.task]
        self.sim = TaskEnv(
            cfg.suite,
            image_size=cfg.image_size,
            fast_render=cfg.fast_render,
            max_steps=cfg.max_steps or None,
            seed=seed,
        )
        self.env = self.sim.get(self.tasks[0])
        self.task_id = self.env.task.task_id
        self.init_state = cfg.init_state
        self.done = False
        self.success = False
        self._obs: dict = {}

    def action_envelope(self) -> dict:
        """The limits of the simulator's controller (LIBERO: robosuite's action_spec, OSC_POSE takes
        [-1, 1] per arm dim, the gripper [-1, 1]; Meta-World: [-1, 1] per dim). It takes any action
        within them at every step, so the rate limit is their span: the envelope then changes
        nothing the simulator would not clip itself."""
        low, high = self.env.action_limits
        return {
            "low": low[:-1].tolist(),
            "high": high[:-1].tolist(),
            "max_delta": (high[:-1] - low[:-1]).tolist(),
            "gripper": [float(low[-1]), float(high[-1])],
        }

    def reset(self, episode: int) -> None:
        self.env = self.sim.get(self.tasks[episode % len(self.tasks)])
        self.task_id = self.env.task.task_id
        self.init_state = self.cfg.init_state + episode // len(self.tasks)
        self._obs = self.env.reset(self.init_state)
        self.done = self.success = False

    def observe(self) -> dict:
        return self._obs

    def act(self, action: np.ndarray) -> None:
        self._obs, self.success = self.env.step(action)
        self.done = self.success or self.env.truncated

    def close(self) -> None:
        self.sim.close()
