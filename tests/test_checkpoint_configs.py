"""Checkpoint configs: the embedded default loads, and configs saved when System 1 and the value head
kept copies of the policy's shapes still load when the copies agree, and fail naming them when not."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hume.config import ConfigError, to_dict
from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy
from hume.policy.hume_policy import load_config

DEFAULT = Path(__file__).resolve().parents[1] / "checkpoints/default"


def legacy(config: HumeConfig) -> dict:
    """`config` as older code saved it: System 1 with its own copies of the policy's shapes."""
    raw = to_dict(config)
    raw["system1"].pop("padded_widths")
    raw["system1"] |= {
        "cameras": list(config.cameras),
        "image_size": config.image_size,
        "state_dim": config.s1_state_dim,
        "action_dim": config.s1_action_dim,
        "chunk_length": config.s1_horizon,
        "s2_chunk_length": config.chunk_size,
    }
    raw["value_head"]["input_projection"] = True
    return raw


def observation(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observation.images.agentview": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=8).astype(np.float32),
        "task": "pick up the black bowl",
    }


@pytest.fixture(scope="module")
def default_policy():
    return HumePolicy.from_pretrained(DEFAULT)


def test_the_default_checkpoint_loads_with_system1_shaped_by_the_policy(default_policy):
    cfg = default_policy.config
    s1 = default_policy.system1
    assert (s1.cameras, s1.chunk_size, s1.horizon) == (cfg.cameras, cfg.chunk_size, cfg.s1_horizon)
    assert (s1.state_dim, s1.action_dim) == (cfg.state_dim, cfg.action_dim) == (8, 7)
    raw = json.loads((DEFAULT / "config.json").read_text())
    assert not {"cameras", "image_size", "state_dim", "action_dim", "chunk_length", "s2_chunk_length"} & set(
        raw["system1"]
    ), "the embedded checkpoint says each shape once"


def test_a_legacy_copy_of_the_default_checkpoint_thinks_and_refines_identically(default_policy, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(DEFAULT, old)
    (old / "config.json").write_text(json.dumps(legacy(default_policy.config)))
    loaded = HumePolicy.from_pretrained(old)
    assert loaded.config == default_policy.config
    obs = observation()
    n = default_policy.config.num_candidates
    noise = np.random.default_rng(1).normal(size=(n, 16, 32)).astype(np.float32)
    ours, theirs = default_policy.think(obs, noise=noise), loaded.think(obs, noise=noise)
    np.testing.assert_array_equal(ours.candidates, theirs.candidates)
    np.testing.assert_array_equal(ours.values, theirs.values)
    np.testing.assert_array_equal(default_policy.refine(obs, ours, 3), loaded.refine(obs, theirs, 3))


def test_legacy_padded_widths_and_headless_projection_are_read():
    config = HumeConfig()
    raw = legacy(config)
    raw["system1"] |= {"state_dim": 32, "action_dim": 32}  # the full and the authors' System 1
    raw["value_head"] |= {"input_projection": False, "width": config.system2.vlm_width}  # the authors' head
    loaded = HumeConfig.from_dict(raw)
    assert loaded.system1.padded_widths and (loaded.s1_state_dim, loaded.s1_action_dim) == (32, 32)
    assert loaded.value_head.width is None
    assert HumeConfig.from_dict(to_dict(loaded)) == loaded


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("system1", {"image_size": 224}, r"system1\.image_size \(224\) disagrees with image_size \(64\)"),
        ("system1", {"cameras": ["wrist"]}, r"system1\.cameras \(\['wrist'\]\) disagrees with cameras"),
        ("system1", {"chunk_length": 4}, r"system1\.chunk_length \(4\) disagrees with s1_horizon \(8\)"),
        ("system1", {"s2_chunk_length": 10}, r"s2_chunk_length \(10\) disagrees with chunk_size \(16\)"),
        (
            "system1",
            {"state_dim": 8, "action_dim": 32},
            r"state_dim 8, action_dim 32 agree with neither the robot's state_dim/action_dim \(8/7\) nor the "
            r"padded max_state_dim/max_action_dim \(32/32",
        ),
        (
            "value_head",
            {"input_projection": False, "width": 64},
            r"value_head\.width \(64\) disagrees with system2\.vlm_width \(192\)",
        ),
    ],
)
def test_a_disagreeing_copy_is_an_error_naming_both_keys_and_the_file(tmp_path, section, change, message):
    raw = legacy(HumeConfig())
    raw[section] |= change
    file = tmp_path / "config.json"
    file.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(file)
    assert str(error.value).startswith(str(file))
