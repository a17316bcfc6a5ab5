"""Any robot, any action width: `hume deploy` (the two real nodes and the robot driver) with a
policy class that is not HumePolicy (tests/plugin_policy.py, plugged in by `policy.type: import`)
on a 6-dim (one arm of 5 dofs and a gripper) and a 14-dim (two arms of 6 dofs and a gripper each)
kinematic robot. Every action the robot adapter got is recorded (runtime_support.RecordingRobot)."""

import csv
import json
import subprocess

import numpy as np
import pytest
import yaml
from plugin_policy import pattern, write_checkpoint
from runtime_support import Proc, recorded_actions

pytestmark = pytest.mark.slow

TICKS = 30


@pytest.mark.parametrize(("arms", "arm_dof"), [(1, 5), (2, 6)])
def test_a_plug_in_policy_drives_a_robot_of_any_width(tmp_path, arms, arm_dof):
    action_dim, state_dim = arms * (arm_dof + 1), arms * (arm_dof + 2)
    ckpt = write_checkpoint(tmp_path / "ckpt", action_dim, state_dim)
    record, run = tmp_path / "actions.f32", tmp_path / "run"
    config = tmp_path / "robot.yaml"
    options = {"record": str(record), "arms": arms, "arm_dof": arm_dof, "max_steps": TICKS}
    robot = {"kind": "runtime_support:RecordingRobot", "options": options}
    config.write_text(yaml.safe_dump({"robot": robot}))
    launcher = Proc(
        ["deploy", "--config", str(config), f"--checkpoint={ckpt}", "--policy.type=import",
         "--policy.path=plugin_policy:ReachPolicy", "--video=false", f"--output={run}"],
        tmp_path / "launcher.log",
    )  # fmt: skip
    try:
        assert launcher.p.wait(120) == 0, launcher.text()[-3000:]
    except subprocess.TimeoutExpired:
        launcher.stop()
        raise
    m = json.loads((run / "metrics.json").read_text())
    assert m["episodes"] == 1 and m["ticks"] == TICKS and m["envelope"]["nonfinite"] == 0
    assert len(m["envelope"]["low"]) == action_dim - 1  # the robot's own envelope, its width
    # The robot got TICKS actions of its width: the plug-in's plan, or the hold while none was valid.
    sent = recorded_actions(record, action_dim)
    hold = np.append(np.zeros(action_dim - 1), pattern(action_dim)[-1])  # still, gripper as commanded
    planned = (sent == pattern(action_dim)).all(axis=1)
    assert len(sent) == TICKS and planned.sum() >= TICKS // 2
    assert (sent[~planned] == hold).all(), sent[~planned]
    with (run / "ticks.csv").open() as f:
        header = next(csv.reader(f))
    actions = [c for c in header if c.startswith("a") and c[1:].isdigit()]
    assert actions == [f"a{i}" for i in range(action_dim)]
    # The robot's state reached System 2 at its width (System 2 checks it against the policy's).
    assert m["system2_errors"] == 0 and m["chunks_received"] >= 1


def test_a_robot_whose_width_is_not_the_policys_is_refused(tmp_path):
    ckpt = write_checkpoint(tmp_path / "ckpt", 7, 8)
    node = Proc(
        ["serve", "system1", f"--checkpoint={ckpt}", "--policy.type=import",
         "--policy.path=plugin_policy:ReachPolicy", "--robot.kind=kinematic", "--video=false",
         "--robot.options={arm_dof: 5}", f"--output={tmp_path / 'run'}"],
        tmp_path / "system1.log",
    )  # fmt: skip
    try:
        assert node.p.wait(120) != 0
    finally:
        node.stop()
    assert "the policy acts in 7 dims, the robot's envelope has 6" in node.text()
