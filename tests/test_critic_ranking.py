"""scripts/critic_ranking.py: the AUC of a rollout dataset's Q for success, per episode."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hume.data import LeRobotWriter
from hume.data.format import libero_features

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "critic_ranking.py"
spec = importlib.util.spec_from_file_location("critic_ranking", SCRIPT)
critic_ranking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(critic_ranking)
auc = critic_ranking.auc


def test_auc_counts_the_pairs_a_higher_score_orders_right():
    success = np.array([True, True, False, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), success)[0] == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8, 0.7]), success)[0] == 0.0
    # 0.5 beats 0.1 and 0.3, loses to 0.6; 0.2 beats 0.1 only; out of 2 x 3 pairs.
    assert auc(np.array([0.5, 0.2, 0.1, 0.3, 0.6]), success)[0] == pytest.approx(3 / 6)
    assert np.isnan(auc(np.array([0.5, 0.2]), np.array([True, True]))[0])


def test_script_reads_each_episode_first_and_mean_q(tmp_path):
    features = libero_features(16, 20, ())
    features["policy.value"] = {"dtype": "float32", "shape": [1], "names": None}
    writer = LeRobotWriter(tmp_path / "rollouts", fps=20, features=features)
    # Episode k's first chunk has Q = k; the successful episodes are the three highest.
    for k, success in enumerate([False, False, True, True, True]):
        n = 6
        values = np.full(n, float(k), np.float32)
        values[3:] = -float(k)  # a later chunk: the mean over frames is 0 for every episode
        frames = {
            "observation.state": np.zeros((n, 8), np.float32),
            "action": np.zeros((n, 7), np.float32),
            "next.reward": np.eye(n, dtype=np.float32)[-1] * success,
            "next.done": np.arange(n) == n - 1,
            "next.success": (np.arange(n) == n - 1) & success,
            "policy.value": values,
        }
        writer.add_episode(k, "put the bowl on the plate", frames, success=success)
    writer.finalize()
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "rollouts")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["episodes"] == 5 and row["successes"] == 3
    assert row["auc_first"] == 1.0 and row["auc_mean"] == 0.5
    assert "| AUC of first Q |" in r.stderr


def test_script_reads_an_eval_runs_think_values(tmp_path):
    # Four episodes of a `hume eval` run: the successes chose higher Qs at their first think, and
    # their later thinks' Qs tie with the failures'. Episode 3's value head was off at one think.
    rows = [
        {"task_id": 0, "episode": 0, "success": True, "think_values": [[0.9, 0.1], [0.2, 0.5]]},
        {"task_id": 0, "episode": 1, "success": True, "think_values": [[0.1, 0.8], [0.1, 0.1]]},
        {"task_id": 0, "episode": 2, "success": False, "think_values": [[0.3, 0.2], [0.5, 0.4]]},
        {"task_id": 0, "episode": 3, "success": False, "think_values": [[0.1, 0.4], [None, None]]},
    ]
    for r in rows:
        r["think_chosen"] = [0 if None in v else int(np.argmax(v)) for v in r["think_values"]]
    run = tmp_path / "eval"
    run.mkdir()
    (run / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = critic_ranking.ranking(str(run))
    assert row["episodes"] == 4 and row["successes"] == 2
    assert row["auc_first"] == 1.0  # first Qs 0.9, 0.8 against 0.3, 0.4
    # Mean chosen Q: 0.7, 0.45 against 0.4, 0.4 (the think without values left out).
    assert row["auc_mean"] == 1.0
    # Spreads of the thinks with values: 0.8, 0.3, 0.7, 0, 0.1, 0.1, 0.3 -> median 0.3.
    assert row["median_spread"] == pytest.approx(0.3)
    assert row["auc_first_within_task"] == 1.0  # one task: the same pairs


def test_within_task_auc_ignores_which_task_is_easy():
    within = critic_ranking.within_task_auc
    # Task 1 is easy and scored high, task 0 hard and scored low; within each task Q is useless
    # (the success and the failure tie): pooled AUC looks good, within tasks it is 0.5.
    scores = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    success = np.array([False, False, True, True, True, False])
    tasks = np.array([0, 0, 0, 1, 1, 1])
    assert auc(scores, success)[0] == pytest.approx(6 / 9)  # 6 of the 9 pairs ordered right (ties half)
    value, p = within(scores, success, tasks, permutations=200)
    assert value == 0.5 and p == 1.0
    # Within each task the success has the higher Q: 1.0 over the 2 + 2 pairs.
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9, 0.8])
    success = np.array([False, False, True, False, True, False])
    assert within(scores, success, tasks, permutations=200)[0] == 1.0
