"""Which simulator runs a suite: LIBERO in this process; Meta-World and robosuite 1.5 each in its
own process and Python environment, behind the env server (sim/remote/).

The evaluator, `hume collect` and the simulated robot ask here for a suite's tasks, its step
limit, its dataset features and a task's simulator, so that they need not know which it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from hume.config import ConfigError
from sim.remote import metaworld_tasks, robosuite_tasks

if TYPE_CHECKING:
    from sim.remote.client import RemoteTask


@dataclass(frozen=True)
class ServedSimulator:
    """A simulator behind the env server: its task tables, environment and server name."""

    name: str  # the env server's --sim, and the robot kind that runs it
    tasks: ModuleType  # sim/remote/<name>_tasks.py
    venv: str  # its Python environment, in the repository root
    python_var: str  # an environment variable naming another interpreter instead


SERVED = (
    ServedSimulator("metaworld", metaworld_tasks, ".venv-metaworld", "HUME_METAWORLD_PYTHON"),
    ServedSimulator("robosuite", robosuite_tasks, ".venv-robosuite", "HUME_ROBOSUITE_PYTHON"),
)


def served(suite: str) -> ServedSimulator | None:
    """The served simulator a suite runs in, or None for LIBERO (in this process)."""
    return next((s for s in SERVED if suite.startswith(s.tasks.PREFIX)), None)


def check_suite(suite: str) -> str:
    sim = served(suite)
    if sim is None:
        from sim.libero_env import check_suite as check_libero

        return check_libero(suite)
    if suite not in sim.tasks.suites():
        raise ConfigError(f"unknown {sim.name} suite {suite!r}; valid: {', '.join(sim.tasks.suites())}")
    return suite


def task_names(suite: str) -> list[str]:
    sim = served(suite)
    if sim is None:
        from sim.libero_env import task_names as libero_names

        return libero_names(suite)
    return [t.name for t in sim.tasks.suite_tasks(check_suite(suite))]


def get_task(suite: str, task: int | str):
    """A task by index or name: a LiberoTask, or a RemoteTask for a served simulator."""
    sim = served(suite)
    if sim is None:
        from sim.libero_env import get_task as libero_task

        return libero_task(suite, task)
    from sim.remote.client import RemoteTask

    specs = sim.tasks.suite_tasks(check_suite(suite))
    names = [t.name for t in specs]
    if isinstance(task, str) and not task.isdigit():
        if task not in names:
            raise ConfigError(f"unknown task {task!r} in {suite}; valid tasks: {', '.join(names)}")
        task_id = names.index(task)
    else:
        task_id = int(task)
        if not 0 <= task_id < len(specs):
            raise ConfigError(
                f"task id {task_id} out of range for {suite}: valid ids are 0..{len(specs) - 1}"
            )
    return RemoteTask(suite, task_id, specs[task_id].name, specs[task_id].instruction)


def has_expert(task: RemoteTask) -> bool:
    """Whether a served simulator's task has a scripted expert (every Meta-World task does)."""
    sim = served(task.suite)
    if sim is None:
        raise ValueError(f"{task.suite} runs in LIBERO, not a served simulator: its experts are ours")
    spec = sim.tasks.suite_tasks(task.suite)[task.task_id]
    return bool(getattr(spec, "expert", True))


def num_starts(task) -> int:
    """How many evaluation starts a task has (LIBERO's official states, 50 for served simulators)."""
    sim = served(task.suite)
    return len(task.init_states()) if sim is None else sim.tasks.NUM_STARTS


def max_steps_for(suite: str) -> int:
    sim = served(suite)
    if sim is None:
        from sim.libero_env import max_steps_for as libero_steps

        return libero_steps(suite)
    if hasattr(sim.tasks, "MAX_STEPS"):
        return sim.tasks.MAX_STEPS
    return max(t.max_steps for t in sim.tasks.suite_tasks(suite))


def cameras(suite: str) -> tuple[str, ...]:
    """Our names of the suite's cameras (images `observation.images.<name>`)."""
    sim = served(suite)
    if sim is None:
        from sim.libero_env import CAMERAS

        return tuple(CAMERAS)
    return tuple(sim.tasks.CAMERAS)


def vector_names(suite: str) -> tuple[list[str], list[str]]:
    """(state names, action names) of the suite's robot, as a dataset records them."""
    sim = served(suite)
    if sim is None:
        from hume.data.format import LIBERO_ACTION_NAMES, LIBERO_STATE_NAMES

        return LIBERO_STATE_NAMES, LIBERO_ACTION_NAMES
    return sim.tasks.STATE_NAMES, sim.tasks.ACTION_NAMES


def make_env(
    suite: str,
    task_id: int,
    *,
    cameras: bool = True,
    image_size: int = 128,
    fast_render: bool = True,
    max_steps: int | None = None,
    seed: int = 0,
):
    """A task's simulator: a LiberoEnv, or a RemoteEnv on an env server of its own."""
    sim = served(suite)
    if sim is None:
        from sim.libero_env import LiberoEnv

        return LiberoEnv(
            suite, task_id, cameras=cameras, image_size=image_size, fast_render=fast_render,
            max_steps=max_steps, seed=seed,
        )  # fmt: skip
    from sim.remote.client import RemoteEnv, RemoteSim, interpreter

    options = {"suite": check_suite(suite), "cameras": cameras, "image_size": image_size,
               "fast_render": fast_render, "max_steps": max_steps or 0}  # fmt: skip
    server = RemoteSim(interpreter(sim.venv, sim.python_var), sim.name, options)
    return RemoteEnv(server, suite, task_id, max_steps)
