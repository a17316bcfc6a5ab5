"""Scripted experts: waypoint controllers on the simulator's poses that solve LIBERO tasks.

`make_expert(env, noise, seed)` reads the task's BDDL goal and returns the expert for it; it
raises `UnsupportedTask` for goals no expert handles yet.
"""

from __future__ import annotations

from sim.experts.base import ExpertNoise, ScriptedExpert
from sim.experts.pick_place import PickPlaceExpert
from sim.experts.served import ServedExpert


class UnsupportedTask(ValueError):
    """A task whose goal no scripted expert can reach."""


def check_supported(task) -> None:
    """Raise UnsupportedTask unless an expert handles `task`. A served simulator's task may have the
    simulator's own expert (every Meta-World task; robosuite's Lift and Stack). A LIBERO task
    (sim.libero_env.LiberoTask) needs a single (On obj target) goal, or (In obj region) of an
    object (a basket, a bowl); putting something in a fixture's drawer needs the drawer opened
    first, which no expert does yet."""
    from sim.suites import has_expert, served

    if served(task.suite):
        if not has_expert(task):
            raise UnsupportedTask(f"no scripted expert for {task.suite} task {task.name!r}")
        return
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    problem = robosuite_parse_problem(task.bddl_file)
    goal = problem["goal_state"]
    objects = [name for names in problem["objects"].values() for name in names]
    supported = len(goal) == 1 and goal[0][0].lower() == "on"
    if len(goal) == 1 and goal[0][0].lower() == "in":
        supported = any(goal[0][2].startswith(name + "_") for name in objects)
    if not supported:
        raise UnsupportedTask(
            f"no scripted expert for {task.suite} task {task.task_id} ({task.instruction!r}): goal {goal}; "
            "experts handle a single (On obj target) goal, or (In obj region) of an object"
        )


def make_expert(env, noise: ExpertNoise | None = None, seed: int = 0) -> ScriptedExpert | ServedExpert:
    """The expert for the task of `env`: a served simulator's own (sim.remote.client.RemoteEnv),
    or ours for a sim.libero_env.LiberoEnv."""
    if hasattr(env, "expert_action"):
        return ServedExpert(env, noise, seed)
    check_supported(env.task)
    _, obj, target = env.goal[0]
    return PickPlaceExpert(env, obj, target, noise, seed)


__all__ = [
    "ExpertNoise",
    "ScriptedExpert",
    "ServedExpert",
    "UnsupportedTask",
    "check_supported",
    "make_expert",
]
