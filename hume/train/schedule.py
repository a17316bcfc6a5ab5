"""Learning-rate schedule: linear warmup, then cosine decay to a floor (pure math)."""

from __future__ import annotations

import math


def warmup_cosine(step: int, *, peak_lr: float, warmup_steps: int, total_steps: int, end_lr: float) -> float:
    """The learning rate at `step` (0-based): 0 -> peak over warmup, then cosine to end_lr."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return end_lr + 0.5 * (peak_lr - end_lr) * (1.0 + math.cos(math.pi * progress))
