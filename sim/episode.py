"""One LIBERO episode: reset to an official initial state, run a policy until success or the limit."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

from hume.constants import IMAGE_PREFIX, STATE_KEY
from sim.libero_env import LiberoEnv
from sim.policies import Policy


@dataclass
class EpisodeResult:
    success: bool
    steps: int  # policy steps taken (the no-op wait not counted)
    seconds: float  # wall time: simulator + policy
    final_state: list[float] = field(default_factory=list)  # robot state at the end: a reproducibility check
    frames: list[np.ndarray] = field(default_factory=list)  # side-by-side camera views, if recorded


def video_frame(obs: dict) -> np.ndarray:
    """All camera images of an observation side by side (what a video of the episode shows)."""
    images = [v for k, v in sorted(obs.items()) if k.startswith(IMAGE_PREFIX)]
    return np.concatenate(images, axis=1)


def reset_policy(policy: Policy, seed: int | None) -> None:
    """`policy.reset(seed=...)` where the policy takes a seed (HumePolicy seeds its noise with it)."""
    if seed is not None and "seed" in inspect.signature(policy.reset).parameters:
        policy.reset(seed=seed)
    else:
        policy.reset()


def run_episode(
    env: LiberoEnv, policy: Policy, init_state: int, seed: int | None = None, record: bool = False
) -> EpisodeResult:
    """Run `policy` from official initial state `init_state` for at most `env.max_steps` steps."""
    t0 = time.monotonic()
    obs = env.reset(init_state)
    reset_policy(policy, seed)
    frames = [video_frame(obs)] if record else []
    success = False
    while not success and not env.truncated:
        obs, success = env.step(policy.select_action(obs))
        if record:
            frames.append(video_frame(obs))
    return EpisodeResult(
        success=success,
        steps=env.steps,
        seconds=time.monotonic() - t0,
        final_state=[round(float(x), 5) for x in obs[STATE_KEY]],
        frames=frames,
    )
