"""Fine-tuning from a checkpoint that ran as System 2 alone (a converted pi0), and LoRA on the VLM."""

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_support import tiny_model_config, write_tiny_dataset

from hume.config import ConfigError
from hume.data import LeRobotDataset
from hume.policy import HumePolicy
from hume.train.config import LoraConfig, OptimConfig, TrainConfig
from hume.train.data import dataset_stats
from hume.train.lora import ADAPTER_FILE
from hume.train.trainer import train

FAST = OptimConfig(lr=1e-2, warmup_steps=0, end_lr=1e-2)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny dataset and a System-2-alone checkpoint whose padded action dims are not pinned,
    as `hume convert --from pi0` writes one."""
    root = tmp_path_factory.mktemp("finetune")
    dataset = write_tiny_dataset(root / "data", episodes=2, length=16)
    base = tiny_model_config()
    config = dataclasses.replace(
        base,
        system2=dataclasses.replace(base.system2, pin_padded_actions=False),
        use_system1=False,
        use_value_head=False,
        num_candidates=1,
    )
    torch.manual_seed(0)
    HumePolicy.from_config(config, dataset_stats(LeRobotDataset(dataset))).save_pretrained(root / "pi0")
    return root


def config(workspace, output, **kw):
    base = dict(
        dataset=str(workspace / "data"),
        init_from=str(workspace / "pi0"),
        output=str(output),
        batch_size=4,
        log_every=1,
        optim=FAST,
        augment=False,
    )
    return TrainConfig(**{**base, **kw})


def weights(path):
    return load_file(path / "model.safetensors")


@pytest.mark.slow
def test_system1_value_stage_turns_a_system2_alone_checkpoint_into_a_full_hume(workspace, tmp_path):
    result = train(config(workspace, tmp_path / "s1", stage="system1_value", steps=2, save_every=2))
    saved = json.loads((result.checkpoint / "config.json").read_text())
    assert saved["use_system1"] and saved["use_value_head"]
    before, after = weights(workspace / "pi0"), weights(result.checkpoint)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("system2."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("system1."))
    policy = HumePolicy.from_pretrained(result.checkpoint)
    assert policy.config.use_system1 and policy.config.use_value_head


@pytest.mark.slow
def test_lora_trains_adapters_only_and_saves_them_merged(workspace, tmp_path):
    cfg = config(
        workspace, tmp_path / "lora", stage="system2", steps=3, save_every=3, lora=LoraConfig(rank=4)
    )
    result = train(cfg)
    before, after = weights(workspace / "pi0"), weights(result.checkpoint)
    assert set(before) == set(after), "the checkpoint keeps our plain key names"
    adapters = load_file(result.checkpoint / ADAPTER_FILE)
    assert adapters and all("lora_" in k for k in adapters)
    # Every VLM weight changed only by its adapter: W_saved = W_base + (alpha / r) * B @ A.
    scale = cfg.lora.alpha / cfg.lora.rank
    checked = 0
    for key in before:
        if not key.startswith("system2.vlm."):
            continue
        module = key.rsplit(".", 1)[0]
        a = adapters.get(f"{module}.lora_A.default.weight")
        if a is None:
            assert torch.equal(before[key], after[key]), key
            continue
        b = adapters[f"{module}.lora_B.default.weight"]
        torch.testing.assert_close(after[key], before[key] + scale * b @ a, atol=1e-6, rtol=1e-5)
        checked += 1
    assert checked == 2 * 7, "seven target layers per VLM layer"
    assert any(b.abs().max() > 0 for k, b in adapters.items() if "lora_B" in k), "the adapters trained"
    # The expert trains in full, the vision tower not at all.
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("system2.expert."))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("system2.vision_tower."))
    HumePolicy.from_pretrained(result.checkpoint)


@pytest.mark.slow
def test_lora_run_resumes_exactly(workspace, tmp_path):
    lora = LoraConfig(rank=4)
    train(config(workspace, tmp_path / "full", stage="system2", steps=4, save_every=2, lora=lora))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "full" / "step_000002", resumed / "step_000002")
    train(config(workspace, resumed, stage="system2", steps=4, save_every=2, lora=lora))
    a, b = weights(tmp_path / "full" / "step_000004"), weights(resumed / "step_000004")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_needs_stage_system2_and_a_checkpoint(workspace, tmp_path):
    with pytest.raises(ConfigError, match="lora"):
        config(workspace, tmp_path, stage="system1_value", lora=LoraConfig(rank=4)).validate()
    with pytest.raises(ConfigError, match="lora"):
        config(workspace, tmp_path, stage="system2", init_from="", lora=LoraConfig(rank=4)).validate()
