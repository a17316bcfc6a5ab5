"""A simulated suite as a robot adapter (base.py): LIBERO in this process (sim/libero_env.py), or
Meta-World in its own behind the env server (sim/remote/), through the evaluator's holder."""

from __future__ import annotations

import numpy as np

from hume.policy.hold import OPEN_GRIPPER, hold_action
from hume.runtime.config import RobotConfig
from sim.jobs import TaskEnv
from sim.libero_env import LiberoEnv

# The watchdog's hold on LIBERO (hold() below): at most this many simulator steps (1.5 s at
# LIBERO's 20 Hz), ended early once the gripper has moved less than STILL_M in each of STILL_STEPS
# steps in a row (one slow step may be the turn of an overshoot).
HOLD_STEPS = 30
STILL_M = 0.0005
STILL_STEPS = 3


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
        self._gripper = OPEN_GRIPPER  # the last gripper command, which a hold keeps
        self._moved_mm = 0.0  # how far the gripper went in the last commanded step

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
        self._gripper = float(action[-1])
        before = self._eef()
        self._obs, self.success = self.env.step(action)
        self._moved_mm = 1000 * float(np.linalg.norm(self._eef() - before))  # how fast it went
        self.done = self.success or self.env.truncated

    def _eef(self) -> np.ndarray:
        return self.env.eef_position if isinstance(self.env, LiberoEnv) else np.zeros(3)

    def hold(self) -> dict:
        """Stop the arm where it is (the robot driver's watchdog); returns what the hold did, for
        the driver's record.

        The generic hold action (zero delta) is no stop under LIBERO's OSC_POSE controller: each
        step sets the position goal to the current position plus the delta, so a zero delta
        re-targets the arm wherever it has coasted to and only damps it. Measured after 9 steps at
        full speed along x (~12 mm a step): the arm drifts on 31 mm over 10 held steps and still
        moves 1 mm a step. So the hold servoes to the fixed pose the arm had when the hold began
        (LiberoEnv.hold_action), the gripper as last commanded, and steps the simulator until the
        arm is still (HOLD_STEPS at most): a simulator only moves when stepped, and a robot's
        controller would go on holding after the driver's one call. Measured on the same moves:
        it ends 15-22 steps later, the arm 0.2-6 mm from where the hold began, under 0.5 mm a step.
        """
        if not isinstance(self.env, LiberoEnv):  # Meta-World, robosuite 1.5: behind the env server
            self.act(hold_action(self._gripper, len(self.env.action_limits[0])))
            return {}
        target, quat = self.env.eef_position.copy(), self.env.eef_quat.copy()
        last, still, steps = target, 0, 0
        while steps < HOLD_STEPS and still < STILL_STEPS:
            self._obs, self.success = self.env.step(self.env.hold_action(target, quat, self._gripper))
            moved = float(np.linalg.norm(self.env.eef_position - last))
            last, steps = self.env.eef_position.copy(), steps + 1
            still = still + 1 if moved < STILL_M else 0
        self.done = self.success or self.env.truncated
        return {
            "eef_step_before_mm": round(self._moved_mm, 3),
            "hold_steps": steps,
            "eef_off_mm": round(1000 * float(np.linalg.norm(last - target)), 2),
            "eef_last_step_mm": round(1000 * moved, 3),
        }

    def close(self) -> None:
        self.sim.close()
