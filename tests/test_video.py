"""The one video module: the streaming mp4 writer (hume/data/video.py) and the episode frames the
evaluator and the System-1 node film (hume/data/episode_frame.py)."""

import tracemalloc

import numpy as np
import pytest

from hume.constants import IMAGE_KEY
from hume.data.episode_frame import BANNER, MARKS, MIN_HEIGHT, PLAIN, episode_frame
from hume.data.video import VideoWriter, decode_video


def _grey(value: int, h: int = 64, w: int = 96) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_streamed_frames_read_back(tmp_path):
    path = tmp_path / "out" / "v.mp4"
    with VideoWriter(path, fps=20) as video:
        for value in (20, 80, 140, 200, 250):
            video.append(_grey(value))
            assert not path.exists(), "the file gets its name only once it is whole"
    frames = decode_video(path)
    assert frames.shape == (5, 64, 96, 3)
    assert np.abs(frames.mean(axis=(1, 2, 3)) - [20, 80, 140, 200, 250]).max() < 3
    assert not video.partial.exists()


def test_the_writer_holds_no_frames_however_long_the_video(tmp_path):
    frame = _grey(100, 128, 128)
    with VideoWriter(tmp_path / "long.mp4", fps=20) as video:
        video.append(frame)
        tracemalloc.start()
        for _ in range(100):
            video.append(frame.copy())  # a new array each time, as a camera gives them
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 5 * frame.nbytes, f"{peak} bytes held for 100 frames of {frame.nbytes}"
    assert len(decode_video(tmp_path / "long.mp4")) == 101


def test_frames_the_encoder_cannot_take_are_refused(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", fps=20) as video:
        with pytest.raises(ValueError, match="even"):
            video.append(_grey(0, 63, 96))
    with VideoWriter(tmp_path / "v.mp4", fps=20) as video:
        video.append(_grey(0))
        with pytest.raises(ValueError, match="uint8"):
            video.append(_grey(0, 64, 64))
    assert not (tmp_path / "odd.mp4").exists(), "no frame, no file"


def _obs(size: int = 64) -> dict:
    return {
        IMAGE_KEY.format("wrist"): _grey(200, size, size),
        IMAGE_KEY.format("agentview"): _grey(50, size, size),
    }


def test_both_cameras_side_by_side_scaled_up_under_the_banner():
    frame = episode_frame(_obs(64), step=3)
    assert frame.shape == (BANNER + 256, 512, 3) and frame.shape[0] - BANNER >= MIN_HEIGHT
    views = frame[BANNER:]
    assert (views[:, :256] == 50).all() and (views[:, 256:] == 200).all(), "agent view left, wrist right"
    assert episode_frame(_obs(37), step=3).shape[:2] == (BANNER + 7 * 37 + 1, 2 * 7 * 37), "padded to even"


def test_hold_and_chunk_switch_marks_differ_from_a_plain_step():
    plain = episode_frame(_obs(), step=7, episode=0, kind="plan")
    hold = episode_frame(_obs(), step=7, episode=0, kind="hold")
    switch = episode_frame(_obs(), step=7, episode=0, kind="refined", chunk_switch=True)
    refined = episode_frame(_obs(), step=7, episode=0, kind="refined")
    corner = (BANNER // 2, -4)  # right end of the banner, clear of the text
    assert tuple(plain[corner]) == PLAIN[1]
    assert tuple(hold[corner]) == MARKS["hold"][1]
    assert tuple(switch[corner]) == MARKS["chunk_switch"][1]
    assert tuple(refined[corner]) == MARKS["refined"][1]
    for marked in (hold, switch, refined):
        assert (marked[BANNER:] == plain[BANNER:]).all(), "the cameras are not drawn over"
    # The step number is written: another step, other banner pixels.
    assert (episode_frame(_obs(), step=8, episode=0, kind="plan")[:BANNER] != plain[:BANNER]).any()
