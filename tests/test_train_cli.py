"""`hume train` as a real command: a run on a generated dataset, and clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import ROOT, hume, last_json
from train_support import write_model_config, write_tiny_dataset

from hume.cli.main import main
from hume.policy import HumePolicy


@pytest.mark.slow
def test_smoke_config_trains_and_writes_a_loadable_checkpoint(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", episodes=2, length=12)
    model = write_model_config(tmp_path / "model.yaml")
    out = tmp_path / "run"
    summary = last_json(
        hume(
            "train",
            "--config",
            "configs/train/smoke.yaml",
            f"--dataset={data}",
            f"--model={model}",
            "--output",
            str(out),
        )
    )
    assert summary["stage"] == "system2" and summary["step"] == 2
    assert summary["checkpoint"] == str(out / "step_000002")
    HumePolicy.from_pretrained(out / "step_000002")
    assert (out / "loss_curves.png").is_file()


def test_bad_inputs_fail_with_a_clear_message(tmp_path, capsys):
    cases = [
        (
            [
                "--config",
                "configs/train/smoke.yaml",
                f"--dataset={tmp_path}",
                "--output",
                str(tmp_path / "o"),
            ],
            "meta/info.json",
        ),
        (["--config", "configs/train/system1_value_tiny.yaml", "--init_from=", "--dataset=x"], "init_from"),
        (["--stage=system3", "--dataset=x"], "stage must be one of"),
        (["--dataset=x", "--optim.lr=0"], "learning rates"),
    ]
    for argv, message in cases:
        assert main(["train", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


@pytest.mark.slow
def test_data_parallel_run_with_two_processes(tmp_path):
    # The multi-device path, on two CPU processes (gloo): what `accelerate launch` does on GPUs.
    data = write_tiny_dataset(tmp_path / "data", episodes=2, length=12)
    model = write_model_config(tmp_path / "model.yaml")
    torchrun = Path(sys.executable).with_name("torchrun")
    common = ["--dataset", str(data), "--steps=2", "--save_every=2", "--batch_size=2", "--cpu=true"]
    for stage_args in (
        ["--config", "configs/train/smoke.yaml", f"--model={model}", "--output", str(tmp_path / "s2")],
        [
            "--config",
            "configs/train/system1_value_tiny.yaml",
            f"--init_from={tmp_path / 's2' / 'step_000002'}",
            "--output",
            str(tmp_path / "s1"),
        ],
    ):
        r = subprocess.run(
            [
                str(torchrun),
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "hume.cli.main",
                "train",
                *stage_args,
                *common,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stderr.count("2 process(es) (MULTI_CPU)") == 2
        assert [json.loads(line)["step"] for line in r.stdout.splitlines() if line.startswith("{")] == [2, 2]
    HumePolicy.from_pretrained(tmp_path / "s1" / "step_000002")
