"""What every scripted expert shares: the noise model and a Cartesian P-controller that turns a
target gripper position into the 7-dim delta action a policy produces.

An expert is a policy (`reset()`, `select_action(obs)`) that also reads the simulator's object
poses through the `LiberoEnv` it is given. Its plan is a list of phases; each phase computes its
target from the live poses every step, so a nudged object is still reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.experts.geometry import rotation_error

# The OSC controller maps an action of 1 to 5 cm of translation and 0.5 rad of rotation.
POS_SCALE = 0.05
ROT_SCALE = 0.5
OPEN, CLOSE = -1.0, 1.0


@dataclass(frozen=True)
class ExpertNoise:
    """How demonstrations vary, and how often they fail.

    action_std: Gaussian noise on the six motion dims of every action (in action units).
    waypoint_jitter: metres; uniform offsets of the grasp and place points, drawn per episode.
    speed_range: the expert's top speed (fraction of the action range), drawn per episode.
    mistake_prob: chance per episode of a deliberate mistake (the object is let go right after the lift),
        so that a known share of episodes fail.
    """

    action_std: float = 0.0
    waypoint_jitter: float = 0.0
    speed_range: tuple[float, float] = (1.0, 1.0)
    mistake_prob: float = 0.0

    def validate(self) -> None:
        lo, hi = self.speed_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"speed_range must satisfy 0 < lo <= hi <= 1, got {self.speed_range}")
        if self.action_std < 0 or self.waypoint_jitter < 0 or not 0 <= self.mistake_prob <= 1:
            raise ValueError("action_std and waypoint_jitter must be >= 0 and mistake_prob in [0, 1]")


class Phase:
    """One step of a plan: a target position and gripper command, and when it is done."""

    def __init__(self, name, target, gripper, tolerance=0.01, hold=0, timeout=80, speed=1.0):
        self.name = name
        self.speed = speed  # top speed of this phase, a fraction of the episode's
        self.target = target  # () -> position, evaluated every step
        self.gripper = gripper
        self.tolerance = tolerance
        self.hold = hold  # steps to stay once reached (gripper closing or opening)
        self.timeout = timeout


class ScriptedExpert:
    """Runs a plan of phases with P-control; subclasses build the plan in `plan()`."""

    def __init__(self, env, noise: ExpertNoise | None = None, seed: int = 0):
        self.env = env
        self.noise = noise or ExpertNoise()
        self.noise.validate()
        self.rng = np.random.default_rng(seed)

    @property
    def sim(self):
        return self.env.sim

    def reset(self) -> None:
        """Plan from the current state (call after the env's reset)."""
        self.speed = float(self.rng.uniform(*self.noise.speed_range))
        self.target_quat = self.env.eef_quat  # subclasses may turn the gripper in plan()
        self.phases: list[Phase] = self.plan()
        self.index, self.steps_in_phase, self.held = 0, 0, 0
        self.hold_position = self.env.eef_position

    def jitter(self, dims: int = 3) -> np.ndarray:
        return self.rng.uniform(-1, 1, dims) * self.noise.waypoint_jitter

    def plan(self) -> list[Phase]:
        raise NotImplementedError

    @property
    def phase_name(self) -> str:
        return self.phases[self.index].name if self.index < len(self.phases) else "done"

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        pos = self.env.eef_position
        speed = self.speed
        if self.index >= len(self.phases):
            target, gripper = self.hold_position, self.phases[-1].gripper if self.phases else OPEN
        else:
            phase = self.phases[self.index]
            target, gripper = np.asarray(phase.target(), dtype=np.float64), phase.gripper
            speed *= phase.speed
            self.steps_in_phase += 1
            reached = np.linalg.norm(target - pos) < phase.tolerance
            if reached:
                self.held += 1
            if (reached and self.held > phase.hold) or self.steps_in_phase > phase.timeout:
                self.index, self.steps_in_phase, self.held = self.index + 1, 0, 0
                self.hold_position = pos.copy()
        action = np.zeros(7)
        action[:3] = (target - pos) / POS_SCALE
        action[3:6] = rotation_error(self.target_quat, self.env.eef_quat) / ROT_SCALE
        action[:6] = np.clip(action[:6], -speed, speed)
        if self.noise.action_std > 0:
            action[:6] += self.rng.normal(0, self.noise.action_std, 6)
        action[:6] = np.clip(action[:6], -1, 1)
        action[6] = gripper
        return action.astype(np.float32)
