"""`convert_pi0`: tiny π0 checkpoints in openpi's and LeRobot's layouts -> our checkpoint, which loads
with `HumePolicy.from_pretrained` alone and samples what π0 samples."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import sentencepiece as spm
import torch
from pi0_format import ACTION_DIM, CHUNK, MAX_DIM, STATE_DIM, TOKENIZER_DIR, Pi0Reference, write_pi0
from safetensors.torch import load_file, save_file

from hume.convert.common import write_checkpoint
from hume.convert.pi0 import convert_pi0, parse_camera_map
from hume.models.configuration_hume import HumeConfig
from hume.models.paligemma_weights import CheckpointError
from hume.policy import HumePolicy

INSTRUCTION = "pick up the black bowl and place it on the plate"
OURS = {
    "openpi": ("agentview", "wrist"),
    "lerobot_old": ("agentview", "wrist"),
    "lerobot_new": ("agentview", "wrist"),
}
# The fresh value head and System 1 at the tiny sizes (configs/model/full.yaml's are 200M+ parameters).
FRESH = HumeConfig()


def _convert(ckpt, **kwargs):
    if ckpt.layout != "lerobot_new":  # the others ship no tokenizer
        kwargs.setdefault("tokenizer_dir", TOKENIZER_DIR)
    return convert_pi0(ckpt.path, fresh_config=FRESH, **kwargs)


@pytest.fixture(scope="module", params=["openpi", "lerobot_old", "lerobot_new"])
def converted(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    ckpt = write_pi0(root / "src", request.param)
    conversion = _convert(ckpt)
    write_checkpoint(conversion, root / "dst")
    return ckpt, conversion, root / "dst"


def _observation(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    obs = {
        f"observation.images.{cam}": rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)
        for cam in ("agentview", "wrist")
    }
    obs["observation.state"] = rng.normal(size=STATE_DIM).astype(np.float32)
    obs["task"] = INSTRUCTION
    return obs


def _reference_tokens(layout: str) -> list[int]:
    if layout == "openpi":  # openpi's PaligemmaTokenizer: sentencepiece, bos + text, then "\n" on its own
        sp = spm.SentencePieceProcessor(model_file=str(TOKENIZER_DIR / "tokenizer.model"))
        return sp.encode(INSTRUCTION.strip().replace("_", " "), add_bos=True) + sp.encode("\n")
    from transformers import GemmaTokenizer  # LeRobot: the tokenizer on task + "\n"

    return GemmaTokenizer.from_pretrained(str(TOKENIZER_DIR))(INSTRUCTION + "\n")["input_ids"]


def test_config_is_system2_alone(converted):
    ckpt, conversion, _ = converted
    cfg = conversion.config
    assert (cfg.use_value_head, cfg.use_system1, cfg.num_candidates, cfg.theta2) == (False, False, 1, 0.0)
    assert cfg.candidate_schedule == "hume" and cfg.candidate_t0_range == (1.0, 1.0)
    assert cfg.candidate_temperature_range == (1.0, 1.0)
    s2 = cfg.system2
    assert (s2.pin_padded_actions, s2.lowercase_instruction, s2.instruction_suffix) == (False, False, "\n")
    assert (s2.vision_width, s2.vision_depth, s2.vision_heads, s2.patch_size) == (32, 2, 16, 14)
    assert (s2.vlm_width, s2.vlm_depth, s2.num_heads, s2.num_kv_heads, s2.head_dim) == (64, 2, 2, 1, 16)
    assert (s2.expert_width, s2.expert_mlp_dim, s2.vocab_size, s2.max_token_len) == (32, 64, 1024, 48)
    assert (cfg.chunk_size, cfg.action_dim, cfg.state_dim, cfg.max_action_dim, cfg.max_state_dim) == (
        CHUNK,
        ACTION_DIM,
        STATE_DIM,
        MAX_DIM,
        MAX_DIM,
    )
    assert cfg.cameras == OURS[ckpt.layout]
    assert (cfg.image_size, cfg.resize_with_padding) == (56, True)
    assert cfg.s2_replan_steps == (5 if ckpt.layout in ("openpi", "lerobot_new") else CHUNK)
    assert conversion.fresh == ("value_head", "system1")


def test_every_source_tensor_used_or_dropped(converted):
    ckpt, conversion, dst = converted
    stored = set(load_file(str(ckpt.path / "model.safetensors")))
    assert all(conversion.dropped.values())
    expert_head = next(k for k in stored if k.endswith("gemma_expert.lm_head.weight"))
    assert "never" in conversion.dropped[expert_head]
    lm_heads = [k for k in stored if k.endswith("paligemma.lm_head.weight")]
    if ckpt.layout == "lerobot_new":  # untied head saved beside the embedding: not the one π0 reads
        assert "untied" in conversion.dropped[lm_heads[0]]
    else:  # the tied embedding was stored once, as the head, and becomes our embedding
        assert not set(conversion.dropped) & set(lm_heads)
    written = load_file(str(dst / "model.safetensors"))
    embedding = ckpt.tensors["vlm.embed_tokens.weight"]
    assert torch.equal(written["system2.vlm.embed_tokens.weight"], embedding)
    assert written["system2.vlm.embed_tokens.weight"].dtype == embedding.dtype  # the source dtype is kept
    provenance = json.loads((dst / "provenance.json").read_text())
    assert provenance["pi0_format"] == ("openpi" if ckpt.layout == "openpi" else "lerobot")
    assert provenance["dropped"] == conversion.dropped


def test_loads_and_samples_what_pi0_samples(converted):
    ckpt, _, dst = converted
    policy = HumePolicy.from_pretrained(dst)
    obs = _observation()
    noise = np.random.default_rng(2).normal(size=(CHUNK, MAX_DIM)).astype(np.float32)
    chunk = policy.think(obs, noise=noise[None])
    ours = np.concatenate([chunk.actions, chunk.padding], 1)

    ref = Pi0Reference(ckpt)
    by_camera = {"image": "agentview", "image2": "wrist", "wrist_image": "wrist"}
    by_camera.update(base_0_rgb="agentview", left_wrist_0_rgb="wrist")
    images = [
        np.zeros((56, 56, 3), np.uint8) if masked else obs[f"observation.images.{by_camera[cam]}"]
        for cam, masked in zip(ckpt.cameras, ckpt.masked, strict=True)
    ]
    state = ref.normalize_state(obs["observation.state"])
    expected = ref.sample(images, _reference_tokens(ckpt.layout), state, noise)
    assert np.abs(expected).max() > 0.1  # a real signal, not a collapsed one
    np.testing.assert_allclose(ours, expected, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(
        policy.normalizer.unnormalize_action(chunk.actions),
        ref.unnormalize_actions(expected[:, :ACTION_DIM]),
        atol=5e-4,
        rtol=1e-4,
    )

    policy.reset(seed=0)
    actions = [policy.select_action(_observation(seed)) for seed in range(7)]
    assert all(a.shape == (ACTION_DIM,) and np.isfinite(a).all() for a in actions)


def test_unknown_tensor_fails_naming_it(tmp_path):
    ckpt = write_pi0(tmp_path / "src", "openpi")
    weights = load_file(str(ckpt.path / "model.safetensors"))
    weights["paligemma_with_expert.paligemma.model.mystery.weight"] = torch.zeros(3)
    save_file(weights, str(ckpt.path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*paligemma\.model\.mystery\.weight"):
        _convert(ckpt)


def test_misshaped_tensor_fails_naming_file_and_key(tmp_path):
    ckpt = write_pi0(tmp_path / "src", "lerobot_old")
    weights = load_file(str(ckpt.path / "model.safetensors"))
    key = "model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"
    weights[key] = torch.zeros(65, 32, dtype=weights[key].dtype)
    save_file(weights, str(ckpt.path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: tensor '{key}' has shape \(65, 32\)"):
        _convert(ckpt)


def test_refuses_pi05(tmp_path):
    ckpt = write_pi0(tmp_path / "src", "openpi")
    weights = load_file(str(ckpt.path / "model.safetensors"))
    for part in ("weight", "bias"):
        weights[f"time_mlp_in.{part}"] = weights.pop(f"action_time_mlp_in.{part}")
    save_file(weights, str(ckpt.path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="π0.5"):
        _convert(ckpt)
    config = json.loads((ckpt.path / "config.json").read_text())
    (ckpt.path / "config.json").write_text(json.dumps({**config, "type": "pi05"}))
    with pytest.raises(CheckpointError, match="π0.5"):
        _convert(ckpt)


def test_openpi_needs_a_tokenizer_asset_and_cameras(tmp_path):
    ckpt = write_pi0(tmp_path / "src", "openpi")
    with pytest.raises(CheckpointError, match="ships no tokenizer"):
        convert_pi0(ckpt.path, fresh_config=FRESH)
    shutil.copytree(ckpt.path / "assets" / "physical-intelligence" / "libero", ckpt.path / "assets" / "droid")
    with pytest.raises(CheckpointError, match="several asset ids"):
        _convert(ckpt)
    with pytest.raises(CheckpointError, match="image slots"):  # only LIBERO's cameras are known
        _convert(ckpt, asset_id="droid")
    conversion = _convert(
        ckpt,
        asset_id="droid",
        cameras=parse_camera_map("base_0_rgb=exterior,left_wrist_0_rgb=wrist,right_wrist_0_rgb="),
        replan_steps=4,
    )
    assert conversion.config.cameras == ("exterior", "wrist")
    assert conversion.config.s2_replan_steps == 4


def test_lerobot_camera_map_and_stats(converted):
    ckpt, conversion, dst = converted
    stats = json.loads((dst / "stats.json").read_text())
    st = ckpt.stats
    if ckpt.layout == "lerobot_new":  # quantile normalisation becomes centre / half-range
        np.testing.assert_allclose(
            stats["action"]["mean"], (st["action"]["q01"] + st["action"]["q99"]) / 2, rtol=1e-6
        )
        np.testing.assert_allclose(stats["action"]["min"], st["action"]["min"], rtol=1e-6)
        assert conversion.source["cameras"] == {"image": "agentview", "image2": "wrist", "empty_camera_0": ""}
    else:
        np.testing.assert_allclose(stats["action"]["std"], st["action"]["std"] + ckpt.eps, rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["mean"], st["state"]["mean"], rtol=1e-6)


def test_fresh_networks_follow_the_given_sizes(converted):
    _, conversion, _ = converted
    cfg = conversion.config
    assert dataclasses.replace(cfg.value_head, action_steps=FRESH.value_head.action_steps) == FRESH.value_head
    # System 1 reads the converted model's 56² images: its patch is the largest up to the given 16
    # that tiles them.
    assert cfg.system1 == dataclasses.replace(FRESH.system1, patch_size=14)


def test_fresh_networks_default_to_the_full_sizes(tmp_path):
    ckpt = write_pi0(tmp_path / "src", "lerobot_new")
    cfg = convert_pi0(ckpt.path).config  # configs/model/full.yaml; nothing is built but on the meta device
    assert (cfg.value_head.width, cfg.value_head.num_layers, cfg.value_head.action_steps) == (2048, 4, CHUNK)
    assert (cfg.system1.width, cfg.system1.num_layers, cfg.system1.padded_widths, cfg.cameras) == (
        512,
        13,
        True,
        ("agentview", "wrist"),
    )


def test_the_authors_system2_release_converts_through_from_hume(tmp_path):
    """Hume-System2 is a π0 saved by their System2Policy (LeRobot layout, type "system2")."""
    from hume.convert.hume_format import convert_hume

    ckpt = write_pi0(tmp_path / "src", "lerobot_old")
    config = json.loads((ckpt.path / "config.json").read_text())
    (ckpt.path / "config.json").write_text(json.dumps({**config, "type": "system2"}))
    conversion = convert_hume(ckpt.path, tokenizer_dir=TOKENIZER_DIR, fresh_config=FRESH)
    assert conversion.source["format"] == "pi0" and conversion.fresh == ("value_head", "system1")
    assert not conversion.config.use_system1 and not conversion.config.use_value_head
