"""`hume eval` on real LIBERO episodes with a real (randomly initialised, tiny) HumePolicy."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import pytest

from hume.config import ConfigError, parse_config
from hume.data.episode_frame import BANNER
from sim.eval_config import EvalConfig
from sim.evaluator import evaluate
from sim.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
HUME = str(Path(sys.executable).with_name("hume"))
# Short episodes, small fast renders: the pipeline is real, the episodes are cheap.
SHORT = ["--suite=libero_spatial", "--tasks=[1]", "--max_steps=6", "--image_size=64", "--fast_render=true"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    HumePolicy.from_config(HumeConfig()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def sync_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("sync")
    argv = [*SHORT, "--episodes_per_task=2", "--num_workers=2", "--videos_per_task=1"]
    cfg = parse_config(EvalConfig, [*argv, f"--policy.checkpoint={checkpoint}", f"--output={out}"])
    return out, evaluate(cfg)


def test_policy_ablation_switches_reach_the_loaded_policy(checkpoint):
    from sim.evaluator import make_policy

    base = [f"--policy.checkpoint={checkpoint}"]
    policy = make_policy(parse_config(EvalConfig, base))
    assert policy.config.use_system1 and policy.config.use_value_head and policy.config.num_candidates == 5
    assert policy.config.candidate_t0_spread > 0
    argv = [*base, "--policy.use_system1=false", "--policy.use_value_head=false", "--policy.num_candidates=2"]
    policy = make_policy(parse_config(EvalConfig, [*argv, "--policy.candidate_t0_spread=0"]))
    assert not policy.config.use_system1 and not policy.config.use_value_head
    assert policy.config.num_candidates == 2 and policy.config.candidate_t0_spread == 0


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sync_eval_writes_results_videos_and_chart(sync_run):
    """Two episodes on two worker processes."""
    out, results = sync_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["suite"] == "libero_spatial" and on_disk["mode"] == "sync"
    assert on_disk["episodes"] == 2 and len(on_disk["tasks"]) == 1
    task = on_disk["tasks"][0]
    assert (
        task["task_id"] == 1 and task["episodes"] == 2 and task["name"].startswith("pick_up_the_black_bowl")
    )
    assert on_disk["ci95"] == pytest.approx(list(wilson_interval(on_disk["successes"], 2)), abs=1e-4)
    assert on_disk["success_rate"] == on_disk["successes"] / 2
    episodes = rows(out)
    episodes.sort(key=lambda r: r["episode"])
    assert [(r["episode"], r["init_state"]) for r in episodes] == [(0, 0), (1, 1)]
    assert results["throughput"]["num_workers"] == 2
    assert all(r["steps"] == 6 or r["success"] for r in episodes)
    assert episodes[0]["final_state"] != episodes[1]["final_state"]
    video = imageio.mimread(out / episodes[0]["video"])
    # Every observation, the last too; both 64 px cameras side by side, 4x, under the step's banner.
    assert len(video) == episodes[0]["steps"] + 1 and video[0].shape == (BANNER + 256, 512, 3)
    assert "video" not in episodes[1], "only the first videos_per_task episodes are filmed"
    assert (out / "success_by_task.png").stat().st_size > 1000


@pytest.mark.slow
def test_async_eval_waits_for_the_first_chunk_then_follows_late_chunks(checkpoint, tmp_path):
    argv = [*SHORT, "--mode=async", "--latency.steps=3", "--episodes_per_task=1", "--videos_per_task=0"]
    cfg = parse_config(EvalConfig, [*argv, f"--policy.checkpoint={checkpoint}", f"--output={tmp_path}"])
    results = evaluate(cfg)
    assert results["mode"] == "async" and results["episodes"] == 1
    (row,) = rows(tmp_path)
    # Thinks at steps 0 (waited for: no hold), 1 (lands at 4) and 4; the chunk of step 1 is taken up
    # at the next refinement (step 8), so steps 0..5 follow the first chunk, 5 steps old at the end.
    assert row["holds"] == 0 and row["thinks"] == 3 and row["chunk_age_max"] == 5
    assert json.loads((tmp_path / "results.json").read_text())["config"]["latency"]["steps"] == 3


@pytest.mark.slow
def test_interrupted_eval_resumes_without_recounting(checkpoint, sync_run, tmp_path):
    """`hume eval` killed after its first episode continues to the same result, nothing twice."""
    argv = [*SHORT, "--episodes_per_task=3", "--videos_per_task=0", "--num_workers=1"]
    argv += [f"--policy.checkpoint={checkpoint}", f"--output={tmp_path}"]
    first = subprocess.Popen(
        [HUME, "eval", *argv],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "episodes.jsonl"
    deadline = time.monotonic() + 180
    while not (log.is_file() and log.read_text().count("\n") >= 1):
        assert first.poll() is None and time.monotonic() < deadline, "the first run did not log an episode"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # a crash: no cleanup, no results.json
    first.wait()
    before = rows(tmp_path)
    assert 1 <= len(before) < 3 and not (tmp_path / "results.json").exists()

    results = evaluate(parse_config(EvalConfig, argv))
    after = rows(tmp_path)
    assert after[: len(before)] == before, "finished episodes are kept, not rerun"
    assert sorted(r["episode"] for r in after) == [0, 1, 2], "every episode exactly once"
    assert results["episodes"] == 3 and results["throughput"]["episodes_run"] == 3 - len(before)
    # Same seeds and initial states: the trajectories of the uninterrupted two-worker run.
    reference = {r["episode"]: r["final_state"] for r in rows(sync_run[0])}
    for r in after:
        if r["episode"] in reference:
            assert r["final_state"] == pytest.approx(reference[r["episode"]], abs=1e-4)

    evaluate(parse_config(EvalConfig, argv))
    assert rows(tmp_path) == after, "a finished evaluation runs nothing more"


@pytest.mark.slow
def test_deploy_eval_runs_through_the_two_process_runtime(checkpoint, tmp_path):
    argv = [*SHORT, "--mode=deploy", "--max_steps=4", "--episodes_per_task=1", "--videos_per_task=0"]
    from deploy.libero_eval import run_deploy

    cfg = parse_config(EvalConfig, [*argv, f"--policy.checkpoint={checkpoint}", f"--output={tmp_path}"])
    with pytest.raises(ConfigError, match="deploy/libero_eval.py"):
        evaluate(cfg)  # the deployment layer runs these episodes, not the evaluator's workers
    results = evaluate(cfg, run_units=run_deploy)
    assert results["mode"] == "deploy" and results["episodes"] == 1
    (row,) = rows(tmp_path)
    assert row["steps"] == 4 or row["success"]
    assert len(row["within_deltas"]) + len(row["switch_deltas"]) == row["steps"] - 1, "one |Δa| per tick"
    metrics = json.loads((tmp_path / row["deploy_run"] / "metrics.json").read_text())
    assert metrics["episodes"] == 1 and metrics["ticks"] == row["steps"] and metrics["chunks_received"] >= 1


def test_cli_errors_name_what_is_wrong(tmp_path):
    r = subprocess.run(
        [HUME, "eval", f"--policy.checkpoint={tmp_path / 'nope'}", f"--output={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and str(tmp_path / "nope") in r.stderr
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    r = subprocess.run(
        [
            HUME,
            "eval",
            "--suite=libero_nope",
            f"--policy.checkpoint={tmp_path / 'ckpt'}",
            f"--output={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "libero_nope" in r.stderr and "libero_spatial" in r.stderr


@pytest.mark.slow
def test_replayed_recording_reproduces_its_trajectory(tmp_path):
    """A recorded episode, written as a LeRobot dataset, replays to the same final state."""
    import numpy as np

    from hume.data.format import libero_features
    from hume.data.writer import LeRobotWriter
    from sim.libero_env import LiberoEnv

    t = np.arange(12, dtype=np.float32)[:, None]
    actions = np.concatenate([0.4 * np.sin(t / 3 + np.arange(3)), np.zeros((12, 3)), np.ones((12, 1))], 1)
    with LiberoEnv("libero_spatial", 1, cameras=False) as env:
        states = [env.reset(2)["observation.state"]]
        for a in actions[:-1]:
            states.append(env.step(a)[0]["observation.state"])
        final = env.step(actions[-1])[0]["observation.state"]
        instruction = env.instruction
    writer = LeRobotWriter(tmp_path / "demos", fps=20, features=libero_features(64, 20, cameras=()))
    n = len(actions)
    frames = {
        "observation.state": np.stack(states),
        "action": actions.astype(np.float32),
        "next.reward": np.zeros(n, np.float32),
        "next.done": np.arange(n) == n - 1,
        "next.success": np.zeros(n, bool),
    }
    writer.add_episode(0, instruction, frames, init_state=2)
    writer.finalize()

    argv = [*SHORT, "--first_init_state=2", "--max_steps=12", "--episodes_per_task=1", "--render=false"]
    argv += [
        "--policy.type=replay",
        f"--policy.dataset={tmp_path / 'demos'}",
        f"--output={tmp_path / 'eval'}",
    ]
    evaluate(parse_config(EvalConfig, argv))
    (row,) = rows(tmp_path / "eval")
    assert row["init_state"] == 2 and row["steps"] == 12
    assert row["final_state"] == pytest.approx(final.tolist(), abs=1e-4)
