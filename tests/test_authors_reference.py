"""The tiny authors'-format checkpoint writer and the float32 reference of the authors' inference."""

import json

import numpy as np
import pytest
import torch
from authors_format import authors_dtype, write_authors_checkpoint
from authors_reference import AuthorsReference, candidate_temperature
from safetensors import safe_open
from transformers import AutoTokenizer

H, h, N, A = 8, 4, 5, 7  # the writer's defaults: S2 chunk, S1 chunk, candidates, action dim


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_authors_checkpoint(tmp_path_factory.mktemp("authors"))


@pytest.fixture(scope="module")
def tensors(checkpoint):
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        return {k: f.get_slice(k).get_dtype() for k in f.keys()}, f.metadata()


def observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "observation.images.image": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
        "observation.images.wrist_image": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=8),
        "task": "put the black bowl on the plate",
    }


def noise(seed: int = 1) -> torch.Tensor:
    return torch.randn(N, H, 32, generator=torch.Generator().manual_seed(seed))


def test_their_key_names_dtypes_and_dropped_aliases(tensors, checkpoint):
    dtypes, metadata = tensors
    prefixes = {
        "s2_model.paligemma_with_expert.paligemma.vision_tower.vision_model.",
        "s2_model.paligemma_with_expert.paligemma.multi_modal_projector.linear.",
        "s2_model.paligemma_with_expert.paligemma.language_model.model.",
        "s2_model.paligemma_with_expert.gemma_expert.model.",
        "s2_model.action_time_mlp_in.",
        "s1_model.fast_visuo_expert.vision_tower.encoder.layer.0.attention.attention.query.",
        "s1_model.fast_visuo_expert.multi_modal_projector.",
        "s1_model.fast_visuo_expert.gemma_expert.model.layers.",
        "s1_model.state_proj.",
        "value_query_head.vqh_backbone.gemma_expert.model.layers.",
        "value_query_head.calql.critics.networks.1.layers.2.",
        "value_query_head.calql.target_critics.output_layer.",
        "value_query_head.calql.policy.std_layer.",
        "normalize_inputs.buffer_observation_state.",
        "normalize_targets.buffer_action.",
        "unnormalize_outputs.buffer_action.",
    }
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in dtypes), prefix
    assert not any(k.startswith("value_query_head.paligemma_with_expert.") for k in dtypes)
    assert not any(k.endswith("embed_tokens.weight") for k in dtypes), "tied embeddings are stored as lm_head"
    assert "s2_model.paligemma_with_expert.paligemma.language_model.lm_head.weight" in dtypes
    assert "value_query_head.vqh_backbone.gemma_expert.lm_head.weight" in dtypes
    assert "value_query_head.calql.temperature.multiplier" in dtypes
    # safetensors' save_model records every dropped alias next to the name it kept.
    alias = "value_query_head.paligemma_with_expert.gemma_expert.model.norm.weight"
    assert metadata[alias] == "s2_model.paligemma_with_expert.gemma_expert.model.norm.weight"
    embed = "value_query_head.paligemma_with_expert.paligemma.language_model.model.embed_tokens.weight"
    assert metadata[embed] == "s2_model.paligemma_with_expert.paligemma.language_model.lm_head.weight"

    bf16 = {
        "s2_model.paligemma_with_expert.paligemma.language_model.model.norm.weight",  # whole PaliGemma cast
        "s2_model.paligemma_with_expert.paligemma.language_model.lm_head.weight",
        "s2_model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight",
        "s1_model.fast_visuo_expert.vision_tower.embeddings.position_embeddings",
        "s1_model.fast_visuo_expert.multi_modal_projector.weight",
        "value_query_head.vqh_backbone.gemma_expert.model.layers.0.self_attn.q_proj.weight",
        "value_query_head.query_embedding",
    }
    f32 = {
        "s2_model.paligemma_with_expert.gemma_expert.model.norm.weight",
        "s2_model.state_proj.weight",
        "s1_model.fast_visuo_expert.gemma_expert.model.norm.weight",
        "value_query_head.vqh_backbone.gemma_expert.model.norm.weight",
        "value_query_head.vqh_backbone.gemma_expert.lm_head.weight",
        "value_query_head.calql.target_critics.networks.0.layers.0.weight",
        "unnormalize_outputs.buffer_action.std",
    }
    assert {dtypes[k] for k in bf16} == {"BF16"} and {dtypes[k] for k in f32} == {"F32"}
    assert all((dtypes[k] == "BF16") == (authors_dtype(k) == torch.bfloat16) for k in dtypes)

    cfg = json.loads((checkpoint / "config.json").read_text())
    assert cfg["type"] == "hume" and cfg["n_action_steps"] == cfg["s2_chunk_size"] == H
    sub_configs = json.dumps({k: v for k, v in cfg.items() if k.endswith("_config")})
    assert "vqh" not in sub_configs, "their value-query backbone's sizes are not saved"
    assert AutoTokenizer.from_pretrained(str(checkpoint))("go")["input_ids"][0] == 2  # <bos>


def test_select_action_is_deterministic_finite_and_shaped(checkpoint):
    first = AuthorsReference(checkpoint).select_action(observation(), noise())
    again = AuthorsReference(checkpoint).select_action(observation(), noise())
    assert first["candidates"].shape == (N, H, 32)
    assert first["q_values"].shape == (N,)
    assert first["s1_action"].shape == (h, A)
    assert first["index"] == int(first["q_values"].argmax())
    torch.testing.assert_close(first["chunk"], first["candidates"][first["index"]])
    for key in ("candidates", "q_values", "s1_action"):
        assert torch.isfinite(first[key]).all()
        assert torch.equal(first[key], again[key])
    assert first["q_values"].std() > 1e-3, "candidates must be told apart"


def test_candidate_times_step_counts(checkpoint):
    ref = AuthorsReference(checkpoint)
    temps = [candidate_temperature(i, N, (0.9, 1.0)) for i in range(N)]
    # Counted in float32 as their loop runs: 0.9 stops at ~0.0 (9 steps), 0.96 and 0.98 reach 0.06 / 0.08.
    assert [len(ref.s2_times(t)) for t in temps] == [9, 9, 9, 10, 10]
    assert len(ref.s2_times(1.0)) == len(ref.s1_times()) == 10


def test_query_token_sits_after_the_valid_prefix(checkpoint):
    ref = AuthorsReference(checkpoint)
    p = ref.preprocess(observation())
    inputs = (p["images"], p["img_masks"], p["lang_tokens"], p["lang_masks"])
    embs, pad, positions, index = ref.vqh_inputs(*inputs)
    valid = 2 * 16 + int(p["lang_masks"].sum())  # two 56-pixel images of 4 x 4 patches, then the words
    assert int(index[0]) == int(positions[0, index[0]]) == valid
    assert torch.equal(embs[0, valid], ref.w["value_query_head.query_embedding"])
    assert pad[0, : valid + 1].all() and not pad[0, valid + 1 :].any()
    assert embs.shape[1] == 2 * 16 + 48 + 1


def test_images_padded_on_top_and_dino_positions_interpolated(checkpoint):
    ref = AuthorsReference(checkpoint)
    p = ref.preprocess(observation())
    img = p["images"][0]
    # 64 x 80 -> 44 x 56 (int(64 / (80 / 56))), 12 black rows on top; black is -1 after * 2 - 1.
    assert img.shape == (1, 3, 56, 56)
    assert (img[:, :, :12] == -1).all() and not (img[:, :, 12] == -1).all()
    assert ref.w["s1_model.fast_visuo_expert.vision_tower.embeddings.position_embeddings"].shape[1] == 26
    prefix, _ = ref.s1_prefix(p["images"], p["img_masks"])
    assert prefix.shape == (1, 2 * 17, 32), "CLS + 4 x 4 patches per camera from a 5 x 5 position grid"


def test_state_history_and_gripper_post_processing(tmp_path):
    ref = AuthorsReference(write_authors_checkpoint(tmp_path, s1_his_state_size=3))
    first, second = observation(0), observation(1)
    s1 = ref.preprocess(first)["state"][0]
    assert torch.equal(s1[0], s1[1]) and torch.equal(s1[1], s1[2]), "the first call repeats the state"
    s2 = ref.preprocess(second)["state"][0]
    assert torch.equal(s2[1], s1[2]) and not torch.equal(s2[2], s1[2])
    assert (s2[:, 8:] == 0).all(), "padded to 32"

    ref.reset()
    raw = ref.select_action(first, noise(), post_process_action=False)["s1_action"]
    ref.reset()
    out = ref.select_action(first, noise())
    torch.testing.assert_close(out["s1_action"][:, :-1], raw[:, :-1])
    torch.testing.assert_close(out["s1_action"][:, -1], 2 * (1 - raw[:, -1]) - 1)
    # Between System-2 replans the chosen chunk is reused and System 1 takes the next slice.
    later = ref.select_action(second, noise(7), step=h, chunk=out["chunk"])
    assert later["candidates"] is None and torch.equal(later["chunk"], out["chunk"])
