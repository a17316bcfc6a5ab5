"""The Chunk: what System 2 hands to System 1 (in one process or over the wire). Numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """The selected candidate of one `think`.

    actions: float32 [H, action_dim], normalised model-space actions at flow time `noise_level`
        (0 = fully denoised; > 0 = partly denoised, System 1's cascade finishes them).
    noise_level: the flow time at which System 2 stopped.
    values: float32 [N], the value-query head's score of every candidate (NaN when it is off).
    index: the chosen candidate.
    candidates: float32 [N, H, action_dim], every candidate (normalised), or None when not kept.
    padding: float32 [H, max_action_dim - action_dim], System 2's values of the padded action dims of
        the chosen chunk, which System 1 reads too; None when they are pinned to 0.
    """

    actions: np.ndarray
    noise_level: float
    values: np.ndarray
    index: int
    candidates: np.ndarray | None = None
    padding: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.actions.ndim != 2:
            raise ValueError(f"Chunk.actions must be [H, action_dim], got shape {self.actions.shape}")
        if self.values.ndim != 1 or not 0 <= self.index < len(self.values):
            raise ValueError(f"Chunk.index {self.index} must index Chunk.values of shape {self.values.shape}")
        if self.padding is not None and (self.padding.ndim != 2 or len(self.padding) != len(self.actions)):
            raise ValueError(
                f"Chunk.padding must be [H={len(self.actions)}, padded dims], got shape {self.padding.shape}"
            )

    @property
    def model_actions(self) -> np.ndarray:
        """[H, action_dim + padded dims]: the chosen chunk at the width System 2 wrote it."""
        if self.padding is None:
            return self.actions
        return np.concatenate([self.actions, self.padding], axis=-1)


def think_record(thinks: list[tuple[np.ndarray, int]]) -> dict:
    """An episode's thinks, each (the chunk's candidate values, its chosen index), for its evaluation
    record: values None where the value head was off; how the critic ranks can be read per episode."""
    return {
        "think_values": [
            [round(float(v), 4) if np.isfinite(v) else None for v in values] for values, _ in thinks
        ],
        "think_chosen": [int(index) for _, index in thinks],
    }
