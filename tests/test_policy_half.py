"""Half precision: System 2 and System 1 in bfloat16 / float16 think and refine within a stated
tolerance of float32 on the default checkpoint (CPU here; the same code on a GPU)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hume.config import ConfigError
from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy
from hume.runtime.config import DeployConfig, HumePolicyConfig
from sim.eval_config import EvalConfig, EvalPolicyConfig

DEFAULT = Path(__file__).resolve().parents[1] / "checkpoints/default"
N = 5
# Worst differences from float32 over 3 observations (normalised actions, |a| <~ 2): the candidates'
# largest absolute difference and their RMS difference relative to their RMS, the values' and the
# refined actions' largest. Measured on this checkpoint over 8 observations: bf16 up to 0.31 /
# 2.5 % / 0.082 / 0.001, fp16 up to 0.026 / 0.2 % / 0.007 / 0.0001; the limits leave ~1.5-2x.
# A think's candidates are 9-10 Euler steps through System 2, where one rounding can shift a step;
# the flow's own state is float32 (in bf16 it would add 2^-8 of the sample at every step).
TOLERANCE = {
    "bfloat16": {"candidates": 0.5, "candidates_rms": 0.04, "values": 0.15, "refine": 0.01},
    "float16": {"candidates": 0.05, "candidates_rms": 0.004, "values": 0.015, "refine": 0.001},
}


def observation(seed):
    rng = np.random.default_rng(seed)
    return {
        "observation.images.agentview": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=8).astype(np.float32),
        "task": "put the bowl on the plate",
    }


@pytest.fixture(scope="module")
def reference():
    return HumePolicy.from_pretrained(DEFAULT, num_candidates=N)


def devices():
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_thinks_and_refines_within_tolerance_of_float32(reference, dtype, device):
    policy = HumePolicy.from_pretrained(DEFAULT, num_candidates=N, dtype=dtype).to(device)
    half = getattr(torch, dtype)
    assert policy.system2.vlm.embed_tokens.weight.dtype == half
    assert policy.system1.action_in.weight.dtype == half
    assert policy.value_head.query.dtype == torch.float32
    assert policy.system2.vlm.rotary.inv_freq.dtype == torch.float32
    worst = dict.fromkeys(TOLERANCE[dtype], 0.0)
    for seed in range(3):
        obs = observation(seed)
        noise = np.random.default_rng(seed).normal(size=(N, 16, 32)).astype(np.float32)
        ours, theirs = policy.think(obs, noise=noise), reference.think(obs, noise=noise)
        assert ours.candidates.dtype == np.float32 and np.isfinite(ours.candidates).all()
        # The same chunk refined by both, so that only System 1's precision differs.
        refined = policy.refine(obs, theirs, 2)
        diff = ours.candidates - theirs.candidates
        rms = np.sqrt((diff**2).mean() / (theirs.candidates**2).mean())
        for name, value in [
            ("candidates", np.abs(diff).max()),
            ("candidates_rms", rms),
            ("values", np.abs(ours.values - theirs.values).max()),
            ("refine", np.abs(refined - reference.refine(obs, theirs, 2)).max()),
        ]:
            worst[name] = max(worst[name], float(value))
    assert all(worst[k] <= TOLERANCE[dtype][k] for k in worst), (dtype, worst)
    assert worst["candidates"] > 0, "the policy must really compute in half precision"


def test_from_config_builds_in_the_dtype_and_training_dtypes_stay_float32():
    policy = HumePolicy.from_config(HumeConfig(dtype="bfloat16"))
    assert policy.dtype == torch.bfloat16 and policy.system1.vision_proj.weight.dtype == torch.bfloat16
    assert policy.value_head.query.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        HumeConfig(dtype="float8").validate()


def test_the_dtype_switch_reaches_eval_deploy_and_serve():
    assert EvalPolicyConfig().overrides() == {}, "unset: the checkpoint's dtype"
    assert EvalPolicyConfig(dtype="bfloat16").overrides() == {"dtype": "bfloat16"}
    with pytest.raises(ConfigError, match="policy.dtype"):
        EvalConfig(policy=EvalPolicyConfig(dtype="half")).validate()
    assert HumePolicyConfig(dtype="float16").overrides() == {"dtype": "float16"}
    with pytest.raises(ConfigError, match="policy.dtype"):
        DeployConfig(policy=HumePolicyConfig(dtype="half")).validate()
