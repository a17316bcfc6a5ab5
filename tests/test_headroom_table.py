"""scripts/headroom_table.py: what an oracle run rescued, and pass@k over repeated plain runs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "headroom_table.py"
spec = importlib.util.spec_from_file_location("headroom_table", SCRIPT)
headroom_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headroom_table)


def write_log(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_pass_at_k_is_the_chance_that_one_of_k_tries_succeeds():
    assert headroom_table.pass_at_k(2, 1, 1) == pytest.approx(0.5)
    assert headroom_table.pass_at_k(2, 1, 2) == 1.0
    assert headroom_table.pass_at_k(8, 0, 8) == 0.0
    assert headroom_table.pass_at_k(8, 2, 2) == pytest.approx(1 - 15 / 28)


def test_seeds_count_never_sometimes_always(tmp_path):
    outcomes = {0: [True, True, False], 1: [False, False, False], 2: [True, False, False]}
    runs = [
        write_log(
            tmp_path / f"seed{k}",
            [{"task_id": 0, "episode": s, "init_state": s, "success": outcomes[s][k]} for s in outcomes],
        )
        for k in range(3)
    ]
    row = headroom_table.seeds_row([str(r) for r in runs])
    assert (row["states"], row["never"], row["sometimes"], row["always"]) == (3, 1, 2, 0)
    assert row["pass_at_k"][1] == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)
    assert row["pass_at_k"][3] == pytest.approx(2 / 3)


def test_oracle_rows_count_rescues(tmp_path):
    def branch(outcomes, chosen):
        return [{"tick": 0, "outcomes": [[[s, 100]] for s in outcomes], "chosen": chosen}]

    rows = [
        {"task_id": 0, "episode": 0, "init_state": 0, "success": True, "oracle": branch([1], 0)},
        {"task_id": 0, "episode": 1, "init_state": 1, "success": True, "oracle": branch([0, 0, 1], 2)},
        {"task_id": 0, "episode": 2, "init_state": 2, "success": False, "oracle": branch([0, 0], 0)},
    ]
    folder = write_log(tmp_path / "oracle", rows)
    r = subprocess.run([sys.executable, str(SCRIPT), "oracle", str(folder)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert (row["episodes"], row["candidate_0_successes"], row["oracle_successes"], row["rescued"]) == (
        3,
        1,
        2,
        1,
    )
    assert row["candidates_tried_mean"] == pytest.approx(2.0) and row["chosen"] == {"0": 2, "2": 1}
