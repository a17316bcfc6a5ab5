"""The action envelope: the last thing between System 1 and the robot adapter.

An action is `[arm dims..., gripper]` (LIBERO: eef delta position 3, delta axis-angle 3, gripper).
The envelope holds, per arm dim, bounds [low, high] and a rate limit max_delta (the most an arm
dim may change from one control tick to the next), and the gripper's range. Every action System 1
sends passes `Envelope.apply`:

- a non-finite action (or one of the wrong size) is never sent: the robot holds instead;
- an arm dim or the gripper outside its bounds is clamped to them, or, with `on_violation: hold`,
  the robot holds for that tick;
- then each arm dim moves at most max_delta from the action sent the tick before (the rate limit
  ramps rather than holds, in both modes: a hold followed by a jump would be the jerk it prevents).

The hold action (zero arm motion, the gripper as last sent) lies inside the envelope by
construction: bounds must contain 0, and the gripper it keeps was sent through the envelope. It is
exempt from the rate limit: stopping is always allowed. An episode starts from rest (the hold).

Every event is counted (`counts`, in system1.json and metrics.json) and logged at most once per
10 s per kind.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

import numpy as np

from hume.config import ConfigError
from hume.policy.hold import OPEN_GRIPPER, hold_action
from hume.runtime.config import EnvelopeConfig
from hume.runtime.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

# Bits of the ticks.csv `envelope` column.
CLAMPED, RATE_LIMITED, HELD, NONFINITE = 1, 2, 4, 8
MODES = ("clamp", "hold")


@dataclass(frozen=True)
class Limits:
    low: np.ndarray  # float32 [arm dims]
    high: np.ndarray
    max_delta: np.ndarray
    gripper: tuple[float, float]

    @property
    def action_dim(self) -> int:
        return len(self.low) + 1

    def to_dict(self) -> dict:
        return {
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "max_delta": self.max_delta.tolist(),
            "gripper": list(self.gripper),
        }


def resolve(cfg: EnvelopeConfig, robot, what: str = "robot") -> Limits:
    """The envelope for `robot`: each field of `cfg` that is set, else the adapter's own
    (`robot.action_envelope()`, a dict with the same keys). A missing field is an error: System 1
    never drives a robot without limits."""
    own = robot.action_envelope() if hasattr(robot, "action_envelope") else {}
    fields = {}
    for key in ("low", "high", "max_delta", "gripper"):
        value = getattr(cfg, key) or own.get(key)
        if value is None or len(value) == 0:
            raise ConfigError(
                f"{what} declares no action envelope {key!r}: set robot.envelope.{key} in the config "
                "(robot.envelope.low/high/max_delta per arm dim, gripper [low, high]; docs/deployment.md)"
            )
        fields[key] = np.asarray(value, dtype=np.float64).reshape(-1)
    low, high, max_delta, gripper = fields["low"], fields["high"], fields["max_delta"], fields["gripper"]
    if not len(low) == len(high) == len(max_delta) or len(gripper) != 2:
        raise ConfigError(
            f"robot.envelope: low, high and max_delta need one value per arm dim (got {len(low)}, "
            f"{len(high)}, {len(max_delta)}) and gripper two (got {len(gripper)})"
        )
    if not all(np.isfinite(v).all() for v in fields.values()):
        raise ConfigError("robot.envelope: every bound must be finite")
    if (low > 0).any() or (high < 0).any():
        raise ConfigError(
            "robot.envelope: low <= 0 <= high on every arm dim (the hold, zero motion, lies inside)"
        )
    if (max_delta <= 0).any() or gripper[0] >= gripper[1]:
        raise ConfigError(
            "robot.envelope: max_delta > 0 on every arm dim, and gripper [low, high] with low < high"
        )
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return Limits(f32(low), f32(high), f32(max_delta), (float(gripper[0]), float(gripper[1])))


class Envelope:
    def __init__(self, limits: Limits, on_violation: str = "clamp"):
        if on_violation not in MODES:
            raise ConfigError(f"robot.envelope.on_violation must be one of {MODES}, got {on_violation!r}")
        self.limits, self.on_violation = limits, on_violation
        self._glow, self._ghigh = np.float32(limits.gripper[0]), np.float32(limits.gripper[1])
        self.counts: collections.Counter[str] = collections.Counter()
        self._log = RateLimitedLog(log)
        self.reset()

    def reset(self) -> None:
        """An episode starts with the robot at rest and the gripper open (within its range)."""
        self.last = hold_action(np.clip(OPEN_GRIPPER, self._glow, self._ghigh), self.limits.action_dim)

    def hold(self) -> np.ndarray:
        """Zero arm motion, the gripper as last sent."""
        self.last = hold_action(self.last[-1], self.limits.action_dim)
        return self.last.copy()

    def apply(self, action) -> tuple[np.ndarray, int]:
        """The action to send instead of `action`, and the envelope bits of what was done to it."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        lim = self.limits
        if a.shape != (lim.action_dim,) or not np.isfinite(a).all():
            self.counts["nonfinite"] += 1
            what = "non-finite" if a.shape == (lim.action_dim,) else f"{a.size}-dim"
            self._log(logging.ERROR, "nonfinite", "a %s action reached the envelope: holding", what)
            return self.hold(), NONFINITE | HELD
        arm = np.clip(a[:-1], lim.low, lim.high)
        gripper = np.clip(a[-1], self._glow, self._ghigh)
        bits = 0
        if (arm != a[:-1]).any() or gripper != a[-1]:
            bits |= CLAMPED
            self.counts["clamped"] += 1
            self._log(
                logging.WARNING,
                "clamped",
                "action %s outside the envelope: %s",
                np.round(a, 4).tolist(),
                "held" if self.on_violation == "hold" else "clamped",
            )
            if self.on_violation == "hold":
                self.counts["held"] += 1
                return self.hold(), bits | HELD
        ref = self.last[:-1]
        ramped = np.clip(arm, ref - lim.max_delta, ref + lim.max_delta)
        # The step from ref may round past max_delta in float32; never past the bounds.
        ramped = np.clip(ramped, lim.low, lim.high)
        if (ramped != arm).any():
            bits |= RATE_LIMITED
            self.counts["rate_limited"] += 1
            self._log(logging.WARNING, "rate_limited", "action change above max_delta: ramped")
        out = np.append(ramped, gripper).astype(np.float32)
        self.last = out
        return out.copy(), bits

    def summary(self) -> dict:
        return {
            "on_violation": self.on_violation,
            **self.limits.to_dict(),
            **{k: self.counts.get(k, 0) for k in ("clamped", "rate_limited", "held", "nonfinite")},
        }

    def flush_log(self) -> None:
        self._log.flush()
