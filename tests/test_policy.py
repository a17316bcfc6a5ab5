"""HumePolicy: checkpoints, think/refine, the synchronous schedule, ablations, normalisation."""

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hume.models.configuration_hume import HumeConfig
from hume.models.paligemma_weights import CheckpointError
from hume.policy import Chunk, HumePolicy
from hume.policy.draws import Draws
from hume.policy.sync_loop import SyncLoop

STATS = {
    "observation.state": {"mean": np.linspace(-1, 1, 8).tolist(), "std": np.linspace(0.5, 2, 8).tolist()},
    "action": {"mean": [0.1, -0.2, 0.3, 0.0, 0.0, 0.05, 0.0], "std": [2.0, 0.5, 1.0, 0.1, 0.2, 0.3, 1.0]},
}


def observation(seed=0, task="put the black bowl on the plate"):
    rng = np.random.default_rng(seed)
    return {
        "observation.images.agentview": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=8).astype(np.float32),
        "task": task,
    }


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return HumePolicy.from_config(HumeConfig(), stats=STATS)


@pytest.fixture(scope="module")
def checkpoint(policy, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    policy.save_pretrained(path)
    return path


def test_checkpoint_round_trip(policy, checkpoint):
    assert {"config.json", "model.safetensors", "stats.json", "tokenizer"} <= {
        p.name for p in checkpoint.iterdir()
    }
    loaded = HumePolicy.from_pretrained(checkpoint)
    assert loaded.config == policy.config
    for key, value in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    obs = observation()
    ours, theirs = policy.think(obs, draws=Draws.seeded(5)), loaded.think(obs, draws=Draws.seeded(5))
    np.testing.assert_array_equal(ours.candidates, theirs.candidates)
    np.testing.assert_array_equal(policy.refine(obs, ours, 8), loaded.refine(obs, theirs, 8))


def test_think_returns_the_best_candidate(policy):
    chunk = policy.think(observation(), draws=Draws.seeded(1))
    cfg = policy.config
    assert chunk.actions.shape == (cfg.chunk_size, cfg.action_dim) and chunk.actions.dtype == np.float32
    assert chunk.values.shape == (cfg.num_candidates,) and np.isfinite(chunk.values).all()
    assert chunk.index == int(np.argmax(chunk.values))
    assert chunk.noise_level == pytest.approx(cfg.theta2)
    # Every candidate comes back; the chosen one is the chunk; padded dims are pinned (none kept).
    assert chunk.candidates.shape == (cfg.num_candidates, cfg.chunk_size, cfg.action_dim)
    np.testing.assert_array_equal(chunk.candidates[chunk.index], chunk.actions)
    assert chunk.padding is None
    # Same seed, same chunk; another seed, another one.
    again = policy.think(observation(), draws=Draws.seeded(1))
    np.testing.assert_array_equal(again.actions, chunk.actions)
    assert not np.allclose(policy.think(observation(), draws=Draws.seeded(2)).actions, chunk.actions)


def test_think_takes_explicit_candidate_noise(policy):
    cfg = policy.config
    noise = np.random.default_rng(0).standard_normal((cfg.num_candidates, cfg.chunk_size, cfg.max_action_dim))
    a = policy.think(observation(), noise=noise, draws=Draws.seeded(1))
    # The draws play no part when the noise is given.
    b = policy.think(observation(), noise=noise.astype(np.float32), draws=Draws.seeded(9))
    np.testing.assert_array_equal(a.candidates, b.candidates)
    assert a.index == b.index
    # Candidate i starts from noise[i]: changing candidate 3's noise changes only candidate 3.
    other = noise.copy()
    other[3] += 1.0
    c = policy.think(observation(), noise=other)
    np.testing.assert_array_equal(np.delete(c.candidates, 3, 0), np.delete(a.candidates, 3, 0))
    assert not np.allclose(c.candidates[3], a.candidates[3])
    with pytest.raises(ValueError, match="candidate noise"):
        policy.think(observation(), noise=noise[:, :, :7])


def test_think_depends_on_the_instruction(policy):
    a = policy.think(observation(task="open the top drawer"), draws=Draws.seeded(3)).actions
    b = policy.think(observation(task="turn on the stove"), draws=Draws.seeded(3)).actions
    assert not np.allclose(a, b)


def test_refine_shapes_and_chunk_end(policy):
    obs = observation()
    chunk = policy.think(obs)
    out = policy.refine(obs, chunk, 8)
    assert out.shape == (policy.config.s1_horizon, 7) and out.dtype == np.float32 and np.isfinite(out).all()
    assert policy.refine(obs, chunk, 13).shape == (8, 7), "a slice past the chunk's end is padded"
    with pytest.raises(ValueError, match="offset"):
        policy.refine(obs, chunk, 16)


def test_system1_off_executes_the_unnormalised_s2_chunk(checkpoint):
    policy = HumePolicy.from_pretrained(checkpoint, use_system1=False)
    obs = observation()
    chunk = policy.think(obs)
    assert chunk.noise_level == 0.0, "without System 1, System 2 denoises fully"
    std, mean = np.array(STATS["action"]["std"]), np.array(STATS["action"]["mean"])
    np.testing.assert_allclose(
        policy.refine(obs, chunk, 0), chunk.actions[:8] * std + mean, rtol=1e-6, atol=1e-6
    )
    policy.reset(seed=4)
    actions = [policy.select_action(obs) for _ in range(16)]
    expected = policy.think(obs, draws=Draws.seeded(4)).actions * std + mean
    np.testing.assert_allclose(np.stack(actions), expected, rtol=1e-5, atol=1e-6)


def test_value_head_off_and_single_candidate(checkpoint):
    off = HumePolicy.from_pretrained(checkpoint, use_value_head=False)
    chunk = off.think(observation())
    assert chunk.index == 0 and np.isnan(chunk.values).all() and chunk.values.shape == (5,)
    off.select_action(observation())
    stats = off.loop.episode_stats()
    assert stats["think_values"] == [[None] * 5] and stats["think_chosen"] == [0]
    single = HumePolicy.from_pretrained(checkpoint, num_candidates=1)
    chunk = single.think(observation())
    assert chunk.values.shape == (1,) and chunk.index == 0 and np.isfinite(chunk.values).all()


class CountingPolicy(HumePolicy):
    """Records when the two halves run (the real ones run)."""

    def think(self, obs, **guidance):
        self.calls.append(("think", self.loop.schedule.tick + 1))
        return super().think(obs, **guidance)

    def refine(self, obs, chunk, offset, history=None, continues=None):
        self.calls.append(("refine", self.loop.schedule.tick, offset, history))
        return super().refine(obs, chunk, offset, history, continues)


def test_synchronous_schedule(checkpoint):
    policy = CountingPolicy.from_pretrained(checkpoint)
    policy.calls = []
    policy.reset(seed=0)
    obs = observation()
    actions = [policy.select_action(obs) for _ in range(33)]
    assert all(a.shape == (7,) and np.isfinite(a).all() for a in actions)
    thinks = [c[1] for c in policy.calls if c[0] == "think"]
    refines = [(c[1], c[2]) for c in policy.calls if c[0] == "refine"]
    assert thinks == [0, 16, 32]
    assert refines == [(0, 0), (8, 8), (16, 0), (24, 8), (32, 0)]
    # System 1 reads the schedule's history: the last K states, one per tick.
    history = [c[3] for c in policy.calls if c[0] == "refine"][-1]
    assert history.shape == (policy.config.system1.state_history, 8)
    # The episode's record: every think's candidate values and the one the value head chose.
    stats = policy.loop.episode_stats()
    assert len(stats["think_values"]) == 3 and all(len(v) == 5 for v in stats["think_values"])
    assert stats["think_chosen"] == [int(np.argmax(v)) for v in stats["think_values"]]
    policy.reset()
    assert policy.loop.schedule.tick == -1 and policy.loop.schedule.chunk is None
    policy.select_action(obs)
    assert policy.calls[-2][0] == "think", "after reset the policy thinks again"


def test_state_history_feeds_system1(checkpoint):
    """System 1 sees past states: the same observation after different histories refines differently."""
    policy = HumePolicy.from_pretrained(checkpoint)
    obs = observation()
    chunk = policy.think(obs)
    now = obs["observation.state"]
    a = policy.refine(obs, chunk, 0, np.stack([observation(seed=7)["observation.state"], now]))
    b = policy.refine(obs, chunk, 0, np.stack([observation(seed=8)["observation.state"], now]))
    assert not np.allclose(a, b)
    # Without a history, this observation's state stands for all K.
    np.testing.assert_array_equal(
        policy.refine(obs, chunk, 0), policy.refine(obs, chunk, 0, np.stack([now, now]))
    )
    with pytest.raises(ValueError, match="state history"):
        policy.refine(obs, chunk, 0, np.stack([now]))


def test_bad_observations_are_clear_errors(policy):
    obs = observation()
    del obs["observation.images.wrist"]
    with pytest.raises(KeyError, match="observation.images.wrist"):
        policy.think(obs)
    obs = observation()
    obs["observation.state"] = np.zeros(7, np.float32)
    with pytest.raises(ValueError, match="8 values"):
        policy.think(obs)
    obs = observation()
    del obs["task"]
    with pytest.raises(KeyError, match="task"):
        policy.think(obs)


def test_bad_checkpoints_name_file_and_key(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        HumePolicy.from_pretrained(tmp_path / "nowhere")

    bad = tmp_path / "bad"
    shutil.copytree(checkpoint, bad)
    state = load_file(str(bad / "model.safetensors"))
    del state["system2.expert.layers.0.mlp.up_proj.weight"]
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors.*system2\.expert\.layers\.0\.mlp\.up_proj"
    ):
        HumePolicy.from_pretrained(bad)

    state["system2.expert.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 3)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"up_proj\.weight.*\(3, 3\)"):
        HumePolicy.from_pretrained(bad)

    config = json.loads((checkpoint / "config.json").read_text())
    config["system2"]["warp_drive"] = 1
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json.*warp_drive"):
        HumePolicy.from_pretrained(bad)

    shutil.copy(checkpoint / "config.json", bad / "config.json")
    stats = json.loads((checkpoint / "stats.json").read_text())
    stats["action"]["mean"] = [0.0] * 6
    (bad / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r"stats\.json.*'action'.*6 dims"):
        HumePolicy.from_pretrained(bad)

    (bad / "stats.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"stats\.json"):
        HumePolicy.from_pretrained(bad)


def test_chunk_validation():
    chunk = Chunk(
        actions=np.ones((16, 7), np.float32), noise_level=0.1, values=np.arange(5, dtype=np.float32), index=4
    )
    with pytest.raises(ValueError, match="index"):
        dataclasses.replace(chunk, index=5)
    with pytest.raises(ValueError, match=r"actions must be \[H, action_dim\]"):
        dataclasses.replace(chunk, actions=np.ones(7, np.float32))
    with pytest.raises(ValueError, match="padding"):
        dataclasses.replace(chunk, padding=np.zeros((15, 2), np.float32))


def test_bfloat16_policy_runs(checkpoint):
    policy = HumePolicy.from_pretrained(checkpoint).to(torch.bfloat16)
    obs = observation()
    chunk = policy.think(obs)
    assert chunk.actions.dtype == np.float32 and np.isfinite(chunk.actions).all()
    actions = [policy.select_action(obs) for _ in range(9)]
    assert all(a.shape == (7,) and np.isfinite(a).all() for a in actions)


def test_candidate_zero_is_the_same_sample_whatever_n(checkpoint):
    """Per-candidate seeds: with the value head off, N = 5 executes exactly the N = 1 sample."""
    one = HumePolicy.from_pretrained(checkpoint, num_candidates=1, use_value_head=False)
    five = HumePolicy.from_pretrained(checkpoint, num_candidates=5, use_value_head=False)
    obs = observation()
    alone, best_of_five = one.think(obs, draws=Draws.seeded(11)), five.think(obs, draws=Draws.seeded(11))
    np.testing.assert_allclose(alone.actions, best_of_five.actions, atol=1e-5)


def test_checkpoint_carries_its_tokenizer(tmp_path):
    """A policy built with another tokenizer saves it and loads it back from the checkpoint."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("train_tokenizer", root / "scripts/train_tokenizer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.train(
        ["open the drawer", "close the drawer", "lift the cup"] * 5, tmp_path / "tok", vocab_size=300
    )
    config = dataclasses.replace(
        HumeConfig(), system2=dataclasses.replace(HumeConfig().system2, tokenizer_path=str(tmp_path / "tok"))
    )
    policy = HumePolicy.from_config(config)
    policy.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "tok")
    loaded = HumePolicy.from_pretrained(tmp_path / "ckpt")
    assert len(loaded.tokenizer) == len(policy.tokenizer) < 400
    assert loaded.tokenizer("lift the cup")["input_ids"] == policy.tokenizer("lift the cup")["input_ids"]


def test_value_box_round_trips_and_is_absent_in_older_stats(tmp_path):
    from hume.policy.normalize import Normalizer

    boxed = {**STATS, "action": {**STATS["action"], "min": [-1.0] * 7, "max": [1.0, 1, 1, 0.5, 0.5, 1, 1]}}
    policy = HumePolicy.from_config(HumeConfig(), stats=boxed)
    policy.save_pretrained(tmp_path / "boxed")
    loaded = HumePolicy.from_pretrained(tmp_path / "boxed")
    np.testing.assert_array_equal(loaded.normalizer.action_high, policy.normalizer.action_high)
    raw = torch.tensor([[-1.0, 1, 0, 0.5, -1, 2.0, 1]])  # the last-but-one dim is past its max
    normalised = torch.from_numpy(policy.normalizer.action(raw.numpy()))
    expected = torch.tensor([[-1.0, 1, 0, 1, -1, 1, 1]])
    torch.testing.assert_close(loaded.normalizer.value_actions(normalised), expected)
    plain = Normalizer(STATS, 8, 7)  # stats without min/max: the head sees normalised actions as they are
    assert plain.value_actions(normalised) is normalised
    with pytest.raises(ValueError, match="min <= max"):
        plain.set_value_box([1.0] * 7, [0.0] * 7)


def test_async_with_zero_latency_replays_the_synchronous_loop(checkpoint):
    """The evaluator's virtual clock and select_action drive one control schedule: with thinks that
    land at once, every s2_replan_steps, they act identically, tick for tick."""
    from hume.constants import STATE_KEY
    from sim.eval_config import LatencyConfig
    from sim.latency import LatencyModel, VirtualClockPolicy

    sync = SyncLoop(HumePolicy.from_pretrained(checkpoint))
    virtual = VirtualClockPolicy(
        HumePolicy.from_pretrained(checkpoint),
        LatencyModel(LatencyConfig(steps=0), seed=0),
        think_every=sync.config.s2_replan_steps,
    )
    sync.reset(seed=3)
    virtual.reset(seed=3)
    for t in range(40):
        obs = observation(seed=t)  # the state changes every tick: the history matters
        assert STATE_KEY in obs
        np.testing.assert_array_equal(sync.select_action(obs), virtual.select_action(obs), err_msg=str(t))
    assert virtual.episode_stats()["thinks"] == 3 and virtual.episode_stats()["holds"] == 0
    # Both loops record the same thinks: the candidates' values and the value head's choices.
    for key in ("think_values", "think_chosen"):
        assert virtual.episode_stats()[key] == sync.episode_stats()[key]


def test_think_continues_committed_actions_with_rtc_and_ignores_them_without(policy):
    obs = observation(3)
    noise = np.random.default_rng(1).normal(size=(5, 16, 32)).astype(np.float32)
    committed = policy.robot_actions(policy.think(obs, noise=noise[::-1].copy()))[5:15]
    free = policy.think(obs, noise=noise)

    def frozen_error(chunk):
        return np.abs(policy.robot_actions(chunk)[:4] - committed[:4]).mean()

    on = HumePolicy(dataclasses.replace(policy.config, rtc=True), STATS)
    on.load_state_dict(policy.state_dict())
    guided = on.think(obs, noise=noise, committed=committed, delay=4)
    assert frozen_error(guided) < 0.5 * frozen_error(free)
    assert not policy.config.rtc, "off by default"
    np.testing.assert_array_equal(
        policy.think(obs, noise=noise, committed=committed, delay=4).actions, free.actions
    )
    with pytest.raises(ValueError, match="committed actions must be"):
        on.think(obs, noise=noise, committed=committed[:, :3], delay=4)


def test_rtc_soft_steps_bound_how_far_past_the_delay_a_think_is_guided(policy):
    obs = observation(3)
    noise = np.random.default_rng(1).normal(size=(5, 16, 32)).astype(np.float32)
    committed = policy.robot_actions(policy.think(obs, noise=noise[::-1].copy()))[:12]

    def think(soft, delay):
        on = HumePolicy(dataclasses.replace(policy.config, rtc=True, rtc_soft_steps=soft), STATS)
        on.load_state_dict(policy.state_dict())
        return on.think(obs, noise=noise, committed=committed, delay=delay).candidates

    np.testing.assert_array_equal(think(8, 4), think(-1, 4))  # 4 + 8 covers all 12 committed
    assert np.abs(think(0, 4) - think(-1, 4)).max() > 1e-3
    # No delay and no soft steps: nothing to continue, the think is the unguided one.
    np.testing.assert_allclose(think(0, 0), policy.think(obs, noise=noise).candidates, atol=1e-5)


def test_refine_continues_the_plan_it_replaces_with_rtc_on_the_arm_dims_only(policy):
    obs = observation(3)
    chunk = policy.think(obs, noise=np.random.default_rng(2).normal(size=(5, 16, 32)).astype(np.float32))
    free = policy.refine(obs, chunk, 4)
    # The plan being replaced: far from what System 1 would do alone; its first row is already past.
    target = free + np.array([0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.0], np.float32)
    continues = np.concatenate([np.full((1, 7), np.nan, np.float32), target[1:]])
    on = HumePolicy(dataclasses.replace(policy.config, rtc=True, rtc_system1_overlap=4), STATS)
    on.load_state_dict(policy.state_dict())
    guided = on.refine(obs, chunk, 4, continues=continues)

    def error(actions, row):
        return np.abs(actions[row, :6] - target[row, :6]).mean()

    assert error(guided, 1) < 0.8 * error(free, 1), "the first free row is pulled towards the plan"
    np.testing.assert_allclose(on.refine(obs, chunk, 4), free, atol=1e-6)  # nothing to continue
    np.testing.assert_array_equal(policy.refine(obs, chunk, 4, continues=continues), free)  # rtc off
