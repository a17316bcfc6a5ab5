"""`hume eval --mode=deploy --policy_server=true`: simulator workers, each a System-1 process,
sharing one System-2 process over ZeroMQ (real processes, real LIBERO, a tiny model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hume.config import ConfigError, parse_config
from sim.eval_config import EvalConfig

ROOT = Path(__file__).resolve().parents[1]
HUME = str(Path(sys.executable).with_name("hume"))


def test_policy_server_needs_deploy_mode():
    with pytest.raises(ConfigError, match="mode=deploy"):
        parse_config(EvalConfig, ["--policy_server=true", "--mode=async"])


def test_groups_split_a_task_so_that_every_worker_gets_one():
    from deploy.libero_eval import groups_of
    from sim.evaluator import Unit

    units = [Unit(t, e, e, 0) for t in (0, 1) for e in range(3)]
    assert [[(u.task_id, u.episode) for u in g] for g in groups_of(units, 2)] == [
        [(0, 0), (0, 1)], [(0, 2)], [(1, 0), (1, 1)], [(1, 2)]
    ]  # fmt: skip
    assert len(groups_of(units, len(units))) == 2  # without a server: one deployment per task


def test_a_group_runs_its_own_task_whatever_the_deploy_config_rotates():
    from deploy.libero_eval import base_config, deploy_config

    cfg = parse_config(
        EvalConfig,
        ["--suite=libero_object", "--mode=deploy", f"--deploy_config={ROOT / 'configs/deploy/demo.yaml'}"],
    )
    base = base_config(cfg)
    assert base.robot.tasks, "the demo rotates over several tasks"
    robot = deploy_config(cfg, base, 5, 7, 3, Path("run"), video=False).robot
    assert (robot.suite, robot.task, robot.tasks, robot.init_state) == ("libero_object", 5, [], 7)


@pytest.mark.slow
def test_two_system1_workers_share_one_system2(tmp_path):
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    ckpt = tmp_path / "tiny"
    HumePolicy.from_config(HumeConfig()).save_pretrained(ckpt)
    out = tmp_path / "eval"
    argv = ["--suite=libero_spatial", "--tasks=[1]", "--max_steps=4", "--image_size=64", "--fast_render=true",
            "--mode=deploy", "--policy_server=true", "--num_workers=2", "--episodes_per_task=2",
            "--videos_per_task=0", f"--policy.checkpoint={ckpt}", f"--output={out}"]  # fmt: skip
    r = subprocess.run([HUME, "eval", *argv], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 2 and results["throughput"]["num_workers"] == 2
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["episode"] for r in rows) == [0, 1]
    # Each worker ran one episode as its own System-1 process, as a client of the one System 2.
    runs = {r["deploy_run"] for r in rows}
    assert len(runs) == 2
    for run in runs:
        metrics = json.loads((out / run / "metrics.json").read_text())
        assert metrics["episodes"] == 1 and metrics["chunks_received"] >= 1
        assert not (out / run / "system2.json").exists()
    server = json.loads((out / "deploy" / "system2" / "system2.json").read_text())
    assert len(server["clients"]) == 2
    assert all(c["chunks_sent"] >= 1 for c in server["clients"].values())
    assert server["chunks_sent"] == sum(c["chunks_sent"] for c in server["clients"].values())
