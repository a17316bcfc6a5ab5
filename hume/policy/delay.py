"""System 2's delay in control steps: how many steps pass between the observation a think starts on
and the first step its chunk can be followed. Real-time chunking freezes that many committed
actions at the head of the new chunk, so the estimate errs high: the largest of the recent delays."""

from __future__ import annotations

import math
from collections import deque

DELAY_WINDOW = 5  # recent thinks the estimate looks back on


def steps_for(ms: float, control_hz: float) -> int:
    """A think of `ms` milliseconds in control steps: its chunk can only be used at the first
    control step after it exists."""
    return math.ceil(ms * control_hz / 1000.0 - 1e-9)


class DelayEstimator:
    def __init__(self, window: int = DELAY_WINDOW):
        self.recent: deque[int] = deque(maxlen=window)

    def reset(self) -> None:
        self.recent.clear()

    def add(self, steps: int) -> None:
        self.recent.append(max(0, int(steps)))

    @property
    def steps(self) -> int:
        """The delay to plan the next think for (0 before any think was seen)."""
        return max(self.recent, default=0)
