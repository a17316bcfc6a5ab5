"""Discounted Monte-Carlo returns-to-go and sparse rewards, against hand-computed episodes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hume.data.returns import discounted_returns, episode_bounds, episode_returns, sparse_rewards


def test_success_at_the_end_discounts_back_to_the_start():
    rewards = sparse_rewards(4, success=True)
    assert rewards.tolist() == [0, 0, 0, 1]
    # G_3 = 1, G_2 = 0.5, G_1 = 0.25, G_0 = 0.125 with gamma = 0.5: it accumulates, it is not r_t.
    assert discounted_returns(rewards, 0.5).tolist() == [0.125, 0.25, 0.5, 1.0]


def test_failure_has_zero_return_everywhere():
    rewards = sparse_rewards(5, success=False)
    assert rewards.tolist() == [0] * 5
    assert discounted_returns(rewards, 0.98).tolist() == [0.0] * 5


def test_failure_with_step_penalty_accumulates_the_penalty():
    rewards = sparse_rewards(3, success=False, step_reward=-1.0)
    # G_2 = -1, G_1 = -1 - 0.9 = -1.9, G_0 = -1 - 0.9 * 1.9 = -2.71
    np.testing.assert_allclose(discounted_returns(rewards, 0.9), [-2.71, -1.9, -1.0], rtol=1e-6)


def test_several_positive_frames_and_success_reward():
    rewards = sparse_rewards(5, success=True, positive_frames=3, success_reward=2.0)
    assert rewards.tolist() == [0, 0, 2, 2, 2]
    # G_4 = 2, G_3 = 2 + 2*0.5 = 3, G_2 = 2 + 1.5 = 3.5, G_1 = 1.75, G_0 = 0.875
    assert discounted_returns(rewards, 0.5).tolist() == [0.875, 1.75, 3.5, 3.0, 2.0]


def test_returns_do_not_leak_across_episodes():
    # Episode 7: success after 3 frames; episode 2: failure of 2 frames; episode 9: 1-frame success.
    rewards = np.array([0, 0, 1, 0, 0, 1], dtype=np.float32)
    episodes = np.array([7, 7, 7, 2, 2, 9])
    out = episode_returns(rewards, episodes, 0.5)
    assert out.tolist() == [0.25, 0.5, 1.0, 0.0, 0.0, 1.0]
    assert episode_bounds(episodes) == [(0, 3), (3, 5), (5, 6)]


def test_gamma_one_is_the_undiscounted_sum_and_gamma_zero_the_reward():
    rewards = np.array([1.0, 2.0, 3.0])
    assert discounted_returns(rewards, 1.0).tolist() == [6.0, 5.0, 3.0]
    assert discounted_returns(rewards, 0.0).tolist() == [1.0, 2.0, 3.0]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match="length"):
        episode_returns(np.zeros(3), np.zeros(4), 0.9)
    with pytest.raises(ValueError):
        sparse_rewards(-1, True)


@settings(max_examples=50, deadline=None)
@given(
    rewards=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=30),
    gamma=st.floats(0.0, 1.0),
)
def test_bellman_recursion_holds(rewards, gamma):
    g = discounted_returns(np.array(rewards), gamma).astype(np.float64)
    np.testing.assert_allclose(g[-1], rewards[-1], atol=1e-4)
    np.testing.assert_allclose(g[:-1], np.array(rewards[:-1]) + gamma * g[1:], atol=1e-3)
