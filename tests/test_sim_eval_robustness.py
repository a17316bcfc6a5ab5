"""`hume eval --variants=...`: a suite with its LIBERO-PRO variants, and the robustness table."""

import json

import pytest

from hume.config import ConfigError, parse_config
from sim import robustness
from sim.eval_config import EvalConfig
from sim.libero_env import base_suite, task_names
from sim.stats import wilson_interval


def test_all_variants_are_the_suites_tasks_perturbed():
    names = robustness.variants_of("libero_goal", "all")
    assert "libero_goal_swap" in names and "libero_goal_lan" in names and "libero_goal" not in names
    assert all(base_suite(v) == "libero_goal" and len(task_names(v)) == 10 for v in names)
    assert robustness.variants_of("libero_goal", "libero_goal_swap, libero_goal_lan") == [
        "libero_goal_swap",
        "libero_goal_lan",
    ]
    with pytest.raises(ConfigError, match="not a LIBERO-PRO variant of libero_goal"):
        robustness.variants_of("libero_goal", "libero_spatial_swap")
    with pytest.raises(ConfigError, match="variant of libero_goal"):
        robustness.variants_of("libero_goal_swap", "all")


def test_all_keeps_what_the_package_ships_whole_and_says_what_it_left_out():
    names = robustness.variants_of("libero_object", "all")
    left = robustness.left_out("libero_object")
    assert {"libero_object_with_mug", "libero_object_swap", "libero_object_lan"} <= set(names)
    assert not set(names) & set(left)
    # LIBERO-PRO registers these, but their sticker and box meshes are not in the package.
    assert "red_sticker/red_sticker.xml" in left["libero_object_with_trigger_new"]
    assert "red_box/red_box.xml" in left["libero_object_with_red_box"]
    assert "its BDDL file" in left["libero_object_env"]
    assert left["libero_object_two_normal_episodes"] == "2 tasks, not the suite's 10"
    base = {**fake_results("libero_object", 9), "drop_pp": None}
    md = robustness.markdown([base], left)
    assert "Variants of libero_object left out:" in md
    assert f"- libero_object_with_red_box: {left['libero_object_with_red_box']}" in md


def fake_results(suite: str, successes: int, episodes: int = 20) -> dict:
    lo, hi = wilson_interval(successes, episodes)
    return {"suite": suite, "episodes": episodes, "successes": successes,
            "success_rate": successes / episodes, "ci95": [lo, hi]}  # fmt: skip


def test_each_variant_runs_in_its_own_folder_and_the_table_shows_the_drop(tmp_path, monkeypatch):
    ran = []
    wins = {"libero_goal": 18, "libero_goal_swap": 9, "libero_goal_lan": 19}

    def evaluate(cfg, policy_factory=None, run_units=None):
        ran.append((cfg.suite, cfg.output, cfg.variants, cfg.tasks, cfg.seed))
        return fake_results(cfg.suite, wins[cfg.suite])

    monkeypatch.setattr(robustness, "evaluate", evaluate)
    argv = ["--suite=libero_goal", "--tasks=[3]", "--variants=libero_goal_swap,libero_goal_lan"]
    report = robustness.evaluate_variants(parse_config(EvalConfig, [*argv, f"--output={tmp_path}"]))
    assert ran == [
        ("libero_goal", str(tmp_path), "", ["3"], 7),
        ("libero_goal_swap", str(tmp_path / "variants" / "libero_goal_swap"), "", ["3"], 7),
        ("libero_goal_lan", str(tmp_path / "variants" / "libero_goal_lan"), "", ["3"], 7),
    ]
    rows = {r["suite"]: r for r in report["variants"]}
    assert rows["libero_goal"]["drop_pp"] is None
    assert rows["libero_goal_swap"]["drop_pp"] == 45.0 and rows["libero_goal_lan"]["drop_pp"] == -5.0
    assert json.loads((tmp_path / "robustness.json").read_text()) == report
    md = (tmp_path / "robustness.md").read_text().splitlines()
    assert md[0].endswith("drop vs libero_goal |") and len(md) == 5
    assert "| libero_goal_swap | 20 | 9 (45.0%) | [25.8%, 65.8%] | 45.0 pp |" in md
    assert (tmp_path / "robustness.png").stat().st_size > 1000
