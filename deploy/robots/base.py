"""The robot adapter interface the System-1 node drives, and how a config picks an adapter.

A robot adapter is any object with these members (a real robot plugs in as
`robot.kind: "my_package.my_module:MyRobot"`, constructed as `MyRobot(**robot.options)`):

    reset(episode: int) -> None      put the robot in its start state for episode `episode`
    observe() -> dict                the current observation: "observation.images.<camera>" uint8
                                     [H, W, 3], "observation.state" float32 [state_dim], "task" str
    act(action: np.ndarray) -> None  apply one float32 [action_dim] action: arm dims, then the
                                     gripper (-1 open / +1 close). LIBERO: eef delta position 3,
                                     delta axis-angle 3, gripper; Meta-World: delta position 3,
                                     gripper
    done: bool                       the episode is over (success, step limit, or operator stop)
    success: bool                    the task was achieved
    close() -> None                  release hardware / simulator
    action_envelope() -> dict        optional: the robot's action limits, {"low", "high",
                                     "max_delta"} per arm dim and "gripper" [low, high], and
                                     optionally a "workspace" (hume/runtime/envelope.py);
                                     robot.envelope in the config overrides them, and must give
                                     them when this is absent
    task_id, init_state              optional attributes, copied into each episode's result
    hold() -> dict | None            optional: stop the robot now, for the command watchdog
                                     (default: act() with the hold action); a dict returned
                                     goes into the hold's record (robot.json)

The System-1 node calls observe() once per control tick, then act() once. It never sends an
action outside this loop, and none outside the envelope; while no valid chunk exists it sends
the hold action (zero motion, gripper unchanged), so an adapter needs no safety logic of its own
for a stalled System 2 or a hostile chunk. The adapter runs in the robot driver's process
(driver.py), whose command watchdog holds the robot when System 1 falls silent or dies; what an
adapter for a real robot must still do itself: docs/deployment.md, "The command watchdog".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from hume.config import ConfigError
from hume.runtime.config import RobotConfig
from hume.runtime.policy_loader import import_object


@runtime_checkable
class Robot(Protocol):
    done: bool
    success: bool

    def reset(self, episode: int) -> None: ...

    def observe(self) -> dict: ...

    def act(self, action: np.ndarray) -> None: ...

    def close(self) -> None: ...


# LIBERO's OSC_POSE controller (robosuite's action_spec): [-1, 1] on every dim, any change per
# step; what LiberoRobot.action_envelope() reads from a built simulator, for a server without one.
LIBERO_ENVELOPE = {"low": [-1.0] * 6, "high": [1.0] * 6, "max_delta": [2.0] * 6, "gripper": [-1.0, 1.0]}


def declared_envelope(cfg: RobotConfig) -> dict:
    """The action limits `cfg.kind` declares without building a simulator or connecting to a robot
    (for `hume serve openpi`, whose robot is its client): LIBERO's controller's, the kinematic
    robot's; none for the others (robot.envelope must give them)."""
    if cfg.kind == "libero":
        return LIBERO_ENVELOPE
    if cfg.kind == "kinematic":
        from deploy.robots.kinematic import KinematicRobot

        return KinematicRobot(**cfg.options).action_envelope()
    return {}


def make_robot(cfg: RobotConfig, seed: int = 0) -> Robot:
    if cfg.kind in ("libero", "metaworld", "robosuite"):
        from deploy.robots.libero import LiberoRobot

        return LiberoRobot(cfg, seed=seed)
    if cfg.kind == "kinematic":
        from deploy.robots.kinematic import KinematicRobot

        return KinematicRobot(
            image_size=cfg.image_size, max_steps=cfg.max_steps or 200, seed=seed, **cfg.options
        )
    if ":" not in cfg.kind:
        raise ConfigError(
            "robot.kind must be 'libero', 'metaworld', 'robosuite', 'kinematic' or 'package.module:Class', "
            f"got {cfg.kind!r}"
        )
    robot = import_object(cfg.kind, "robot.kind")(**cfg.options)
    if not isinstance(robot, Robot):
        raise ConfigError(f"{cfg.kind} does not implement the robot interface of deploy/robots/base.py")
    return robot
