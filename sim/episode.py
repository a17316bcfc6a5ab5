"""One LIBERO episode: reset to an official initial state, run a policy until success or the limit."""

from __future__ import annotations

import inspect
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from hume.constants import STATE_KEY
from hume.data.episode_frame import episode_frame
from hume.data.video import VideoWriter
from sim.libero_env import LiberoEnv
from sim.policies import Policy

CONTROL_HZ = 20  # LIBERO's controller rate: the video plays in real time


@dataclass
class EpisodeResult:
    success: bool
    steps: int  # policy steps taken (the no-op wait not counted)
    seconds: float  # wall time: simulator + policy
    final_state: list[float] = field(default_factory=list)  # robot state at the end: a reproducibility check


def step_marks(policy: Policy) -> dict:
    """What the policy's control schedule did on the step just decided, for the video's banner;
    nothing for a policy without one (a scripted expert, a replay)."""
    schedule = getattr(policy, "schedule", None)
    if schedule is None or not schedule.executed:
        return {}
    _, kind, chunk_switch = schedule.executed[-1]
    return {"kind": kind, "chunk_switch": chunk_switch}


def needs_images_next(policy: Policy) -> bool:
    """Whether the policy reads the next observation's images (True unless it says otherwise: a
    SyncLoop reads them only where it thinks or refines, 1 step in 8 with the default schedule)."""
    needs = getattr(policy, "needs_images_next", None)
    return True if needs is None else bool(needs())


def reset_policy(policy: Policy, seed: int | None) -> None:
    """`policy.reset(seed=...)` where the policy takes a seed (a SyncLoop seeds its noise with it)."""
    if seed is not None and "seed" in inspect.signature(policy.reset).parameters:
        policy.reset(seed=seed)  # type: ignore[call-arg]  # the signature was checked just above
    else:
        policy.reset()


def run_episode(
    env: LiberoEnv,
    policy: Policy,
    init_state: int,
    seed: int | None = None,
    video: Path | None = None,
) -> EpisodeResult:
    """Run `policy` from official initial state `init_state` for at most `env.max_steps` steps;
    filmed into the mp4 file `video` if given, one frame per observation (the last one too)."""
    t0 = time.monotonic()
    obs = env.reset(init_state)
    reset_policy(policy, seed)
    success = False
    with VideoWriter(video, CONTROL_HZ) if video is not None else nullcontext() as film:
        while not success and not env.truncated:
            action = policy.select_action(obs)
            if film is not None:
                film.append(episode_frame(obs, env.steps, **step_marks(policy)))
            obs, success = env.step(action, render=film is not None or needs_images_next(policy))
        if film is not None:
            film.append(episode_frame(obs, env.steps))
    return EpisodeResult(
        success=success,
        steps=env.steps,
        seconds=time.monotonic() - t0,
        final_state=[round(float(x), 5) for x in obs[STATE_KEY]],
    )
