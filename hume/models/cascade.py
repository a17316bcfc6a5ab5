"""Cascaded denoising: System 1 continues System 2's flow instead of starting from noise.

System 2 denoises a chunk from t = 1 to some t; the slice covering the next h steps is taken as a
sample at time theta1 and integrated from theta1 to 0 by System 1's velocity, which is conditioned
on the *current* observation. Pure math over a velocity callable; no network here.
"""

from __future__ import annotations

from torch import Tensor

from hume.models.flow import Velocity, euler_integrate


def cascaded_denoise(velocity: Velocity, start: Tensor, theta1: float, num_steps: int) -> Tensor:
    """Euler-integrate dx/dt = velocity(x, t) from x(theta1) = start down to t = 0."""
    if not 0.0 < theta1 <= 1.0:
        raise ValueError(f"theta1 must be in (0, 1], got {theta1}")
    return euler_integrate(velocity, start, theta1, 0.0, num_steps)
