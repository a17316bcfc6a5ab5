"""Stage system1_value on demonstrations + a policy's rollouts: several datasets read as one keep
their episodes apart (returns, chunk ends), failed rollouts have zero return, System 1 imitates
the demonstrations only, and a real rollout collection fine-tunes the default checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import tiny_model_config, write_tiny_dataset

from hume.config import ConfigError, parse_config
from hume.data.concat import ConcatDataset, open_datasets
from hume.policy import HumePolicy
from hume.train.config import TrainConfig
from hume.train.data import TrainingData, dataset_stats

ROOT = Path(__file__).resolve().parents[1]
GAMMA = 0.9


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A dataset of one failed episode (index 0) followed by one whose episode 0 succeeds: read
    naively one after the other, their episode-0 frames would run together."""
    root = tmp_path_factory.mktemp("concat")
    failed = write_tiny_dataset(root / "failed", episodes=1, length=20)
    demos = write_tiny_dataset(root / "demos", episodes=2, length=20)
    return demos, failed, open_datasets([str(failed), str(demos)], gamma=GAMMA)


def test_concatenated_datasets_keep_their_episodes_and_returns_apart(two):
    _, _, ds = two
    assert isinstance(ds, ConcatDataset) and len(ds) == 60 and ds.num_episodes == 3
    np.testing.assert_array_equal(ds.columns["episode_index"], np.repeat([0, 1, 2], 20))
    np.testing.assert_array_equal(ds.columns["index"], np.arange(60))
    assert [r["episode_index"] for r in ds.episodes] == [0, 1, 2]
    assert [r["success"] for r in ds.episodes] == [False, True, False]
    returns = ds.columns["mc_return"]
    np.testing.assert_array_equal(returns[:20], 0.0)  # the failed episode: nothing leaks back
    np.testing.assert_allclose(returns[20:40], GAMMA ** np.arange(19, -1, -1), rtol=1e-6)
    np.testing.assert_array_equal(returns[40:], 0.0)
    # Instructions merge by their text; a frame reads its own part's images and task.
    assert ds.tasks == ["put the bowl on the plate", "open the drawer"]
    item = ds[45]
    assert item["task"] == "open the drawer" and item["episode_index"] == 2 and item["index"] == 45
    assert item["observation.images.agentview"].shape == (32, 32, 3)
    np.testing.assert_array_equal(item["action"], ds.parts[1].columns["action"][25])
    # Statistics of the parts combine to those of all frames.
    np.testing.assert_allclose(ds.stats["action"]["mean"], ds.columns["action"].mean(0), atol=1e-5)
    np.testing.assert_allclose(ds.stats["action"]["std"], ds.columns["action"].std(0), atol=1e-5)


def test_training_data_over_several_datasets(two):
    _, _, ds = two
    config = tiny_model_config()
    policy = HumePolicy.from_config(config, dataset_stats(ds))
    data = TrainingData(ds, config, policy.normalizer, policy.tokenizer)
    gamma = config.value_head.gamma
    np.testing.assert_array_equal(data.mc_return[:20].numpy(), 0.0)
    np.testing.assert_allclose(data.mc_return[20:40].numpy(), gamma ** np.arange(19, -1, -1), rtol=1e-5)
    assert data.episode_end[19] == 19 and data.episode_start[20] == 20  # chunks stop at the seam
    _, is_pad = data.chunk(torch.tensor([15]), 8)
    assert is_pad[0].tolist() == [False] * 5 + [True] * 3
    # Only the first dataset is imitated by System 1; every frame reaches the value head.
    assert data.imitate.tolist() == [True] * 20 + [False] * 40
    batch = data.system1_value_batch(torch.tensor([3, 30, 50]), torch.Generator().manual_seed(0), False)
    assert batch["s1.imitate"].tolist() == [True, False, False]
    assert batch["vh.mc_return"][0] == 0 and batch["vh.mc_return"][1] > 0


def test_datasets_that_disagree_are_refused(two, tmp_path):
    demos, _, _ = two
    other = write_tiny_dataset(tmp_path / "other", episodes=1, length=5)
    info = json.loads((other / "meta/info.json").read_text())
    info["fps"] = 10
    (other / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="fps"):
        open_datasets([str(demos), str(other)])
    with pytest.raises(ConfigError, match="extra_datasets"):
        TrainConfig(dataset=str(demos), extra_datasets=[str(demos)]).validate()


@pytest.mark.slow
def test_value_head_fine_tunes_on_demos_and_its_own_rollouts(tmp_path):
    """The documented workflow, shrunk: one short held-out scripted demonstration of libero_object
    task 0, two short rollouts of the default checkpoint (too short to succeed), two training steps."""
    from hume.train.trainer import train
    from sim.collect import collect
    from sim.collect_config import CollectConfig

    demos, rollouts = tmp_path / "demos", tmp_path / "rollouts"
    collect(
        parse_config(
            CollectConfig,
            [
                "--config",
                str(ROOT / "configs/collect/libero_object_heldout.yaml"),
                '--tasks=["0"]',
                "--episodes_per_task=1",
                "--max_steps=40",
                "--image_size=64",
                "--noise.mistake_prob=0",
                "--output",
                str(demos),
            ],
        )
    )
    summary = collect(
        parse_config(
            CollectConfig,
            [
                "--config",
                str(ROOT / "configs/collect/rollouts_smoke.yaml"),
                "--max_steps=12",
                "--output",
                str(rollouts),
            ],
        )
    )
    assert summary["source"] == "policy" and summary["episodes"] == 2 and summary["successes"] == 0
    assert summary["held_out"]["same_as_official"] == 0
    cfg = parse_config(
        TrainConfig,
        [
            "--config",
            str(ROOT / "configs/train/system1_value_rollouts_libero_object.yaml"),
            "--dataset",
            str(demos),
            f"--extra_datasets=[{rollouts}]",
            f"--init_from={ROOT / 'checkpoints/default'}",
            "--output",
            str(tmp_path / "train"),
            "--steps=2",
            "--batch_size=4",
            "--save_every=2",
            "--optim.warmup_steps=0",
        ],
    )
    ds = open_datasets([cfg.dataset, *cfg.extra_datasets])
    rows = ds.episodes
    assert [r["source"] for r in rows] == ["expert", "policy", "policy"]
    # Every rollout frame carries the Q of the chunk it executed; training reads the shared columns.
    values = open_datasets([str(rollouts)]).columns["policy.value"]
    assert values.shape == (24,) and np.isfinite(values).all() and len(np.unique(values)) >= 2
    assert "policy.value" not in ds.columns
    # Each collection ran its own simulator settings (the demonstrations' env was not reused).
    assert [r["length"] for r in rows[1:]] == [12, 12]
    assert ds[len(ds) - 1]["observation.images.agentview"].shape == (128, 128, 3)
    assert ds[0]["observation.images.agentview"].shape == (64, 64, 3)
    rollout_frames = slice(ds.episode_range(1).start, len(ds))
    assert not ds.columns["next.success"][rollout_frames].any()
    np.testing.assert_array_equal(ds.columns["mc_return"][rollout_frames], 0.0)
    result = train(cfg)
    assert result.step == 2 and np.isfinite(result.losses["critic"])
    policy = HumePolicy.from_pretrained(result.checkpoint)
    policy.reset(seed=0)
    item = ds[ds.episode_range(1).start]
    action = policy.select_action({**item, "task": item["task"]})
    assert action.shape == (7,) and np.isfinite(action).all()
