"""A robot without a simulator: the end effectors integrate the commanded deltas, cameras are drawn.

It costs microseconds per step, so it exercises the runtime (messaging, alignment, holds,
failures) at a true control rate, and it is the smallest example of a robot adapter. Any action
width: `arms` arms of `arm_dof` delta dims each, every arm's gripper command after its deltas
(one arm of 6: LIBERO's 7-dim layout; two arms of 6: a 14-dim bimanual robot; one arm of 5: 6 dims).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY

# LIBERO's OSC controller moves about this far per unit action per step.
METRES_PER_UNIT = 0.05
# This robot takes actions in [-1, 1] (eef deltas, gripper) like LIBERO's controller, and, unlike
# it, changes its commanded motion by at most this much per step: an arm with finite acceleration.
MAX_DELTA = 0.5
FINGER = 0.04  # each finger's opening (the state's last two dims per arm) when the gripper is open


class KinematicRobot:
    def __init__(
        self,
        image_size: int = 64,
        max_steps: int = 200,
        seed: int = 0,
        task: str = "move the gripper",
        arms: int = 1,
        arm_dof: int = 6,
    ):
        if arms < 1 or arm_dof < 1:
            raise ValueError(f"a kinematic robot has >= 1 arm of >= 1 dof, got {arms} x {arm_dof}")
        self.image_size, self.max_steps, self.task = image_size, max_steps, task
        self.arms, self.arm_dof = arms, arm_dof
        self.action_dim = arms * (arm_dof + 1)
        self.rng = np.random.default_rng(seed)
        self.done = self.success = False
        self.steps = 0
        self.pose = np.zeros((arms, arm_dof), dtype=np.float32)
        self.gripper = np.full(arms, -1.0)

    def action_envelope(self) -> dict:
        """[-1, 1] and MAX_DELTA on every dim but the last (the arms' deltas and, for more than one
        arm, the other grippers' commands, for which 0, the hold, leaves the gripper as it is)."""
        envelope: dict[str, Any] = {
            "low": [-1.0] * (self.action_dim - 1),
            "high": [1.0] * (self.action_dim - 1),
            "max_delta": [MAX_DELTA] * (self.action_dim - 1),
            "gripper": [-1.0, 1.0],
        }
        if self.arm_dof >= 3:
            # The workspace of the first arm's end effector (the action dims that move it come
            # first): what the cameras see (the drawn marker leaves the image beyond ±0.5 m).
            envelope["workspace"] = {
                "state_dims": [0, 1, 2],
                "low": [-0.5] * 3,
                "high": [0.5] * 3,
                "per_unit": [METRES_PER_UNIT] * 3,
            }
        return envelope

    def reset(self, episode: int) -> None:
        start = np.zeros((self.arms, self.arm_dof))
        start[:, : min(3, self.arm_dof)] = self.rng.uniform(-0.1, 0.1, (self.arms, min(3, self.arm_dof)))
        self.pose = start.astype(np.float32)
        self.gripper = np.full(self.arms, -1.0)
        self.steps = 0
        self.done = self.success = False

    def _camera(self, offset: int) -> np.ndarray:
        img = np.full((self.image_size, self.image_size, 3), 40 + offset, dtype=np.uint8)
        for pose, gripper in zip(self.pose, self.gripper, strict=True):
            xy = np.resize(pose, 2)  # an arm of one dof moves along the diagonal
            px = np.clip(((xy + 0.5) * self.image_size).astype(int), 0, self.image_size - 1)
            img[max(px[1] - 2, 0) : px[1] + 3, max(px[0] - 2, 0) : px[0] + 3] = (
                255,
                128 if gripper > 0 else 0,
                0,
            )
        return img

    def observe(self) -> dict:
        finger = np.where(self.gripper < 0, FINGER, 0.0)
        state = np.concatenate([self.pose, finger[:, None], -finger[:, None]], axis=1).reshape(-1)
        return {
            IMAGE_KEY.format("agentview"): self._camera(0),
            IMAGE_KEY.format("wrist"): self._camera(20),
            STATE_KEY: state.astype(np.float32),
            TASK_KEY: self.task,
        }

    def act(self, action: np.ndarray) -> None:
        action = np.asarray(action, dtype=np.float32).reshape(self.arms, self.arm_dof + 1)
        self.pose = (self.pose + METRES_PER_UNIT * np.clip(action[:, :-1], -1, 1)).astype(np.float32)
        # A gripper command of 0 leaves the gripper as it is.
        self.gripper = np.where(action[:, -1] != 0, np.sign(action[:, -1]), self.gripper)
        self.steps += 1
        self.done = self.steps >= self.max_steps

    def close(self) -> None:
        self.done = True
