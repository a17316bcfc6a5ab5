"""Stage system1_value's ranking loss: a value head trained on labelled thinks alone learns to
order the candidates of a state as their outcomes did, on thinks it never saw."""

import json
from pathlib import Path

import pytest
import torch
from train_support import tiny_model_config, write_labels, write_tiny_dataset

from hume.config import ConfigError, parse_config
from hume.data import LeRobotDataset
from hume.policy import HumePolicy
from hume.train.config import TrainConfig
from hume.train.data import dataset_stats
from hume.train.labelled_ranking import rank_labelled_thinks


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranking")
    train = write_tiny_dataset(root / "train")
    held_out = write_tiny_dataset(root / "held_out")
    write_labels(train, seed=0)
    write_labels(held_out, seed=1, frames=(2, 6, 10, 14))
    torch.manual_seed(0)
    start = root / "start"
    HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(train))).save_pretrained(start)
    return train, held_out, start


def test_a_value_head_trained_on_rankings_alone_orders_unseen_candidates(labelled, tmp_path):
    from hume.train.trainer import train

    data, held_out, start = labelled
    before = rank_labelled_thinks(HumePolicy.from_pretrained(start), [str(held_out)])
    argv = [f"--dataset={data}", f"--init_from={start}", f"--output={tmp_path}", "--stage=system1_value"]
    argv += ["--critic_target=ranking", "--train_system1=false", "--steps=60", "--ranking_batch=8"]
    argv += ["--batch_size=2", "--critic_lr=3e-3", "--save_every=60", "--log_every=20", "--cpu=true"]
    result = train(parse_config(TrainConfig, argv))
    assert "ranking" in result.losses and "td" not in result.losses, "rankings alone"
    after = rank_labelled_thinks(HumePolicy.from_pretrained(result.checkpoint), [str(held_out)])
    assert after["thinks"] == 12 and after["pairs"] == before["pairs"] > 12
    assert after["pairwise_accuracy"] >= 0.8 > before["pairwise_accuracy"]
    assert after["success_of_chosen"] > after["success_of_uniform"]
    assert after["success_of_best"] == 1.0


def test_the_ranking_loss_needs_labels(tmp_path):
    data = write_tiny_dataset(tmp_path / "plain", episodes=2)
    start = tmp_path / "start"
    HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(data))).save_pretrained(start)
    from hume.train.trainer import train

    argv = [f"--dataset={data}", f"--init_from={start}", f"--output={tmp_path / 'out'}"]
    argv += ["--stage=system1_value", "--ranking_weight=0.5", "--steps=1", "--cpu=true"]
    with pytest.raises(ConfigError, match="labelled thinks"):
        train(parse_config(TrainConfig, argv))


def test_the_ranking_loss_joins_the_td_critic(labelled, tmp_path):
    from hume.train.trainer import train

    data, _, start = labelled
    argv = [f"--dataset={data}", f"--init_from={start}", f"--output={tmp_path}", "--stage=system1_value"]
    argv += ["--ranking_weight=0.5", "--steps=2", "--batch_size=2", "--ranking_batch=4", "--log_every=1"]
    result = train(parse_config(TrainConfig, [*argv, "--cpu=true"]))
    assert {"td", "cql", "system1", "ranking", "ranking_accuracy"} <= set(result.losses)


def test_critic_ranking_script_scores_labelled_thinks(labelled):
    import subprocess
    import sys

    _, held_out, start = labelled
    script = Path(__file__).resolve().parents[1] / "scripts" / "critic_ranking.py"
    r = subprocess.run(
        [sys.executable, str(script), "--checkpoint", str(start), str(held_out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["thinks"] == 12 and 0.0 <= row["pairwise_accuracy"] <= 1.0
    assert "| pairwise accuracy |" in r.stderr
