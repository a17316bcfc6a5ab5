"""scripts/ablation_table.py: paired comparison of evaluation runs on the same initial states."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablation_table.py"
spec = importlib.util.spec_from_file_location("ablation_table", SCRIPT)
ablation_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation_table)


def write_run(folder: Path, successes: list[bool]) -> Path:
    folder.mkdir()
    rows = [
        {"task_id": 0, "episode": i, "init_state": i, "success": s, "steps": 100 + i if s else 220}
        for i, s in enumerate(successes)
    ]
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    k = sum(successes)
    (folder / "results.json").write_text(
        json.dumps({"successes": k, "episodes": len(rows), "success_rate": k / len(rows), "ci95": [0.1, 0.9]})
    )
    return folder


def test_mcnemar_exact_values():
    assert ablation_table.mcnemar_p(0, 0) == 1.0
    assert ablation_table.mcnemar_p(3, 3) == 1.0
    assert ablation_table.mcnemar_p(0, 6) == pytest.approx(2 / 64)  # all six discordant one way
    assert ablation_table.mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)


def test_table_counts_discordant_pairs(tmp_path):
    ref = write_run(tmp_path / "ref", [True, True, False, False])
    other = write_run(tmp_path / "other", [True, False, True, True])
    result = json.loads((other / "results.json").read_text())
    (other / "results.json").write_text(json.dumps({**result, "switches": {"switch_ratio_p90": 1.234}}))
    text = ablation_table.table([("full", ref), ("off", other)])
    lines = text.splitlines()
    assert lines[2].startswith("| full | 2/4 | 50% |") and lines[2].endswith("| - | - | - |")
    assert "| off | 3/4 | 75% |" in lines[3] and "| 1 / 2 |" in lines[3]
    assert "| 102 |" in lines[3]  # mean steps of its successes: 100, 102, 103
    assert lines[3].endswith("| 1.23 |")


def test_refuses_runs_on_other_states(tmp_path):
    ref = write_run(tmp_path / "ref", [True, False])
    other = write_run(tmp_path / "other", [True, False, True])
    r = subprocess.run(
        [sys.executable, str(SCRIPT), f"a={ref}", f"b={other}"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "other initial states" in r.stderr
    r = subprocess.run(
        [sys.executable, str(SCRIPT), f"a={tmp_path}"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "LABEL=DIR" in r.stderr
