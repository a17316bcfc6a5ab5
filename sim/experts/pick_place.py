"""Pick an object and place it on or in a target: the expert of libero_object, libero_spatial and
the pick-and-place tasks of libero_goal (BDDL goals `(On obj target)` / `(In obj target_region)`)."""

from __future__ import annotations

import numpy as np

from sim.experts.base import CLOSE, OPEN, ExpertNoise, Phase, ScriptedExpert
from sim.experts.geometry import (
    body_aabb,
    body_corners,
    body_geoms,
    finger_axis,
    narrowest_direction,
    quat_multiply,
    yaw_quat,
)

# The fingers open to ~8 cm: wider objects (bowls, plates) are grasped by their rim.
MAX_CENTERED_WIDTH = 0.07
RIM_NEIGHBOURHOOD = 0.03
HOVER = 0.08  # above the object before descending onto it
CARRY_CLEARANCE = 0.06  # the carried object's bottom above the target's top
PLACE_HEIGHT = 0.01  # the object's bottom above the target's top when it is let go
CARRYING = ("lift", "transport", "lower")
LOST_DISTANCE = 0.04  # the object moved this far in the hand: it slipped out
MAX_RETRIES = 1
RIM_CARRY_SPEED = 0.6
# The hand seen from above: a 22 x 9 cm rectangle, long along the finger axis.
HAND_HALF_LENGTH = 0.11
HAND_HALF_WIDTH = 0.045
TURN_STEP = np.pi / 12
ENOUGH_CLEARANCE = 0.03  # beyond this, a grasp needing less turning is preferred
TILTED = 0.08  # rad (~5°): an object leaning more than this rests tilted (a bowl on a ramekin)
TILT_WEIGHT = 2.0  # score per metre of rim height above the lowest grasp


class PickPlaceExpert(ScriptedExpert):
    grasp_offset: np.ndarray | None  # set by plan()

    def __init__(self, env, obj: str, target: str, noise: ExpertNoise | None = None, seed: int = 0):
        super().__init__(env, noise, seed)
        self.bodies = env.scene_bodies()
        self.obj_body = _root_body(self.bodies, obj)
        self.target_site = target if target in _site_names(env.sim) else None
        owner = _owner(self.bodies, target)
        if owner is None and self.target_site is None:
            raise ValueError(f"{target!r} is neither an object, a fixture nor a region of this scene")
        # A region of the table (the arena, no body of its own) is only its site.
        self.target_body = _root_body(self.bodies, owner) if owner is not None else None

    def obj_box(self):
        return body_aabb(self.sim, self.obj_body)

    def target_box(self):
        if self.target_body is None:
            site = self.sim.data.site_xpos[self.sim.model.site_name2id(self.target_site)]
            return site.copy(), site.copy()
        return body_aabb(self.sim, self.target_body)

    def grasp_point(self) -> np.ndarray:
        """Where the gripper closes, from the object's live pose and the chosen grasp."""
        corners, centers = self.obj_shape()
        return _grasp_point(corners, centers, self.finger_axis, self.rim_side) + self.grasp_jitter

    def obj_shape(self) -> tuple[np.ndarray, np.ndarray]:
        """The object's geom box corners and geom centres, in the world."""
        centers = self.sim.data.geom_xpos[body_geoms(self.sim, self.obj_body)]
        return body_corners(self.sim, self.obj_body), centers

    def place_center(self) -> np.ndarray:
        """Where the object's centre goes (xy) and the target's top (z)."""
        lo, hi = self.target_box()
        center = (lo + hi) / 2
        if self.target_site is not None:
            center[:2] = self.sim.data.site_xpos[self.sim.model.site_name2id(self.target_site)][:2]
        center[2] = hi[2]
        return center + self.place_jitter

    def choose_grasp(self) -> None:
        """Pick the gripper's turn about the vertical (and, for a rim grasp, the side) that keeps
        the hand clearest of the other objects while the fingers fit around the object: boxes
        and bottles are grasped across a side narrower than the fingers open, wide round things
        (bowls, plates) by their rim."""
        start_axis = finger_axis(self.sim)
        corners, centers = self.obj_shape()
        _, narrowest, _ = narrowest_direction(corners)
        centered = narrowest <= MAX_CENTERED_WIDTH
        obstacles = self.obstacle_points(corners[:, 2].max() - 0.03)
        turns = np.arange(-np.pi / 2, np.pi / 2, TURN_STEP)
        fitting = [
            t
            for t in turns
            if not centered or np.ptp(corners[:, :2] @ _rotate(start_axis, t)) <= MAX_CENTERED_WIDTH
        ]
        candidates = []
        # An object lying askew (dropped, then re-grasped) may fit between the fingers at no turn
        # of the coarse grid: then every turn competes on clearance alone.
        for turn in fitting or turns:
            axis = _rotate(start_axis, turn)
            for side in (0.0,) if centered else (1.0, -1.0):
                point = _grasp_point(corners, centers, axis, side)
                clearance = _hand_clearance(point, axis, obstacles)
                candidates.append(
                    (min(clearance, ENOUGH_CLEARANCE) - 0.01 * abs(turn), point[2], turn, axis, side)
                )
        heights = np.array([c[1] for c in candidates])
        if not centered and self.retries == 0 and self.obj_tilt() > TILTED:
            # A bowl resting tilted (on a ramekin) is held best by its low side: it then hangs
            # and lands closer to level. (Not for a re-grasp: a dropped plate or bowl lying
            # askew is better taken as on the first try.)
            candidates = [(c[0] - TILT_WEIGHT * (c[1] - heights.min()), *c[1:]) for c in candidates]
        _, _, turn, self.finger_axis, self.rim_side = max(candidates, key=lambda c: c[0])
        self.target_quat = quat_multiply(yaw_quat(turn), self.target_quat)

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        if self.phase_name in CARRYING:
            offset = self.env.eef_position - _bottom_center(*self.obj_box())
            if self.grasp_offset is None:
                self.grasp_offset = offset
            # While lowering, contact with the target shifts the object in the hand: not a slip.
            elif (
                self.phase_name != "lower"
                and np.linalg.norm(offset - self.grasp_offset) > LOST_DISTANCE
                and self.retries < MAX_RETRIES
            ):
                # The object slipped out of the fingers: open, back off and start over.
                self.retries += 1
                self.phases = [
                    Phase("recover", lambda: self.hold_position + [0, 0, HOVER], OPEN, 0.02, timeout=20)
                ]
                self.phases += self.plan()
                self.index, self.steps_in_phase, self.held = 0, 0, 0
                self.hold_position = self.env.eef_position
        return super().select_action(obs)

    def reset(self) -> None:
        self.retries = 0
        super().reset()

    def obj_tilt(self) -> float:
        """Angle (rad) between the object's vertical axis and the world's."""
        xmat = self.sim.data.body_xmat[self.sim.model.body_name2id(self.obj_body)].reshape(3, 3)
        return float(np.arccos(np.clip(xmat[2, 2], -1.0, 1.0)))

    def obstacle_points(self, above: float) -> np.ndarray:
        """Points (xy) on the footprints of every other object and fixture rising above `above`."""
        points = [np.zeros((0, 2))]
        for body in self.bodies.values():
            if body == self.obj_body:
                continue
            lo, hi = body_aabb(self.sim, body)
            if hi[2] > above:
                xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], 6), np.linspace(lo[1], hi[1], 6))
                points.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        return np.concatenate(points)

    def plan(self) -> list[Phase]:
        self.choose_grasp()
        self.grasp_jitter = self.jitter() * np.array([1, 1, 0.3])
        self.place_jitter = self.jitter() * np.array([1, 1, 0])
        mistake = self.rng.random() < self.noise.mistake_prob

        def above_grasp():
            return self.grasp_point() + [0, 0, HOVER]

        # Once grasped, targets are set for the object and read back through its live pose, so a
        # grasp that slipped or tilted the object still carries and places it where it belongs.
        start_bottom = self.obj_box()[0][2]

        self.grasp_offset = None  # eef minus the object's bottom centre, once lifted

        def move_object(xy: np.ndarray | None, bottom_z: float) -> np.ndarray:
            """The gripper position that puts the held object's bottom centre at (xy, bottom_z)."""
            lo, hi = self.obj_box()
            eef = self.env.eef_position
            now = _bottom_center(lo, hi)
            goal = np.r_[now[:2] if xy is None else xy, bottom_z]
            return eef + goal - now

        def carry_bottom():
            # Clear of the target and of what the object stood on.
            return max(self.target_box()[1][2], start_bottom) + CARRY_CLEARANCE

        def lift():
            return move_object(None, carry_bottom())

        def over_target():
            return move_object(self.place_center()[:2], carry_bottom())

        def lower():
            return move_object(self.place_center()[:2], self.place_center()[2] + PLACE_HEIGHT)

        # A rim grasp holds a thin wall: carried fast, the object swings out of the fingers.
        carry_speed = RIM_CARRY_SPEED if self.rim_side else 1.0

        def stay():
            return self.hold_position

        phases = [
            Phase("approach", above_grasp, OPEN, tolerance=0.015),
            Phase("descend", self.grasp_point, OPEN, tolerance=0.008, timeout=60),
            Phase("grasp", stay, CLOSE, tolerance=1.0, hold=12),
            Phase("lift", lift, CLOSE, tolerance=0.02, speed=carry_speed),
            Phase("transport", over_target, CLOSE, tolerance=0.025, timeout=100, speed=carry_speed),
            Phase("lower", lower, CLOSE, tolerance=0.01, timeout=30),
            Phase("release", stay, OPEN, tolerance=1.0, hold=10),
            Phase("retreat", lambda: self.hold_position + [0, 0, 0.08], OPEN, tolerance=0.02, timeout=30),
        ]
        if mistake:
            # Let go just after the lift: the object drops back near where it stood.
            transport = phases.index(next(p for p in phases if p.name == "transport"))
            phases[transport].timeout = 3
            phases.insert(transport + 1, Phase("drop", stay, OPEN, tolerance=1.0, hold=10))
        return phases


def _bottom_center(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.r_[(lo[:2] + hi[:2]) / 2, lo[2]]


def _rotate(axis: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * axis[0] - s * axis[1], s * axis[0] + c * axis[1]])


def _grasp_point(corners: np.ndarray, centers: np.ndarray, axis: np.ndarray, rim_side: float) -> np.ndarray:
    """Centred between the fingers (rim_side 0), or on the rim on one side along the finger axis.

    The rim's radius comes from the geoms' centres (a round object is modelled as a ring of small
    boxes): their bounding corners would overestimate it, and more so the more the gripper turns."""
    lo, hi = corners.min(0), corners.max(0)
    point = (lo + hi) / 2
    if rim_side:
        radius = float(np.linalg.norm(centers[:, :2] - point[:2], axis=1).max())
        point[:2] += rim_side * axis * radius
        # The rim's own height there: a bowl resting tilted is lower on one side.
        near = np.linalg.norm(corners[:, :2] - point[:2], axis=1) < RIM_NEIGHBOURHOOD
        rim_top = corners[near, 2].max() if near.any() else hi[2]
        # A flat rim (a plate) is pinched just above the table the fingertips cannot go below.
        point[2] = max(rim_top - 0.02, lo[2] + 0.015)
    else:
        point[2] = max(hi[2] - 0.03, lo[2] + 0.015)
    return point


def _hand_clearance(point: np.ndarray, axis: np.ndarray, obstacles: np.ndarray) -> float:
    """Distance from the hand's footprint at `point` to the nearest obstacle point (< 0: overlap)."""
    if len(obstacles) == 0:
        return np.inf
    d = obstacles - point[:2]
    along = np.abs(d @ axis) - HAND_HALF_LENGTH
    across = np.abs(d @ np.array([-axis[1], axis[0]])) - HAND_HALF_WIDTH
    return float(np.max(np.stack([along, across]), axis=0).min())


def _site_names(sim) -> set[str]:
    return {sim.model.site_id2name(i) for i in range(sim.model.nsite)}


def _owner(bodies: dict[str, str], region: str) -> str | None:
    """The object or fixture a BDDL region belongs to ('basket_1_contain_region' -> 'basket_1'),
    None for a region of the table."""
    owners = [n for n in bodies if region == n or region.startswith(n + "_")]
    return max(owners, key=len) if owners else None


def _root_body(bodies: dict[str, str], name: str) -> str:
    if name not in bodies:
        raise ValueError(f"{name!r} is not an object or fixture of this scene")
    return bodies[name]
