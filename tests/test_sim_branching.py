"""Branching the real LIBERO simulator: a saved episode state replays exactly, and branches taken
from one state do not leak into each other."""

import numpy as np
import pytest

from hume.constants import STATE_KEY
from sim.libero_env import LiberoEnv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env():
    with LiberoEnv("libero_object", 0, image_size=64, fast_render=True) as e:
        yield e


def actions(seed: int, n: int = 12) -> np.ndarray:
    """Moves large enough to push the arm about and to close the gripper midway."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.8, 0.8, (n, 7))
    a[:, 6] = np.where(np.arange(n) < n // 2, -1.0, 1.0)
    return a


def rollout(env: LiberoEnv, acts: np.ndarray) -> list[dict]:
    return [env.step(a)[0] for a in acts]


def assert_same(first: list[dict], second: list[dict]) -> None:
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


def test_restore_replays_the_same_trajectory(env):
    env.reset(3)
    rollout(env, actions(0, 5))  # mid-episode: the controller and gripper have state of their own
    saved = env.get_state()
    before_obs = env.observation()
    first = rollout(env, actions(1))
    qpos = env.sim.data.qpos.copy()
    steps = env.steps

    restored_obs = env.set_state(saved)
    assert_same([before_obs], [restored_obs])
    second = rollout(env, actions(1))
    assert_same(first, second)
    assert np.array_equal(qpos, env.sim.data.qpos) and env.steps == steps


def test_branches_from_one_state_do_not_leak(env):
    env.reset(4)
    saved = env.get_state()
    a = rollout(env, actions(2))
    env.set_state(saved)
    b = rollout(env, actions(3))
    env.set_state(saved)
    a_again = rollout(env, actions(2))
    assert_same(a, a_again)
    assert not np.allclose(a[-1][STATE_KEY], b[-1][STATE_KEY], atol=1e-3), "the branches differ"
    # Restoring after a branch leaves no trace of it: the saved step count and state come back.
    env.set_state(saved)
    assert env.steps == 0
