"""The safe action a robot takes when it has nothing valid to execute: no end-effector motion,
the gripper keeps its last command. Used by the System-1 node when System 2 stalls and by the
evaluator's virtual-clock replay of the same behaviour."""

from __future__ import annotations

import numpy as np

OPEN_GRIPPER = -1.0  # gripper command: -1 open, +1 closed


def hold_action(gripper: float, action_dim: int) -> np.ndarray:
    """[arm dims..., gripper]: zeros for the arm, `gripper` last; `action_dim` is the robot's (its
    config's), whatever the robot."""
    action = np.zeros(action_dim, dtype=np.float32)
    action[-1] = gripper
    return action
