"""The consensus selector scored on labelled thinks, with no critic: scripts/critic_ranking.py
--consensus and hume.train.labelled_ranking.rank_by_consensus."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from train_support import write_tiny_dataset

from hume.data.labels import LABELS_FILE
from hume.train.labelled_ranking import rank_by_consensus

ROOT = Path(__file__).resolve().parents[1]
# Constant chunks at these values: mean 1.0, so by distance to it candidate 1 (0.5) ranks first,
# then 0, 2 and the outlier 3. Candidates 1 and 2 succeed.
LEVELS = (0.0, 0.5, -0.5, 4.0)
SUCCESS = (0, 1, 1, 0)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Four episodes (tasks 0, 1, 0, 1), two labelled thinks each."""
    data = write_tiny_dataset(tmp_path_factory.mktemp("consensus") / "labels", episodes=4)
    candidates = np.stack([np.full((16, 7), v) for v in LEVELS]).tolist()
    rows = [
        {
            "episode_index": episode,
            "frame_index": frame,
            "task_index": episode % 2,
            "candidates": candidates,
            "outcomes": [[[s, 20]] for s in SUCCESS],
            "chosen": 1,
        }
        for episode in range(4)
        for frame in (0, 8)
    ]
    (data / LABELS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_consensus_ranks_by_distance_to_the_candidates_mean(labelled):
    row = rank_by_consensus([str(labelled)])
    # Pairs with different outcomes per think: (1, 0) right, (1, 3) right, (2, 3) right, (2, 0)
    # wrong (candidate 2 is further from the mean than 0).
    assert row["thinks"] == 8 and row["pairs"] == 4 * 8
    assert row["pairwise_accuracy"] == pytest.approx(0.75)
    assert row["success_of_chosen"] == 1.0 and row["success_of_first"] == 0.0
    assert row["success_of_uniform"] == 0.5 and row["success_of_best"] == 1.0
    assert rank_by_consensus([str(labelled)], heldout_every=2)["thinks"] == 4  # episodes 0 and 1


def test_the_script_scores_consensus_without_a_checkpoint(labelled, capsys):
    spec = importlib.util.spec_from_file_location("critic_ranking", ROOT / "scripts/critic_ranking.py")
    critic_ranking = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(critic_ranking)
    assert critic_ranking.main(["--consensus", "--heldout_every=2", str(labelled)]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["thinks"], row["pairwise_accuracy"]) == (4, 0.75)
    with pytest.raises(SystemExit):
        critic_ranking.main(["--consensus", "--checkpoint=c", str(labelled)])
    assert "leave out --checkpoint" in capsys.readouterr().err


def test_the_gain_over_candidate_0_has_an_interval_by_episode(labelled):
    row = rank_by_consensus([str(labelled)])
    # Every think chooses candidate 1 (succeeds) over candidate 0 (fails): a gain of 1, certain.
    assert row["gain_over_first"] == 1.0 and row["gain_over_first_ci95"] == [1.0, 1.0]


def test_episode_interval_resamples_episodes_not_thinks():
    from hume.train.labelled_ranking import episode_interval

    gain = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    one_episode_each = episode_interval(gain, np.arange(6))
    three_thinks_each = episode_interval(gain, np.array([0, 0, 0, 1, 1, 1]))
    assert one_episode_each[0] < 0.5 < one_episode_each[1]
    # Two episodes: a resample holds 0, 1 or 2 copies of the succeeding one.
    assert three_thinks_each == [0.0, 1.0]
    assert three_thinks_each[1] - three_thinks_each[0] > one_episode_each[1] - one_episode_each[0]
