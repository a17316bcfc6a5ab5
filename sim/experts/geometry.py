"""Poses the scripted experts read from the MuJoCo sim: object boxes, gripper axis, orientation error."""

from __future__ import annotations

import numpy as np

_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


def body_geoms(sim, body_name: str) -> np.ndarray:
    """Ids of the geoms of a body and of the bodies attached below it."""
    model = sim.model
    body = model.body_name2id(body_name)
    # Bodies below `body` in the tree: their chain of parents reaches it.
    members = {body}
    for b in range(body + 1, model.nbody):
        if model.body_parentid[b] in members:
            members.add(b)
    return np.flatnonzero(np.isin(model.geom_bodyid, list(members)))


def body_corners(sim, body_name: str) -> np.ndarray:
    """World corners `[8 * geoms, 3]` of the boxes around every geom of a body and the bodies
    attached to it."""
    model, data = sim.model, sim.data
    corners = []
    for g in body_geoms(sim, body_name):
        center, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        corners.append(data.geom_xpos[g] + (center + _CORNERS * half) @ data.geom_xmat[g].reshape(3, 3).T)
    if not corners:
        raise ValueError(f"body {body_name!r} has no geoms")
    return np.concatenate(corners)


def body_aabb(sim, body_name: str) -> tuple[np.ndarray, np.ndarray]:
    """World axis-aligned box (lo, hi) of a body and the bodies attached to it."""
    corners = body_corners(sim, body_name)
    return corners.min(0), corners.max(0)


def narrowest_direction(corners: np.ndarray, steps: int = 36) -> tuple[np.ndarray, float, float]:
    """The horizontal direction across which an object is narrowest: (unit xy, its width, the
    widest width), searched over `steps` directions of a half turn."""
    angles = np.arange(steps) * np.pi / steps
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    widths = np.ptp(corners[:, :2] @ dirs.T, axis=0)
    best = int(np.argmin(widths))
    return dirs[best], float(widths[best]), float(widths.max())


def finger_axis(sim) -> np.ndarray:
    """Unit vector (world xy) along which the gripper's fingers close."""
    left = sim.data.body_xpos[sim.model.body_name2id("gripper0_leftfinger")]
    right = sim.data.body_xpos[sim.model.body_name2id("gripper0_rightfinger")]
    axis = (left - right)[:2]
    return axis / max(np.linalg.norm(axis), 1e-9)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle (world frame) rotating `current` onto `target`, both (x, y, z, w) quaternions."""
    q = quat_multiply(target, quat_conjugate(current))
    if q[3] < 0:  # the short way round
        q = -q
    sin_half = np.linalg.norm(q[:3])
    if sin_half < 1e-9:
        return np.zeros(3)
    return q[:3] / sin_half * 2.0 * np.arctan2(sin_half, q[3])


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])
