"""HumeConfig.compile: the fast path's think and refine give the eager ones, and follow the weights."""

import dataclasses

import numpy as np
import pytest
import torch
from test_policy import observation

from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy

RTOL = 1e-5  # float32; the traced graphs run the same operators, so in practice the match is exact


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    eager = HumePolicy.from_config(HumeConfig())
    fast = HumePolicy.from_config(dataclasses.replace(eager.config, compile=True))
    fast.load_state_dict(eager.state_dict())
    return eager, fast


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.abs(want).max()))


def test_think_and_refine_match_eager(pair):
    eager, fast = pair
    cfg = eager.config
    obs = observation(3, "pick up the black bowl")
    noise = np.random.default_rng(0).normal(size=(cfg.num_candidates, cfg.chunk_size, cfg.max_action_dim))
    want, got = eager.think(obs, noise), fast.think(obs, noise)
    assert fast.traced_graphs == 3  # prefix, denoising loop and value head ran as graphs
    close(got.candidates, want.candidates)
    close(got.values, want.values)
    assert got.index == want.index
    history = np.stack([obs["observation.state"]] * cfg.system1.state_history)
    for offset in (0, 5):
        close(fast.refine(obs, want, offset, history), eager.refine(obs, want, offset, history))
    assert fast.traced_graphs == 4
    # Another observation through the same graphs still matches: nothing of the first was frozen in.
    other = observation(9, "open the top drawer of the cabinet")
    close(fast.think(other, noise).candidates, eager.think(other, noise).candidates)
    close(fast.refine(other, want, 2), eager.refine(other, want, 2))
    assert fast.traced_graphs == 4


def test_changed_weights_are_followed(pair):
    eager, fast = pair
    obs = observation(4, "put the bowl on the plate")
    chunk = eager.think(obs)
    before = fast.refine(obs, chunk, 0)
    with torch.no_grad():
        for policy in (eager, fast):
            policy.system1.action_out.bias.add_(0.5)
    after = fast.refine(obs, chunk, 0)
    assert not np.allclose(after, before, atol=1e-3)
    close(after, eager.refine(obs, chunk, 0))
    assert fast.traced_graphs == 4  # the graphs read the weights as inputs: nothing was traced again


def test_from_pretrained_traces_at_load_and_leaves_the_noise(tmp_path, pair):
    eager, _ = pair
    eager.save_pretrained(tmp_path)
    fast = HumePolicy.from_pretrained(tmp_path, compile=True)
    assert fast.traced_graphs == 4  # warmed up: the first real think and refine are not the slow ones
    plain = HumePolicy.from_pretrained(tmp_path)
    obs = observation(5, "pick up the black bowl")
    close(fast.think(obs).candidates, plain.think(obs).candidates)  # same draw from the generator
    # Moved to another dtype, it is traced again there, and still computes the eager results.
    fast, plain = fast.double(), plain.double()
    assert fast.traced_graphs == 4
    chunk = plain.think(obs)
    close(fast.refine(obs, chunk, 0), plain.refine(obs, chunk, 0))


def test_the_switch_reaches_from_pretrained_from_eval_deploy_and_serve():
    from hume.runtime.config import HumePolicyConfig
    from sim.eval_config import EvalPolicyConfig

    assert EvalPolicyConfig(compile=True).overrides() == {"compile": True}
    assert HumePolicyConfig(compile=False).overrides() == {"compile": False}
    unset = EvalPolicyConfig().overrides() | HumePolicyConfig().overrides()
    assert "compile" not in unset  # the checkpoint's
