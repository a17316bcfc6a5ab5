"""Meta-World (metaworld 3.1.1, mujoco 3.3.0) as an env-server simulator; runs in `.venv-metaworld`.

Observation: `observation.state` = [hand x, y, z, gripper opening] (float32 [4]) and the cameras of
metaworld_tasks.CAMERAS rendered square, rotated 180° (MuJoCo's offscreen images come out upside
down here, as LIBERO's do). Action: [dx, dy, dz, gripper] in [-1, 1] (Meta-World's own).
Success is Meta-World's `info["success"]`. `fast_render` (default) renders without multisampling,
shadows or reflections: 8 ms instead of 160 ms per 128² image on this machine's CPU renderer.

The full state (`get_state`) is the task, its placement (rand_vec), the step count, the previous
observation Meta-World stacks into the next, and MuJoCo's integration state (time, qpos, qvel,
act, mocap poses, ...): `set_state` of it continues the episode exactly where it was saved.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import metaworld  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from metaworld.env_dict import ALL_V3_ENVIRONMENTS  # noqa: E402

from sim.remote import metaworld_tasks as mt  # noqa: E402

log = logging.getLogger(__name__)
# Meta-World's scripted policies warn on every call that their gains exceed the action range.
warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
_PHYSICS = mujoco.mjtState.mjSTATE_INTEGRATION
_PREV_OBS = 18  # Meta-World stacks the previous step's first 18 observation entries


class MetaWorldSim:
    def __init__(
        self,
        suite: str = "metaworld_mt10",
        cameras: bool = True,
        image_size: int = 128,
        fast_render: bool = True,
        max_steps: int = 0,
        eval_seed: int = mt.EVAL_SEED,
    ):
        self.tasks = mt.suite_tasks(suite)
        self.cameras = cameras
        self.image_size = image_size
        self.fast_render = fast_render
        self.max_steps = min(max_steps or mt.MAX_STEPS, mt.MAX_STEPS)
        self.eval_seed = eval_seed
        # Meta-World's environments and scripted policies (the library has no type information).
        self._envs: dict[int, Any] = {}
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._starts: dict[int, np.ndarray] = {}
        self._experts: dict[int, Any] = {}
        self.task: int | None = None
        self.raw_obs: np.ndarray | None = None
        self.success = False
        self.spec = {
            "simulator": "metaworld",
            "suite": suite,
            "tasks": [[t.name, t.instruction] for t in self.tasks],
            "state_dim": len(mt.STATE_NAMES),
            "action_dim": len(mt.ACTION_NAMES),
            "action_low": [-1.0] * len(mt.ACTION_NAMES),
            "action_high": [1.0] * len(mt.ACTION_NAMES),
            "cameras": list(mt.CAMERAS) if cameras else [],
            "image_size": image_size,
            "max_steps": self.max_steps,
            "num_starts": mt.NUM_STARTS,
            "control_hz": mt.CONTROL_HZ,
            "versions": {
                "metaworld": metaworld.__version__ if hasattr(metaworld, "__version__") else "",
                "mujoco": mujoco.__version__,
            },  # fmt: skip
        }

    # -- tasks -------------------------------------------------------------------------------------
    def _check_task(self, task: int) -> None:
        if not 0 <= task < len(self.tasks):
            raise ValueError(f"task {task} out of range: this suite has {len(self.tasks)} tasks")

    def _env(self, task: int):
        if task not in self._envs:
            env = ALL_V3_ENVIRONMENTS[self.tasks[task].name]()
            # The evaluation starts are the benchmark's own: MT1's 50 placements at the eval seed.
            bench = metaworld.MT1(self.tasks[task].name, seed=self.eval_seed)
            # Each placement as Meta-World's own set_task reads it from its task record.
            starts = []
            for t in bench.train_tasks:
                env.set_task(t)
                starts.append(np.array(env._last_rand_vec, np.float64))
            env.max_path_length = self.max_steps
            self._starts[task] = np.stack(starts)
            self._envs[task] = env
        return self._envs[task]

    def _expert(self, task: int):
        if task not in self._experts:
            policies = importlib.import_module("metaworld.policies")
            self._experts[task] = getattr(policies, self.tasks[task].expert)()
        return self._experts[task]

    # -- episodes ----------------------------------------------------------------------------------
    def _place(self, task: int, rand_vec: np.ndarray) -> None:
        """Start `task` from placement `rand_vec` (Meta-World's reset with a frozen placement)."""
        env = self._env(task)
        env._last_rand_vec = np.asarray(rand_vec, np.float64)
        env._freeze_rand_vec = True
        self.raw_obs, _ = env.reset()
        self.task, self.success = task, False

    def reset(self, task: int, start: int, seed: int, state: np.ndarray | None) -> dict:
        """Evaluation start `start` (mod 50), a placement sampled with `seed` (start -1), or a
        saved state."""
        self._check_task(task)
        if state is not None:
            return self.set_state(state)
        env = self._env(task)
        extra = {}
        if start >= 0:
            vec = self._starts[task][start % len(self._starts[task])]
        else:
            # Drawn again while within HELD_OUT_MARGIN of an evaluation start: some tasks vary only
            # one or two placement dims, where a uniform draw lands that close to one of the 50
            # starts a few times in a hundred.
            space, rng = env._random_reset_space, np.random.default_rng(seed)
            for _ in range(1000):
                vec = rng.uniform(space.low, space.high)
                distance = np.abs(self._starts[task] - vec).max(axis=1)
                if distance.min() > mt.HELD_OUT_MARGIN:
                    break
            extra = {"start_distance": float(distance.min()), "nearest_start": int(distance.argmin())}
        self._place(task, vec)
        return {**self.observation(), **extra}

    def step(self, action: np.ndarray) -> dict:
        _, env, _ = self._current()
        if env.curr_path_length >= self.max_steps:
            raise ValueError(f"the episode is over: {self.max_steps} steps taken")
        action = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (len(mt.ACTION_NAMES),):
            raise ValueError(f"a Meta-World action has 4 dims (dx, dy, dz, gripper), got {action.shape}")
        self.raw_obs, _, _, _, info = env.step(action)
        self.success = bool(info["success"])
        return self.observation()

    def expert_action(self) -> np.ndarray:
        task, _, raw_obs = self._current()
        return np.asarray(self._expert(task).get_action(raw_obs), np.float32)

    def _current(self) -> tuple[int, Any, np.ndarray]:
        """The episode's task, its environment and Meta-World's last observation."""
        if self.task is None or self.raw_obs is None:
            raise ValueError("no episode: reset first")
        return self.task, self._envs[self.task], self.raw_obs

    def observation(self) -> dict:
        task, env, raw_obs = self._current()
        obs = {
            "task": task,
            "step": int(env.curr_path_length),
            "success": self.success,
            "instruction": self.tasks[task].instruction,
            "observation.state": np.asarray(raw_obs[:4], np.float32),
        }
        if self.cameras:
            renderer = self._renderers.get(task) or self._renderer(task, env)
            for ours, theirs in mt.CAMERAS.items():
                renderer.update_scene(env.data, camera=theirs)
                obs[f"observation.images.{ours}"] = np.ascontiguousarray(renderer.render()[::-1, ::-1])
        return obs

    def _renderer(self, task: int, env) -> mujoco.Renderer:
        if self.fast_render:
            # No multisampling, shadows or reflections: ~20x faster on a CPU renderer (llvmpipe).
            env.model.vis.quality.offsamples = 0
        renderer = mujoco.Renderer(env.model, self.image_size, self.image_size)
        if self.fast_render:
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._renderers[task] = renderer
        return renderer

    # -- state -------------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        task, env, _ = self._current()
        physics = np.empty(mujoco.mj_stateSize(env.model, _PHYSICS))
        mujoco.mj_getState(env.model, env.data, physics, _PHYSICS)
        vec = np.asarray(env._last_rand_vec, np.float64)
        head = [float(task), float(len(vec)), *vec, float(env.curr_path_length), float(self.success)]
        return np.concatenate([head, np.asarray(env._prev_obs, np.float64), physics])

    def set_state(self, state: np.ndarray) -> dict:
        state = np.asarray(state, np.float64)
        task, k = int(state[0]), int(state[1])
        self._check_task(task)
        vec, rest = state[2 : 2 + k], state[2 + k :]
        env = self._env(task)
        size = mujoco.mj_stateSize(env.model, _PHYSICS)
        if len(rest) != 2 + _PREV_OBS + size:
            raise ValueError(f"a state of another model: {len(state)} values for task {task}")
        # Re-place first: the goal and fixture poses follow from the placement, outside the physics.
        self._place(task, vec)
        mujoco.mj_setState(env.model, env.data, rest[2 + _PREV_OBS :], _PHYSICS)
        mujoco.mj_forward(env.model, env.data)
        env.curr_path_length, self.success = int(rest[0]), bool(rest[1])
        env._prev_obs = rest[2 : 2 + _PREV_OBS].copy()
        self.raw_obs = env._get_obs()
        return self.observation()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        for env in self._envs.values():
            env.close()
        self._renderers.clear()
        self._envs.clear()
