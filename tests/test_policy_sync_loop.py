"""SyncLoop: the episode lives beside the policy, so one policy serves independent episodes."""

import numpy as np
import pytest
import torch
from test_policy_sync_regression import CHECKPOINT, observations

from hume.policy import HumePolicy
from hume.policy.sync_loop import SyncLoop


@pytest.fixture(scope="module")
def policy():
    return HumePolicy.from_pretrained(CHECKPOINT, num_candidates=3, selector="random")


def test_loops_over_one_policy_are_independent_episodes(policy):
    """Two loops interleaved on one policy act as each acts alone: think and refine keep nothing."""
    a_obs, b_obs = observations(20, 0), observations(20, 1)
    alone = []
    for seed, obs in ((1, a_obs), (2, b_obs)):
        loop = SyncLoop(policy, seed=seed)
        alone.append([loop.select_action(o) for o in obs])
    a, b = SyncLoop(policy, seed=1), SyncLoop(policy, seed=2)
    together = [[], []]
    for oa, ob in zip(a_obs, b_obs, strict=True):
        together[0].append(a.select_action(oa))
        together[1].append(b.select_action(ob))
    np.testing.assert_array_equal(np.array(together), np.array(alone))


def test_an_episode_draws_from_its_own_streams_not_the_policys(policy):
    before = policy.draws.save()
    loop = SyncLoop(policy)
    loop.reset(seed=4)
    for o in observations(17, 2):  # two thinks
        loop.select_action(o)
    after = policy.draws.save()
    assert torch.equal(after["noise"], before["noise"])
    assert after["choices"].bit_generator.state == before["choices"].bit_generator.state


def test_a_restored_episode_runs_on_as_it_did(policy):
    obs = observations(40, 3)
    loop = SyncLoop(policy, seed=5)
    for o in obs[:12]:
        loop.select_action(o)
    saved = loop.save()
    first = [loop.select_action(o) for o in obs[12:]]
    stats = loop.episode_stats()
    loop.restore(saved)
    np.testing.assert_array_equal([loop.select_action(o) for o in obs[12:]], first)
    assert loop.episode_stats() == stats
    # A reset without a seed draws on; with the episode's seed it replays.
    fresh = SyncLoop(policy, seed=5).select_action(obs[0])
    loop.reset()
    assert not np.allclose(loop.select_action(obs[0]), fresh)
    loop.reset(seed=5)
    np.testing.assert_array_equal(loop.select_action(obs[0]), fresh)
