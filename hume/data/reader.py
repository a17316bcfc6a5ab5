"""`LeRobotDataset`: one reader for LeRobot v2.0/v2.1 and v3.0 datasets on disk.

Every non-image column is loaded into memory at once (a LIBERO dataset's numbers are a few
MB); camera frames are decoded per episode on first use and kept in a small LRU cache. A frame
is a dict of numpy arrays with our observation keys (docs/architecture.md), the action, the
LeRobot bookkeeping columns, the instruction (`task`) and the discounted Monte-Carlo return
(`mc_return`). Public LIBERO datasets name their cameras and state differently; `ALIASES` maps
those names onto ours (pass `rename` for other datasets).
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from hume.constants import (
    ACTION_KEY,
    DONE_KEY,
    EPISODE_INDEX_KEY,
    FRAME_INDEX_KEY,
    IMAGE_KEY,
    MC_RETURN_KEY,
    REWARD_KEY,
    STATE_KEY,
    SUCCESS_KEY,
    TASK_INDEX_KEY,
    TASK_KEY,
    TIMESTAMP_KEY,
)
from hume.data import format as fmt
from hume.data.returns import episode_bounds, episode_returns, sparse_rewards
from hume.data.stats import aggregate_stats, from_jsonable
from hume.data.video import decode_video

log = logging.getLogger(__name__)

# Names used by public LIBERO datasets in LeRobot format -> our names. Applied only when the
# dataset does not already have our name.
ALIASES = {
    IMAGE_KEY.format("image"): IMAGE_KEY.format("agentview"),
    IMAGE_KEY.format("wrist_image"): IMAGE_KEY.format("wrist"),
    IMAGE_KEY.format("image2"): IMAGE_KEY.format("wrist"),
    "image": IMAGE_KEY.format("agentview"),
    "wrist_image": IMAGE_KEY.format("wrist"),
    "state": STATE_KEY,
    "actions": ACTION_KEY,
}


class EpisodeFrames:
    """Frames stored episode after episode: `columns` (one row per frame, in episode order) and
    `_bounds` ([start, stop) of each episode), set by the subclass."""

    columns: dict[str, np.ndarray]
    _bounds: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.columns[EPISODE_INDEX_KEY])

    @property
    def num_episodes(self) -> int:
        return len(self._bounds)

    def episode_range(self, k: int) -> range:
        """Frame indices of the k-th episode (in episode order)."""
        start, stop = self._bounds[k]
        return range(start, stop)

    def frame(self, i: int) -> int:
        """Frame `i` as an index in 0..len-1 (negative ones count from the end)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for a dataset of {len(self)} frames")
        return int(i) % len(self)


class LeRobotDataset(EpisodeFrames):
    """A LeRobot dataset folder (v2.0, v2.1 or v3.0), read-only.

    `len(ds)` frames; `ds[i]` -> dict of numpy arrays (images uint8 `[H, W, 3]`, vectors float32,
    `next.*` scalars, `mc_return` float32, `task` str). `gamma` discounts the Monte-Carlo return.
    Datasets without `next.reward` / `next.success` (demonstrations only) are taken as all
    successful: reward 1 and success on each episode's last frame. Decoded videos of the last
    `cache_episodes` episodes used are kept (None: all of them, for small datasets trained on
    for many epochs).
    """

    def __init__(
        self,
        root: str | Path,
        gamma: float = 0.98,
        rename: dict[str, str] | None = None,
        cache_episodes: int | None = 8,
    ):
        self.root = Path(root)
        self.info = fmt.load_info(self.root)
        self.version = str(self.info["codebase_version"])
        if not (self.version.startswith("v2") or self.version.startswith("v3")):
            raise fmt.DatasetFormatError(
                f"{self.root}: LeRobot {self.version} is not supported (v2.0, v2.1 or v3.0 are); "
                "convert it with LeRobot's conversion scripts first"
            )
        self.fps = float(self.info["fps"])
        self.gamma = gamma
        self.cache_episodes = cache_episodes
        self._video_cache: OrderedDict = OrderedDict()
        features = self.info["features"]
        aliases = {k: v for k, v in ALIASES.items() if k in features and v not in features}
        aliases.update(rename or {})
        self.source_key = {aliases.get(k, k): k for k in features}  # ours -> the dataset's
        self.video_keys = [k for k, src in self.source_key.items() if features[src]["dtype"] == "video"]
        self.image_keys = [k for k, src in self.source_key.items() if features[src]["dtype"] == "image"]
        self.camera_keys = self.video_keys + self.image_keys

        if self.version.startswith("v3"):
            self.tasks, self.episodes, table = self._load_v3()
        else:
            self.tasks, self.episodes, table = self._load_v2()
        self._load_columns(table)
        self._episode_row = {int(row[EPISODE_INDEX_KEY]): row for row in self.episodes}
        log.info(
            "LeRobot %s dataset %s: %d episodes, %d frames, cameras %s",
            self.version,
            self.root,
            self.num_episodes,
            len(self),
            self.camera_keys,
        )

    # --- loading -----------------------------------------------------------------------------

    def _load_v2(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        tasks_rows = fmt.read_jsonl(self.root / fmt.TASKS_JSONL)
        tasks = _tasks_by_index([(r[TASK_INDEX_KEY], r[TASK_KEY]) for r in tasks_rows])
        episodes = sorted(fmt.read_jsonl(self.root / fmt.EPISODES_JSONL), key=lambda r: r[EPISODE_INDEX_KEY])
        if not episodes:
            raise fmt.DatasetFormatError(f"{self.root}: {fmt.EPISODES_JSONL} is missing or empty")
        chunks_size = self.info.get("chunks_size", fmt.CHUNKS_SIZE)
        tables = []
        for row in episodes:
            ep = int(row[EPISODE_INDEX_KEY])
            path = self.root / self.info["data_path"].format(
                episode_chunk=fmt.episode_chunk(ep, chunks_size), episode_index=ep
            )
            if not path.is_file():
                raise fmt.DatasetFormatError(f"{self.root}: data file of episode {ep} is missing: {path}")
            tables.append(pq.read_table(path))
        return tasks, episodes, pa.concat_tables(tables, promote_options="default")

    def _load_v3(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        tasks_path = self.root / fmt.TASKS_PARQUET
        if not tasks_path.is_file():
            raise fmt.DatasetFormatError(f"{self.root}: {fmt.TASKS_PARQUET} is missing")
        tasks_table = pq.read_table(tasks_path)
        names = tasks_table.column_names
        text_col = (
            TASK_KEY
            if TASK_KEY in names
            else next(
                (
                    n
                    for n in names
                    if pa.types.is_string(tasks_table.schema.field(n).type)
                    or pa.types.is_large_string(tasks_table.schema.field(n).type)
                ),
                None,
            )
        )
        if text_col is None or TASK_INDEX_KEY not in names:
            raise fmt.DatasetFormatError(f"{tasks_path}: expected a task_index column and the task strings")
        tasks = _tasks_by_index(
            zip(
                tasks_table.column(TASK_INDEX_KEY).to_pylist(),
                tasks_table.column(text_col).to_pylist(),
                strict=True,
            )
        )
        ep_files = sorted((self.root / fmt.EPISODES_DIR_V30).glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise fmt.DatasetFormatError(f"{self.root}: no episode metadata under {fmt.EPISODES_DIR_V30}/")
        episodes = []
        for path in ep_files:
            table = pq.read_table(path)
            keep = [c for c in table.column_names if not c.startswith("stats/")]
            episodes += table.select(keep).to_pylist()
        episodes.sort(key=lambda r: r[EPISODE_INDEX_KEY])
        data_files = sorted({(r["data/chunk_index"], r["data/file_index"]) for r in episodes})
        tables = []
        for chunk, file in data_files:
            path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
            if not path.is_file():
                raise fmt.DatasetFormatError(f"{self.root}: data file is missing: {path}")
            tables.append(pq.read_table(path))
        return tasks, episodes, pa.concat_tables(tables, promote_options="default")

    def _load_columns(self, table) -> None:
        self.columns: dict[str, np.ndarray] = {}
        self._image_columns = {}
        for ours, src in self.source_key.items():
            spec = self.info["features"][src]
            if spec["dtype"] == "video":
                continue
            if src not in table.column_names:
                raise fmt.DatasetFormatError(
                    f"{self.root}: feature {src!r} of info.json is not in the data files"
                )
            column = table.column(src).combine_chunks()
            if spec["dtype"] == "image":
                self._image_columns[ours] = column
                continue
            self.columns[ours] = _to_numpy(column, spec)
        order = np.lexsort((self.columns[FRAME_INDEX_KEY], self.columns[EPISODE_INDEX_KEY]))
        if not np.array_equal(order, np.arange(len(order))):
            self.columns = {k: v[order] for k, v in self.columns.items()}
            self._image_columns = {k: v.take(order) for k, v in self._image_columns.items()}
        n = len(self.columns[EPISODE_INDEX_KEY])
        self._bounds = episode_bounds(self.columns[EPISODE_INDEX_KEY])
        self._ensure_outcome_columns(n)
        self.columns[MC_RETURN_KEY] = episode_returns(
            self.columns[REWARD_KEY], self.columns[EPISODE_INDEX_KEY], self.gamma
        )

    def _ensure_outcome_columns(self, n: int) -> None:
        """Demonstration datasets have no reward/done/success: derive them (every demo succeeded)."""
        last = np.zeros(n, dtype=bool)
        for _, stop in self._bounds:
            last[stop - 1] = True
        if DONE_KEY not in self.columns:
            self.columns[DONE_KEY] = last
        if SUCCESS_KEY not in self.columns:
            self.columns[SUCCESS_KEY] = last.copy()
        if REWARD_KEY not in self.columns:
            rewards = np.zeros(n, dtype=np.float32)
            for start, stop in self._bounds:
                success = bool(self.columns[SUCCESS_KEY][stop - 1])
                rewards[start:stop] = sparse_rewards(stop - start, success)
            self.columns[REWARD_KEY] = rewards

    # --- access ------------------------------------------------------------------------------

    def __getitem__(self, i: int) -> dict:
        i = self.frame(i)
        item = {k: v[i] for k, v in self.columns.items()}
        item[TASK_KEY] = self.tasks[int(item[TASK_INDEX_KEY])]
        for key in self.video_keys:
            ep = int(item[EPISODE_INDEX_KEY])
            frames = self._episode_video(key, ep)
            pos = int(round(float(item[TIMESTAMP_KEY]) * self.fps))
            item[key] = frames[min(pos, len(frames) - 1)]
        for key, column in self._image_columns.items():
            item[key] = _decode_image(column[i].as_py())
        return item

    def _episode_video(self, key: str, ep: int) -> np.ndarray:
        cached = self._video_cache.get((key, ep))
        if cached is not None:
            self._video_cache.move_to_end((key, ep))
            return cached
        src = self.source_key[key]
        row = self._episode_row[ep]
        if self.version.startswith("v3"):
            path = self.root / self.info["video_path"].format(
                video_key=src,
                chunk_index=row[f"videos/{src}/chunk_index"],
                file_index=row[f"videos/{src}/file_index"],
            )
            # Half a frame early: seeking lands on the episode's first frame despite rounding.
            start = max(0.0, float(row[f"videos/{src}/from_timestamp"]) - 0.5 / self.fps)
            frames = decode_video(path, start_s=start, num_frames=int(row["length"]))
        else:
            chunks_size = self.info.get("chunks_size", fmt.CHUNKS_SIZE)
            path = self.root / self.info["video_path"].format(
                episode_chunk=fmt.episode_chunk(ep, chunks_size), video_key=src, episode_index=ep
            )
            frames = decode_video(path)
        if len(frames) == 0:
            raise fmt.DatasetFormatError(f"{path}: no frames decoded for episode {ep}")
        self._video_cache[(key, ep)] = frames
        if self.cache_episodes is not None:
            while len(self._video_cache) > max(1, self.cache_episodes * max(1, len(self.video_keys))):
                self._video_cache.popitem(last=False)
        return frames

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """The statistics stored with the dataset (meta/stats.json, else the per-episode ones
        aggregated), under our key names; None when it has none (`hume stats` computes them)."""
        path = self.root / fmt.STATS_JSON
        if path.is_file():
            stats = from_jsonable(fmt.read_json(path))
        else:
            rows = fmt.read_jsonl(self.root / fmt.EPISODES_STATS_JSONL)
            if not rows:
                return None
            stats = aggregate_stats([from_jsonable(r["stats"]) for r in rows])
        ours = {src: k for k, src in self.source_key.items()}
        return {ours.get(k, k): v for k, v in stats.items()}


def _tasks_by_index(pairs) -> list[str]:
    by_index = {int(i): str(t) for i, t in pairs}
    if sorted(by_index) != list(range(len(by_index))):
        raise fmt.DatasetFormatError(f"task indices must be 0..N-1, got {sorted(by_index)}")
    return [by_index[i] for i in range(len(by_index))]


def _to_numpy(column, spec: dict) -> np.ndarray:
    """An arrow column (scalars, lists or fixed-size lists) -> `[N, *shape]` numpy array."""
    import pyarrow as pa

    n = len(column)
    values = column
    while (
        pa.types.is_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
        or pa.types.is_large_list(values.type)
    ):
        values = values.flatten()
    array = values.to_numpy(zero_copy_only=False)
    shape = [int(s) for s in spec.get("shape", [1])]
    if shape == [1] and array.size == n:
        return array.astype(spec["dtype"]).reshape(n)
    return array.astype(spec["dtype"]).reshape(n, *shape)


def _decode_image(value) -> np.ndarray:
    from PIL import Image

    data = value["bytes"] if isinstance(value, dict) else value
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
