"""Held-out starts: is a sampled start state one of the task's official initial states?

Training data drawn by the placement sampler must not reproduce an evaluation state. Two states
are the same scene when every object's pose agrees; the robot's arm joints carry random noise in
both, so they are left out of the comparison. States are MuJoCo's flattened (time, qpos, qvel).
"""

from __future__ import annotations

import numpy as np

# Max |difference| of the objects' joint positions (m, quaternion units) under which two starts
# count as the same. Official libero_object states differ from each other by >= 2.5e-3.
SAME_START_TOL = 1e-4


def object_qpos_indices(sim) -> np.ndarray:
    """Indices, into a flattened state, of the qpos of every joint that is not the robot's."""
    model = sim.model
    width = {0: 7, 1: 4, 2: 1, 3: 1}  # free, ball, slide, hinge joint: qpos entries
    indices: list[int] = []
    for j in range(model.njnt):
        if model.joint_id2name(j).startswith(("robot", "gripper", "mount")):
            continue
        start = 1 + int(model.jnt_qposadr[j])  # entry 0 of a flattened state is the time
        indices.extend(range(start, start + width[int(model.jnt_type[j])]))
    return np.asarray(indices, dtype=np.int64)


def nearest_official(start: np.ndarray, official: np.ndarray, indices: np.ndarray) -> tuple[int, float]:
    """The official state [n, state_dim] closest to `start` on the object poses, and the max
    |difference| to it."""
    start, official = np.asarray(start), np.asarray(official)
    if official.ndim != 2 or official.shape[1] != start.shape[0]:
        raise ValueError(f"states of another model: start {start.shape}, official {official.shape}")
    distance = np.abs(official[:, indices] - start[indices]).max(axis=1)
    k = int(distance.argmin())
    return k, float(distance[k])


def held_out_check(distances: dict[int, float], tol: float = SAME_START_TOL) -> dict:
    """From each sampled start's distance to its nearest official state (by episode index): how
    many starts equal an official one within `tol` (0 for a held-out collection), which (the first
    ten), and the smallest distance seen."""
    same = sorted(e for e, d in distances.items() if d <= tol)
    return {
        "starts": len(distances),
        "same_as_official": len(same),
        "same_episodes": same[:10],
        "min_distance": min(distances.values()) if distances else None,
        "tolerance": tol,
    }
