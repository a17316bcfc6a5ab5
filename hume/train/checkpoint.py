"""Training checkpoints: `step_XXXXXX/` folders that both resume training and load as a policy.

A folder holds what `HumePolicy.save_pretrained` writes (config.json, model.safetensors,
normalisation stats) plus `optimizer.pt` (optimizer state dicts, tensors only, loaded with
`weights_only=True`) and `trainer_state.json` (step, stage, config). Randomness in training is
seeded per step, so the step number is all the RNG state that a resume needs. With a moving
average of the weights (`ema_decay` > 0), model.safetensors is the average and hume/train/ema.py
adds the raw weights and the average's counters; all of them are written before trainer_state.json.
A sharded run (`distributed: fsdp`) writes `sharded/` (weights and optimizer state, per process,
torch.distributed.checkpoint; hume/train/fsdp.py) instead of optimizer.pt, beside the same
consolidated policy files.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step_(\d{6,})$")
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"


def step_dir(output: str | Path, step: int) -> Path:
    return Path(output) / f"step_{step:06d}"


def latest_checkpoint(output: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in `output`, or None."""
    root = Path(output)
    if not root.is_dir():
        return None
    done = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(done)[1] if done else None


def save_training_state(
    path: Path, optimizers: dict[str, torch.optim.Optimizer] | None, step: int, stage: str, config: dict
) -> None:
    """Write optimizer state and trainer_state.json into `path` (the policy is saved by the caller;
    a sharded run saves its optimizer state itself and passes None).

    trainer_state.json is written last: its presence marks the checkpoint complete.
    """
    path.mkdir(parents=True, exist_ok=True)
    if optimizers is not None:
        torch.save({name: opt.state_dict() for name, opt in optimizers.items()}, path / OPTIMIZER_FILE)
    state = {"step": step, "stage": stage, "config": config}
    tmp = path / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path / STATE_FILE)
    log.info("saved checkpoint %s", path)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was saved at."""
    state_file = path / STATE_FILE
    try:
        return int(json.loads(state_file.read_text())["step"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"bad training checkpoint {state_file}: {e}") from None


def load_training_state(path: Path, optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """Restore optimizer state from `path`; returns the step to continue from."""
    step = checkpoint_step(path)
    opt_file = path / OPTIMIZER_FILE
    if not opt_file.is_file():
        raise ValueError(
            f"{path} has no {OPTIMIZER_FILE}: a sharded run saved it; resume with --distributed=fsdp"
        )
    saved = torch.load(opt_file, map_location="cpu", weights_only=True)
    for name, opt in optimizers.items():
        if name not in saved:
            raise ValueError(f"{opt_file} has no optimizer state for {name!r} (has {sorted(saved)})")
        opt.load_state_dict(saved[name])
    log.info("resuming from %s (step %d)", path, step)
    return step
