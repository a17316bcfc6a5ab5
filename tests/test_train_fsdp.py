"""Sharded training (distributed=fsdp, FSDP2) with real processes over gloo on a tiny model: the
same frames give the same losses and weights as one process, each process holds about half the
state, a sharded checkpoint resumes exactly (on 2 processes, and on 1), and the consolidated
checkpoint loads as a policy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_support import ROOT
from safetensors.torch import load_file
from train_support import tiny_model_config, write_tiny_dataset

from hume.config import ConfigError
from hume.data import LeRobotDataset
from hume.policy import HumePolicy
from hume.train.config import OptimConfig, TrainConfig
from hume.train.data import TrainingData, dataset_stats
from hume.train.fsdp import SHARDED_DIR
from hume.train.metrics import read_metrics
from hume.train.trainer import make_stage, set_activation_checkpointing, train

FAST = OptimConfig(lr=1e-3, warmup_steps=2, end_lr=1e-4)
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    dataset = write_tiny_dataset(root / "data", episodes=3, length=20)
    torch.manual_seed(0)
    HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(dataset))).save_pretrained(
        root / "init"
    )
    return root


def config(workspace, stage, output, init_from, **kw) -> TrainConfig:
    base = dict(
        stage=stage,
        dataset=str(workspace / "data"),
        init_from=str(init_from),
        output=str(output),
        batch_size=2,
        log_every=1,
        augment=False,
        optim=FAST,
        critic_lr=1e-3,
        cpu=True,
    )
    return TrainConfig(**{**base, **kw})


def sharded(processes: int, cfg: TrainConfig, *extra: str) -> list[dict]:
    """`hume train` under torchrun with `processes` processes; each process's JSON summary."""
    args = [
        f"--stage={cfg.stage}",
        f"--dataset={cfg.dataset}",
        f"--init_from={cfg.init_from}",
        f"--output={cfg.output}",
        f"--steps={cfg.steps}",
        f"--save_every={cfg.save_every}",
        f"--batch_size={cfg.batch_size}",
        f"--grad_accum={cfg.grad_accum}",
        "--log_every=1",
        "--augment=false",
        "--cpu=true",
        "--distributed=fsdp",
        f"--optim.lr={FAST.lr}",
        f"--optim.warmup_steps={FAST.warmup_steps}",
        f"--optim.end_lr={FAST.end_lr}",
        f"--critic_lr={cfg.critic_lr}",
        *extra,
    ]
    r = subprocess.run(
        [TORCHRUN, "--standalone", f"--nproc_per_node={processes}", "-m", "hume.cli.main", "train", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stderr.count(f"{processes} process(es) (FSDP)") == processes
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def losses(output: Path, key: str = "loss") -> list[float]:
    return [row[key] for row in read_metrics(output)]


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(wa) == set(wb)
    for k in wa:
        assert wa[k].dtype == wb[k].dtype == torch.float32, k
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)


@pytest.fixture(scope="module")
def runs(workspace):
    """Stage system2 (4 steps, checkpoints at 2 and 4), then stage system1_value (2 steps) from it,
    each sharded over 2 processes; and the same in one process with grad_accum 2 (the same
    frames: micro-batch k of a step is process k's batch)."""
    s2 = config(workspace, "system2", workspace / "s2", workspace / "init", steps=4, save_every=2)
    s2_summaries = sharded(2, s2)
    s2_one = train(
        config(
            workspace,
            "system2",
            workspace / "s2_one",
            workspace / "init",
            steps=4,
            save_every=2,
            grad_accum=2,
        )
    )
    start = workspace / "s2" / "step_000004"
    s1 = config(workspace, "system1_value", workspace / "s1", start, steps=2, save_every=2)
    s1_summaries = sharded(2, s1)
    s1_one = train(
        config(workspace, "system1_value", workspace / "s1_one", start, steps=2, save_every=2, grad_accum=2)
    )
    return {"s2": s2_summaries, "s2_one": s2_one, "s1": s1_summaries, "s1_one": s1_one}


@pytest.mark.slow
def test_fsdp_system2_on_two_processes_matches_one_process(workspace, runs):
    sharded_losses, one = losses(workspace / "s2"), losses(workspace / "s2_one")
    assert len(sharded_losses) == 4
    assert sharded_losses == pytest.approx(one, rel=1e-5)
    assert_same_weights(workspace / "s2" / "step_000004", workspace / "s2_one" / "step_000004", atol=1e-6)
    assert (workspace / "s2" / "step_000004" / SHARDED_DIR / ".metadata").is_file()
    # The consolidated folder is an ordinary checkpoint.
    policy = HumePolicy.from_pretrained(workspace / "s2" / "step_000004")
    assert policy.config == tiny_model_config()


@pytest.mark.slow
def test_fsdp_system1_value_on_two_processes_matches_one_process(workspace, runs):
    for key in ("loss", "system1", "critic", "actor", "temperature_loss", "q_data_mean"):
        one = losses(workspace / "s1_one", key)
        assert losses(workspace / "s1", key) == pytest.approx(one, rel=1e-4, abs=1e-6), key
    assert_same_weights(workspace / "s1" / "step_000002", workspace / "s1_one" / "step_000002", atol=1e-6)
    # System 2 is frozen in this stage: untouched, and no optimizer state for it.
    before = load_file(workspace / "s2" / "step_000004" / "model.safetensors")
    after = load_file(workspace / "s1" / "step_000002" / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("system2."))
    HumePolicy.from_pretrained(workspace / "s1" / "step_000002")


@pytest.mark.slow
def test_fsdp_each_process_holds_about_half_the_state(runs):
    for stage in ("s2", "s1"):
        whole = runs[f"{stage}_one"].memory
        assert len(runs[stage]) == 2
        for summary in runs[stage]:
            for part in ("parameters", "gradients", "optimizer"):
                ratio = summary["memory"][part] / whole[part]
                assert 0.45 < ratio < 0.6, (stage, part, ratio)


@pytest.mark.slow
def test_fsdp_sharded_checkpoint_resumes_exactly_on_two_or_one_processes(workspace, runs):
    uninterrupted = losses(workspace / "s2")[2:]
    for processes, grad_accum in ((2, 1), (1, 2)):
        out = workspace / f"resumed_{processes}"
        out.mkdir()
        shutil.copytree(workspace / "s2" / "step_000002", out / "step_000002")
        cfg = config(
            workspace, "system2", out, workspace / "init", steps=4, save_every=2, grad_accum=grad_accum
        )
        sharded(processes, cfg)
        assert read_metrics(out)[0]["step"] == 3
        if processes == 2:
            assert losses(out) == uninterrupted
            assert_same_weights(out / "step_000004", workspace / "s2" / "step_000004", atol=0)
        else:  # resharded onto one process: the same sums in another order
            assert losses(out) == pytest.approx(uninterrupted, rel=1e-5)
            assert_same_weights(out / "step_000004", workspace / "s2" / "step_000004", atol=1e-6)


@pytest.mark.slow
def test_fsdp_bf16_lora_and_activation_checkpointing(workspace, runs):
    """bf16 compute with float32 master weights, LoRA adapters, activation checkpointing and
    held-out validation, sharded."""
    out = workspace / "lora"
    cfg = config(workspace, "system2", out, workspace / "init", steps=2, save_every=2)
    val = f"--val_dataset={cfg.dataset}"
    sharded(
        2,
        cfg,
        "--mixed_precision=bf16",
        "--activation_checkpointing=true",
        "--lora.rank=4",
        val,
        "--val_frames=4",
    )
    assert "val/loss" in read_metrics(out)[-1], "every process scores the held-out frames together"
    first = losses(out)[0]
    assert first == pytest.approx(losses(workspace / "s2")[0], rel=0.05), "bf16 is close to float32"
    adapters = load_file(out / "step_000002" / "lora_adapter.safetensors")
    assert any(v.abs().max() > 0 for k, v in adapters.items() if "lora_B" in k), "the adapters trained"
    weights = load_file(out / "step_000002" / "model.safetensors")
    assert all(v.dtype == torch.float32 for v in weights.values()), "master weights stay float32"
    HumePolicy.from_pretrained(out / "step_000002")


def test_activation_checkpointing_gives_the_same_gradients_and_keeps_less(workspace):
    """The switch changes what backward keeps, not what it computes."""
    cfg = config(workspace, "system2", workspace / "unused", workspace / "init", freeze_vision=False)
    grads, kept = [], []
    for on in (False, True):
        policy = HumePolicy.from_pretrained(workspace / "init")
        data = TrainingData(LeRobotDataset(cfg.dataset), policy.config, policy.normalizer, policy.tokenizer)
        stage = make_stage(cfg, policy)
        set_activation_checkpointing(stage, on)
        batch = stage.batch(data, torch.arange(4), torch.Generator().manual_seed(0), False)
        saved = []

        def keep(t, saved=saved):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            loss = stage(batch)["loss"]
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in stage.named_parameters() if p.grad is not None})
        kept.append(sum(saved))
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)
    assert kept[1] < 0.7 * kept[0], kept


def test_fsdp_config_checks(workspace, tmp_path):
    with pytest.raises(ConfigError, match="distributed"):
        config(workspace, "system2", tmp_path, workspace / "init", distributed="zero3").validate()
    with pytest.raises(ConfigError, match="ema_decay"):
        cfg = config(workspace, "system2", tmp_path, workspace / "init", distributed="fsdp", ema_decay=0.99)
        cfg.validate()
    with pytest.raises(ConfigError, match="grad_accum"):
        config(workspace, "system2", tmp_path, workspace / "init", grad_accum=0).validate()


class _Payload:
    """Unpickling this runs code: what a hostile checkpoint folder would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_fsdp_sharded_resume_unpickles_nothing_but_checkpoint_metadata(tmp_path):
    import io
    import pickle

    from torch.distributed.checkpoint.metadata import Metadata

    from hume.train.safe_dcp import SafeFileSystemReader, SafeLoadPlanner

    marker = tmp_path / "ran"
    (tmp_path / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(pickle.UnpicklingError, match="never holds"):
        SafeFileSystemReader(str(tmp_path)).read_metadata()
    assert not marker.exists()
    # The metadata module imports os: a dotted name through it must not reach os.system.
    module = b"torch.distributed.checkpoint.metadata"
    for name in (b"os.system", b"torch.load", b"field"):
        reach = (
            b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)]) + name + b"\x93."
        )
        (tmp_path / ".metadata").write_bytes(reach)
        with pytest.raises(pickle.UnpicklingError, match="never holds"):
            SafeFileSystemReader(str(tmp_path)).read_metadata()
    (tmp_path / ".metadata").write_bytes(pickle.dumps(Metadata(state_dict_metadata={})))
    assert SafeFileSystemReader(str(tmp_path)).read_metadata().state_dict_metadata == {}
    # Non-tensor entries (an optimizer's param_groups) are read with weights_only.
    planner = SafeLoadPlanner()
    planner.flatten_state_dict, planner.state_dict = False, {}
    item = type("Item", (), {"dest_index": type("Index", (), {"fqn": "lr"})()})()
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    with pytest.raises(pickle.UnpicklingError):
        planner.load_bytes(item, io.BytesIO(buffer.getvalue()))
    assert not marker.exists()
    buffer = io.BytesIO()
    torch.save(0.5, buffer)
    planner.load_bytes(item, io.BytesIO(buffer.getvalue()))
    assert planner.state_dict == {"lr": 0.5}
