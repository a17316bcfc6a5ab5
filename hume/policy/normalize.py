"""Mean/std normalisation of robot state and actions with dataset statistics.

Statistics use the dataset layout of hume/data/stats.py ({feature: {"mean", "std", ...}}) for the
features "observation.state" and "action"; they are saved beside a checkpoint as stats.json.

The value-query head scores actions in a box, [-1, 1] per dim: the range of its tanh actor and of
Cal-QL's uniform out-of-distribution actions. Mean/std-normalised actions do not fit that box (a
third of LIBERO's lie outside it), so the head sees them rescaled by the data's action min/max
("min"/"max" of "action" in the stats), clipped to the box.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hume.constants import ACTION_KEY as ACTION
from hume.constants import STATE_KEY as STATE

STATS_FILE = "stats.json"
# Dims whose std is ~0 (e.g. a joint that never moved) are left unscaled instead of blown up.
MIN_STD = 1e-6


class Normalizer:
    def __init__(self, stats: dict | None, state_dim: int, action_dim: int):
        """stats: {"observation.state": {"mean", "std"}, "action": {...}} or None (identity)."""
        self.state_dim, self.action_dim = state_dim, action_dim
        stats = stats or {}
        self.state_mean, self.state_std = self._pick(stats, STATE, state_dim)
        self.action_mean, self.action_std = self._pick(stats, ACTION, action_dim)
        self.action_low = self.action_high = None
        if ACTION in stats and "min" in stats[ACTION] and "max" in stats[ACTION]:
            self.set_value_box(stats[ACTION]["min"], stats[ACTION]["max"])

    def set_value_box(self, low, high) -> None:
        """The raw action range the value head's [-1, 1] box spans (the dataset's min and max)."""
        low, high = (np.asarray(v, np.float32).reshape(-1) for v in (low, high))
        if low.shape != (self.action_dim,) or high.shape != (self.action_dim,) or (high < low).any():
            raise ValueError(f"action min/max must be {self.action_dim} values each with min <= max")
        self.action_low, self.action_high = low, high
        # normalised -> box is one affine map: scale and offset once, not at every think.
        span = np.maximum(high - low, MIN_STD)
        self._box_scale = torch.from_numpy(2.0 * self.action_std / span)
        self._box_offset = torch.from_numpy(2.0 * (self.action_mean - low) / span - 1.0)

    def clear_value_box(self) -> None:
        """The value head sees actions as normalised, unbounded (checkpoints trained so)."""
        self.action_low = self.action_high = None

    def value_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised actions [..., action_dim] -> the value head's box [-1, 1]; unchanged for a
        checkpoint whose stats have no action min/max (its head was trained on them as they are)."""
        if self.action_low is None:
            return x
        scale = self._box_scale.to(x.device, x.dtype)
        return (x * scale + self._box_offset.to(x.device, x.dtype)).clamp(-1.0, 1.0)

    @staticmethod
    def _pick(stats: dict, key: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if key not in stats:
            return np.zeros(dim, np.float32), np.ones(dim, np.float32)
        try:
            mean = np.asarray(stats[key]["mean"], np.float32).reshape(-1)
            std = np.asarray(stats[key]["std"], np.float32).reshape(-1)
        except KeyError as e:
            raise ValueError(f"normalisation stats for {key!r} lack {e.args[0]!r}") from None
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(
                f"normalisation stats for {key!r} have {mean.shape[0]} dims, the policy expects {dim}"
            )
        return mean, np.where(std < MIN_STD, 1.0, std).astype(np.float32)

    def state(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.state_mean) / self.state_std).astype(np.float32)

    def action(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.action_mean) / self.action_std).astype(np.float32)

    def unnormalize_action(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * self.action_std + self.action_mean).astype(np.float32)

    def to_dict(self) -> dict:
        action = {"mean": self.action_mean.tolist(), "std": self.action_std.tolist()}
        if self.action_low is not None:
            action.update(min=self.action_low.tolist(), max=self.action_high.tolist())
        return {STATE: {"mean": self.state_mean.tolist(), "std": self.state_std.tolist()}, ACTION: action}

    def save(self, directory: Path) -> None:
        (directory / STATS_FILE).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path, state_dim: int, action_dim: int) -> Normalizer:
        path = directory / STATS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: normalisation statistics missing from the checkpoint")
        try:
            stats = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        for key in (STATE, ACTION):
            if key not in stats:
                raise ValueError(f"{path}: no statistics for {key!r}")
        try:
            return cls(stats, state_dim, action_dim)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
