"""The one reader of LeRobot's normalisation buffers (hume/convert/normalization.py), which both
`--from hume` and `--from pi0` use: statistics as our mean/std with LeRobot's epsilon folded in, the
action's training-time copy checked and dropped, images' buffers dropped, bad buffers refused."""

import pytest
import torch
from safetensors.torch import save_file

from hume.convert.normalization import WHY_IMAGE_BUFFER, WHY_TRAINING_COPY, lerobot_stats
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors

STATE = {"mean": torch.tensor([1.0, -2.0]), "std": torch.tensor([0.5, 2.0])}
ACTION = {"min": torch.tensor([-1.0, 0.0, 2.0]), "max": torch.tensor([1.0, 4.0, 2.0])}
CONFIG = {"normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MIN_MAX"}}


def buffers(directory, **changes) -> SourceTensors:
    tensors = {f"normalize_inputs.buffer_observation_state.{k}": v for k, v in STATE.items()}
    for module in ("normalize_targets", "unnormalize_outputs"):
        tensors |= {f"{module}.buffer_action.{k}": v.clone() for k, v in ACTION.items()}
    tensors |= {f"normalize_inputs.buffer_observation_images_image.{k}": torch.ones(3, 1, 1) for k in STATE}
    save_file(tensors | changes, str(directory / "model.safetensors"))
    return SourceTensors(directory)


def test_buffers_become_our_mean_std(tmp_path):
    source = buffers(tmp_path)
    stats, how = lerobot_stats(tmp_path, source, CONFIG, state_dim=2, action_dim=3)
    assert stats["observation.state"]["mean"] == [1.0, -2.0]
    assert stats["observation.state"]["std"] == pytest.approx([0.5 + 1e-8, 2.0 + 1e-8], abs=0)
    # min/max: 2 (x - min) / (max - min) - 1 = (x - centre) / half-range; an empty range is LeRobot's eps.
    assert stats["action"]["mean"] == [0.0, 2.0, 2.0] and stats["action"]["std"] == pytest.approx(
        [1.0, 2.0, 5e-9]
    )
    assert how == {"STATE": "MEAN_STD", "ACTION": "MIN_MAX", "eps": 1e-8}
    assert {k for k, why in source.dropped.items() if why == WHY_TRAINING_COPY} == {
        "normalize_targets.buffer_action.min",
        "normalize_targets.buffer_action.max",
    }
    assert sum(why == WHY_IMAGE_BUFFER for why in source.dropped.values()) == 2
    assert not source.remaining(), "every buffer is taken or dropped"


def test_disagreeing_copies_and_missing_statistics_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    source = buffers(tmp_path / "a", **{"normalize_targets.buffer_action.max": torch.tensor([1.0, 4.0, 3.0])})
    with pytest.raises(CheckpointError, match="normalize_targets.buffer_action.max.*disagrees"):
        lerobot_stats(tmp_path / "a", source, CONFIG, state_dim=2, action_dim=3)
    (tmp_path / "b").mkdir()
    source = buffers(
        tmp_path / "b", **{"normalize_inputs.buffer_observation_state.std": torch.full((2,), torch.inf)}
    )
    with pytest.raises(CheckpointError, match="still infinite"):
        lerobot_stats(tmp_path / "b", source, CONFIG, state_dim=2, action_dim=3)
    (tmp_path / "c").mkdir()
    source = buffers(tmp_path / "c")
    visual = {"normalization_mapping": {**CONFIG["normalization_mapping"], "VISUAL": "MEAN_STD"}}
    with pytest.raises(CheckpointError, match="images are normalised"):
        lerobot_stats(tmp_path / "c", source, visual, state_dim=2, action_dim=3)
