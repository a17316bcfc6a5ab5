"""One labelled collection for training and testing a ranking critic: the split by episode, the
first-K limit, and scripts/ranking_learning_curve.py end to end (tiny: no learning asserted)."""

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import tiny_model_config, write_labels, write_tiny_dataset

from hume.config import ConfigError, parse_config
from hume.data import LeRobotDataset
from hume.data.labels import LabelledThinks
from hume.policy import HumePolicy
from hume.train.config import TrainConfig
from hume.train.data import TrainingData, dataset_stats, ranking_rows
from hume.train.labelled_ranking import rank_labelled_thinks

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (0, 4, 8, 12, 16)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Six episodes (tasks 0, 1, 0, 1, 0, 1), five labelled thinks each, and a start checkpoint."""
    root = tmp_path_factory.mktemp("curve")
    data = write_tiny_dataset(root / "labels", episodes=6)
    write_labels(data, seed=0, frames=FRAMES, episodes=6)
    torch.manual_seed(0)
    start = root / "start"
    HumePolicy.from_config(tiny_model_config(), dataset_stats(LeRobotDataset(data))).save_pretrained(start)
    return data, start


def test_every_kth_episode_of_each_task_is_held_out(labelled):
    data, _ = labelled
    labels = LabelledThinks.of(LeRobotDataset(data))
    # Task 0 has episodes 0, 2, 4 and task 1 has 1, 3, 5: every 2nd of each task from its first.
    assert sorted(set(labels.episode[labels.held_out(2)])) == [0, 1, 4, 5]
    assert sorted(set(labels.episode[labels.held_out(3)])) == [0, 1]
    assert not labels.held_out(0).any()
    train = ranking_rows(labels, 3, 0)
    assert sorted(set(labels.episode[train])) == [2, 3, 4, 5] and len(train) == 20
    # The first K training thinks, in collection order: episode 2's, then episode 3's.
    first = ranking_rows(labels, 3, 7)
    assert list(labels.episode[first]) == [2] * 5 + [3] * 2
    with pytest.raises(ConfigError, match="20 training thinks"):
        ranking_rows(labels, 3, 21)
    only_first_of_each_task = labels.subset(labels.episode < 2)
    with pytest.raises(ConfigError, match="none is left to train on"):
        ranking_rows(only_first_of_each_task, 2, 0)


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--ranking_heldout_every=1"], "would hold out every episode"),
        (["--ranking_thinks=-1"], "ranking_thinks must be >= 0"),
        (["--critic_target=td", "--ranking_heldout_every=2"], "need critic_target=ranking"),
    ],
)
def test_the_split_settings_are_checked(flags, match):
    argv = ["--dataset=d", "--init_from=c", "--stage=system1_value", "--critic_target=ranking"]
    with pytest.raises(ConfigError, match=match):
        parse_config(TrainConfig, [*argv, *flags])


def test_training_draws_only_the_chosen_thinks_and_the_scorer_only_the_held_out(
    labelled, tmp_path, monkeypatch, caplog
):
    from hume.train.trainer import train

    data, start = labelled
    drawn = []
    original = TrainingData.ranking_batch

    def recording(self, size, generator, augment):
        drawn.append(self.labels.episode.copy())
        return original(self, size, generator, augment)

    monkeypatch.setattr(TrainingData, "ranking_batch", recording)
    argv = [f"--dataset={data}", f"--init_from={start}", f"--output={tmp_path}", "--stage=system1_value"]
    argv += ["--critic_target=ranking", "--train_system1=false", "--steps=2", "--batch_size=2"]
    argv += ["--ranking_batch=4", "--ranking_heldout_every=3", "--ranking_thinks=7", "--cpu=true"]
    with caplog.at_level(logging.INFO, logger="hume.train.trainer"):
        train(parse_config(TrainConfig, argv))
    assert len(drawn) == 2 and all(list(d) == [2] * 5 + [3] * 2 for d in drawn)
    assert "ranking loss: 7 of 30 labelled thinks" in caplog.text
    assert "10 held out (ranking_heldout_every=3), 13 unused (ranking_thinks=7)" in caplog.text

    policy = HumePolicy.from_pretrained(start)
    held_out = rank_labelled_thinks(policy, [str(data)], heldout_every=3)
    every = rank_labelled_thinks(policy, [str(data)])
    assert held_out["thinks"] == 10 and every["thinks"] == 30
    assert 0 < held_out["pairs"] < every["pairs"]


@pytest.fixture(scope="module")
def curve_script():
    spec = importlib.util.spec_from_file_location(
        "ranking_learning_curve", ROOT / "scripts/ranking_learning_curve.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_curve_trains_each_k_once_and_writes_table_and_plot(
    labelled, tmp_path, curve_script, caplog
):
    data, start = labelled
    out = tmp_path / "curve"
    argv = ["--config", str(ROOT / "configs/train/value_ranking_libero_object.yaml"), "--heldout_every=3"]
    argv += ["--fractions", "0.5", "1", "--thinks", "3", f"--output={out}", f"--dataset={data}"]
    argv += [f"--init_from={start}", "--steps=2", "--batch_size=2", "--ranking_batch=4", "--cpu=true"]
    assert curve_script.main(argv) == 0
    rows = json.loads((out / "curve.json").read_text())
    assert [r["k"] for r in rows] == [0, 3, 10, 20]
    assert all(r["thinks"] == 10 for r in rows), "every K is scored on the same held-out thinks"
    assert [r["training_pairs"] for r in rows][0] == 0 and np.all(
        np.diff([r["training_pairs"] for r in rows]) > 0
    )
    for r in rows:
        lo, hi = r["ci95"]
        assert 0.0 <= lo <= r["pairwise_accuracy"] <= hi <= 1.0
        glo, ghi = r["gain_over_first_ci95"]
        assert glo <= r["gain_over_first"] <= ghi
        assert r["gain_over_first"] == pytest.approx(r["success_of_chosen"] - r["success_of_first"])
    assert rows[0]["checkpoint"] == str(start)
    assert (out / "thinks_000020/train/step_000002/model.safetensors").exists()
    table = (out / "curve.md").read_text()
    assert "| pairwise accuracy [95% CI] |" in table and len(table.strip().splitlines()) == 2 + 4
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Run again: nothing is retrained; with another setting the folder is refused.
    stamp = (out / "thinks_000003/ranking.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="ranking_learning_curve"):
        assert curve_script.main(argv) == 0
    assert "K = 20: done before" in caplog.text
    assert (out / "thinks_000003/ranking.json").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="changed: \\['train'\\]"):
        curve_script.main([*argv, "--critic_lr=1e-3"])


def test_critic_ranking_script_scores_the_held_out_episodes(labelled, capsys):
    spec = importlib.util.spec_from_file_location("critic_ranking", ROOT / "scripts/critic_ranking.py")
    critic_ranking = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(critic_ranking)
    data, start = labelled
    assert critic_ranking.main(["--checkpoint", str(start), "--heldout_every=3", str(data)]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["thinks"] == 10
    with pytest.raises(SystemExit):
        critic_ranking.main(["--heldout_every=3", str(data)])
    assert "needs --checkpoint or --consensus" in capsys.readouterr().err
