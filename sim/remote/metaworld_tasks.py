"""Meta-World's benchmark sets as our suites: task names, instructions, scripted experts, cameras.

Pure data, imported on both sides: the evaluator lists tasks and instructions without starting a
simulator, and the server (in Meta-World's own environment) builds the same tasks.

Suites: `metaworld_mt10` is Meta-World's MT10 (ten manipulation tasks, each with 50 goal and
object placements); `metaworld_mt10_<task>` is one of them alone. Evaluation starts are the 50
placements `metaworld.MT1(task, seed=EVAL_SEED)` generates, the benchmark's own generator; a
collection with `init_states: sampled` draws placements from the task's placement ranges with
each episode's seed instead, redrawn while within HELD_OUT_MARGIN of an evaluation start, and
records how far each is from the nearest one.
"""

from __future__ import annotations

from dataclasses import dataclass

# The seed of the evaluation starts (metaworld.MT1(task, seed=EVAL_SEED).train_tasks).
EVAL_SEED = 42
NUM_STARTS = 50  # placements per task, as every Meta-World benchmark generates them
# Meta-World's own episode limit (max_path_length); stepping past it is an error there.
MAX_STEPS = 500
# Steps per second: 5 MuJoCo steps of 2.5 ms per control step.
CONTROL_HZ = 80
# Our camera names -> Meta-World's cameras. "agentview" looks at the table from a corner (the
# camera LeRobot's Meta-World datasets use), "wrist" from between the gripper's fingers.
CAMERAS = {"agentview": "corner2", "wrist": "gripperPOV"}
STATE_NAMES = ["x", "y", "z", "gripper_opening"]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]  # gripper -1 open, +1 closed
# A sampled (held-out) placement is drawn again while it is within this distance of an evaluation
# start (max |difference| over the placement's dims, m): 1 mm apart from every one of them.
HELD_OUT_MARGIN = 1e-3


@dataclass(frozen=True)
class MetaWorldTaskSpec:
    name: str  # Meta-World's environment name
    instruction: str
    expert: str  # metaworld.policies class: the scripted expert


MT10 = (
    MetaWorldTaskSpec("reach-v3", "reach the goal position", "SawyerReachV3Policy"),
    MetaWorldTaskSpec("push-v3", "push the puck to the goal", "SawyerPushV3Policy"),
    MetaWorldTaskSpec(
        "pick-place-v3", "pick up the puck and place it at the goal", "SawyerPickPlaceV3Policy"
    ),
    MetaWorldTaskSpec("door-open-v3", "open the door", "SawyerDoorOpenV3Policy"),
    MetaWorldTaskSpec("drawer-open-v3", "open the drawer", "SawyerDrawerOpenV3Policy"),
    MetaWorldTaskSpec("drawer-close-v3", "close the drawer", "SawyerDrawerCloseV3Policy"),
    MetaWorldTaskSpec(
        "button-press-topdown-v3", "press the button from the top", "SawyerButtonPressTopdownV3Policy"
    ),
    MetaWorldTaskSpec(
        "peg-insert-side-v3", "insert the peg into the hole from the side", "SawyerPegInsertionSideV3Policy"
    ),
    MetaWorldTaskSpec("window-open-v3", "slide the window open", "SawyerWindowOpenV3Policy"),
    MetaWorldTaskSpec("window-close-v3", "slide the window closed", "SawyerWindowCloseV3Policy"),
)
PREFIX = "metaworld_"


def suites() -> dict[str, tuple[MetaWorldTaskSpec, ...]]:
    """Every Meta-World suite by name: MT10, and each of its tasks alone."""
    out: dict[str, tuple[MetaWorldTaskSpec, ...]] = {"metaworld_mt10": MT10}
    for task in MT10:
        out["metaworld_mt10_" + task.name.removesuffix("-v3").replace("-", "_")] = (task,)
    return out


def suite_tasks(suite: str) -> tuple[MetaWorldTaskSpec, ...]:
    found = suites().get(suite)
    if found is None:
        raise ValueError(f"unknown Meta-World suite {suite!r}; valid: {', '.join(suites())}")
    return found
