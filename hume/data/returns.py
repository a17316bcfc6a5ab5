"""Sparse rewards and discounted Monte-Carlo returns-to-go: pure functions, no I/O.

The return of frame t of an episode of length T is G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k: it
accumulates over the rest of the episode (unlike the official code, whose "return" equals the
immediate reward). Episodes end where they end: nothing is bootstrapped past the last frame, so a
failed episode with zero rewards has zero return everywhere, and a success at the last frame is
worth gamma^(T-1-t) at frame t.
"""

from __future__ import annotations

import numpy as np


def sparse_rewards(
    length: int,
    success: bool,
    positive_frames: int = 1,
    success_reward: float = 1.0,
    step_reward: float = 0.0,
) -> np.ndarray:
    """Rewards of one episode: `success_reward` on its last `positive_frames` frames if it
    succeeded, `step_reward` everywhere else. `[length]` float32."""
    if length < 0 or positive_frames < 0:
        raise ValueError(f"length and positive_frames must be >= 0, got {length}, {positive_frames}")
    rewards = np.full(length, step_reward, dtype=np.float32)
    if success and length > 0 and positive_frames > 0:
        rewards[-positive_frames:] = success_reward
    return rewards


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Return-to-go of one episode: G_t = r_t + gamma * G_{t+1}, G_T = 0. `[T]` float32."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    returns = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns.astype(np.float32)


def episode_returns(rewards: np.ndarray, episode_index: np.ndarray, gamma: float) -> np.ndarray:
    """Returns-to-go of many episodes stored one after another (frames of an episode contiguous,
    in frame order), as in a LeRobot dataset. `[N]` float32."""
    rewards = np.asarray(rewards).reshape(-1)
    episode_index = np.asarray(episode_index).reshape(-1)
    if rewards.shape != episode_index.shape:
        raise ValueError(f"rewards {rewards.shape} and episode_index {episode_index.shape} differ in length")
    out = np.empty(len(rewards), dtype=np.float32)
    for start, stop in episode_bounds(episode_index):
        out[start:stop] = discounted_returns(rewards[start:stop], gamma)
    return out


def episode_bounds(episode_index: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal episode indices, in order."""
    episode_index = np.asarray(episode_index).reshape(-1)
    if len(episode_index) == 0:
        return []
    cuts = np.flatnonzero(np.diff(episode_index) != 0) + 1
    starts = np.r_[0, cuts]
    stops = np.r_[cuts, len(episode_index)]
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
