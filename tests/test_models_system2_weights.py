"""Loading a Hugging Face PaliGemma checkpoint into System 2 (tiny checkpoints written by the test)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, SiglipVisionConfig

from hume.models.configuration_system2 import System2Config
from hume.models.paligemma_weights import CheckpointError, load_paligemma
from hume.models.system2 import System2

S2 = System2Config(
    vision_width=32,
    vision_depth=2,
    vision_heads=2,
    vision_mlp_dim=64,
    patch_size=8,
    vlm_width=48,
    vlm_depth=2,
    vlm_mlp_dim=96,
    vocab_size=80,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    expert_width=32,
    expert_mlp_dim=64,
)


def paligemma(vocab_size: int = 80) -> PaliGemmaForConditionalGeneration:
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    text = GemmaConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    cfg = PaliGemmaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), projection_dim=48)
    torch.manual_seed(0)
    return PaliGemmaForConditionalGeneration(cfg).eval()


def system2() -> System2:
    torch.manual_seed(1)
    return System2(S2, image_size=32, chunk_size=4, action_dim=8, state_dim=8).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("paligemma")
    model = paligemma()
    model.save_pretrained(path)
    return path, model


def test_loads_every_backbone_tensor_and_matches_paligemma(checkpoint):
    path, pg = checkpoint
    s2 = system2()
    expert_before = {k: v.clone() for k, v in s2.state_dict().items() if k.startswith("expert.")}
    load_paligemma(s2, path)
    ours = s2.state_dict()
    theirs = pg.state_dict()
    lm = pg.model.language_model
    torch.testing.assert_close(ours["vlm.layers.1.mlp.down_proj.weight"], lm.layers[1].mlp.down_proj.weight)
    torch.testing.assert_close(ours["vlm.embed_tokens.weight"], lm.embed_tokens.weight)
    proj = [v for k, v in theirs.items() if k.endswith("multi_modal_projector.linear.weight")][0]
    torch.testing.assert_close(ours["multi_modal_projector.weight"], proj)
    for k, v in expert_before.items():
        assert torch.equal(ours[k], v), "the action expert has no PaliGemma counterpart and must stay as is"
    # Functional check: the image tokens equal PaliGemma's own vision tower + projector.
    images = torch.rand(1, 1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        embs, _ = s2.embed_prefix(
            images,
            torch.ones(1, 1, dtype=torch.bool),
            torch.ones(1, 1, dtype=torch.long),
            torch.ones(1, 1, dtype=torch.bool),
        )
        ref = pg.model.multi_modal_projector(pg.model.vision_tower(pixel_values=images[0]).last_hidden_state)
        ref_lang = lm.embed_tokens(torch.ones(1, 1, dtype=torch.long))
    torch.testing.assert_close(embs[:, :16], ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(embs[:, 16:], ref_lang, atol=1e-5, rtol=1e-4)


def test_original_hub_layout_and_shards(checkpoint, tmp_path):
    """The layout of the checkpoints on the Hub (vision_tower.vision_model.*), sharded."""
    path, _ = checkpoint
    state = load_file(str(path / "model.safetensors"))
    renamed = {
        (
            k.replace("vision_tower.", "vision_tower.vision_model.", 1)
            if k.startswith("vision_tower.")
            else k
        ): v
        for k, v in state.items()
    }
    keys = sorted(renamed)
    half = len(keys) // 2
    shards = {
        "model-00001-of-00002.safetensors": keys[:half],
        "model-00002-of-00002.safetensors": keys[half:],
    }
    for file, names in shards.items():
        save_file({k: renamed[k].contiguous() for k in names}, str(tmp_path / file))
    index = {"weight_map": {k: file for file, names in shards.items() for k in names}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    s2 = system2()
    load_paligemma(s2, tmp_path)
    torch.testing.assert_close(
        s2.state_dict()["vision_tower.encoder.layers.1.mlp.fc1.weight"],
        state["vision_tower.encoder.layers.1.mlp.fc1.weight"],
    )


def test_mismatched_checkpoint_names_file_and_key(tmp_path):
    paligemma(vocab_size=96).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError) as e:
        load_paligemma(system2(), tmp_path)
    msg = str(e.value)
    assert "model.safetensors" in msg and "embed_tokens.weight" in msg and "(96, 48)" in msg


def test_missing_tensor_names_file_and_key(checkpoint, tmp_path):
    path, _ = checkpoint
    state = load_file(str(path / "model.safetensors"))
    del state["language_model.model.layers.1.self_attn.k_proj.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors.*vlm\.layers\.1\.self_attn\.k_proj\.weight"
    ):
        load_paligemma(system2(), tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_paligemma(system2(), tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_paligemma(system2(), tmp_path / "empty")
