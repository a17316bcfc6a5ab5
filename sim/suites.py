"""Which simulator runs a suite: LIBERO in this process, Meta-World in its own (an env server).

The evaluator, `hume collect` and the simulated robot ask here for a suite's tasks, its step
limit, its dataset features and a task's simulator, so that they need not know which it is.
"""

from __future__ import annotations

from hume.config import ConfigError
from sim.remote import metaworld_tasks

METAWORLD_VENV = ".venv-metaworld"
METAWORLD_PYTHON_VAR = "HUME_METAWORLD_PYTHON"


def is_metaworld(suite: str) -> bool:
    return suite.startswith(metaworld_tasks.PREFIX)


def check_suite(suite: str) -> str:
    if is_metaworld(suite):
        if suite not in metaworld_tasks.suites():
            raise ConfigError(
                f"unknown Meta-World suite {suite!r}; valid: {', '.join(metaworld_tasks.suites())}"
            )
        return suite
    from sim.libero_env import check_suite as check_libero

    return check_libero(suite)


def task_names(suite: str) -> list[str]:
    if is_metaworld(suite):
        return [t.name for t in metaworld_tasks.suite_tasks(check_suite(suite))]
    from sim.libero_env import task_names as libero_names

    return libero_names(suite)


def get_task(suite: str, task: int | str):
    """A task by index or name: a LiberoTask, or a RemoteTask for Meta-World."""
    if not is_metaworld(suite):
        from sim.libero_env import get_task as libero_task

        return libero_task(suite, task)
    from sim.remote.client import RemoteTask

    specs = metaworld_tasks.suite_tasks(check_suite(suite))
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


def num_starts(task) -> int:
    """How many evaluation starts a task has (LIBERO's official states, Meta-World's 50)."""
    if not hasattr(task, "init_states"):
        return metaworld_tasks.NUM_STARTS
    return len(task.init_states())


def max_steps_for(suite: str) -> int:
    if is_metaworld(suite):
        return metaworld_tasks.MAX_STEPS
    from sim.libero_env import max_steps_for as libero_steps

    return libero_steps(suite)


def cameras(suite: str) -> tuple[str, ...]:
    """Our names of the suite's cameras (images `observation.images.<name>`)."""
    if is_metaworld(suite):
        return tuple(metaworld_tasks.CAMERAS)
    from sim.libero_env import CAMERAS

    return tuple(CAMERAS)


def vector_names(suite: str) -> tuple[list[str], list[str]]:
    """(state names, action names) of the suite's robot, as a dataset records them."""
    if is_metaworld(suite):
        return metaworld_tasks.STATE_NAMES, metaworld_tasks.ACTION_NAMES
    from hume.data.format import LIBERO_ACTION_NAMES, LIBERO_STATE_NAMES

    return LIBERO_STATE_NAMES, LIBERO_ACTION_NAMES


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
    """A task's simulator: a LiberoEnv, or a RemoteEnv on a Meta-World server of its own."""
    if not is_metaworld(suite):
        from sim.libero_env import LiberoEnv

        return LiberoEnv(
            suite, task_id, cameras=cameras, image_size=image_size, fast_render=fast_render,
            max_steps=max_steps, seed=seed,
        )  # fmt: skip
    from sim.remote.client import RemoteEnv, RemoteSim, interpreter

    options = {"suite": check_suite(suite), "cameras": cameras, "image_size": image_size,
               "fast_render": fast_render, "max_steps": max_steps or 0}  # fmt: skip
    sim = RemoteSim(interpreter(METAWORLD_VENV, METAWORLD_PYTHON_VAR), "metaworld", options)
    return RemoteEnv(sim, suite, task_id, max_steps)
