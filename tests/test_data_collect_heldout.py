"""Held-out starts in `hume collect`: episodes from states the placement sampler draws (not the
official ones), recorded whole so they replay, checked against the official states, resumable."""

import dataclasses
import json

import numpy as np
import pytest

from hume.config import ConfigError, parse_config, to_dict
from hume.data import LeRobotDataset
from sim.start_states import held_out_check, nearest_official

OBJECT_QPOS = np.arange(3, 6)  # the "objects" of the synthetic states below


def test_nearest_official_compares_object_poses_only():
    official = np.zeros((3, 8))
    official[:, 3] = [0.0, 0.1, 0.2]
    start = official[1].copy()
    start[1] = 0.5  # a robot joint: noise, not the scene
    assert nearest_official(start, official, OBJECT_QPOS) == (1, 0.0)
    start[4] = 0.003
    k, d = nearest_official(start, official, OBJECT_QPOS)
    assert k == 1 and d == pytest.approx(0.003)
    with pytest.raises(ValueError, match="another model"):
        nearest_official(start[:7], official, OBJECT_QPOS)


def test_held_out_check_counts_starts_within_tolerance():
    check = held_out_check({0: 0.004, 1: 5e-5, 2: 0.01, 7: 0.0})
    assert check["starts"] == 4 and check["same_as_official"] == 2
    assert check["same_episodes"] == [1, 7] and check["min_distance"] == 0.0
    assert held_out_check({0: 0.004})["same_as_official"] == 0


def test_a_collection_begun_before_a_setting_existed_resumes(tmp_path):
    from sim.collect import CONFIG_FILE, check_resume
    from sim.collect_config import CollectConfig

    cfg = CollectConfig(output=str(tmp_path))
    saved = to_dict(cfg)
    del saved["init_states"], saved["interleave_tasks"], saved["noise"]["mistake_prob"]
    (tmp_path / CONFIG_FILE).parent.mkdir(parents=True)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(saved))
    check_resume(cfg, tmp_path)  # the missing settings, nested ones too, had their defaults
    with pytest.raises(ConfigError, match="init_states"):
        check_resume(dataclasses.replace(cfg, init_states="sampled"), tmp_path)
    # A policy's settings matter only when a policy acts.
    other_policy = dataclasses.replace(cfg.policy, checkpoint="elsewhere")
    with pytest.raises(ConfigError, match=r"\(policy, source\)"):
        check_resume(dataclasses.replace(cfg, source="policy", policy=other_policy), tmp_path)
    check_resume(dataclasses.replace(cfg, policy=other_policy), tmp_path)


def test_interleaved_plan_puts_episode_k_of_every_task_first():
    from sim.collect import plan
    from sim.collect_config import CollectConfig

    cfg = CollectConfig(init_states="sampled", interleave_tasks=True, episodes_per_task=3)
    units = plan(cfg, [4, 2])
    assert [(u.task_id, u.episode) for u in units] == [(4, 0), (2, 0), (4, 1), (2, 1), (4, 2), (2, 2)]
    assert [u.episode_index for u in units] == list(range(6)) and all(u.init_state is None for u in units)
    # More episodes per task extend the plan without moving the episodes already planned.
    longer = plan(dataclasses.replace(cfg, episodes_per_task=5), [4, 2])
    assert longer[:6] == units


def test_bad_collect_settings_fail_naming_the_choice():
    from sim.collect_config import CollectConfig

    with pytest.raises(ConfigError, match="official, sampled"):
        parse_config(CollectConfig, ["--init_states=random"])
    with pytest.raises(ConfigError, match="cameras=true"):
        parse_config(CollectConfig, ["--source=policy", "--cameras=false"])


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """Two short scripted episodes (no cameras) of libero_object task 0 from sampled starts."""
    from sim.collect import collect
    from sim.collect_config import CollectConfig

    out = tmp_path_factory.mktemp("heldout") / "ds"
    cfg = CollectConfig(
        suite="libero_object",
        tasks=["0"],
        init_states="sampled",
        interleave_tasks=True,
        episodes_per_task=2,
        max_steps=30,
        cameras=False,
        output=str(out),
    )
    return cfg, collect(cfg)


@pytest.mark.slow
def test_sampled_starts_are_recorded_new_and_replayable(sampled):
    from sim.libero_env import LiberoEnv
    from sim.start_states import SAME_START_TOL, object_qpos_indices

    cfg, summary = sampled
    ds = LeRobotDataset(cfg.output)
    rows = ds.episodes
    assert summary["held_out"]["starts"] == 2 and summary["held_out"]["same_as_official"] == 0
    assert len({r["seed"] for r in rows}) == 2 and all("init_state" not in r for r in rows)
    with LiberoEnv(cfg.suite, 0, cameras=False, max_steps=cfg.max_steps) as env:
        with pytest.raises(RuntimeError, match="reset the environment first"):
            env.nearest_official()  # no episode has started
        official = env.task.init_states()
        indices = object_qpos_indices(env.sim)
        # The objects' qpos (7 per free body), not the robot's, is what the check compares.
        robot = {1 + i for i in env.env.robots[0]._ref_joint_pos_indexes}
        assert len(indices) % 7 == 0 and not robot & set(indices.tolist())
        starts = np.array([r["start_state"] for r in rows])
        assert starts.shape == (2, official.shape[1]) and not np.allclose(starts[0], starts[1])
        for row, start in zip(rows, starts, strict=True):
            k, d = nearest_official(start, official, indices)
            assert (k, d) == (row["nearest_official"], pytest.approx(row["official_distance"]))
            assert d > SAME_START_TOL
        # An official state itself is caught by the check.
        assert nearest_official(official[7], official, indices) == (7, 0.0)
        # Replaying from the recorded (state, seed), after other episodes ran, retraces the episode.
        env.reset(3)
        frames = ds.episode_range(1)
        obs = env.reset_to(rows[1]["start_state"], rows[1]["seed"])
        for i in frames:
            np.testing.assert_allclose(
                obs["observation.state"], ds.columns["observation.state"][i], atol=1e-6
            )
            obs, _ = env.step(ds.columns["action"][i])
        # The same seed draws the same start.
        np.testing.assert_array_equal(env.sample_start(rows[0]["seed"]), starts[0])


@pytest.mark.slow
def test_sampled_collection_resumes_and_grows_without_recording_twice(sampled):
    from sim.collect import collect

    cfg, summary = sampled
    assert collect(cfg) == summary  # nothing left to record
    grown = collect(dataclasses.replace(cfg, episodes_per_task=3))
    rows = LeRobotDataset(cfg.output).episodes
    assert grown["episodes"] == 3 and [r["episode_index"] for r in rows] == [0, 1, 2]
    assert len({r["seed"] for r in rows}) == 3 and grown["held_out"]["starts"] == 3


@pytest.mark.slow
def test_expert_regrasps_an_object_that_fits_the_fingers_at_no_grid_turn():
    """Episode 1 of libero_object task 0 in libero_object_heldout.yaml: the soup can, dropped,
    lies so that no turn of the grasp grid fits it between the fingers; the expert once stopped
    the whole collection there (no grasp candidate). It must finish the episode."""
    from pathlib import Path

    from sim import collect as c
    from sim.collect_config import CollectConfig

    config = Path(__file__).resolve().parents[1] / "configs/collect/libero_object_heldout.yaml"
    cfg = parse_config(CollectConfig, ["--config", str(config), "--tasks=[0]", "--cameras=false"])
    unit = c.plan(cfg, [0])[1]
    recorder = c.Recorder(cfg, info={}, task_index={0: 0})
    try:
        env = recorder.envs.get(0)
        obs, _ = c.start_episode(env, unit)
        expert = recorder.actor(env, unit)
        frames, _ = c.record_episode(env, expert, obs, cameras=())
    finally:
        recorder.close()
    assert expert.retries >= 1 and len(frames["action"]) == env.max_steps
