"""Episode videos (mp4, H.264 through imageio-ffmpeg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 20.0) -> None:
    """Write uint8 [H, W, 3] frames; written to a temporary name first so no torn file is left."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.mp4")
    # macro_block_size=1: keep odd sizes as they are instead of resizing with a warning.
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
    os.replace(tmp, path)
