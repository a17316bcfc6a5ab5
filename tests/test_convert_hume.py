"""`hume convert --from hume`: tiny checkpoints in the authors' layout are converted, load strictly,
and compute what their code computes (tests/authors_reference.py, checked against their real code)
for the same weights, inputs and noise: System 2's candidates, the value head's Q and choice, and
System 1's actions, over a closed loop with re-planning."""

import json
import shutil

import numpy as np
import pytest
import torch
from authors_format import write_authors_checkpoint
from authors_reference import AuthorsReference
from cli_support import hume
from safetensors.torch import load_file, save_file

from hume.convert.common import write_checkpoint
from hume.convert.hume_format import convert_hume
from hume.models.paligemma_weights import CheckpointError
from hume.policy import HumePolicy
from hume.policy.schedule import ControlSchedule, ScheduleConfig

TOLERANCE = 1e-4  # relative, as float32 computations in another order may differ
VARIANTS = {
    "default": {},
    # A longer chunk with System 1 re-planning mid-chunk, a state history, one scored action.
    "history": dict(s2_chunk_size=16, s1_chunk_size=8, s1_his_state_size=3, vqh_chunk_size=1),
    # Partial denoising (theta2 < 1), System 1 from theta1 < 1, other robot widths.
    "partial": dict(theta1=0.3, theta2=0.9, vqh_chunk_size=3, action_dim=6, state_dim=5),
}
OUR_CAMERAS = {"image": "agentview", "wrist_image": "wrist"}


def relative_error(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def observation(step: int, state_dim: int) -> dict:
    """Their observation keys; non-square images so that resize-with-padding pads."""
    rng = np.random.default_rng(100 + step)
    return {
        "observation.images.image": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
        "observation.images.wrist_image": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=state_dim).astype(np.float32),
        "task": "put the black bowl on the plate",
    }


def ours(obs: dict) -> dict:
    prefix = "observation.images."
    return {
        (prefix + OUR_CAMERAS[k[len(prefix) :]] if k.startswith(prefix) else k): v for k, v in obs.items()
    }


@pytest.fixture(scope="module", params=list(VARIANTS))
def converted(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"authors_{request.param}")
    source = write_authors_checkpoint(root / "theirs", **VARIANTS[request.param])
    out = write_checkpoint(convert_hume(source), root / "ours")
    return source, out


def test_conversion_is_total_and_loads_strictly(converted):
    source, out = converted
    provenance = json.loads((out / "provenance.json").read_text())
    theirs = load_file(source / "model.safetensors")
    assert provenance["format"] == "hume" and provenance["fresh_networks"] == []
    assert set(provenance["dropped"]) < set(theirs) and all(provenance["dropped"].values())
    policy = HumePolicy.from_pretrained(out)
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    # Their tied VLM embedding (saved as lm_head) is our token embedding.
    head = theirs["s2_model.paligemma_with_expert.paligemma.language_model.lm_head.weight"]
    assert torch.equal(policy.system2.vlm.embed_tokens.weight, head.float())
    # Their shared critic output layer is copied into each of our independent critics.
    shared = theirs["value_query_head.calql.target_critics.output_layer.weight"].float()
    assert all(torch.equal(critic[-1].weight, shared) for critic in policy.value_head.target_critics)


def test_closed_loop_matches_their_code(converted):
    """Their LIBERO loop (think every chunk, refine every h steps, a state every step), driven
    through our control schedule with the same noise."""
    source, out = converted
    reference = AuthorsReference(source)
    policy = HumePolicy.from_pretrained(out)
    cfg = policy.config
    schedule = ControlSchedule(ScheduleConfig.of(cfg))
    n, horizon = cfg.num_candidates, cfg.chunk_size
    errors = {"candidates": 0.0, "padding": 0.0, "q": 0.0, "actions": 0.0}
    ref_chunk = None
    for step in range(horizon + cfg.s1_horizon):
        obs = observation(step, cfg.state_dim)
        noise = torch.randn(n, horizon, cfg.max_action_dim, generator=torch.Generator().manual_seed(step))
        if step % cfg.s2_replan_steps == 0:
            chunk = policy.think(ours(obs), noise=noise.numpy())
            schedule.land(chunk, step)
        request = schedule.begin(obs["observation.state"])
        if step % cfg.s1_replan_steps:
            assert request is None, "our schedule refines when theirs does"
            reference.preprocess(obs)
            schedule.end()
            continue
        theirs = reference.select_action(
            obs, noise, step=step, s2_replan_steps=cfg.s2_replan_steps, chunk=ref_chunk
        )
        ref_chunk = theirs["chunk"]
        if step % cfg.s2_replan_steps == 0:
            a = cfg.action_dim
            errors["candidates"] = max(
                errors["candidates"], relative_error(chunk.candidates, theirs["candidates"][..., :a])
            )
            errors["padding"] = max(errors["padding"], relative_error(chunk.padding, theirs["chunk"][:, a:]))
            errors["q"] = max(errors["q"], relative_error(chunk.values, theirs["q_values"]))
            assert chunk.index == theirs["index"]
        actions = policy.refine(ours(obs), request.chunk, request.start, schedule.history())
        schedule.end(actions)
        errors["actions"] = max(errors["actions"], relative_error(actions, theirs["s1_action"]))
    assert max(errors.values()) <= TOLERANCE, errors


def test_an_unmapped_or_misshaped_tensor_fails_naming_it(tmp_path):
    source = write_authors_checkpoint(tmp_path / "theirs")
    tensors = load_file(source / "model.safetensors")
    extra = tmp_path / "extra"
    shutil.copytree(source, extra)
    save_file({**tensors, "s2_model.extra_head.weight": torch.zeros(2)}, str(extra / "model.safetensors"))
    with pytest.raises(CheckpointError, match="'s2_model.extra_head.weight'"):
        convert_hume(extra)
    wrong = tmp_path / "wrong"
    shutil.copytree(source, wrong)
    bad = dict(tensors)
    bad["s2_model.state_proj.weight"] = torch.zeros(32, 33)
    save_file(bad, str(wrong / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"wrong.*'s2_model.state_proj.weight'.*\(32, 33\)"):
        write_checkpoint(convert_hume(wrong), tmp_path / "out")
    missing = tmp_path / "missing"
    shutil.copytree(source, missing)
    save_file({k: v for k, v in tensors.items() if "std_layer" not in k}, str(missing / "model.safetensors"))
    with pytest.raises(CheckpointError, match="std_layer"):
        convert_hume(missing)


@pytest.mark.slow
def test_hume_convert_command(tmp_path):
    source = write_authors_checkpoint(tmp_path / "theirs")
    out = tmp_path / "ours"
    result = hume("convert", "--from", "hume", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "provenance.json" in result.stdout
    HumePolicy.from_pretrained(out)
    bad = hume("convert", "--from", "openvla", str(source), "--output", str(out))
    assert bad.returncode == 2 and "--from must be one of" in bad.stderr
