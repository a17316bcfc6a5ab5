"""Policies the evaluator can run besides a Hume checkpoint, through the same small interface."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hume.constants import ACTION_KEY, TASK_INDEX_KEY
from hume.policy.hold import hold_action


class Policy(Protocol):
    """What the evaluator needs from a policy (docs/architecture.md, "Shared conventions")."""

    def reset(self) -> None: ...  # may take `seed=`: the evaluator then passes each episode's seed

    def select_action(self, obs: dict) -> np.ndarray: ...


# Optional: `begin_episode(task: LiberoTask, init_state: int, seed: int)`, called by the evaluator
# before each episode's reset, for policies whose behaviour depends on which episode it is.


class ReplayPolicy:
    """Plays back recorded actions, one per step, ignoring observations.

    Replaying a demo from the initial state it was recorded in checks that the demo is valid:
    the simulator is deterministic, so a successful recording succeeds again. When the recording
    runs out the robot holds still with the last gripper command. Actions are `[arm dims...,
    gripper]` of any width (7 in LIBERO, 4 in Meta-World).
    """

    def __init__(self, actions: np.ndarray):
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] < 2 or len(actions) == 0:
            raise ValueError(f"recorded actions must be [T, action_dim] with T >= 1, got {actions.shape}")
        self.actions = actions
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def select_action(self, obs: dict) -> np.ndarray:
        if self.t < len(self.actions):
            action = self.actions[self.t]
        else:
            action = hold_action(self.actions[-1][-1], self.actions.shape[1])
        self.t += 1
        return action


class DatasetReplayPolicy(ReplayPolicy):
    """Replays a LeRobot dataset's recorded episodes: for each evaluated episode, the dataset
    episode of the same instruction recorded from the same initial state (episode metadata
    `init_state`; without it, the task's k-th episode is taken as recorded from state k)."""

    def __init__(self, root: str):
        from hume.data.reader import LeRobotDataset

        ds = LeRobotDataset(root)
        self.root = root
        self.by_task: dict[str, list[tuple[int | None, np.ndarray]]] = {}
        for k, row in enumerate(ds.episodes):
            frames = ds.episode_range(k)
            task = ds.tasks[int(ds.columns[TASK_INDEX_KEY][frames.start])]
            actions = ds.columns[ACTION_KEY][frames.start : frames.stop]
            self.by_task.setdefault(task, []).append((row.get("init_state"), actions))
        self.actions = np.zeros((0, 0), dtype=np.float32)
        self.t = 0

    def begin_episode(self, task, init_state: int, seed: int) -> None:
        episodes = self.by_task.get(task.instruction)
        if not episodes:
            raise ValueError(f"dataset {self.root} has no episode of task {task.instruction!r}")
        matches = [a for s, a in episodes if s == init_state]
        if not matches and all(s is None for s, _ in episodes) and init_state < len(episodes):
            matches = [episodes[init_state][1]]
        if not matches:
            raise ValueError(
                f"dataset {self.root} has no episode of {task.instruction!r} from initial state {init_state}"
            )
        self.actions = np.asarray(matches[0], dtype=np.float32)
