"""`hume collect` configuration (import-light: no torch, no simulator)."""

from __future__ import annotations

import dataclasses

from hume.config import ConfigError
from sim.experts.base import ExpertNoise


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    # A LIBERO suite (libero_spatial, libero_object, libero_goal, ...).
    suite: str = "libero_object"
    # Task ids or names to record; empty = every task of the suite that an expert handles.
    tasks: list[str] = dataclasses.field(default_factory=list)
    # Episodes per task; episode k starts from official initial state (first_init_state + k) mod 50.
    episodes_per_task: int = 10
    first_init_state: int = 0
    # Steps per episode; 0 = the suite's standard limit (220/280/300/520).
    max_steps: int = 0
    # Render and record both cameras (agentview, wrist) at this square resolution. cameras=false
    # records state and actions only (~10x faster; for measuring the experts).
    cameras: bool = True
    image_size: int = 128
    # Multisampling, shadows and reflections off: ~2.4x faster rendering, slightly different pixels.
    fast_render: bool = True
    noise: ExpertNoise = dataclasses.field(default_factory=ExpertNoise)
    # Episode e of task t is seeded from (seed, t, e): the same whatever the worker or the order.
    seed: int = 0
    # Worker processes, each with its own simulator.
    workers: int = 1
    # Frames per second written to the dataset (LIBERO's control rate).
    fps: int = 20
    output: str = "outputs/collect"

    def validate(self) -> None:
        for name in ("episodes_per_task", "workers", "image_size", "fps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("first_init_state", "max_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        try:
            self.noise.validate()
        except ValueError as e:
            raise ConfigError(f"noise: {e}") from None
