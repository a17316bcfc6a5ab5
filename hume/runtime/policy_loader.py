"""Load the policy a node serves, and name the model so both nodes can check they run the same one."""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path

from hume.config import ConfigError
from hume.runtime.config import HumePolicyConfig, PolicyConfig

log = logging.getLogger(__name__)


def import_object(path: str, what: str):
    """`package.module:Name` -> the object; a clear error when it does not exist."""
    module_name, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"{what} {path!r} cannot be imported ({e}); expected 'package.module:Name'"
        ) from None


# Training state beside the model in a training checkpoint: not part of what the model computes.
TRAINING_FILES = frozenset({"optimizer.pt", "trainer_state.json"})


def model_id(checkpoint: str | Path) -> str:
    """`<folder name>@<hash>`: the hash covers every file that defines the model (weights, config,
    normalisation stats, tokenizer), so two nodes agree on it only with the very same model."""
    folder = Path(checkpoint)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in TRAINING_FILES):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return f"{folder.resolve().name}@{digest.hexdigest()[:12]}"


def same_model(a: str, b: str) -> bool:
    """Model ids match by their hash: the folder may be named differently on each host."""
    return a.rpartition("@")[2] == b.rpartition("@")[2]


def load_policy(policy: PolicyConfig, checkpoint: str | Path, device: str = "cpu", torch_threads: int = 0):
    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    cls = import_object(policy.class_path(), "policy.path")
    log.info("loading %s from %s", policy.class_path(), checkpoint)
    if isinstance(policy, HumePolicyConfig):
        # Moved before its fast path is traced, so that the tracing happens once, on the device.
        return cls.from_pretrained(str(checkpoint), device=device, **policy.overrides())
    policy = cls.from_pretrained(str(checkpoint), **policy.overrides())
    return policy.to(device) if device != "cpu" and hasattr(policy, "to") else policy
