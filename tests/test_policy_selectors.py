"""The selectors: which of a think's candidates to follow (pure math), and HumePolicy using them."""

import dataclasses

import numpy as np
import pytest
import torch
from test_policy import STATS, observation

from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy
from hume.policy.draws import Draws
from hume.policy.selectors import choose
from hume.policy.sync_loop import SyncLoop

CANDIDATES = np.zeros((4, 16, 7), np.float32)


def pick(selector, q=None, reference=None, rng=None, candidates=CANDIDATES, **params):
    config = dataclasses.replace(HumeConfig(), selector=selector, **params)
    return choose(config, q, candidates, reference, rng or np.random.default_rng(0))


def test_value_takes_the_highest_pessimistic_q():
    q = np.array([[1.0, 3.0, 2.0, 0.0], [1.0, 0.5, 1.9, 0.0]])  # candidate 1: one critic loves it
    assert pick("value", q) == 2


def test_lcb_prefers_agreement_over_one_critics_optimism():
    q = np.array([[0.6, 2.0, 0.0, 0.0], [0.6, 0.4, 0.0, 0.0]])
    # mean - k std: candidate 1 has mean 1.2 and std 0.8, candidate 0 mean 0.6 and std 0.
    assert pick("lcb", q, lcb_k=0.5) == 1 and pick("lcb", q, lcb_k=1.0) == 0


def test_softmax_samples_in_proportion_to_exp_q():
    q = np.array([[0.0, 1.0, 0.0, 0.0]] * 2)
    rng = np.random.default_rng(1)
    assert {pick("softmax", q, rng=rng, softmax_temperature=0.01) for _ in range(20)} == {1}
    draws = [pick("softmax", q, rng=rng, softmax_temperature=1.0) for _ in range(4000)]
    share = np.bincount(draws, minlength=4) / len(draws)
    expected = np.exp([0.0, 1.0, 0.0, 0.0]) / np.exp([0.0, 1.0, 0.0, 0.0]).sum()
    np.testing.assert_allclose(share, expected, atol=0.03)


def test_gated_keeps_the_first_unless_the_best_clearly_beats_it():
    q = np.array([[1.0, 1.05, 0.0, 0.0]] * 2)
    assert pick("gated", q, gated_margin=0.1) == 0
    assert pick("gated", q + np.array([0.0, 0.2, 0.0, 0.0]), gated_margin=0.1) == 1


def test_first_random_and_the_value_head_off():
    q = np.array([[0.0, 0.0, 5.0, 0.0]] * 2)
    assert pick("first", q) == 0 and pick("oracle", q) == 0
    assert pick("value", None) == 0, "the value head off: candidate 0"
    rng = np.random.default_rng(3)
    assert set(pick("random", q, rng=rng) for _ in range(100)) == {0, 1, 2, 3}


def test_coherence_takes_the_candidate_closest_to_the_reference():
    candidates = np.stack([np.full((16, 7), v, np.float32) for v in (0.0, 1.0, -0.5, 2.0)])
    reference = np.full((3, 7), 0.9, np.float32)
    assert pick("coherence", reference=reference, candidates=candidates) == 1
    assert pick("coherence", reference=np.zeros((0, 7), np.float32), candidates=candidates) == 0
    assert pick("coherence", reference=None, candidates=candidates) == 0


def test_consensus_takes_the_candidate_nearest_the_candidates_mean():
    # Mean 0.375: candidate 1 (0.5) is nearest; candidate 3 (an outlier at 3) pulls the mean but
    # is never the choice. The value head's Q is ignored.
    candidates = np.stack([np.full((16, 7), v, np.float32) for v in (-1.0, 0.5, -1.0, 3.0)])
    q = np.array([[0.0, 0.0, 0.0, 9.0]] * 2)
    assert pick("consensus", q, candidates=candidates) == 1
    assert pick("consensus", None, candidates=candidates) == 1
    # The distance is over the whole chunk: a candidate that agrees only at its first step loses.
    late = np.zeros((3, 16, 7), np.float32)
    late[0, 1:] = 4.0  # equal to the others at step 0 only
    late[1] = 0.1
    late[2] = -0.1
    assert pick("consensus", candidates=late) == 1
    assert pick("consensus", candidates=np.zeros((3, 16, 7), np.float32)) == 0, "ties: the first"


def test_unknown_selector_is_refused():
    with pytest.raises(ValueError, match="selector must be one of"):
        dataclasses.replace(HumeConfig(), selector="best").validate()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt")
    HumePolicy.from_config(HumeConfig(), stats=STATS).save_pretrained(path)
    return path


def test_policy_follows_its_selector(checkpoint):
    obs = observation()
    value = HumePolicy.from_pretrained(checkpoint)
    chunk = value.think(obs, draws=Draws.seeded(1))
    assert chunk.index == int(np.argmax(chunk.values))

    first = HumePolicy.from_pretrained(checkpoint, selector="first")
    same = first.think(obs, draws=Draws.seeded(1))
    np.testing.assert_array_equal(same.candidates, chunk.candidates)
    assert same.index == 0 and np.isfinite(same.values).all(), "values are still recorded"

    # Coherence: the candidate whose actions the robot is committed to is the one taken.
    coherent = HumePolicy.from_pretrained(checkpoint, selector="coherence")
    target = 3 if chunk.index != 3 else 2
    committed = coherent.robot_actions(dataclasses.replace(chunk, actions=chunk.candidates[target]))[:4]
    assert coherent.think(obs, committed=committed, draws=Draws.seeded(1)).index == target
    recent = coherent.think(obs, recent=committed[:1], draws=Draws.seeded(1))
    assert recent.index == target, "else the last executed action"


def test_random_choices_do_not_shift_the_candidates(checkpoint):
    """The random selector draws from a stream of its own: candidates stay those of `first`."""
    obs = observation()
    rand = HumePolicy.from_pretrained(checkpoint, selector="random")
    first = HumePolicy.from_pretrained(checkpoint, selector="first")
    ours, theirs = Draws.seeded(2), Draws.seeded(2)
    picks = set()
    for _ in range(6):
        a, b = rand.think(obs, draws=ours), first.think(obs, draws=theirs)
        np.testing.assert_array_equal(a.candidates, b.candidates)
        picks.add(a.index)
    assert len(picks) > 1


def test_oracle_policy_thinks_one_plain_sample_unless_told_a_choice(checkpoint):
    obs = observation()
    oracle = HumePolicy.from_pretrained(checkpoint, selector="oracle")
    plain = HumePolicy.from_pretrained(checkpoint, num_candidates=1)
    a = oracle.think(obs, draws=Draws.seeded(4))
    np.testing.assert_array_equal(a.candidates, plain.think(obs, draws=Draws.seeded(4)).candidates)
    forced = oracle.think(obs, choice=2)
    assert forced.index == 2 and len(forced.candidates) == 5
    np.testing.assert_array_equal(forced.actions, forced.candidates[2])
    with pytest.raises(ValueError, match="oracle"):
        plain.think(obs, choice=0)
    with pytest.raises(ValueError, match="candidate 5 of 5"):
        oracle.think(obs, choice=5)
    # The loop's forced choice is used by its next think only.
    loop = SyncLoop(oracle)
    loop.force_next_choice(2)
    loop.select_action(obs)
    assert len(loop.schedule.chunk.candidates) == 5 and loop.schedule.chunk.index == 2
    for _ in range(oracle.config.s2_replan_steps):
        loop.select_action(obs)
    assert len(loop.schedule.chunk.candidates) == 1, "the forced choice is used once"
    with pytest.raises(ValueError, match="oracle"):
        SyncLoop(plain).force_next_choice(0)


def test_the_value_selector_reads_the_target_critics(checkpoint):
    policy = HumePolicy.from_pretrained(checkpoint)
    obs = observation()
    before = policy.think(obs, draws=Draws.seeded(5))
    with torch.no_grad():
        for p in policy.value_head.critics.parameters():  # the online critics only
            p.add_(torch.randn_like(p))
    after = policy.think(obs, draws=Draws.seeded(5))
    np.testing.assert_array_equal(after.values, before.values)
    assert after.index == before.index
    with torch.no_grad():
        for p in policy.value_head.target_critics.parameters():
            p.add_(torch.randn_like(p))
    assert not np.allclose(policy.think(obs, draws=Draws.seeded(5)).values, before.values)
