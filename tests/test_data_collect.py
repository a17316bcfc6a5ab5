"""`hume collect` end to end in the real LIBERO simulator: two short scripted episodes of one
task recorded as a LeRobot dataset, read back, continued, and replayed to the same outcome."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hume.config import ConfigError, parse_config
from hume.data import LeRobotDataset

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs/collect/smoke.yaml"
GAMMA = 0.9


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from sim.collect import collect
    from sim.collect_config import CollectConfig

    out = tmp_path_factory.mktemp("collect") / "smoke"
    cfg = parse_config(CollectConfig, ["--config", str(SMOKE), "--output", str(out)])
    summary = collect(cfg)
    return cfg, out, summary


@pytest.mark.slow
def test_smoke_collection_is_a_lerobot_dataset(smoke):
    cfg, out, summary = smoke
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_episodes"] == 2 and info["fps"] == 20
    assert summary["episodes"] == 2 and summary["tasks"][0]["task_id"] == 0
    assert summary["successes"] >= 1, "the scripted expert should solve this task"
    ds = LeRobotDataset(out, gamma=GAMMA)
    assert len(ds) == info["total_frames"] == summary["frames"]
    item = ds[len(ds) // 2]
    size = cfg.image_size
    for cam in ("agentview", "wrist"):
        img = item[f"observation.images.{cam}"]
        assert img.shape == (size, size, 3) and img.dtype == np.uint8 and img.std() > 5
    assert item["observation.state"].shape == (8,) and item["observation.state"].dtype == np.float32
    assert item["action"].shape == (7,) and item["action"].dtype == np.float32
    assert item["task"].startswith("pick up the black bowl")
    assert np.all(np.abs(ds.columns["action"][:, :6]) <= 1) and set(
        np.unique(ds.columns["action"][:, 6])
    ) <= {-1, 1}
    for k, row in enumerate(ds.episodes):
        frames = ds.episode_range(k)
        assert len(frames) == row["length"] <= cfg.max_steps and row["init_state"] == k
        done = ds.columns["next.done"][frames.start : frames.stop]
        assert done[-1] and not done[:-1].any()
        success = ds.columns["next.success"][frames.start : frames.stop]
        assert success[-1] == row["success"] and not success[:-1].any()
        returns = ds.columns["mc_return"][frames.start : frames.stop]
        expected = GAMMA ** np.arange(len(frames) - 1, -1, -1) if row["success"] else np.zeros(len(frames))
        np.testing.assert_allclose(returns, expected, rtol=1e-5)
    stats = ds.stats
    np.testing.assert_allclose(stats["action"]["mean"], ds.columns["action"].mean(0), atol=1e-5)
    assert stats["observation.images.agentview"]["mean"].shape == (3, 1, 1)


@pytest.mark.slow
def test_replaying_recorded_actions_reproduces_the_episode(smoke):
    from sim.episode import run_episode
    from sim.libero_env import LiberoEnv
    from sim.policies import DatasetReplayPolicy

    cfg, out, _ = smoke
    ds = LeRobotDataset(out)
    policy = DatasetReplayPolicy(str(out))
    with LiberoEnv(cfg.suite, 0, cameras=False, max_steps=cfg.max_steps) as env:
        # In reverse order: what ran before in the simulator must not change an episode.
        for row in reversed(ds.episodes):
            policy.begin_episode(env.task, row["init_state"], row["seed"])
            result = run_episode(env, policy, row["init_state"])
            assert result.success == row["success"]
            if row["success"]:
                assert result.steps == row["length"]
        # The states along the way match too, not only the outcome.
        frames = ds.episode_range(0)
        obs = env.reset(ds.episodes[0]["init_state"])
        for i in frames:
            np.testing.assert_allclose(
                obs["observation.state"], ds.columns["observation.state"][i], atol=1e-5
            )
            obs, _ = env.step(ds.columns["action"][i])


@pytest.mark.slow
def test_collection_resumes_and_refuses_other_settings(smoke):
    from sim.collect import collect

    cfg, out, summary = smoke
    before = (out / "meta/episodes.jsonl").read_text()
    assert collect(cfg) == summary  # nothing left to record
    assert (out / "meta/episodes.jsonl").read_text() == before
    with pytest.raises(ConfigError, match="episodes_per_task"):
        collect(dataclasses.replace(cfg, episodes_per_task=3))


def test_stats_command_writes_stats(tmp_path):
    from hume.data import LeRobotWriter
    from hume.data.format import libero_features

    writer = LeRobotWriter(tmp_path / "ds", 20, libero_features(16, 20, ()))
    n = 6
    writer.add_episode(
        0,
        "task",
        {
            "observation.state": np.arange(n * 8, dtype=np.float32).reshape(n, 8),
            "action": np.ones((n, 7), dtype=np.float32),
            "next.reward": np.r_[np.zeros(n - 1), 1].astype(np.float32),
            "next.done": np.arange(n) == n - 1,
            "next.success": np.arange(n) == n - 1,
        },
        success=True,
    )
    writer.finalize()
    exe = Path(sys.executable).with_name("hume")
    r = subprocess.run(
        [str(exe), "stats", "--dataset", str(tmp_path / "ds"), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "out/stats.json").read_text())
    assert stats["action"]["std"] == [0.0] * 7
    assert stats["observation.state"]["mean"][0] == pytest.approx(20.0)
    assert stats["mc_return"]["max"] == [1.0]
    r = subprocess.run([str(exe), "stats"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--dataset" in r.stderr


def test_bad_collect_config_fails_fast_naming_the_key():
    from sim.collect_config import CollectConfig

    with pytest.raises(ConfigError, match="speed_range"):
        parse_config(CollectConfig, ["--config", str(SMOKE), "--noise.speed_range=[0.5, 2.0]"])
    with pytest.raises(ConfigError, match="episodes_per_task"):
        parse_config(CollectConfig, ["--episodes_per_task=0"])
