"""Pick an object and place it on or in a target: the expert of libero_object, libero_spatial and
the pick-and-place tasks of libero_goal (BDDL goals `(On obj target)` / `(In obj target_region)`)."""

from __future__ import annotations

import numpy as np

from sim.experts.base import CLOSE, OPEN, ExpertNoise, Phase, ScriptedExpert
from sim.experts.geometry import (
    body_aabb,
    body_corners,
    finger_axis,
    narrowest_direction,
    quat_multiply,
    yaw_quat,
)

# The fingers open to ~8 cm: wider objects (bowls, plates) are grasped by their rim.
MAX_CENTERED_WIDTH = 0.07
RIM_INSET = 0.02
HOVER = 0.08  # above the object before descending onto it
CARRY_CLEARANCE = 0.06  # the carried object's bottom above the target's top
ELONGATED = 0.8  # narrow/wide footprint ratio under which the gripper turns to grasp across


class PickPlaceExpert(ScriptedExpert):
    def __init__(self, env, obj: str, target: str, noise: ExpertNoise | None = None, seed: int = 0):
        super().__init__(env, noise, seed)
        self.obj_body = _root_body(env, obj)
        self.target_name = target
        self.target_body = _root_body(env, _owner(env, target))
        self.target_site = target if target in _site_names(env.sim) else None

    def obj_box(self):
        return body_aabb(self.sim, self.obj_body)

    def target_box(self):
        return body_aabb(self.sim, self.target_body)

    def grasp_point(self) -> np.ndarray:
        corners = body_corners(self.sim, self.obj_body)
        lo, hi = corners.min(0), corners.max(0)
        axis = self.finger_axis
        width = float(np.ptp(corners[:, :2] @ axis))
        point = (lo + hi) / 2
        if width > MAX_CENTERED_WIDTH:
            point[:2] += self.rim_side * axis * (width / 2 - RIM_INSET)
            point[2] = hi[2] - 0.02
        else:
            point[2] = max(hi[2] - 0.03, lo[2] + 0.015)
        return point + self.grasp_jitter

    def place_center(self) -> np.ndarray:
        """Where the object's centre goes (xy) and the target's top (z)."""
        lo, hi = self.target_box()
        center = (lo + hi) / 2
        if self.target_site is not None:
            center[:2] = self.sim.data.site_xpos[self.sim.model.site_name2id(self.target_site)][:2]
        center[2] = hi[2]
        return center + self.place_jitter

    def turn_to_grasp(self) -> None:
        """Turn the gripper (about the vertical) so that its fingers close across an elongated
        object's narrow side; round or wide objects are grasped as the gripper stands."""
        self.finger_axis = finger_axis(self.sim)
        narrow, width, widest = narrowest_direction(body_corners(self.sim, self.obj_body))
        if width > MAX_CENTERED_WIDTH or width > ELONGATED * widest:
            return
        current = np.arctan2(self.finger_axis[1], self.finger_axis[0])
        # The fingers are symmetric: turn by at most a quarter turn either way.
        turn = (np.arctan2(narrow[1], narrow[0]) - current + np.pi / 2) % np.pi - np.pi / 2
        self.target_quat = quat_multiply(yaw_quat(turn), self.target_quat)
        self.finger_axis = np.array([np.cos(current + turn), np.sin(current + turn)])

    def plan(self) -> list[Phase]:
        self.turn_to_grasp()
        self.rim_side = 1.0 if self.rng.random() < 0.5 else -1.0
        self.grasp_jitter = self.jitter() * np.array([1, 1, 0.3])
        self.place_jitter = self.jitter() * np.array([1, 1, 0])
        self.grasp_offset = np.zeros(3)  # eef minus object bottom-centre, measured at the grasp
        mistake = self.rng.random() < self.noise.mistake_prob

        def above_grasp():
            return self.grasp_point() + [0, 0, HOVER]

        def carry_height():
            obj_height = self.grasp_offset[2]
            return self.target_box()[1][2] + obj_height + CARRY_CLEARANCE

        def lift():
            return np.r_[self.hold_position[:2], carry_height()]

        def over_target():
            return np.r_[self.place_center()[:2] + self.grasp_offset[:2], carry_height()]

        def lower():
            return np.r_[over_target()[:2], self.place_center()[2] + self.grasp_offset[2] + 0.01]

        def stay():
            return self.hold_position

        phases = [
            Phase("approach", above_grasp, OPEN, tolerance=0.015),
            Phase("descend", self.grasp_point, OPEN, tolerance=0.008, timeout=60),
            Phase("grasp", stay, CLOSE, tolerance=1.0, hold=12),
            Phase("lift", lift, CLOSE, tolerance=0.02),
            Phase("transport", over_target, CLOSE, tolerance=0.015, timeout=100),
            Phase("lower", lower, CLOSE, tolerance=0.01, timeout=40),
            Phase("release", stay, OPEN, tolerance=1.0, hold=10),
            Phase("retreat", lambda: self.hold_position + [0, 0, 0.08], OPEN, tolerance=0.02, timeout=30),
        ]
        if mistake:
            # Let go halfway to the target: the object drops beside it.
            transport = phases.index(next(p for p in phases if p.name == "transport"))
            phases[transport].timeout = 12
            phases.insert(transport + 1, Phase("drop", stay, OPEN, tolerance=1.0, hold=10))
        return phases

    def on_step(self, phase: Phase) -> None:
        if phase.name == "grasp":
            lo, hi = self.obj_box()
            bottom_center = np.r_[(lo[:2] + hi[:2]) / 2, lo[2]]
            self.grasp_offset = self.raw("robot0_eef_pos") - bottom_center


def _site_names(sim) -> set[str]:
    return {sim.model.site_id2name(i) for i in range(sim.model.nsite)}


def _owner(env, region: str) -> str:
    """The object or fixture a BDDL region belongs to ('basket_1_contain_region' -> 'basket_1')."""
    names = list(env.env.env.objects_dict) + list(env.env.env.fixtures_dict)
    owners = [n for n in names if region == n or region.startswith(n + "_")]
    if not owners:
        raise ValueError(f"no object or fixture owns {region!r}; scene has {names}")
    return max(owners, key=len)


def _root_body(env, name: str) -> str:
    scene = env.env.env
    thing = scene.objects_dict.get(name) or scene.fixtures_dict.get(name)
    if thing is None:
        raise ValueError(f"{name!r} is not an object or fixture of this scene")
    return thing.root_body
