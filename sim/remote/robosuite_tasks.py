"""robosuite 1.5's standard tasks as our suites: names, instructions, step limits, cameras.

Pure data, imported on both sides (see metaworld_tasks.py). Suites: `robosuite_standard` (Lift,
Stack, PickPlaceCan, NutAssemblySquare, Door, one Panda arm each) and each task alone
(`robosuite_lift`, ...). Evaluation start i of a task is the scene robosuite's own reset draws with
its generator seeded `EVAL_SEED + i`; `init_states: sampled` starts seed it with the episode's
seed + SAMPLED_SEED_OFFSET instead (held out: a different stream). The conventions are RoboCasa's
(robosuite 1.5's composite controller with OSC_POSE for the arm, its camera names), so a RoboCasa
kitchen task plugs in as another entry once its assets are installed.
"""

from __future__ import annotations

from dataclasses import dataclass

EVAL_SEED = 1000
SAMPLED_SEED_OFFSET = 1 << 40  # sampled starts' seeds never meet the evaluation seeds
NUM_STARTS = 50
CONTROL_HZ = 20
# Our camera names -> robosuite's (RoboCasa's are the same for the wrist; its third-person
# cameras are robot0_agentview_left/right).
CAMERAS = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
STATE_NAMES = ["x", "y", "z", "axis_angle_x", "axis_angle_y", "axis_angle_z", "gripper_l", "gripper_r"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
SAME_START_TOL = 1e-4


@dataclass(frozen=True)
class RobosuiteTaskSpec:
    name: str  # robosuite's environment name
    instruction: str
    max_steps: int
    expert: bool  # whether sim/remote/robosuite_experts.py has a scripted expert for it


STANDARD = (
    RobosuiteTaskSpec("Lift", "lift the red cube", 200, True),
    RobosuiteTaskSpec("Stack", "stack the red cube on the green cube", 300, True),
    RobosuiteTaskSpec("PickPlaceCan", "pick up the can and place it in its bin", 400, False),
    RobosuiteTaskSpec("NutAssemblySquare", "fit the square nut onto the square peg", 400, False),
    RobosuiteTaskSpec("Door", "open the door", 300, False),
)
PREFIX = "robosuite_"


def suites() -> dict[str, tuple[RobosuiteTaskSpec, ...]]:
    out: dict[str, tuple[RobosuiteTaskSpec, ...]] = {"robosuite_standard": STANDARD}
    for task in STANDARD:
        out[PREFIX + task.name.lower()] = (task,)
    return out


def suite_tasks(suite: str) -> tuple[RobosuiteTaskSpec, ...]:
    found = suites().get(suite)
    if found is None:
        raise ValueError(f"unknown robosuite suite {suite!r}; valid: {', '.join(suites())}")
    return found
