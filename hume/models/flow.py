"""Flow-matching math, free of networks and I/O.

Convention (as in pi0/Hume): t = 1 is pure noise, t = 0 is data.
    x_t = t * eps + (1 - t) * a          (noisy interpolation)
    u   = eps - a                        (velocity target, d x_t / d t)
Sampling integrates dx/dt = v(x, t) from t0 down to t1 with Euler steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]  # (x_t [B, ...], t [B]) -> v [B, ...]


def sample_time(
    batch: int,
    *,
    alpha: float = 1.5,
    beta: float = 1.0,
    t_min: float = 0.001,
    t_max: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """t ~ Beta(alpha, beta) scaled to [t_min, t_max]: more weight near noise, as in pi0/Hume."""
    # Beta via two Gamma draws so that a torch.Generator controls it (Distribution.sample cannot).
    ga = torch._standard_gamma(torch.full((batch,), alpha, device=device), generator=generator)
    gb = torch._standard_gamma(torch.full((batch,), beta, device=device), generator=generator)
    b = ga / (ga + gb)
    return t_min + (t_max - t_min) * b


def _bcast(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(t.shape + (1,) * (like.dim() - t.dim()))


def interpolate(actions: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = t * noise + (1 - t) * actions, t of shape [B] broadcast over the rest."""
    tt = _bcast(t, actions)
    return tt * noise + (1.0 - tt) * actions


def velocity_target(actions: Tensor, noise: Tensor) -> Tensor:
    """u = noise - actions: the constant velocity of the straight path from data to noise."""
    return noise - actions


def flow_matching_loss(
    pred_velocity: Tensor, actions: Tensor, noise: Tensor, mask: Tensor | None = None
) -> Tensor:
    """Mean squared error to the velocity target; `mask` [B, H] drops padded steps."""
    err = (pred_velocity - velocity_target(actions, noise)).pow(2)
    if mask is None:
        return err.mean()
    m = _bcast(mask.to(err.dtype), err)
    return (err * m).sum() / (m.sum() * err.shape[-1]).clamp_min(1.0)


def euler_integrate(
    velocity: Velocity,
    x: Tensor,
    t0: float | Tensor,
    t1: float | Tensor,
    num_steps: int,
    temperature: float | Tensor = 1.0,
) -> Tensor:
    """Integrate dx/dt = temperature * v(x, t) from t0 to t1 in num_steps equal Euler steps.

    t0/t1 may be per-sample tensors [B] so that candidates with different start times run in one
    batch; every sample takes the same number of steps, each of its own size.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    b = x.shape[0]
    t0 = torch.as_tensor(t0, dtype=x.dtype, device=x.device).expand(b)
    t1 = torch.as_tensor(t1, dtype=x.dtype, device=x.device).expand(b)
    steps = torch.full((b,), num_steps, dtype=torch.long, device=x.device)
    return euler_integrate_steps(velocity, x, t0, (t1 - t0) / num_steps, steps, temperature)


def euler_integrate_steps(
    velocity: Velocity, x: Tensor, t0: Tensor, dt: Tensor, steps: Tensor, temperature: float | Tensor = 1.0
) -> Tensor:
    """Euler steps x += dt * temperature * v(x, t), t += dt, sample b taking steps[b] of them.

    t0, dt, steps are per-sample [B]: candidates with their own start, step size and step count run in
    one batch (a sample that has taken all its steps stays where it is while the others go on).
    """
    b = x.shape[0]
    t = t0.to(x.dtype).expand(b).clone()
    dt = dt.to(x.dtype).expand(b)
    temp = _bcast(torch.as_tensor(temperature, dtype=x.dtype, device=x.device).expand(b), x)
    for i in range(int(steps.max())):
        active = (steps > i).to(x.dtype)
        x = x + _bcast(dt * active, x) * temp * velocity(x, t)
        t = t + dt * active
    return x


def fixed_step_counts(t0: Tensor, dt: float, stop: float) -> Tensor:
    """How many steps of size dt (< 0) a sample starting at t0 takes in the loop
    `while t >= stop - dt / 2: step; t += dt`, counted in float32 as that loop runs (the authors'
    sampler: a start of 0.9 takes 9 steps of 0.1, a start of 0.98 takes 10 and ends at -0.02)."""
    if dt >= 0:
        raise ValueError(f"dt must be negative (denoising runs from t = 1 towards 0), got {dt}")
    t = t0.to(torch.float32).clone()
    dt32 = torch.tensor(dt, dtype=torch.float32)
    threshold = -dt32 / 2 + stop
    steps = torch.zeros(t.shape, dtype=torch.long)
    while bool((t >= threshold).any()):
        going = t >= threshold
        steps += going.long()
        t = torch.where(going, t + dt32, t)
    return steps


def sinusoidal_embedding(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """[B] -> [B, dim] sine/cosine features of t at log-spaced periods (pi0's time embedding)."""
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    frac = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=t.device)
    period = min_period * (max_period / min_period) ** frac
    angle = (2 * math.pi / period)[None, :] * t.to(torch.float64)[:, None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1).to(
        t.dtype if t.is_floating_point() else torch.float32
    )


def prefix_weights(horizon: int, delay: int, overlap: int) -> Tensor:
    """Real-time chunking's guidance weights [horizon] (Black et al. 2025, "Real-Time Execution of
    Action Chunking Flow Policies", eq. 5): 1 on the first `delay` steps (executed before the chunk
    can land, so frozen), decaying exponentially over the rest of the `overlap` steps that are already
    committed (the chunk should continue them, but may depart), 0 beyond."""
    if horizon < 1 or delay < 0 or overlap < 0:
        raise ValueError(f"bad prefix: horizon {horizon}, delay {delay}, overlap {overlap}")
    overlap = min(overlap, horizon)
    delay = min(delay, overlap)
    i = torch.arange(horizon, dtype=torch.float64)
    c = (overlap - i) / (overlap - delay + 1)
    soft = c * torch.expm1(c) / math.expm1(1.0)
    w = torch.where(i < delay, 1.0, torch.where(i < overlap, soft, 0.0))
    return w.float()


@dataclass(frozen=True)
class Guide:
    """What a guided sample should agree with: target actions and weights [B, H, A] (0 = free)."""

    target: Tensor
    weights: Tensor
    max_guidance: float = 5.0


def guided_velocity(velocity: Velocity, target: Tensor, weights: Tensor, max_guidance: float) -> Velocity:
    """The velocity field steered so the sample's predicted clean actions agree with `target` where
    `weights` (broadcast to x) are > 0: pseudo-inverse guidance as real-time chunking uses it. In
    this file's convention (t = 1 noise), the clean estimate is a = x - t v and

        v' = v - min(max_guidance, ((1 - t)^2 + t^2) / (t (1 - t))) * J^T (W * (target - a)),

    J = da/dx, one vector-Jacobian product per call (so a guided step costs a backward pass too).
    Near t = 1 and t = 0 the gain is capped at max_guidance (the paper's beta)."""

    def guided(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            v = velocity(x_in, t)
            clean = x_in - _bcast(t, x_in) * v
            (pull,) = torch.autograd.grad(clean, x_in, (target - clean.detach()) * weights)
        tt = t.to(torch.float64)
        gain = ((1 - tt) ** 2 + tt**2) / (tt * (1 - tt)).clamp_min(1e-12)
        gain = gain.clamp(max=max_guidance).to(x.dtype)
        return v.detach() - _bcast(gain, x) * pull

    return guided
