"""The LeRobot dataset layout: path templates, feature specs and metadata files of v2.x and v3.0.

v2.1 (what we write): one parquet file and one mp4 per camera per episode,
    meta/info.json, meta/tasks.jsonl, meta/episodes.jsonl, meta/episodes_stats.jsonl,
    data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet,
    videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
v3.0 (read too): many episodes per file,
    meta/info.json, meta/tasks.parquet, meta/episodes/chunk-XXX/file-XXX.parquet, meta/stats.json,
    data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet,
    videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from hume.constants import (
    ACTION_KEY,
    DONE_KEY,
    EPISODE_INDEX_KEY,
    FRAME_INDEX_KEY,
    IMAGE_KEY,
    INDEX_KEY,
    REWARD_KEY,
    STATE_KEY,
    SUCCESS_KEY,
    TASK_INDEX_KEY,
    TIMESTAMP_KEY,
)

log = logging.getLogger(__name__)

V21 = "v2.1"
V30 = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH_V21 = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH_V21 = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
INFO = "meta/info.json"
TASKS_JSONL = "meta/tasks.jsonl"
EPISODES_JSONL = "meta/episodes.jsonl"
EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"
STATS_JSON = "meta/stats.json"
TASKS_PARQUET = "meta/tasks.parquet"
EPISODES_DIR_V30 = "meta/episodes"

# Columns every LeRobot frame has, besides the features of the robot.
INDEX_FEATURES = {
    TIMESTAMP_KEY: {"dtype": "float32", "shape": [1], "names": None},
    FRAME_INDEX_KEY: {"dtype": "int64", "shape": [1], "names": None},
    EPISODE_INDEX_KEY: {"dtype": "int64", "shape": [1], "names": None},
    INDEX_KEY: {"dtype": "int64", "shape": [1], "names": None},
    TASK_INDEX_KEY: {"dtype": "int64", "shape": [1], "names": None},
}


class DatasetFormatError(ValueError):
    """A folder that is not a LeRobot dataset we can read; the message says what is missing."""


LIBERO_STATE_NAMES = ["x", "y", "z", "axis_angle_x", "axis_angle_y", "axis_angle_z", "gripper_l", "gripper_r"]
LIBERO_ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]


def libero_features(image_size: int, fps: float, cameras: tuple[str, ...]) -> dict:
    """Features of a dataset recorded in LIBERO with our observation and action conventions."""
    return robot_features(image_size, fps, cameras, LIBERO_STATE_NAMES, LIBERO_ACTION_NAMES)


def robot_features(
    image_size: int, fps: float, cameras: tuple[str, ...], state_names: list[str], action_names: list[str]
) -> dict:
    """Features of a dataset recorded from any robot: square camera videos, a state and an action
    vector of the given widths (the gripper command last), and what followed each frame."""
    features: dict = {}
    for cam in cameras:
        features[IMAGE_KEY.format(cam)] = {
            "dtype": "video",
            "shape": [image_size, image_size, 3],
            "names": ["height", "width", "channel"],
            "info": {
                "video.fps": float(fps),
                "video.height": image_size,
                "video.width": image_size,
                "video.channels": 3,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "has_audio": False,
            },
        }
    features[STATE_KEY] = {
        "dtype": "float32",
        "shape": [len(state_names)],
        "names": list(state_names),
    }
    features[ACTION_KEY] = {
        "dtype": "float32",
        "shape": [len(action_names)],
        "names": list(action_names),
    }
    features[REWARD_KEY] = {"dtype": "float32", "shape": [1], "names": None}
    features[DONE_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    features[SUCCESS_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    features.update(INDEX_FEATURES)
    return features


def video_keys(features: dict) -> list[str]:
    return [k for k, f in features.items() if f.get("dtype") == "video"]


def image_keys(features: dict) -> list[str]:
    """Images stored inside the parquet files (encoded PNG/JPEG bytes), not as videos."""
    return [k for k, f in features.items() if f.get("dtype") == "image"]


def episode_chunk(episode_index: int, chunks_size: int = CHUNKS_SIZE) -> int:
    return episode_index // chunks_size


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(path: Path, data: dict) -> None:
    """Atomic: a reader never sees half a file, an interrupted writer leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=4)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_log(path: Path) -> list[dict]:
    """The rows of an append-only log (`append_jsonl`); a torn line, left by a crash mid-write,
    is skipped with a warning, so what it recorded is done again."""
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning(
                "%s line %d is incomplete (interrupted write): skipped, what it recorded is redone",
                path,
                i + 1,
            )
    return rows


def append_jsonl(path: Path, row: dict) -> None:
    """Append one row durably (on disk when this returns). After a crash mid-write the file ends
    in a torn line: the row goes on a line of its own rather than onto that fragment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
        torn = end > 0 and f.read(1) != b"\n"
        f.write((b"\n" if torn else b"") + json.dumps(row).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)


def load_info(root: Path) -> dict:
    path = root / INFO
    if not path.is_file():
        raise DatasetFormatError(
            f"{root} is not a LeRobot dataset: {INFO} is missing (expected meta/info.json, data/, videos/)"
        )
    info = read_json(path)
    for key in ("codebase_version", "fps", "features"):
        if key not in info:
            raise DatasetFormatError(f"{path} has no {key!r}; is this a LeRobot v2.x/v3.0 dataset?")
    return info
