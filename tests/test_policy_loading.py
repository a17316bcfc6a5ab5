"""Loading a checkpoint into networks built empty: the same policy as one built and then filled,
each weight held once, strict about the file."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hume.models.checkpoint_tensors import CheckpointError
from hume.policy import HumePolicy, loading
from hume.policy.hume_policy import load_config
from hume.policy.normalize import Normalizer

DEFAULT = Path(__file__).resolve().parents[1] / "checkpoints/default"


def observation(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observation.images.agentview": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=8).astype(np.float32),
        "task": "put the black bowl on the plate",
    }


def built_then_filled(directory: Path, **overrides) -> HumePolicy:
    """The policy as it was loaded before: built (randomly initialised), then load_state_dict."""
    config = load_config(directory / "config.json")
    policy = HumePolicy(config, Normalizer.load(directory, config.state_dim, config.action_dim).to_dict())
    policy.load_state_dict(load_file(str(directory / "model.safetensors")))
    return policy.eval()


def test_an_empty_build_thinks_and_refines_exactly_as_a_filled_one():
    loaded, reference = HumePolicy.from_pretrained(DEFAULT, num_candidates=3), built_then_filled(DEFAULT)
    reference.config = loaded.config
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    # Buffers are never stored: the rotary tables, pixel statistics and position ids are computed.
    ours, theirs = dict(loaded.named_buffers()), dict(reference.named_buffers())
    assert ours.keys() == theirs.keys() and any("rotary" in k for k in ours)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
    for (key, a), (_, b) in zip(loaded.named_parameters(), reference.named_parameters(), strict=True):
        assert a.requires_grad == b.requires_grad and torch.equal(a, b), key
    assert not loaded.value_head.target_critics[0][0].weight.requires_grad
    obs = observation()
    loaded.reset(seed=4)
    reference.reset(seed=4)
    a, b = loaded.think(obs), reference.think(obs)
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(loaded.refine(obs, a, 2), reference.refine(obs, b, 2))


def test_weights_are_read_in_place_into_a_built_policy_and_cast_piece_by_piece(monkeypatch, tmp_path):
    file = DEFAULT / "model.safetensors"
    stored = load_file(str(file))
    policy = HumePolicy(load_config(DEFAULT / "config.json"))
    weight = policy.system2.vlm.embed_tokens.weight
    before = weight.data_ptr()
    policy.load_weights(file)
    assert weight.data_ptr() == before, "a built policy's tensors are overwritten, not replaced"
    for key, value in policy.state_dict().items():
        assert torch.equal(value, stored[key]), key
    # A cast crosses many pieces (and a last partial one) and equals a cast of the whole tensor.
    monkeypatch.setattr(loading, "PIECE", 1000)
    half = HumePolicy.from_pretrained(DEFAULT, dtype="bfloat16")
    key = "system2.vlm.embed_tokens.weight"
    assert stored[key].numel() % 1000
    assert torch.equal(half.state_dict()[key], stored[key].to(torch.bfloat16))


def test_a_truncated_or_foreign_file_is_an_error_naming_it(tmp_path):
    stored = load_file(str(DEFAULT / "model.safetensors"))
    folder = tmp_path / "ckpt"
    HumePolicy.from_pretrained(DEFAULT).save_pretrained(folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        HumePolicy.from_pretrained(folder)
    stored["system1.action_in.weight"] = stored["system1.action_in.weight"].to(torch.float8_e4m3fn)
    save_file(stored, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*system1\.action_in\.weight.*F8_E4M3"):
        HumePolicy.from_pretrained(folder)
