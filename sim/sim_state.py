"""The complete state of a robosuite environment, to branch a rollout: save it, try something,
restore it, try something else, with no trace of the first try.

MuJoCo's `get_sim_state()` (time, qpos, qvel) is not enough for a replay equal to float
precision: the solver's warm start, actuator activations, controls and the positions derived from
the last step (which scripted experts read) live in mjData too, so all of mjData is copied; and
robosuite keeps state outside the simulator: the controller's goals and references, the gripper's
accumulated command, the robot's sensor buffers, each observable's sampling clock and last value,
and the episode's step counter. All of it is saved here by value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

# What robosuite objects hold between steps: numbers, arrays and its history buffers.
_BUFFER_TYPES: tuple[type, ...] = ()


def _buffer_types() -> tuple[type, ...]:
    global _BUFFER_TYPES
    if not _BUFFER_TYPES:
        from robosuite.utils.buffers import Buffer

        _BUFFER_TYPES = (Buffer,)
    return _BUFFER_TYPES


def _fields(obj) -> dict:
    """The instance attributes of a robosuite object that change as it runs (by value)."""
    kept = (np.ndarray, float, int, bool, np.generic, *_buffer_types())
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if isinstance(v, kept) or v is None}


def _restore_fields(obj, fields: dict) -> None:
    for k, v in fields.items():
        setattr(obj, k, copy.deepcopy(v))


@dataclass(frozen=True)
class SimState:
    """One saved instant of a robosuite environment (opaque; `restore` puts it back)."""

    physics: object  # a copy of mjData: state, warm start, and what the last step derived
    episode: dict  # the environment's step counter, clock and done flag
    robots: tuple[dict, ...]  # per robot: its own, its controller's and its gripper's fields
    observables: dict[str, dict]  # per observable: sampling clock, delay and last value


def _robot_parts(robot) -> dict:
    return {"robot": robot, "controller": robot.controller, "gripper": robot.gripper}


def save(env) -> SimState:
    """`env`: a robosuite MujocoEnv (LIBERO's problem envs are ones)."""
    import mujoco

    model, data = env.sim.model._model, env.sim.data._data
    physics = mujoco.MjData(model)
    mujoco.mj_copyData(physics, model, data)
    return SimState(
        physics=physics,
        episode={"timestep": env.timestep, "cur_time": env.cur_time, "done": env.done},
        robots=tuple(
            {part: _fields(obj) for part, obj in _robot_parts(robot).items()} for robot in env.robots
        ),
        observables={name: _fields(obs) for name, obs in env._observables.items()},
    )


def restore(env, state: SimState) -> None:
    import mujoco

    model = env.sim.model._model
    # In place: robosuite's wrappers and render contexts keep pointing at this mjData.
    mujoco.mj_copyData(env.sim.data._data, model, state.physics)
    for key, value in state.episode.items():
        setattr(env, key, value)
    for robot, saved in zip(env.robots, state.robots, strict=True):
        for part, obj in _robot_parts(robot).items():
            _restore_fields(obj, saved[part])
    for name, fields in state.observables.items():
        _restore_fields(env._observables[name], fields)
