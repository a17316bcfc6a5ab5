"""The training batch pipeline: chunks and padding, state history, System-1 offsets, transitions."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from train_support import tiny_model_config, write_tiny_dataset

from hume.data import LeRobotDataset
from hume.data.returns import discounted_returns
from hume.policy import HumePolicy
from hume.policy.transforms import image_to_tensor
from hume.train.data import TrainingData, dataset_stats


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("data") / "ds", episodes=3, length=20)
    dataset = LeRobotDataset(root)
    config = tiny_model_config()
    config = replace(config, value_head=replace(config.value_head, gamma=0.5))
    policy = HumePolicy.from_config(config, dataset_stats(dataset))
    return dataset, policy, TrainingData(dataset, config, policy.normalizer, policy.tokenizer)


def test_action_chunks_pad_past_the_episode_end(setup):
    dataset, policy, data = setup
    idx = torch.tensor([0, 15, 19, 20])  # episode 0 starts at 0 and ends at 19
    actions, is_pad = data.chunk(idx, 8)
    raw = dataset.columns["action"]
    assert actions.shape == (4, 8, 7)
    np.testing.assert_allclose(actions[0].numpy(), policy.normalizer.action(raw[0:8]), rtol=1e-6)
    assert not is_pad[0].any()
    # Frame 15: frames 15..19 are real, the rest repeat frame 19 and are marked padding.
    assert is_pad[1].tolist() == [False] * 5 + [True] * 3
    np.testing.assert_allclose(actions[1, 5:].numpy(), np.repeat(policy.normalizer.action(raw[19:20]), 3, 0))
    assert is_pad[2].tolist() == [False] + [True] * 7
    # Frame 20 opens episode 1: nothing of episode 0 leaks in.
    np.testing.assert_allclose(actions[3].numpy(), policy.normalizer.action(raw[20:28]), rtol=1e-6)


def test_state_history_repeats_the_first_state_at_the_start(setup):
    dataset, policy, data = setup
    states = policy.normalizer.state(dataset.columns["observation.state"])
    hist = data.state_history(torch.tensor([20, 21, 25]), 3)
    np.testing.assert_allclose(hist[0].numpy(), states[[20, 20, 20]])
    np.testing.assert_allclose(hist[1].numpy(), states[[20, 20, 21]])
    np.testing.assert_allclose(hist[2].numpy(), states[[23, 24, 25]])


def test_system1_offsets_stay_inside_the_episode(setup):
    _, policy, data = setup
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(len(data)).repeat(20)
    offsets = data.s1_offsets(idx, g)
    cfg = policy.config
    assert offsets.min() == 0 and offsets.max() == cfg.chunk_size - cfg.s1_horizon
    assert torch.all(idx + offsets <= data.episode_end[idx])
    assert torch.all(offsets[idx % 20 == 19] == 0)  # the last frame of an episode has no room


def test_transitions_have_correct_done_masks_and_returns(setup):
    dataset, policy, data = setup
    g = torch.Generator().manual_seed(1)
    idx = torch.tensor([18, 19, 39, 59])  # 19, 39: ends of successful episodes; 59: end of the failed one
    batch = data.system1_value_batch(idx, g, augment=False)
    assert batch["vh.done"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert batch["vh.reward"].tolist() == [0.0, 1.0, 1.0, 0.0]
    # Returns accumulate with the value head's gamma (0.5 here), per episode.
    expected = discounted_returns(dataset.columns["next.reward"][0:20], 0.5)
    assert data.mc_return[:20].numpy() == pytest.approx(expected)
    assert batch["vh.mc_return"].tolist() == pytest.approx([0.5, 1.0, 1.0, 0.0])
    assert torch.all(data.mc_return[40:60] == 0)
    # s' is frame i+1 inside the episode (the same frame at its end, where done masks it).
    torch.testing.assert_close(
        batch["vh.next.images"][0], data.system2_inputs(torch.tensor([19]), g, False)["images"][0]
    )
    torch.testing.assert_close(
        batch["vh.next.images"][1], data.system2_inputs(torch.tensor([19]), g, False)["images"][0]
    )
    # With System 1 frozen its inputs are not built; the value head's transition is the same.
    alone = data.system1_value_batch(idx, torch.Generator().manual_seed(1), augment=False, system1=False)
    assert not any(k.startswith("s1.") for k in alone) and "s2.noise" not in alone
    assert alone.keys() == {k for k in batch if not k.startswith("s1.") and k != "s2.noise"}
    for k in alone:
        torch.testing.assert_close(alone[k], batch[k])


def test_images_go_through_the_policy_transform(setup):
    dataset, policy, data = setup
    g = torch.Generator().manual_seed(0)
    batch = data.system2_batch(torch.tensor([7]), g, augment=False)
    expected = image_to_tensor(dataset[7]["observation.images.agentview"], policy.config.image_size)
    assert batch["images"].shape == (1, 2, 3, 32, 32)
    assert torch.allclose(batch["images"][0, 0], expected, atol=1 / 127.5)
    assert batch["state"].shape == (1, policy.config.max_state_dim)
    assert batch["actions"].shape == (1, policy.config.chunk_size, policy.config.max_action_dim)
    augmented = data.system2_batch(torch.tensor([7]), torch.Generator().manual_seed(0), augment=True)
    assert not torch.equal(augmented["images"], batch["images"])
    assert augmented["images"].min() >= -1 and augmented["images"].max() <= 1


def test_missing_camera_is_a_clear_error(setup):
    dataset, policy, _ = setup
    config = replace(policy.config, cameras=("agentview", "side"))
    with pytest.raises(ValueError, match="observation.images.side"):
        TrainingData(dataset, config, policy.normalizer, policy.tokenizer)


def test_value_head_actions_span_the_data_box(setup):
    """The value head sees the data's actions inside [-1, 1], the range of its actor and of
    Cal-QL's uniform actions: each dim's min maps to -1 and its max to +1."""
    dataset, policy, data = setup
    raw = dataset.columns["action"].reshape(len(dataset), -1)
    stats = dataset_stats(dataset)["action"]
    np.testing.assert_allclose(stats["min"], raw.min(0), rtol=1e-6)
    boxed = data.value_action
    assert boxed.min() >= -1 and boxed.max() <= 1
    moving = raw.max(0) - raw.min(0) > 1e-3
    torch.testing.assert_close(boxed.min(0).values[moving], torch.full((int(moving.sum()),), -1.0))
    torch.testing.assert_close(boxed.max(0).values[moving], torch.full((int(moving.sum()),), 1.0))
    batch = data.system1_value_batch(torch.arange(8), torch.Generator().manual_seed(0), augment=False)
    assert batch["vh.actions"].abs().max() <= 1
