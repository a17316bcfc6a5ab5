"""Policy classes that are not HumePolicy, written from docs/deployment.md ("Your own policy class")
alone: what a user plugs in with `--policy.type=import --policy.path=plugin_policy:ReachPolicy`.

Their checkpoint folder holds only config.json with the fields the nodes read. ReachPolicy's System
2 (`think`) plans the same chunk every time, a fixed reach `pattern(action_dim)`; its System 1
(`refine`) returns the chunk's slice unchanged, so a test knows every action a robot should get.
WildPolicy answers with actions far outside any envelope, and a NaN, to test what stops them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hume.policy.chunk import Chunk


@dataclass(frozen=True)
class System1Settings:
    state_history: int = 1


@dataclass(frozen=True)
class ReachConfig:
    action_dim: int
    state_dim: int
    chunk_size: int = 8
    s1_horizon: int = 4
    s1_replan_steps: int = 4
    cameras: tuple[str, ...] = ("agentview", "wrist")
    system1: System1Settings = field(default_factory=System1Settings)


def write_checkpoint(folder: Path, action_dim: int, state_dim: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"action_dim": action_dim, "state_dim": state_dim}))
    return folder


def pattern(action_dim: int) -> np.ndarray:
    """Small arm deltas of alternating sign (within any ramp from rest), the last gripper closed."""
    j = np.arange(action_dim - 1)
    return np.append(0.05 * (1 + j % 4) * (-1.0) ** j, 1.0).astype(np.float32)


class ReachPolicy:
    def __init__(self, config: ReachConfig):
        self.config = config
        self.thinks = 0

    @classmethod
    def from_pretrained(cls, path: str) -> ReachPolicy:
        return cls(ReachConfig(**json.loads((Path(path) / "config.json").read_text())))

    def reset(self) -> None:
        self.thinks = 0

    def plan(self) -> np.ndarray:
        return np.tile(pattern(self.config.action_dim), (self.config.chunk_size, 1))

    def think(self, obs: dict, committed: np.ndarray | None = None, delay: int = 0) -> Chunk:
        self.thinks += 1
        return Chunk(actions=self.plan(), noise_level=0.0, values=np.zeros(1, np.float32), index=0)

    def refine(
        self,
        obs: dict,
        chunk: Chunk,
        start: int,
        history: np.ndarray | None = None,
        continues: np.ndarray | None = None,
    ) -> np.ndarray:
        return np.array(chunk.actions[start : start + self.config.s1_horizon])


class WildPolicy(ReachPolicy):
    """Answers with arm deltas of ±5 (bounds are ±1), flipping sign every step, and one NaN."""

    def plan(self) -> np.ndarray:
        actions = 5.0 * np.where(np.arange(self.config.chunk_size)[:, None] % 2, -1.0, 1.0)
        actions = np.repeat(actions, self.config.action_dim, axis=1).astype(np.float32)
        actions[1, 0] = np.nan
        return actions
