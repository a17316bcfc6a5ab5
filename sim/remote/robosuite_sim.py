"""robosuite 1.5 (mujoco < 3.10) as an env-server simulator; runs in `.venv-robosuite`.

One Panda arm with robosuite 1.5's default composite controller (OSC_POSE on the arm, deltas):
action [dx, dy, dz, droll, dpitch, dyaw, gripper] in [-1, 1], gripper -1 open, +1 closed, as in
LIBERO and RoboCasa. Observation: `observation.state` = [eef x, y, z, axis-angle 3, gripper qpos 2]
(LIBERO's 8) and the cameras of robosuite_tasks.CAMERAS. Success is the task's `_check_success()`.

Starts: robosuite's own reset with the environment's generator seeded (robosuite_tasks.py).
The full state is the task, the step count, the gripper's accumulated command and MuJoCo's
integration state.

The scripted experts (Lift, Stack) read the live poses and choose their phase from them every
step, so they need no memory and continue correctly after `set_state`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import robosuite  # noqa: E402

from sim.remote import robosuite_tasks as rt  # noqa: E402
from sim.rotations import quat_to_axis_angle  # noqa: E402

log = logging.getLogger(__name__)
POS_GAIN = 1 / 0.05  # OSC maps an action of 1 to 5 cm
# MuJoCo's whole integration state (time, qpos, qvel, act, ctrl, warm start, ...): restoring less
# (robosuite's own flattened time/qpos/qvel) lets the next steps drift by 1e-4.
_PHYSICS = mujoco.mjtState.mjSTATE_INTEGRATION


class RobosuiteSim:
    def __init__(
        self,
        suite: str = "robosuite_standard",
        cameras: bool = True,
        image_size: int = 128,
        fast_render: bool = True,
        max_steps: int = 0,
    ):
        self.tasks = rt.suite_tasks(suite)
        self.cameras, self.image_size, self.fast_render = cameras, image_size, fast_render
        self.max_steps = max_steps
        self._envs: dict[int, Any] = {}  # robosuite's environments (no type information)
        self._official: dict[int, np.ndarray] = {}
        self.task: int | None = None
        self.raw: dict = {}
        self.steps = 0
        self.success = False
        self.spec = {
            "simulator": "robosuite",
            "suite": suite,
            "tasks": [[t.name, t.instruction] for t in self.tasks],
            "state_dim": len(rt.STATE_NAMES),
            "action_dim": len(rt.ACTION_NAMES),
            "action_low": [-1.0] * len(rt.ACTION_NAMES),
            "action_high": [1.0] * len(rt.ACTION_NAMES),
            "cameras": list(rt.CAMERAS) if cameras else [],
            "image_size": image_size,
            "max_steps": max_steps or max(t.max_steps for t in self.tasks),
            "task_max_steps": [max_steps or t.max_steps for t in self.tasks],
            "num_starts": rt.NUM_STARTS,
            "control_hz": rt.CONTROL_HZ,
            "versions": {"robosuite": robosuite.__version__, "mujoco": mujoco.__version__},
        }

    def _env(self, task: int):
        if not 0 <= task < len(self.tasks):
            raise ValueError(f"task {task} out of range: this suite has {len(self.tasks)} tasks")
        if task not in self._envs:
            env = robosuite.make(
                self.tasks[task].name,
                robots="Panda",
                has_renderer=False,
                has_offscreen_renderer=self.cameras,
                use_camera_obs=self.cameras,
                camera_names=list(rt.CAMERAS.values()),
                camera_heights=self.image_size,
                camera_widths=self.image_size,
                control_freq=rt.CONTROL_HZ,
                ignore_done=True,  # the client counts steps against the limit
                hard_reset=False,
                reward_shaping=False,
            )
            if self.cameras and self.fast_render:
                env.reset()  # the offscreen context exists from the first reset on
                _fast_render(env.sim)
            self._envs[task] = env
        return self._envs[task]

    def _limit(self, task: int) -> int:
        return self.max_steps or self.tasks[task].max_steps

    # -- episodes ----------------------------------------------------------------------------------
    def reset(self, task: int, start: int, seed: int, state: np.ndarray | None) -> dict:
        if state is not None:
            return self.set_state(state)
        if start >= 0:
            return self._start(task, rt.EVAL_SEED + start % rt.NUM_STARTS)
        official = self._official_objects(task)
        obs = self._start(task, seed + rt.SAMPLED_SEED_OFFSET)
        distance = np.abs(official - self._objects(task)).max(axis=1)
        return {**obs, "start_distance": float(distance.min()), "nearest_start": int(distance.argmin())}

    def _start(self, task: int, stream: int) -> dict:
        env = self._env(task)
        # The placement sampler and the arm's init noise draw from env.rng: seed it in place.
        env.rng.bit_generator.state = np.random.default_rng(stream).bit_generator.state
        self.raw = env.reset()
        for robot in env.robots:
            for arm in robot.arms:
                robot.gripper[arm].current_action = np.zeros_like(robot.gripper[arm].current_action)
        self.task, self.steps, self.success = task, 0, False
        return self.observation()

    def _objects(self, task: int) -> np.ndarray:
        """The qpos of every joint that is not the robot's: where the objects are."""
        m, d = self._envs[task].sim.model._model, self._envs[task].sim.data._data
        width = {0: 7, 1: 4, 2: 1, 3: 1}  # free, ball, slide, hinge joint: qpos entries
        index: list[int] = []
        for j in range(m.njnt):
            if not mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j).startswith(
                ("robot", "gripper", "mount")
            ):
                index.extend(range(m.jnt_qposadr[j], m.jnt_qposadr[j] + width[int(m.jnt_type[j])]))
        return np.array(d.qpos[index])

    def _official_objects(self, task: int) -> np.ndarray:
        """The object poses of the task's evaluation starts (computed once): how held out a sampled
        start is."""
        if task not in self._official:
            self._official[task] = np.stack(
                [(self._start(task, rt.EVAL_SEED + i), self._objects(task))[1] for i in range(rt.NUM_STARTS)]
            )
        return self._official[task]

    def step(self, action: np.ndarray) -> dict:
        task, env = self._current()
        if self.steps >= self._limit(task):
            raise ValueError(f"the episode is over: {self._limit(task)} steps taken")
        action = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (len(rt.ACTION_NAMES),):
            raise ValueError(f"a robosuite action has 7 dims (dpos 3, drot 3, gripper), got {action.shape}")
        # The arm controller turns a delta into a goal from the pose it last read: make it read the
        # current one, so that a state restored by set_state continues exactly as the original did
        # (nothing hidden in the controller). robosuite leaves the poses one physics step behind
        # qpos after a step: recompute them (forward) for the next read.
        for robot in env.robots:
            for part in robot.composite_controller.part_controllers.values():
                part.update(force=True)
        self.raw, _, _, _ = env.step(action)
        env.sim.forward()
        self.steps += 1
        self.success = bool(env._check_success())
        return self.observation()

    def _current(self) -> tuple[int, Any]:
        """The episode's task and its environment."""
        if self.task is None:
            raise ValueError("no episode: reset first")
        return self.task, self._envs[self.task]

    def robot_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(eef position, eef quaternion x, y, z, w, gripper qpos) read from the simulator itself:
        robosuite's observables cache values between steps, a restored state would not refresh."""
        _, env = self._current()
        robot, data = env.robots[0], env.sim.data
        site = robot.eef_site_id["right"]
        wxyz = np.empty(4)
        mujoco.mju_mat2Quat(wxyz, np.asarray(data.site_xmat[site], np.float64))
        grip = data.qpos[robot._ref_gripper_joint_pos_indexes["right"]]
        return np.array(data.site_xpos[site]), np.roll(wxyz, -1), np.array(grip)

    def observation(self) -> dict:
        task, _ = self._current()
        raw = self.raw
        pos, quat, grip = self.robot_pose()
        state = np.concatenate([pos, quat_to_axis_angle(quat), grip])
        obs = {
            "task": task,
            "step": self.steps,
            "success": self.success,
            "instruction": self.tasks[task].instruction,
            "observation.state": state.astype(np.float32),
        }
        for ours, theirs in rt.CAMERAS.items():
            if f"{theirs}_image" in raw:
                # OpenGL's rows run bottom-up: flip to the usual top-down image.
                obs[f"observation.images.{ours}"] = np.ascontiguousarray(raw[f"{theirs}_image"][::-1])
        return obs

    # -- state -------------------------------------------------------------------------------------
    def _grippers(self, env) -> list:
        return [robot.gripper[arm] for robot in env.robots for arm in robot.arms]

    def get_state(self) -> np.ndarray:
        task, env = self._current()
        grip = np.concatenate([g.current_action for g in self._grippers(env)])
        head = [float(task), float(self.steps), float(self.success), float(len(grip))]
        m, d = env.sim.model._model, env.sim.data._data
        physics = np.empty(mujoco.mj_stateSize(m, _PHYSICS))
        mujoco.mj_getState(m, d, physics, _PHYSICS)
        return np.concatenate([head, grip, physics])

    def set_state(self, state: np.ndarray) -> dict:
        state = np.asarray(state, np.float64)
        task, steps, success, k = int(state[0]), int(state[1]), bool(state[2]), int(state[3])
        env = self._env(task)
        if self.task != task:
            self.reset(task, 0, 0, None)  # the task's scene exists before its state is set
        grip, physics = state[4 : 4 + k], state[4 + k :]
        m, d = env.sim.model._model, env.sim.data._data
        if len(physics) != mujoco.mj_stateSize(m, _PHYSICS):
            raise ValueError(f"a state of another model: {len(state)} values for task {task}")
        mujoco.mj_setState(m, d, physics, _PHYSICS)
        env.sim.forward()
        at = 0
        for g in self._grippers(env):
            n = len(g.current_action)
            g.current_action = grip[at : at + n].copy()
            at += n
        self.task, self.steps, self.success = task, steps, success
        self.raw = env._get_observations(force_update=True)
        return self.observation()

    # -- scripted experts --------------------------------------------------------------------------
    def expert_action(self) -> np.ndarray:
        task, env = self._current()
        name = self.tasks[task].name
        eef = self.robot_pose()[0]
        if name == "Lift":
            return _pick_and_place(env, env.cube, env.sim.data.body_xpos[env.cube_body_id], None, eef)
        if name == "Stack":
            top = env.sim.data.body_xpos[env.cubeB_body_id] + [0, 0, 0.025 + 0.02 + 0.005]
            return _pick_and_place(env, env.cubeA, env.sim.data.body_xpos[env.cubeA_body_id], top, eef)
        raise ValueError(f"no scripted expert for {name} (experts: Lift, Stack)")

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _pick_and_place(env, obj, obj_pos: np.ndarray, place: np.ndarray | None, eef: np.ndarray) -> np.ndarray:
    """A stateless grasp-then-carry controller: above the object, down, close; once it holds the
    object, lift it (Lift) or carry it above `place`, lower it there and let go (Stack)."""
    obj_pos = np.asarray(obj_pos)
    gripper = env.robots[0].gripper["right"]
    held = env._check_grasp(gripper=gripper, object_geoms=obj)
    if not held:
        flat = np.linalg.norm((eef - obj_pos)[:2])
        if flat > 0.01:
            target, grip = obj_pos + [0, 0, 0.08], -1.0
        else:
            target = obj_pos + [0, 0, -0.005]
            grip = 1.0 if eef[2] - obj_pos[2] < 0.012 else -1.0
    elif place is None:
        target, grip = obj_pos + [0, 0, 0.15], 1.0
    else:
        above = place + [0, 0, 0.05]
        if np.linalg.norm((obj_pos - place)[:2]) > 0.008:
            target, grip = np.array([*above[:2], max(above[2], obj_pos[2] + 0.04)]) + (eef - obj_pos), 1.0
        else:
            target = place + (eef - obj_pos)
            grip = -1.0 if obj_pos[2] - place[2] < 0.008 else 1.0
    action = np.zeros(7)
    action[:3] = np.clip((target - eef) * POS_GAIN, -1, 1)
    action[6] = grip
    return action.astype(np.float32)


def _fast_render(sim) -> None:
    """No multisampling, shadows or reflections (~20x faster on a CPU renderer)."""
    ctx = sim._render_context_offscreen
    sim.model._model.vis.quality.offsamples = 0
    ctx.gl_ctx.make_current()
    ctx.con.free()
    ctx._set_mujoco_context_and_buffers()
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
