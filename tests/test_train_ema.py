"""The moving average of the trained weights (ema_decay) and the held-out validation loss: a
checkpoint's weights are the average of the raw trajectory, the raw weights train as without it,
and a resumed run restores the average exactly."""

import json
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file
from train_support import tiny_model_config, write_tiny_dataset

from hume.data import LeRobotDataset
from hume.policy import HumePolicy
from hume.train.config import LoraConfig, OptimConfig, TrainConfig
from hume.train.data import dataset_stats
from hume.train.ema import EMA_STATE_FILE, RAW_WEIGHTS_FILE
from hume.train.lora import ADAPTER_FILE
from hume.train.metrics import read_metrics
from hume.train.trainer import train

FAST = OptimConfig(lr=1e-2, warmup_steps=0, end_lr=1e-2)
DECAY = 0.3  # low enough that the warmup's cap binds within a few steps (n / (9 + n) >= 0.3 at n = 4)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny training set, a held-out set with other episodes, and a random starting policy."""
    root = tmp_path_factory.mktemp("ema")
    dataset = write_tiny_dataset(root / "data", episodes=2, length=16)
    write_tiny_dataset(root / "val", episodes=3, length=12)
    torch.manual_seed(0)
    HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(dataset))).save_pretrained(
        root / "init"
    )
    return root


def config(workspace, output, **kw):
    base = dict(
        dataset=str(workspace / "data"),
        init_from=str(workspace / "init"),
        output=str(output),
        steps=6,
        save_every=1,
        batch_size=4,
        log_every=1,
        optim=FAST,
        augment=False,
        val_dataset=str(workspace / "val"),
        val_frames=8,
    )
    return TrainConfig(**{**base, **kw})


def decay(n: int) -> float:
    """diffusers' EMAModel at its n-th update: the first copies, then min(decay, n / (9 + n))."""
    return 0.0 if n == 1 else min(DECAY, n / (9 + n))


@pytest.fixture(scope="module")
def runs(workspace):
    """Six steps without and with the average, a checkpoint at every step."""
    plain = workspace / "plain"
    train(config(workspace, plain, ema_decay=0.0))
    averaged = workspace / "averaged"
    train(config(workspace, averaged, ema_decay=DECAY))
    return plain, averaged


@pytest.mark.slow
def test_checkpoint_weights_are_the_moving_average_of_the_raw_weights(runs):
    plain, averaged = runs
    raw = [load_file(averaged / f"step_{k:06d}" / RAW_WEIGHTS_FILE) for k in range(1, 7)]
    trained = sorted(raw[0])
    assert any(k.startswith("system2.") for k in trained)
    assert not any(k.startswith(("system1.", "value_head.")) for k in trained)
    expected = {}
    for n, weights in enumerate(raw, start=1):
        d = decay(n)
        expected = {k: d * expected[k] + (1 - d) * weights[k] if n > 1 else weights[k] for k in trained}
        saved = load_file(averaged / f"step_{n:06d}" / "model.safetensors")
        for k in trained:
            torch.testing.assert_close(saved[k], expected[k], rtol=1e-5, atol=1e-6)
        # The optimiser trains the raw weights exactly as without the average...
        unaveraged = load_file(plain / f"step_{n:06d}" / "model.safetensors")
        assert all(torch.equal(weights[k], unaveraged[k]) for k in trained)
        # ...and the tensors it does not train are saved as they are.
        assert all(torch.equal(saved[k], unaveraged[k]) for k in saved if k not in trained)
    assert not torch.equal(saved[trained[0]], raw[-1][trained[0]])
    state = json.loads((averaged / "step_000006" / EMA_STATE_FILE).read_text())
    assert state["optimization_step"] == 6 and state["decay"] == DECAY
    assert not (plain / "step_000006" / RAW_WEIGHTS_FILE).exists()
    assert HumePolicy.from_pretrained(averaged / "step_000006") is not None


@pytest.mark.slow
def test_validation_scores_the_average_and_the_raw_weights(runs):
    plain, averaged = runs
    without, with_average = read_metrics(plain), read_metrics(averaged)
    assert all("val/loss" in row and "val_raw/loss" not in row for row in without)
    # The raw weights are the same in both runs, and so is their held-out loss.
    for a, b in zip(without, with_average, strict=True):
        assert a["val/loss"] == pytest.approx(b["val_raw/loss"], rel=1e-6)
        assert a["loss"] == b["loss"]
    # The first update copies the weights; later the average lags behind them.
    assert with_average[0]["val/loss"] == pytest.approx(with_average[0]["val_raw/loss"], rel=1e-6)
    assert with_average[-1]["val/loss"] != pytest.approx(with_average[-1]["val_raw/loss"], rel=1e-4)


def interrupted(averaged, folder):
    """What an interrupted run of `averaged` leaves: its checkpoint of step 3 and a log that went
    one step further."""
    folder.mkdir()
    shutil.copytree(averaged / "step_000003", folder / "step_000003")
    lines = (averaged / "metrics.jsonl").read_text().splitlines()[:4]
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def same_tensors(a, b, name="model.safetensors") -> bool:
    x, y = load_file(a / "step_000006" / name), load_file(b / "step_000006" / name)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.slow
def test_resume_restores_the_average_exactly(workspace, runs, tmp_path):
    _, averaged = runs
    resumed = interrupted(averaged, tmp_path / "resumed")
    train(config(workspace, resumed, ema_decay=DECAY))
    assert read_metrics(resumed) == read_metrics(averaged)
    assert same_tensors(averaged, resumed) and same_tensors(averaged, resumed, RAW_WEIGHTS_FILE)
    state = [(run / "step_000006" / EMA_STATE_FILE).read_text() for run in (averaged, resumed)]
    assert state[0] == state[1]


@pytest.mark.slow
def test_resume_without_the_average_continues_the_raw_weights(workspace, runs, tmp_path):
    plain, averaged = runs
    resumed = interrupted(averaged, tmp_path / "resumed")
    train(config(workspace, resumed, ema_decay=0.0))
    assert same_tensors(plain, resumed)
    assert not (resumed / "step_000006" / RAW_WEIGHTS_FILE).exists()
    # The log of the steps it ran is the plain run's: the checkpoint's raw weights went on training.
    assert read_metrics(resumed)[3:] == read_metrics(plain)[3:]


@pytest.mark.slow
def test_lora_run_with_the_average_resumes_exactly(workspace, tmp_path):
    lora = dict(ema_decay=DECAY, val_dataset="", lora=LoraConfig(rank=2))
    full = tmp_path / "full"
    train(config(workspace, full, save_every=3, **lora))
    raw = load_file(full / "step_000006" / RAW_WEIGHTS_FILE)
    assert any("lora_" in k for k in raw) and not any(".base_layer." in k for k in raw)
    resumed = interrupted(full, tmp_path / "resumed")
    train(config(workspace, resumed, save_every=3, **lora))
    assert read_metrics(resumed) == read_metrics(full)
    assert same_tensors(full, resumed) and same_tensors(full, resumed, ADAPTER_FILE)


def test_training_without_the_average_never_imports_diffusers(workspace, tmp_path, monkeypatch):
    for name in ("diffusers", "diffusers.training_utils"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it would now fail
    result = train(config(workspace, tmp_path / "out", steps=1, val_dataset=""))
    assert result.step == 1 and not result.validation


@pytest.mark.slow
def test_system1_value_stage_averages_system1_and_the_value_head(workspace, tmp_path):
    out = tmp_path / "s1v"
    result = train(config(workspace, out, stage="system1_value", steps=3, save_every=3, ema_decay=DECAY))
    raw = load_file(out / "step_000003" / RAW_WEIGHTS_FILE)
    saved = load_file(out / "step_000003" / "model.safetensors")
    assert {k.split(".")[0] for k in raw} == {"system1", "value_head"}
    assert not any("target_critics" in k for k in raw)  # Polyak-averaged already, not trained
    assert any(not torch.equal(saved[k], raw[k]) for k in raw)
    assert {"val/loss", "val/system1", "val/critic", "val_raw/critic"} <= set(result.validation)
