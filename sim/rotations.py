"""Rotation conversions on numpy alone: imported by simulators in their own environments too."""

from __future__ import annotations

import numpy as np


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w), as robosuite stores it, -> axis * angle (3,)."""
    x, y, z, w = (float(v) for v in quat)
    w = min(max(w, -1.0), 1.0)
    sin_half = np.sqrt(max(1.0 - w * w, 0.0))
    if sin_half < 1e-8:
        return np.zeros(3)
    angle = 2.0 * np.arccos(w)
    return np.array([x, y, z]) / sin_half * angle
