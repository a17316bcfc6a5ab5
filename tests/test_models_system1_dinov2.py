"""Loading DINOv2 checkpoint directories (transformers save_pretrained format) into System 1."""

import dataclasses
import json

import pytest
import torch
from transformers import Dinov2Config, Dinov2ForImageClassification, Dinov2Model

from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system1 import System1Config
from hume.models.dinov2_checkpoint import CheckpointMismatchError
from hume.models.system1 import System1, dinov2_config
from hume.policy import HumePolicy

CFG = System1Config()
SHAPES = dict(cameras=("agentview", "wrist"), chunk_size=16, horizon=8, state_dim=8, action_dim=7)


def saved_encoder(tmp_path, **overrides):
    torch.manual_seed(7)
    fields = dict(
        hidden_size=CFG.vision_hidden_size,
        num_hidden_layers=CFG.vision_num_layers,
        num_attention_heads=CFG.vision_num_heads,
        mlp_ratio=CFG.vision_mlp_ratio,
        patch_size=CFG.patch_size,
        image_size=CFG.vision_pos_grid,
    )
    model = Dinov2Model(Dinov2Config(**(fields | overrides))).eval()
    model.save_pretrained(tmp_path)
    return model


def test_loads_a_saved_dinov2_and_encodes_like_it(tmp_path):
    reference = saved_encoder(tmp_path)
    torch.manual_seed(0)
    s1 = System1(CFG, **SHAPES).eval()
    s1.load_vision_encoder(tmp_path)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(s1.vision_encoder.state_dict()[key], value)
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ours = s1.vision_encoder(pixel_values=pixels).last_hidden_state
        theirs = reference(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, theirs)


def test_policy_from_config_loads_system1_dinov2_path(tmp_path):
    reference = saved_encoder(tmp_path)
    config = HumeConfig(system1=dataclasses.replace(HumeConfig().system1, dinov2_path=str(tmp_path)))
    policy = HumePolicy.from_config(config)
    torch.testing.assert_close(
        policy.system1.vision_encoder.embeddings.cls_token, reference.embeddings.cls_token
    )


def test_loads_the_backbone_of_a_task_checkpoint(tmp_path):
    cfg = dinov2_config(CFG)
    cfg.num_labels = 3
    torch.manual_seed(3)
    classifier = Dinov2ForImageClassification(cfg)
    classifier.save_pretrained(tmp_path)
    s1 = System1(CFG, **SHAPES)
    s1.load_vision_encoder(tmp_path)
    torch.testing.assert_close(s1.vision_encoder.embeddings.cls_token, classifier.dinov2.embeddings.cls_token)


def test_mismatched_config_names_file_and_key(tmp_path):
    saved_encoder(tmp_path, num_attention_heads=CFG.vision_num_heads * 2)
    s1 = System1(CFG, **SHAPES)
    before = s1.vision_encoder.embeddings.cls_token.clone()
    with pytest.raises(CheckpointMismatchError, match=r"config\.json.*num_attention_heads"):
        s1.load_vision_encoder(tmp_path)
    torch.testing.assert_close(s1.vision_encoder.embeddings.cls_token, before)  # nothing half-loaded


def test_mismatched_tensor_names_file_and_key(tmp_path):
    saved_encoder(tmp_path, image_size=CFG.vision_pos_grid * 2)  # a larger position-embedding grid
    with pytest.raises(CheckpointMismatchError, match=r"model\.safetensors.*embeddings\.position_embeddings"):
        System1(CFG, **SHAPES).load_vision_encoder(tmp_path)


def test_missing_tensor_names_the_key(tmp_path):
    saved_encoder(tmp_path, num_hidden_layers=CFG.vision_num_layers - 1)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = CFG.vision_num_layers  # config lies; the tensors tell
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=rf"encoder\.layer\.{CFG.vision_num_layers - 1}\."):
        System1(CFG, **SHAPES).load_vision_encoder(tmp_path)


def test_missing_directory_or_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        System1(CFG, **SHAPES).load_vision_encoder(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        System1(CFG, **SHAPES).load_vision_encoder(tmp_path)
