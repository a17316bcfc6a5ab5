"""The synchronous loop's actions for fixed seeds stay what they were when they were recorded
(tests/data/sync_actions.json): a refactoring of where the episode's state or noise lives must not
change a seeded evaluation. Re-record only for a change that is meant to change the actions:
`python tests/test_policy_sync_regression.py` (it says which scenarios moved).

Compared to 1e-5: a shifted noise stream or a different choice moves actions by far more, while
another CPU's float rounding stays below it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hume.policy import HumePolicy
from hume.policy.sync_loop import SyncLoop
from sim.eval_config import LatencyConfig
from sim.latency import LatencyModel, VirtualClockPolicy

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"
RECORDED = Path(__file__).with_name("data") / "sync_actions.json"


def observations(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "observation.images.agentview": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "observation.images.wrist": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "observation.state": rng.normal(size=8).astype(np.float32),
            "task": "put the black bowl on the plate",
        }
        for _ in range(count)
    ]


def run(actor, obs: list[dict]) -> list:
    return [actor.select_action(o).tolist() for o in obs]


def default_seeded() -> dict:
    """The default checkpoint as shipped, seeded."""
    policy = HumePolicy.from_pretrained(CHECKPOINT)
    policy.reset(seed=7)
    return {"actions": run(policy, observations(30, 0))}


def unseeded() -> dict:
    """A fresh policy's own stream, continued across an unseeded reset; and its bare thinks."""
    policy = HumePolicy.from_pretrained(CHECKPOINT)
    first = run(policy, observations(18, 1))
    policy.reset()
    again = run(policy, observations(18, 2))
    fresh = HumePolicy.from_pretrained(CHECKPOINT)
    thinks = [fresh.think(o).actions.tolist() for o in observations(2, 3)]
    return {"actions": first + again, "thinks": thinks}


def random_selector() -> dict:
    """Five candidates, chosen at random: the selector's stream and the noise's, with the record."""
    loop = SyncLoop(HumePolicy.from_pretrained(CHECKPOINT, num_candidates=5, selector="random"))
    loop.reset(seed=3)
    actions = run(loop, observations(34, 4))
    return {"actions": actions, "stats": loop.episode_stats()}


def coherence_rtc() -> dict:
    """Committed actions sent to the think (real-time chunking, the coherence selector)."""
    loop = SyncLoop(HumePolicy.from_pretrained(CHECKPOINT, num_candidates=4, selector="coherence", rtc=True))
    loop.reset(seed=5)
    return {"actions": run(loop, observations(34, 5))}


def oracle_branches() -> dict:
    """The oracle protocol: save, force a choice with and without a continuation seed, restore."""
    loop = SyncLoop(HumePolicy.from_pretrained(CHECKPOINT, num_candidates=3, selector="oracle"))
    loop.reset(seed=2)
    obs = observations(40, 6)
    head = run(loop, obs[:16])
    assert loop.thinks_next()
    saved = loop.save()
    loop.force_next_choice(2, continuation_seed=11)
    reseeded = run(loop, obs[16:40])
    loop.restore(saved)
    loop.force_next_choice(1)
    plain = run(loop, obs[16:40])
    return {"actions": head + reseeded + plain, "stats": loop.episode_stats()}


def virtual_clock() -> dict:
    """The async mode: thinks that land 3 steps late, seeded."""
    policy = HumePolicy.from_pretrained(CHECKPOINT, num_candidates=2, selector="value")
    actor = VirtualClockPolicy(policy, LatencyModel(LatencyConfig(steps=3), seed=0))
    actor.reset(seed=9)
    actions = run(actor, observations(30, 7))
    return {"actions": actions, "stats": actor.episode_stats()}


SCENARIOS = [default_seeded, unseeded, random_selector, coherence_rtc, oracle_branches, virtual_clock]


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def numbers(value) -> list[float]:
    """Every number in a nested record, in order (None as NaN)."""
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    return [np.nan if value is None else float(value)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_seeded_actions_are_those_recorded(scenario, recorded):
    expected, got = recorded[scenario.__name__], scenario()
    assert set(got) == set(expected)
    for key, value in expected.items():
        if key != "stats":
            np.testing.assert_allclose(np.array(got[key]), np.array(value), rtol=0, atol=1e-5, err_msg=key)
            continue
        assert got[key].keys() == value.keys()
        for name, recorded_value in value.items():
            # The record rounds to 4-5 decimals; the shapes (how many thinks, switches) must match.
            assert len(numbers(got[key][name])) == len(numbers(recorded_value)), name
            np.testing.assert_allclose(
                numbers(got[key][name]), numbers(recorded_value), atol=1e-3, err_msg=name
            )
        assert got[key].get("think_chosen") == value.get("think_chosen")


if __name__ == "__main__":
    record = {s.__name__: s() for s in SCENARIOS}
    if RECORDED.is_file():
        old = json.loads(RECORDED.read_text())
        moved = [name for name in record if json.dumps(record[name]) != json.dumps(old.get(name))]
        sys.stderr.write(f"moved: {moved or 'none'}\n")
    RECORDED.parent.mkdir(exist_ok=True)
    RECORDED.write_text(json.dumps(record) + "\n")
