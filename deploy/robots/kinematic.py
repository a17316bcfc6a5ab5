"""A robot without a simulator: the end effector integrates the commanded deltas, cameras are drawn.

It costs microseconds per step, so it exercises the runtime (messaging, alignment, holds,
failures) at a true control rate, and it is the smallest example of a robot adapter.
"""

from __future__ import annotations

import numpy as np

from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY

# LIBERO's OSC controller moves about this far per unit action per step.
METRES_PER_UNIT = 0.05
# This robot takes actions in [-1, 1] (eef deltas, gripper) like LIBERO's controller, and, unlike
# it, changes its commanded motion by at most this much per step: an arm with finite acceleration.
MAX_DELTA = 0.5


class KinematicRobot:
    def __init__(
        self, image_size: int = 64, max_steps: int = 200, seed: int = 0, task: str = "move the gripper"
    ):
        self.image_size, self.max_steps, self.task = image_size, max_steps, task
        self.rng = np.random.default_rng(seed)
        self.done = self.success = False
        self.steps = 0
        self.pose = np.zeros(6, dtype=np.float32)
        self.gripper = -1.0

    def action_envelope(self) -> dict:
        # The workspace: what the cameras see (the drawn marker leaves the image beyond ±0.5 m).
        workspace = {
            "state_dims": [0, 1, 2],
            "low": [-0.5] * 3,
            "high": [0.5] * 3,
            "per_unit": [METRES_PER_UNIT] * 3,
        }
        return {
            "low": [-1.0] * 6,
            "high": [1.0] * 6,
            "max_delta": [MAX_DELTA] * 6,
            "gripper": [-1.0, 1.0],
            "workspace": workspace,
        }

    def reset(self, episode: int) -> None:
        self.pose = np.concatenate([self.rng.uniform(-0.1, 0.1, 3), np.zeros(3)]).astype(np.float32)
        self.gripper = -1.0
        self.steps = 0
        self.done = self.success = False

    def _camera(self, offset: int) -> np.ndarray:
        img = np.full((self.image_size, self.image_size, 3), 40 + offset, dtype=np.uint8)
        px = np.clip(((self.pose[:2] + 0.5) * self.image_size).astype(int), 0, self.image_size - 1)
        img[max(px[1] - 2, 0) : px[1] + 3, max(px[0] - 2, 0) : px[0] + 3] = (
            255,
            128 if self.gripper > 0 else 0,
            0,
        )
        return img

    def observe(self) -> dict:
        finger = 0.04 if self.gripper < 0 else 0.0
        state = np.concatenate([self.pose, [finger, -finger]]).astype(np.float32)
        return {
            IMAGE_KEY.format("agentview"): self._camera(0),
            IMAGE_KEY.format("wrist"): self._camera(20),
            STATE_KEY: state,
            TASK_KEY: self.task,
        }

    def act(self, action: np.ndarray) -> None:
        action = np.asarray(action, dtype=np.float32).reshape(7)
        self.pose = (self.pose + METRES_PER_UNIT * np.clip(action[:6], -1, 1)).astype(np.float32)
        self.gripper = float(np.sign(action[6])) or self.gripper
        self.steps += 1
        self.done = self.steps >= self.max_steps

    def close(self) -> None:
        self.done = True
