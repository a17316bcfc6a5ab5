"""HumePolicy.think_batch: B observations in one forward give what B single thinks give."""

import numpy as np
import pytest
import torch
from test_policy import observation

from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy
from hume.policy.draws import Draws


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return HumePolicy.from_config(HumeConfig(rtc=True))  # guidance on: the batch must carry it per client


def test_each_entry_equals_its_own_think(policy):
    cfg = policy.config
    tasks = ["pick up the black bowl", "open the top drawer of the cabinet", "put the bowl on the plate"]
    observations = [observation(i, task) for i, task in enumerate(tasks)]
    rng = np.random.default_rng(1)
    noise = [rng.normal(size=(cfg.num_candidates, cfg.chunk_size, cfg.max_action_dim)) for _ in tasks]
    # Real-time chunking for some clients only: the second has nothing committed.
    committed = [rng.normal(size=(6, cfg.action_dim)).astype(np.float32), None, rng.normal(size=(3, 7))]
    delays = [2, 0, 1]
    batch = policy.think_batch(observations, noise, committed, delays)
    assert len(batch) == len(tasks)
    for b, obs in enumerate(observations):
        alone = policy.think(obs, noise[b], committed[b], delays[b])
        assert batch[b].index == alone.index
        np.testing.assert_allclose(batch[b].candidates, alone.candidates, atol=1e-5)
        np.testing.assert_allclose(batch[b].actions, alone.actions, atol=1e-5)
        np.testing.assert_allclose(batch[b].values, alone.values, atol=1e-5)
    # The clients' answers differ: no entry got another's prefix, noise or guidance.
    assert not np.allclose(batch[0].candidates, batch[2].candidates, atol=1e-3)


def test_guidance_reaches_only_the_client_that_committed(policy):
    cfg = policy.config
    obs = observation(7, "pick up the black bowl")
    noise = np.random.default_rng(2).normal(size=(cfg.num_candidates, cfg.chunk_size, cfg.max_action_dim))
    committed = np.full((8, cfg.action_dim), 0.5, np.float32)
    guided, free = policy.think_batch([obs, obs], [noise, noise], [committed, None], [3, 0])
    np.testing.assert_allclose(free.candidates, policy.think(obs, noise).candidates, atol=1e-5)
    assert not np.allclose(guided.candidates, free.candidates, atol=1e-3)


def test_drawn_noise_follows_the_generator_as_single_thinks_would(policy):
    observations = [observation(i, "pick up the black bowl") for i in range(2)]
    batch = policy.think_batch(observations, draws=Draws.seeded(3))
    draws = Draws.seeded(3)
    alone = [policy.think(obs, draws=draws) for obs in observations]
    for got, want in zip(batch, alone, strict=True):
        np.testing.assert_allclose(got.candidates, want.candidates, atol=1e-5)


def test_one_entry_per_observation_is_required(policy):
    with pytest.raises(ValueError, match="one noise/committed/delay/recent entry per observation"):
        policy.think_batch([observation(0, "x")] * 2, committed=[None])
