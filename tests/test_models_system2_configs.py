"""Model configs: tiny (default) and full (the paper's sizes, built on the meta device)."""

from pathlib import Path

import pytest
import torch

from hume.config import ConfigError, parse_config
from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_yaml_is_the_default_and_small():
    cfg = parse_config(HumeConfig, ["--config", str(ROOT / "configs/model/tiny.yaml")])
    assert cfg == HumeConfig()
    with torch.device("meta"):
        counts = HumePolicy(cfg).num_parameters()
    assert sum(counts.values()) <= 15_000_000, counts


def test_full_yaml_builds_on_meta_with_paper_sizes():
    cfg = parse_config(HumeConfig, ["--config", str(ROOT / "configs/model/full.yaml")])
    with torch.device("meta"):
        policy = HumePolicy(cfg)
    counts = policy.num_parameters()
    assert policy.device.type == "meta", "nothing may be allocated on CPU"
    assert 3.0e9 < counts["system2"] < 3.5e9, counts
    assert sum(counts.values()) > 3.0e9
    s2 = policy.system2
    assert (
        s2.tokens_per_image == 256 and len(s2.vlm.layers) == 18 and len(s2.vision_tower.encoder.layers) == 27
    )
    assert s2.vlm.layers[0].mlp.gate_proj.weight.shape == (16384, 2048)
    assert s2.expert.layers[0].self_attn.q_proj.weight.shape == (8 * 256, 1024)


@pytest.mark.parametrize(
    "override, message",
    [
        ("--s2_replan_steps=20", "s2_replan_steps"),
        ("--s1_replan_steps=9", "s1_replan_steps"),
        ("--system1.patch_size=12", "system1.patch_size"),
        ("--system1.chunk_length=4", "chunk_length"),  # System 1's shapes are the policy's
        ("--image_size=60", "patch_size"),
        ("--theta2=0.95", "theta2"),
        ("--system2.num_kv_heads=3", "num_kv_heads"),
    ],
)
def test_inconsistent_configs_fail_naming_the_field(override, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        parse_config(HumeConfig, [override])
