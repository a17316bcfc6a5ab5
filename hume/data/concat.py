"""Several LeRobot datasets read as one: demonstrations and policy rollouts trained on together.

Episodes keep their own boundaries: each dataset's episode indices are shifted past the ones
before it, so per-episode quantities (Monte-Carlo returns, chunk ends, state histories) never run
from one dataset's last episode into the next one's first. Instructions are merged by their text
into one task list. The parts must agree on fps and on the state and action features.
"""

from __future__ import annotations

import logging

import numpy as np

from hume.constants import ACTION_KEY, EPISODE_INDEX_KEY, INDEX_KEY, STATE_KEY, TASK_INDEX_KEY, TASK_KEY
from hume.data import format as fmt
from hume.data.reader import EpisodeFrames, LeRobotDataset
from hume.data.returns import episode_bounds
from hume.data.stats import aggregate_stats

log = logging.getLogger(__name__)

# Columns whose values number frames, episodes or tasks: renumbered across the parts.
_RENUMBERED = (EPISODE_INDEX_KEY, INDEX_KEY, TASK_INDEX_KEY)


class ConcatDataset(EpisodeFrames):
    """`LeRobotDataset`s in sequence, with the reader's interface (columns, episodes, tasks,
    camera_keys, stats, `ds[i]`, `episode_range(k)`). Cameras are those every part has."""

    def __init__(self, parts: list[LeRobotDataset]):
        if not parts:
            raise ValueError("no datasets to concatenate")
        self.parts = parts
        self.root = " + ".join(str(p.root) for p in parts)
        self.fps = parts[0].fps
        first = parts[0].info["features"]
        for part in parts[1:]:
            if part.fps != self.fps:
                raise fmt.DatasetFormatError(
                    f"{part.root} runs at {part.fps} fps, {parts[0].root} at {self.fps}"
                )
            for key in (STATE_KEY, ACTION_KEY):
                theirs = part.info["features"].get(part.source_key.get(key, key), {}).get("shape")
                if theirs != first.get(parts[0].source_key.get(key, key), {}).get("shape"):
                    raise fmt.DatasetFormatError(f"{part.root} and {parts[0].root} differ in {key!r}'s shape")
        self.camera_keys = [k for k in parts[0].camera_keys if all(k in p.camera_keys for p in parts)]
        self.tasks = list(dict.fromkeys(t for p in parts for t in p.tasks))
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self._episode_offsets, self._task_maps, self.episodes = [], [], []
        next_episode = 0
        for part in parts:
            self._episode_offsets.append(next_episode)
            self._task_maps.append(np.array([self.tasks.index(t) for t in part.tasks], dtype=np.int64))
            for row in part.episodes:
                renumbered = int(row[EPISODE_INDEX_KEY]) + next_episode
                self.episodes.append({**row, EPISODE_INDEX_KEY: renumbered, "dataset": str(part.root)})
            next_episode += int(part.columns[EPISODE_INDEX_KEY].max()) + 1
        keys = [k for k in parts[0].columns if all(k in p.columns for p in parts)]
        self.columns = {
            k: np.concatenate([self._renumber(j, k, p.columns[k]) for j, p in enumerate(parts)]) for k in keys
        }
        self._bounds = episode_bounds(self.columns[EPISODE_INDEX_KEY])
        log.info("%d datasets as one: %d episodes, %d frames", len(parts), self.num_episodes, len(self))

    def _renumber(self, j: int, key: str, values: np.ndarray) -> np.ndarray:
        if key == EPISODE_INDEX_KEY:
            return values + self._episode_offsets[j]
        if key == INDEX_KEY:
            return values + self.offsets[j]
        if key == TASK_INDEX_KEY:
            return self._task_maps[j][values]
        return values

    def __getitem__(self, i: int) -> dict:
        i = self.frame(i)
        j = int(np.searchsorted(self.offsets, i, side="right")) - 1
        item = self.parts[j][i - int(self.offsets[j])]
        for key in _RENUMBERED:
            item[key] = self._renumber(j, key, item[key])
        item[TASK_KEY] = self.tasks[int(item[TASK_INDEX_KEY])]
        return item

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """The parts' statistics combined (exact for mean/std/min/max); None unless all have them."""
        every = [p.stats for p in self.parts]
        parts = [s for s in every if s is not None]
        if len(parts) < len(every):
            return None
        shared = set.intersection(*(set(s) for s in parts))
        return aggregate_stats([{k: s[k] for k in shared} for s in parts])


def open_datasets(roots: list[str], **kwargs) -> LeRobotDataset | ConcatDataset:
    """One dataset folder as itself, several as one `ConcatDataset` (kwargs go to each reader)."""
    parts = [LeRobotDataset(root, **kwargs) for root in roots]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
