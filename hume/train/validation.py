"""The stage's losses on a held-out dataset, scored the same way at every checkpoint.

`val_frames` frames spread evenly over the dataset, no augmentation, and the same draws (flow
noise and time, System 1's offsets, Cal-QL's sampled actions) at every evaluation, from the run's
seed: the curve's changes are the weights' alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from hume.train.data import TrainingData
from hume.train.stage_system1_value import System1ValueStage
from hume.train.stage_system2 import System2Stage


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards each submodule's own mode again (frozen parts of a
    stage stay in eval mode while the rest trains)."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def validation_frames(data: TrainingData, frames: int) -> torch.Tensor:
    """Up to `frames` frame indices, evenly spaced from the first frame to the last."""
    n = min(frames, len(data))
    return torch.linspace(0, len(data) - 1, n).round().long()


@torch.no_grad()
def validation_losses(
    stage: System2Stage | System1ValueStage,
    data: TrainingData,
    frames: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    autocast=contextlib.nullcontext,
) -> dict[str, float]:
    """Every scalar the stage returns, averaged over the frames (weighted by batch size)."""
    idx = validation_frames(data, frames)
    data_gen = torch.Generator().manual_seed(seed)
    model_gen = torch.Generator(device=device).manual_seed(seed)
    sums: dict[str, float] = {}
    with _evaluating(stage):
        for part in idx.split(batch_size):
            batch = {k: v.to(device) for k, v in stage.batch(data, part, data_gen, False).items()}
            with autocast():
                out = stage(batch, model_gen)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.float().mean()) * len(part)
    return {k: v / len(idx) for k, v in sums.items()}
