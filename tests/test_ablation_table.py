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


def write_run(folder: Path, successes: list[bool], **record) -> Path:
    folder.mkdir()
    rows = [
        {"task_id": 0, "episode": i, "init_state": i, "success": s, "steps": 100 + i if s else 220, **record}
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
    # Every episode's action changes: 0.5 at switches, 0.4 within plans -> a pooled p90 ratio of 1.25.
    other = write_run(tmp_path / "other", [True, False, True, True], switch_deltas=[0.5], within_deltas=[0.4])
    text = ablation_table.table([("full", [ref]), ("off", [other])])
    lines = text.splitlines()
    assert lines[2].startswith("| full | 2/4 | 50% |") and lines[2].endswith("| - | - | - | - |")
    assert "| off | 3/4 | 75% |" in lines[3] and "| 1 / 2 |" in lines[3]
    assert "| 102 |" in lines[3]  # mean steps of its successes: 100, 102, 103
    # Every tick's p90, pooled over the four episodes' 0.5 and 0.4: 0.5.
    assert lines[3].endswith("| 1.25 | 0.500 |")


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


def test_common_states_compares_on_the_states_all_runs_share(tmp_path):
    # The reference ran four states, the ablation the first two: compared on those two only.
    ref = write_run(tmp_path / "ref", [True, False, True, True])
    other = write_run(tmp_path / "other", [False, True])
    with pytest.raises(SystemExit, match="other initial states"):
        ablation_table.table([("full", [ref]), ("off", [other])])
    lines = ablation_table.table([("full", [ref]), ("off", [other])], common_states=True).splitlines()
    assert lines[2].startswith("| full | 1/2 | 50% |")
    assert lines[3].startswith("| off | 1/2 | 50% |") and "| 1 / 1 | 1.00 |" in lines[3]
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--common_states", f"a={ref}", f"b={other}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "| b | 1/2 |" in r.stdout


def test_deploy_runs_pair_by_their_episode_results(tmp_path):
    # `hume deploy` on LIBERO records each episode's task and initial state in metrics.json.
    runs = {}
    for name, successes in (("ahead", [True, True, False]), ("in_tick", [False, True, False])):
        folder = tmp_path / name
        folder.mkdir()
        rows = [
            {"episode": i, "task_id": i % 2, "init_state": i // 2, "success": s, "steps": 90 if s else 280}
            for i, s in enumerate(successes)
        ]
        (folder / "metrics.json").write_text(json.dumps({"episodes": 3, "episode_results": rows}))
        runs[name] = folder
    r = subprocess.run(
        [sys.executable, str(SCRIPT), f"ahead={runs['ahead']}", f"in tick={runs['in_tick']}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "| ahead | 2/3 |" in r.stdout and "| in tick | 1/3 |" in r.stdout and "| 1 / 0 |" in r.stdout


def test_pooled_seeds_pair_in_order_and_count_states(tmp_path):
    # Two seeds of two states each. Pairs: seed a state 0 only the reference, seed a state 1 and
    # seed b state 0 only the variant; by state: state 0 ties (1 and 1), state 1 the variant solved
    # more (2 against 1).
    ref = [write_run(tmp_path / "ref_a", [True, False]), write_run(tmp_path / "ref_b", [False, True])]
    other = [write_run(tmp_path / "new_a", [False, True]), write_run(tmp_path / "new_b", [True, True])]
    lines = ablation_table.table([("N = 1", ref), ("new", other)]).splitlines()
    assert lines[0].endswith("| states fewer / more solved | sign p |")
    assert lines[2].startswith("| N = 1 | 2/4 |") and lines[2].endswith("| - | - |")
    assert lines[3].startswith("| new | 3/4 |") and "| 1 / 2 | 1.00 |" in lines[3]
    assert lines[3].endswith("| 0 / 1 | 1.00 |")
    with pytest.raises(SystemExit, match="as many runs as the reference"):
        ablation_table.table([("N = 1", ref), ("new", other[:1])])
    r = subprocess.run(
        [sys.executable, str(SCRIPT), f"a={ref[0]},{ref[1]}", f"b={other[0]},{other[1]}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "| b | 3/4 |" in r.stdout


def test_small_p_values_keep_two_significant_digits(tmp_path):
    ref = write_run(tmp_path / "ref", [False] * 12)
    other = write_run(tmp_path / "other", [True] * 12)  # 12 discordant pairs one way: p = 2 / 4096
    line = ablation_table.table([("ref", [ref]), ("other", [other])]).splitlines()[3]
    assert "| 0 / 12 | 0.00049 |" in line
