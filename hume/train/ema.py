"""An exponential moving average of the trained weights (diffusers' `EMAModel`), as π0/openpi
train with one: the optimiser keeps training the raw weights, the average is what a checkpoint
ships and what validation scores.

A checkpoint of a run with the average on holds it in `model.safetensors` (the policy), the raw
values of the trained parameters in `raw_weights.safetensors` and the average's counters in
`ema_state.json`. A resumed run loads the policy (the average), takes it as the average's state,
then puts the raw weights back for the optimiser: the average is not stored twice, and a resume
is exact.

The decay follows diffusers' default warmup, min(ema_decay, (1 + n) / (10 + n)) at the n-th
update after the first (which copies the weights): early weights, far from the end point, fade
out fast (0.9 at n = 80, 0.99 at n = 890).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

RAW_WEIGHTS_FILE = "raw_weights.safetensors"
EMA_STATE_FILE = "ema_state.json"


class WeightAverage:
    """The moving average of `params` (name -> trained parameter), updated by `step()` after each
    optimiser step."""

    def __init__(self, params: dict[str, nn.Parameter], decay: float):
        # diffusers takes ~15 s to import: only runs that use the average pay for it.
        from diffusers.training_utils import EMAModel

        self.params = params
        self.average = EMAModel(list(params.values()), decay=decay)

    def step(self) -> None:
        self.average.step(self.params.values())

    def to(self, device: torch.device) -> None:
        self.average.to(device)

    @property
    def updates(self) -> int:
        return self.average.optimization_step

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the parameters hold the average; after it, the raw weights again."""
        params = list(self.params.values())
        self.average.store(params)
        self.average.copy_to(params)
        try:
            yield
        finally:
            self.average.restore(params)

    def save(self, path: Path) -> None:
        """The raw weights and the average's counters (the average itself is the policy's weights,
        saved by the caller inside `applied()`)."""
        raw = {name: p.detach().contiguous().cpu() for name, p in self.params.items()}
        save_file(raw, str(path / RAW_WEIGHTS_FILE), metadata={"format": "pt"})
        state = {k: v for k, v in self.average.state_dict().items() if k != "shadow_params"}
        (path / EMA_STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def load_state(self, path: Path) -> None:
        """The counters saved in checkpoint `path`; the average itself is the parameters' values
        at construction (the checkpoint's policy weights). The decay stays this run's."""
        file = path / EMA_STATE_FILE
        if not file.is_file():
            log.info("%s has no moving average: it starts here from the checkpoint's weights", path)
            return
        state = json.loads(file.read_text())
        state["decay"] = self.average.decay
        self.average.load_state_dict(state)
        log.info("moving average resumed after %d updates", self.updates)


def restore_raw_weights(policy: nn.Module, path: Path) -> None:
    """Put back the raw trained weights of a checkpoint saved with the average on (no-op without)."""
    file = path / RAW_WEIGHTS_FILE
    if not file.is_file():
        return
    raw = load_file(str(file))
    unknown = sorted(set(raw) - set(policy.state_dict()))
    if unknown:
        raise ValueError(f"{file}: {len(unknown)} tensors the policy does not have, e.g. {unknown[0]!r}")
    policy.load_state_dict(raw, strict=False)
    log.info("raw weights of %d trained tensors restored from %s", len(raw), file)
