"""Both training stages on a tiny generated dataset: a few steps lower the loss, checkpoints load
as policies, and a resumed run repeats the uninterrupted one exactly."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_support import tiny_model_config, write_tiny_dataset

from hume.config import ConfigError
from hume.data import LeRobotDataset
from hume.policy import HumePolicy
from hume.train.config import OptimConfig, TrainConfig
from hume.train.data import TrainingData, dataset_stats
from hume.train.metrics import read_metrics
from hume.train.trainer import build_policy, make_stage, train

FAST = OptimConfig(lr=1e-3, warmup_steps=2, end_lr=1e-4)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The tiny dataset and a randomly initialised policy saved as the common starting point."""
    root = tmp_path_factory.mktemp("train")
    dataset = write_tiny_dataset(root / "data", episodes=3, length=20)
    torch.manual_seed(0)
    policy = HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(dataset)))
    policy.save_pretrained(root / "init")
    return root


def config(workspace, stage, output, **kw):
    base = dict(
        stage=stage,
        dataset=str(workspace / "data"),
        init_from=str(workspace / "init"),
        output=str(output),
        batch_size=8,
        log_every=1,
        optim=FAST,
        critic_lr=1e-3,
    )
    return TrainConfig(**{**base, **kw})


def fixed_batch_losses(checkpoint, cfg) -> dict[str, float]:
    """The stage's losses on every frame of the dataset with fixed draws (no augmentation)."""
    policy = HumePolicy.from_pretrained(checkpoint)
    data = TrainingData(LeRobotDataset(cfg.dataset), policy.config, policy.normalizer, policy.tokenizer)
    stage = make_stage(cfg, policy)
    batch = stage.batch(data, torch.arange(len(data)), torch.Generator().manual_seed(7), False)
    with torch.no_grad():
        out = stage(batch, torch.Generator().manual_seed(8))
    return {k: float(v) for k, v in out.items()}


def changed_networks(before: Path, after: Path) -> set[str]:
    """The top-level networks (system2, value_head, system1) whose weights differ between two checkpoints."""
    start, end = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    return {k.split(".")[0] for k in start if not torch.equal(start[k], end[k])}


@pytest.fixture(scope="module")
def system2_run(workspace):
    """30 steps of stage system2 from the random policy: (config, result)."""
    cfg = config(workspace, "system2", workspace / "s2", steps=30, save_every=30)
    return cfg, train(cfg)


@pytest.mark.slow
def test_system2_steps_lower_the_loss_and_checkpoint_loads(workspace, system2_run):
    cfg, result = system2_run
    before = fixed_batch_losses(workspace / "init", cfg)["loss"]
    assert result.checkpoint == workspace / "s2" / "step_000030"
    for name in ("config.json", "model.safetensors", "stats.json", "optimizer.pt", "trainer_state.json"):
        assert (result.checkpoint / name).is_file(), name
    after = fixed_batch_losses(result.checkpoint, cfg)["loss"]
    assert after < 0.85 * before, (before, after)
    # Only System 2 changed; the other networks are as they started.
    assert changed_networks(workspace / "init", result.checkpoint) == {"system2"}
    start, end = (
        load_file(workspace / "init" / "model.safetensors"),
        load_file(result.checkpoint / "model.safetensors"),
    )
    vision = [k for k in start if k.startswith("system2.vision_tower.")]
    assert vision and all(torch.equal(start[k], end[k]) for k in vision)  # frozen by default
    # The checkpoint is a policy: it acts on an observation.
    policy = HumePolicy.from_pretrained(result.checkpoint)
    policy.reset(seed=0)
    item = LeRobotDataset(cfg.dataset)[3]
    action = policy.select_action({**item, "task": item["task"]})
    assert action.shape == (7,) and np.isfinite(action).all()
    assert (workspace / "s2" / "loss_curves.png").stat().st_size > 0
    assert list((workspace / "s2" / "tensorboard").glob("events.out.tfevents.*"))
    assert [row["step"] for row in read_metrics(workspace / "s2")] == list(range(1, 31))


@pytest.mark.slow
def test_system1_value_steps_lower_the_losses_with_system2_frozen(workspace, system2_run, tmp_path):
    s2 = system2_run[1].checkpoint
    # System 1 regresses (slice - a) / theta1, ten times System 2's scale: a higher rate for a short run.
    cfg = config(
        workspace,
        "system1_value",
        tmp_path / "s1",
        init_from=str(s2),
        steps=40,
        save_every=40,
        optim=OptimConfig(lr=1e-2, warmup_steps=2, end_lr=1e-3),
    )
    before = fixed_batch_losses(s2, cfg)
    result = train(cfg)
    after = fixed_batch_losses(result.checkpoint, cfg)
    assert after["system1"] < 0.9 * before["system1"], (before, after)
    # The critic learns: Cal-QL's conservative gap (soft maximum of Q over out-of-distribution
    # actions minus Q at the data) shrinks, and Q at the data rises from its initial ~0 towards
    # the data's positive returns. (Its TD error grows meanwhile, as the targets rise with it, so
    # the total critic loss is not a monotone measure over a few steps.)
    assert after["cql"] < before["cql"], (before, after)
    assert after["q_data_mean"] > before["q_data_mean"]
    assert changed_networks(s2, result.checkpoint) == {"system1", "value_head"}
    start, end = load_file(s2 / "model.safetensors"), load_file(result.checkpoint / "model.safetensors")
    # The value head was trained on actions in the data's box: the box is saved with it.
    saved = json.loads((result.checkpoint / "stats.json").read_text())["action"]
    assert {"min", "max"} <= set(saved)
    # The target critics moved towards the critics by Polyak averaging.
    assert any(not torch.equal(start[k], end[k]) for k in start if ".target_critics." in k)
    rows = read_metrics(tmp_path / "s1")
    assert {"critic", "actor", "temperature_loss", "q_data_mean", "lr/system1", "lr/value_head"} <= set(
        rows[-1]
    )


def test_value_head_alone_leaves_every_other_network_bit_for_bit(workspace, system2_run, tmp_path):
    s2 = system2_run[1].checkpoint
    cfg = config(
        workspace,
        "system1_value",
        tmp_path / "vh",
        init_from=str(s2),
        steps=3,
        save_every=3,
        train_system1=False,
    )
    result = train(cfg)
    assert changed_networks(s2, result.checkpoint) == {"value_head"}
    rows = read_metrics(tmp_path / "vh")
    assert "lr/value_head" in rows[-1] and "lr/system1" not in rows[-1]
    assert all(row["system1"] == 0.0 for row in rows)


def test_value_head_alone_needs_a_trained_system1(workspace, tmp_path):
    policy = HumePolicy.from_pretrained(workspace / "init")
    policy.config = dataclasses.replace(policy.config, use_system1=False)
    policy.save_pretrained(tmp_path / "no_s1")
    with pytest.raises(ConfigError, match="no trained System 1"):
        train(
            config(
                workspace,
                "system1_value",
                tmp_path / "out",
                init_from=str(tmp_path / "no_s1"),
                train_system1=False,
            )
        )


def test_cql_alpha_of_a_run_replaces_the_models_and_is_saved(workspace, tmp_path):
    cfg = config(workspace, "system1_value", tmp_path / "a", steps=1, save_every=1, cql_alpha=0.5)
    dataset = LeRobotDataset(cfg.dataset)
    policy = build_policy(cfg, dataset, None)
    assert policy.value_head.config.cql_alpha == 0.5 == policy.config.value_head.cql_alpha
    kept = build_policy(config(workspace, "system1_value", tmp_path / "b"), dataset, None)
    assert (
        kept.value_head.config.cql_alpha
        == HumePolicy.from_pretrained(workspace / "init").config.value_head.cql_alpha
    )
    saved = HumePolicy.from_pretrained(train(cfg).checkpoint)
    assert saved.config.value_head.cql_alpha == 0.5
    with pytest.raises(ConfigError, match="cql_alpha"):
        config(workspace, "system1_value", tmp_path, cql_alpha=-1.0).validate()


def test_critic_target_must_be_known_and_reaches_the_stage(workspace, tmp_path):
    with pytest.raises(ConfigError, match="critic_target"):
        config(workspace, "system1_value", tmp_path, critic_target="sarsa").validate()
    for target, bootstrap in (("td", True), ("monte_carlo", False)):
        cfg = config(workspace, "system1_value", tmp_path, critic_target=target)
        assert make_stage(cfg, HumePolicy.from_pretrained(workspace / "init")).bootstrap is bootstrap


def test_value_action_box_follows_the_config(workspace, tmp_path):
    dataset = LeRobotDataset(workspace / "data")
    boxed = build_policy(config(workspace, "system1_value", tmp_path), dataset, None)
    raw = dataset.columns["action"].reshape(len(dataset), -1)
    np.testing.assert_allclose(boxed.normalizer.action_low, raw.min(0), rtol=1e-6)
    plain = build_policy(config(workspace, "system1_value", tmp_path, value_action_box=False), dataset, None)
    assert plain.normalizer.action_low is None


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["system2", "system1_value"])
def test_resume_repeats_the_uninterrupted_run_exactly(workspace, tmp_path, stage):
    full = config(workspace, stage, tmp_path / "full", steps=6, save_every=3)
    train(full)
    # An interrupted run: all it left is the checkpoint of step 3 (and a log that went further).
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "step_000003", resumed_dir / "step_000003")
    (resumed_dir / "metrics.jsonl").write_text(
        "".join(line + "\n" for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()[:4])
    )
    result = train(config(workspace, stage, resumed_dir, steps=6, save_every=3))
    assert result.step == 6
    assert read_metrics(resumed_dir) == read_metrics(tmp_path / "full")
    a = load_file(tmp_path / "full" / "step_000006" / "model.safetensors")
    b = load_file(resumed_dir / "step_000006" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_the_other_stage(workspace, tmp_path):
    from hume.config import ConfigError

    train(config(workspace, "system2", tmp_path / "out", steps=1, save_every=1))
    with pytest.raises(ConfigError, match="stage 'system2'"):
        train(config(workspace, "system1_value", tmp_path / "out", steps=2, save_every=1))


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu(workspace, tmp_path):
    # Its own process: accelerate fixes the precision once per process.
    script = f"""
import logging
import sys
logging.basicConfig(level=logging.INFO)
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
from pathlib import Path
from test_train_stages import config
from hume.train.trainer import train
for stage in ("system2", "system1_value"):
    out = Path({str(tmp_path)!r}) / stage
    cfg = config(Path({str(workspace)!r}), stage, out, steps=1, save_every=1, mixed_precision="bf16")
    result = train(cfg)
    assert np.isfinite(result.losses["loss"]), stage
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "precision bf16" in r.stderr
    policy = HumePolicy.from_pretrained(tmp_path / "system1_value" / "step_000001")
    assert policy.system2.action_out_proj.weight.dtype == torch.float32
