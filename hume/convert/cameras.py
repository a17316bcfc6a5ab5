"""Source camera names -> ours: the one map every converter uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hume.models.checkpoint_tensors import CheckpointError

# LeRobot's LIBERO names (lerobot/envs/libero.py: image, image2; LeRobot's LIBERO datasets and the
# authors' checkpoints: image, wrist_image) and the Bridge datasets' main camera (image_0) -> our
# LIBERO adapter's names (sim/libero_env.py). Other names are kept as they are.
SOURCE_CAMERAS = {"image": "agentview", "image_0": "agentview", "image2": "wrist", "wrist_image": "wrist"}


def our_camera(name: str) -> str:
    return SOURCE_CAMERAS.get(name, name)


def check_cameras(pairs: Sequence[tuple[str, str]], where: Path) -> list[tuple[str, str]]:
    """(source name, our name; "" = left out) pairs: at least one kept, no two on one camera."""
    ours = [o for _, o in pairs if o]
    if not ours:
        raise CheckpointError(f"{where}: no image slot is mapped to one of our cameras")
    if len(set(ours)) != len(ours):
        raise CheckpointError(f"{where}: two image slots map to the same camera: {list(pairs)}")
    return list(pairs)
