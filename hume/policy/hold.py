"""The safe action a robot takes when it has nothing valid to execute: no end-effector motion,
the gripper keeps its last command. Used by the System-1 node when System 2 stalls and by the
evaluator's virtual-clock replay of the same behaviour."""

from __future__ import annotations

import numpy as np

ACTION_DIM = 7  # eef delta position 3, delta axis-angle 3, gripper 1
OPEN_GRIPPER = -1.0  # gripper command: -1 open, +1 closed


def hold_action(gripper: float = OPEN_GRIPPER, action_dim: int = ACTION_DIM) -> np.ndarray:
    """[arm dims..., gripper]: zeros for the arm, `gripper` last."""
    action = np.zeros(action_dim, dtype=np.float32)
    action[-1] = gripper
    return action
