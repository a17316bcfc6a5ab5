"""MP4 video through imageio-ffmpeg: the project's one writer and reader of video files.

Datasets keep one file per camera and episode (or, in v3.0 datasets, many episodes per file);
evaluations and deployments film their episodes (frames drawn by episode_frame.py). Frames are
streamed into ffmpeg as they come, so writing a video holds one frame in memory, not the episode.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

CODEC = "libx264"
PIX_FMT = "yuv420p"
# Constant-quality H.264: visually lossless at LIBERO's small resolutions, a few kB per frame.
CRF = 18


class VideoWriter:
    """`with VideoWriter(path, fps) as video: video.append(frame)`, frames uint8 `[H, W, 3]` RGB,
    all of one (even: yuv420p halves the colour planes) size. The file is written under a
    temporary name and renamed on close, so a killed process leaves no torn file at `path`; no
    frame, no file. `keyframe_every`: frames between keyframes (None: the encoder's choice)."""

    def __init__(self, path: str | Path, fps: float, keyframe_every: int | None = None):
        self.path, self.fps, self.keyframe_every = Path(path), fps, keyframe_every
        self.partial = self.path.with_name(self.path.stem + ".part.mp4")
        self.frames = 0
        self._shape: tuple[int, ...] | None = None
        self._pipe: Generator[None, np.ndarray | None, None] | None = None

    def append(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame)
        if self._pipe is None:
            self._pipe = self._start(frame)
        elif frame.shape != self._shape or frame.dtype != np.uint8:
            raise ValueError(f"video frame {frame.dtype} {frame.shape}, the video's are uint8 {self._shape}")
        self._pipe.send(frame)
        self.frames += 1

    def _start(self, frame: np.ndarray) -> Generator[None, np.ndarray | None, None]:
        import imageio_ffmpeg

        if (
            frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
            or frame.shape[0] % 2
            or frame.shape[1] % 2
        ):
            raise ValueError(
                f"video frames must be uint8 [H, W, 3], H and W even; got {frame.dtype} {frame.shape}"
            )
        self._shape = frame.shape
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keyframes = ["-g", str(self.keyframe_every)] if self.keyframe_every else []
        pipe = imageio_ffmpeg.write_frames(
            str(self.partial),
            (frame.shape[1], frame.shape[0]),
            fps=self.fps,
            codec=CODEC,
            pix_fmt_out=PIX_FMT,
            quality=None,
            macro_block_size=1,
            output_params=["-crf", str(CRF), *keyframes],
            ffmpeg_log_level="error",
        )
        pipe.send(None)  # the generator runs up to its first frame
        return pipe

    def close(self) -> None:
        """Finish the file (ffmpeg writes the mp4's index) and give it its name."""
        if self._pipe is None:
            return
        self._pipe.close()
        self._pipe = None
        os.replace(self.partial, self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Also on an error: the frames until then are a valid video, and the most telling one.
        self.close()


def encode_video(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Write `[T, H, W, 3]` uint8 RGB frames to an mp4 file (parents created)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    # A dataset's frames are read from any timestamp: a keyframe every 2 frames keeps seeking cheap.
    with VideoWriter(path, fps, keyframe_every=2) as video:
        for frame in frames:
            video.append(frame)


def read_video(path: str | Path, start_s: float = 0.0, num_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of an mp4 file one by one, uint8 `[H, W, 3]`, optionally from `start_s` seconds on
    and at most `num_frames` of them (a v3.0 file holds many episodes one after another)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    input_params = ["-ss", f"{start_s:.6f}"] if start_s > 0 else None
    output_params = ["-frames:v", str(num_frames)] if num_frames is not None else None
    gen = imageio_ffmpeg.read_frames(str(path), input_params=input_params, output_params=output_params)
    width, height = gen.__next__()["size"]
    for buf in gen:
        yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)


def decode_video(path: str | Path, start_s: float = 0.0, num_frames: int | None = None) -> np.ndarray:
    """All of `read_video`'s frames as `[T, H, W, 3]` uint8 ([0, 0, 0, 3] for none)."""
    frames = list(read_video(path, start_s, num_frames))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), dtype=np.uint8)
