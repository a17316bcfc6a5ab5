"""MP4 video per camera and episode (or, in v3.0 datasets, many episodes per file) via imageio-ffmpeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CODEC = "libx264"
PIX_FMT = "yuv420p"
# Constant-quality H.264: visually lossless at LIBERO's small resolutions, a few kB per frame.
CRF = 18


def encode_video(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Write `[T, H, W, 3]` uint8 RGB frames to an mp4 file (parents created)."""
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec=CODEC,
        pix_fmt_out=PIX_FMT,
        quality=None,
        macro_block_size=1,
        output_params=["-crf", str(CRF), "-g", "2"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def decode_video(path: str | Path, start_s: float = 0.0, num_frames: int | None = None) -> np.ndarray:
    """Frames of an mp4 file as `[T, H, W, 3]` uint8, optionally from `start_s` seconds on and at
    most `num_frames` of them (a v3.0 file holds many episodes one after another)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    input_params = ["-ss", f"{start_s:.6f}"] if start_s > 0 else None
    output_params = ["-frames:v", str(num_frames)] if num_frames is not None else None
    gen = imageio_ffmpeg.read_frames(str(path), input_params=input_params, output_params=output_params)
    meta = gen.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3) for buf in gen]
    if not frames:
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    return np.stack(frames)
