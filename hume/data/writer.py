"""Write LeRobot v2.1 datasets: one parquet file per episode, one mp4 per camera and episode.

Episode files and episode metadata are written separately so that parallel workers can write
their episodes' files while one process owns the metadata (`LeRobotWriter`). The metadata is
appended one episode at a time, so an interrupted collection keeps every finished episode and a
resumed one knows which episodes it still has to record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hume.constants import (
    ACTION_KEY,
    EPISODE_INDEX_KEY,
    FRAME_INDEX_KEY,
    INDEX_KEY,
    TASK_INDEX_KEY,
    TASK_KEY,
    TIMESTAMP_KEY,
)
from hume.data import format as fmt
from hume.data.stats import aggregate_stats, feature_stats, from_jsonable, to_jsonable
from hume.data.video import encode_video

log = logging.getLogger(__name__)

# Images are subsampled for their statistics: a few dozen frames per episode pin them down.
IMAGE_STATS_FRAMES = 32


def write_episode_files(
    root: str | Path, info: dict, episode_index: int, task_index: int, frames: dict[str, np.ndarray]
) -> dict:
    """Write one episode's parquet file and videos; returns its per-episode statistics.

    `frames` holds one `[T, ...]` array per feature of `info["features"]` except the index
    columns (timestamp, frame_index, episode_index, index, task_index), which are filled here;
    `index` counts from 0 within the episode until `LeRobotWriter.finalize` numbers all frames.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    features = info["features"]
    missing = [k for k in features if k not in fmt.INDEX_FEATURES and k not in frames]
    if missing:
        raise ValueError(f"episode {episode_index} lacks features {missing}")
    lengths = {k: len(v) for k, v in frames.items()}
    length = next(iter(lengths.values()))
    if length == 0 or any(n != length for n in lengths.values()):
        raise ValueError(f"episode {episode_index}: every feature needs the same, non-zero length: {lengths}")
    fps = info["fps"]
    columns = dict(frames)
    columns[TIMESTAMP_KEY] = np.arange(length, dtype=np.float32) / np.float32(fps)
    columns[FRAME_INDEX_KEY] = np.arange(length, dtype=np.int64)
    columns[EPISODE_INDEX_KEY] = np.full(length, episode_index, dtype=np.int64)
    columns[INDEX_KEY] = np.arange(length, dtype=np.int64)
    columns[TASK_INDEX_KEY] = np.full(length, task_index, dtype=np.int64)

    chunk = fmt.episode_chunk(episode_index, info["chunks_size"])
    arrays, stats = {}, {}
    for key, spec in features.items():
        values = np.asarray(columns[key])
        if spec["dtype"] == "video":
            path = root / info["video_path"].format(
                episode_chunk=chunk, video_key=key, episode_index=episode_index
            )
            encode_video(path, values, fps)
            step = max(1, length // IMAGE_STATS_FRAMES)
            stats[key] = feature_stats(values[::step], is_image=True)
            continue
        arrays[key] = _arrow_column(values, spec)
        stats[key] = feature_stats(values.reshape(length, -1))
    path = root / info["data_path"].format(episode_chunk=chunk, episode_index=episode_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)
    return stats


def _arrow_column(values: np.ndarray, spec: dict):
    import pyarrow as pa

    dtype = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[
        spec["dtype"]
    ]
    shape = [int(s) for s in spec["shape"]]
    values = values.astype(spec["dtype"])
    if shape == [1]:
        return pa.array(values.reshape(-1), type=dtype)
    if len(shape) != 1:
        raise ValueError(f"only scalar and vector features are stored in parquet, got shape {shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=dtype), shape[0])


class LeRobotWriter:
    """Owner of a v2.1 dataset's metadata: tasks, episodes, statistics and info.json.

    `LeRobotWriter(root, fps=20, features=...)` creates a dataset (or reopens one with the
    same features, to add episodes); `add_episode(...)` writes an episode whole;
    `finalize()` numbers the frames globally and writes meta/stats.json.
    """

    def __init__(self, root: str | Path, fps: float, features: dict, robot_type: str = "panda"):
        self.root = Path(root)
        info_path = self.root / fmt.INFO
        if info_path.is_file():
            self.info = fmt.load_info(self.root)
            if self.info["codebase_version"] != fmt.V21:
                raise fmt.DatasetFormatError(
                    f"{self.root} is a LeRobot {self.info['codebase_version']} dataset; "
                    "only v2.1 datasets can be extended"
                )
            if self.info["features"] != features or self.info["fps"] != fps:
                raise fmt.DatasetFormatError(
                    f"{self.root} already holds a dataset with other features or fps; "
                    "pick another output folder or the same recording settings"
                )
        else:
            self.info = {
                "codebase_version": fmt.V21,
                "robot_type": robot_type,
                "total_episodes": 0,
                "total_frames": 0,
                "total_tasks": 0,
                "total_videos": 0,
                "total_chunks": 0,
                "chunks_size": fmt.CHUNKS_SIZE,
                "fps": fps,
                "splits": {"train": "0:0"},
                "data_path": fmt.DATA_PATH_V21,
                "video_path": fmt.VIDEO_PATH_V21 if fmt.video_keys(features) else None,
                "features": features,
            }
        self.tasks = [
            row[TASK_KEY] for row in sorted(fmt.read_log(self.root / fmt.TASKS_JSONL), key=_task_key)
        ]
        self.episodes = {row[EPISODE_INDEX_KEY]: row for row in fmt.read_log(self.root / fmt.EPISODES_JSONL)}
        self._write_info()

    def task_index(self, task: str) -> int:
        """The index of an instruction, adding it to meta/tasks.jsonl when new."""
        if task not in self.tasks:
            self.tasks.append(task)
            fmt.append_jsonl(
                self.root / fmt.TASKS_JSONL, {TASK_INDEX_KEY: len(self.tasks) - 1, TASK_KEY: task}
            )
        return self.tasks.index(task)

    def has_episode(self, episode_index: int) -> bool:
        return episode_index in self.episodes

    def add_episode(self, episode_index: int, task: str, frames: dict[str, np.ndarray], **meta) -> None:
        """Write an episode's files and record it (extra `meta`, e.g. success, goes to episodes.jsonl)."""
        task_index = self.task_index(task)
        stats = write_episode_files(self.root, self.info, episode_index, task_index, frames)
        self.record_episode(episode_index, task, len(frames[ACTION_KEY]), stats, **meta)

    def record_episode(self, episode_index: int, task: str, length: int, stats: dict, **meta) -> None:
        """Record an episode whose files are written (by `write_episode_files`, maybe elsewhere)."""
        if episode_index in self.episodes:
            raise ValueError(f"episode {episode_index} is already in {self.root}")
        row = {EPISODE_INDEX_KEY: episode_index, "tasks": [task], "length": int(length), **meta}
        # Stats first: episodes.jsonl says which episodes a resumed collection has, so a crash
        # between the two lines leaves a stats row that the episode's new recording replaces,
        # never an episode without stats.
        fmt.append_jsonl(
            self.root / fmt.EPISODES_STATS_JSONL,
            {EPISODE_INDEX_KEY: episode_index, "stats": to_jsonable(stats)},
        )
        self.episodes[episode_index] = row
        fmt.append_jsonl(self.root / fmt.EPISODES_JSONL, row)
        self._write_info()

    def _write_info(self) -> None:
        n = len(self.episodes)
        self.info.update(
            total_episodes=n,
            total_frames=sum(row["length"] for row in self.episodes.values()),
            total_tasks=len(self.tasks),
            total_videos=n * len(fmt.video_keys(self.info["features"])),
            total_chunks=(max(self.episodes) // self.info["chunks_size"] + 1) if n else 0,
            splits={"train": f"0:{n}"},
        )
        fmt.write_json(self.root / fmt.INFO, self.info)

    def finalize(self) -> None:
        """Sort the episode metadata, number frames globally (`index`), write meta/stats.json.

        Episodes recorded by parallel workers may have finished out of order, and a LeRobot
        dataset's episode indices must be 0..N-1 in its files."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        order = sorted(self.episodes)
        if order != list(range(len(order))):
            raise fmt.DatasetFormatError(
                f"{self.root}: episodes {sorted(set(range(max(order) + 1)) - set(order))} are missing; "
                "resume the collection to record them"
            )
        offset = 0
        for ep in order:
            chunk = fmt.episode_chunk(ep, self.info["chunks_size"])
            path = self.root / self.info["data_path"].format(episode_chunk=chunk, episode_index=ep)
            table = pq.read_table(path)
            if table.column(INDEX_KEY)[0].as_py() != offset:
                index = pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
                table = table.set_column(table.schema.get_field_index(INDEX_KEY), INDEX_KEY, index)
                pq.write_table(table, path)
            offset += table.num_rows
        fmt.write_jsonl(self.root / fmt.EPISODES_JSONL, [self.episodes[e] for e in order])
        stats_rows = {r[EPISODE_INDEX_KEY]: r for r in fmt.read_log(self.root / fmt.EPISODES_STATS_JSONL)}
        fmt.write_jsonl(self.root / fmt.EPISODES_STATS_JSONL, [stats_rows[e] for e in order])
        stats = aggregate_stats([from_jsonable(stats_rows[e]["stats"]) for e in order])
        fmt.write_json(self.root / fmt.STATS_JSON, to_jsonable(stats))
        self._write_info()
        log.info("dataset %s: %d episodes, %d frames", self.root, len(order), offset)


def _task_key(row: dict) -> int:
    return row[TASK_INDEX_KEY]
