"""`hume bench full-model`: a random checkpoint is written tensor by tensor as real safetensors,
loaded, timed and deleted (smoke: the tiny model)."""

import torch
from safetensors.torch import load_file

from hume.bench import full_model
from hume.policy import HumePolicy


def test_the_random_checkpoint_is_a_policy_checkpoint_in_the_policy_dtypes(tmp_path):
    model = str(full_model.MODELS / "tiny.yaml")
    full_model.write_random_checkpoint(model, "bfloat16", str(tmp_path), seed=0)
    stored = load_file(str(tmp_path / "model.safetensors"))
    policy = HumePolicy.from_pretrained(tmp_path)
    assert policy.config.dtype == "bfloat16"
    assert stored.keys() == policy.state_dict().keys()
    for key, value in policy.state_dict().items():
        assert stored[key].dtype == value.dtype and torch.equal(stored[key], value), key
    assert stored["value_head.query"].dtype == torch.float32
    matrix = stored["system2.action_in_proj.weight"].float()
    assert 0.01 < matrix.std() < 0.03


def test_smoke_loads_a_random_checkpoint_thinks_and_cleans_up(tmp_path):
    cfg = full_model.Config(smoke=True, checkpoint="random", tmp_dir=str(tmp_path), dtype="bfloat16")
    result = full_model.run(cfg)
    assert not list(tmp_path.iterdir()), "the random checkpoint is deleted"
    assert result["source"] == "random checkpoint" and result["stored_dtype"] == "bfloat16"
    assert result["load_s"] > 0 and result["checkpoint_gib"] > 0 and result["weights_gib"] > 0
    assert result["peak_rss_after_load_gib"] >= result["rss_before_gib"] > 0
    assert [row["n"] for row in result["think"]] == [5] and result["refine_s"] > 0
    assert "loaded from random checkpoint" in full_model.table(result)
