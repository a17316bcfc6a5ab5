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

- last, with a workspace (an end-effector position box, optionally a speed limit, per robot),
  each position dim moves at most to the box's edge, predicted from the current state and how far
  an action unit moves it per tick (`per_unit`): in-bound deltas that all push one way stop at
  the edge. Moving back towards the box is always allowed; so is stopping. The speed limit scales
  the position dims down together.

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
CLAMPED, RATE_LIMITED, HELD, NONFINITE, WORKSPACE = 1, 2, 4, 8, 16
COUNTS = ("clamped", "rate_limited", "held", "nonfinite", "workspace")


@dataclass(frozen=True)
class Workspace:
    """Where the end effector may go: state dims `dims` (moved by action dims 0..len(dims)-1)
    within [low, high]; one action unit moves each at most `per_unit` per tick."""

    dims: np.ndarray  # int [k]
    low: np.ndarray  # float64 [k]
    high: np.ndarray
    per_unit: np.ndarray
    max_speed: float = 0.0  # state units per second over the k dims; 0: none

    def to_dict(self) -> dict:
        return {
            "state_dims": self.dims.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "per_unit": self.per_unit.tolist(),
            "max_speed": self.max_speed,
        }


MODES = ("clamp", "hold")


@dataclass(frozen=True)
class Limits:
    low: np.ndarray  # float32 [arm dims]
    high: np.ndarray
    max_delta: np.ndarray
    gripper: tuple[float, float]
    workspace: Workspace | None = None

    @property
    def action_dim(self) -> int:
        return len(self.low) + 1

    def to_dict(self) -> dict:
        return {
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "max_delta": self.max_delta.tolist(),
            "gripper": list(self.gripper),
            "workspace": self.workspace.to_dict() if self.workspace is not None else None,
        }


def resolve(cfg: EnvelopeConfig, robot, what: str = "robot") -> Limits:
    """The envelope for `robot`: each field of `cfg` that is set, else the adapter's own
    (`robot.action_envelope()`, a dict with the same keys). A missing field is an error: System 1
    never drives a robot without limits."""
    return resolve_declared(cfg, robot.action_envelope() if hasattr(robot, "action_envelope") else {}, what)


def resolve_declared(cfg: EnvelopeConfig, own: dict, what: str = "robot") -> Limits:
    """`resolve` with the adapter's limits given as a dict (`own`, as action_envelope() returns them):
    for a server with no robot adapter of its own (`hume serve openpi`)."""
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
    workspace = _workspace(cfg, own.get("workspace") or {}, arm_dims=len(low))
    return Limits(f32(low), f32(high), f32(max_delta), (float(gripper[0]), float(gripper[1])), workspace)


def _workspace(cfg: EnvelopeConfig, own: dict, arm_dims: int) -> Workspace | None:
    """The workspace from `cfg`'s workspace fields, each else the adapter's; None when neither has one."""
    fields = {
        "state_dims": cfg.workspace_state_dims or own.get("state_dims"),
        "low": cfg.workspace_low or own.get("low"),
        "high": cfg.workspace_high or own.get("high"),
        "per_unit": cfg.workspace_per_unit or own.get("per_unit"),
    }
    given = [k for k, v in fields.items() if v is not None and len(v)]
    if not given:
        return None
    if len(given) < 4:
        raise ConfigError(
            f"robot.envelope: a workspace needs state_dims, low, high and per_unit; only {given} are set"
        )
    dims = np.asarray(fields["state_dims"], dtype=np.int64).reshape(-1)
    low, high, per_unit = (np.asarray(fields[k], np.float64).reshape(-1) for k in ("low", "high", "per_unit"))
    k = len(dims)
    if not (len(low) == len(high) == len(per_unit) == k) or k > arm_dims or (dims < 0).any():
        raise ConfigError(
            f"robot.envelope: workspace state_dims, low, high and per_unit need one value per position "
            f"dim (at most {arm_dims}, the arm dims that move them); got {k}, {len(low)}, {len(high)}, "
            f"{len(per_unit)}"
        )
    speed = float(cfg.max_speed or own.get("max_speed") or 0.0)
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise ConfigError("robot.envelope: workspace low < high, finite, on every dim")
    if not (per_unit > 0).all() or speed < 0 or not np.isfinite(speed):
        raise ConfigError("robot.envelope: workspace per_unit > 0 and max_speed >= 0")
    return Workspace(dims, low, high, per_unit, speed)


class Envelope:
    def __init__(self, limits: Limits, on_violation: str = "clamp", control_hz: float = 0.0):
        """`control_hz`: the rate actions are sent at (for the workspace's speed limit)."""
        if on_violation not in MODES:
            raise ConfigError(f"robot.envelope.on_violation must be one of {MODES}, got {on_violation!r}")
        self.limits, self.on_violation, self.control_hz = limits, on_violation, control_hz
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

    def apply(self, action, state=None) -> tuple[np.ndarray, int]:
        """The action to send instead of `action`, and the envelope bits of what was done to it.
        `state`: the robot's observation.state now (the workspace needs it; without one the
        workspace is not applied, and a robot that has one must pass it)."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        lim = self.limits
        ws = lim.workspace
        position = None
        if ws is not None and state is not None:
            state = np.asarray(state, np.float64).reshape(-1)
            if state.size <= ws.dims.max() or not np.isfinite(state[ws.dims]).all():
                self.counts["nonfinite"] += 1
                self._log(logging.ERROR, "bad_state", "the robot's state is not finite: holding")
                return self.hold(), NONFINITE | HELD
            position = state[ws.dims]
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
        if ws is not None and position is not None:
            kept = self._in_workspace(ramped, position, ws)
            if (kept != ramped).any():
                bits |= WORKSPACE
                self.counts["workspace"] += 1
                self._log(logging.WARNING, "workspace", "the action would leave the workspace: cut")
                ramped = kept
        out = np.append(ramped, gripper).astype(np.float32)
        self.last = out
        return out.copy(), bits

    def apply_chunk(self, actions, state=None) -> tuple[np.ndarray, int]:
        """A chunk of actions to be executed one per tick by a client this side does not see act
        (an openpi answer): each passes `apply`, rate-limited against the one before it; the first
        against nothing (which action of the previous chunk the client executed last is unknown:
        the rate limit across chunks is the client's). The workspace follows the position the
        actions before predict. Returns [h, action_dim] float32 and the OR of their bits."""
        rows = np.asarray(actions, dtype=np.float32)
        rows = rows.reshape(len(rows), -1) if rows.ndim > 1 else rows.reshape(1, -1)
        lim = self.limits
        first = rows[0] if len(rows) else np.zeros(0, np.float32)
        if first.shape == (lim.action_dim,) and np.isfinite(first).all():
            arm, gripper = np.clip(first[:-1], lim.low, lim.high), np.clip(first[-1], self._glow, self._ghigh)
            self.last = np.append(arm, gripper).astype(np.float32)
        else:
            self.reset()
        ws = lim.workspace
        state = None if state is None else np.array(state, np.float64).reshape(-1)
        out, bits = [], 0
        for row in rows:
            sent, b = self.apply(row, state)
            out.append(sent)
            bits |= b
            if ws is not None and state is not None and state.size > ws.dims.max():
                state[ws.dims] += ws.per_unit * sent[: len(ws.dims)]
        return np.stack(out) if out else np.zeros((0, lim.action_dim), np.float32), bits

    def _in_workspace(self, arm: np.ndarray, position: np.ndarray, ws: Workspace) -> np.ndarray:
        """`arm` with its position dims cut so the predicted position stays in the box (moving back
        towards it, and stopping, always allowed) and under the speed limit."""
        k = len(ws.dims)
        move = arm[:k].astype(np.float64)
        if ws.max_speed and self.control_hz:
            speed = np.linalg.norm(move * ws.per_unit) * self.control_hz
            if speed > ws.max_speed:
                move = move * (ws.max_speed / speed)
        lo = np.minimum((ws.low - position) / ws.per_unit, 0.0)
        hi = np.maximum((ws.high - position) / ws.per_unit, 0.0)
        out = arm.copy()
        out[:k] = np.clip(move, lo, hi).astype(np.float32)
        # Rounding to float32 must not step past the edge it was cut to.
        out[:k] = np.where(out[:k] > hi, np.nextafter(out[:k], np.float32(-np.inf)), out[:k])
        out[:k] = np.where(out[:k] < lo, np.nextafter(out[:k], np.float32(np.inf)), out[:k])
        return out

    def summary(self) -> dict:
        return {
            "on_violation": self.on_violation,
            **self.limits.to_dict(),
            **{k: self.counts.get(k, 0) for k in COUNTS},
        }

    def flush_log(self) -> None:
        self._log.flush()
