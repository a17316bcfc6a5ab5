"""Counterfactual labels beside a LeRobot dataset: thinks whose every candidate was tried.

`hume collect` with the oracle selector writes one line per labelled think to
`meta/labelled_thinks.jsonl`: the episode and frame whose observation the think saw, its N
candidates (the policy's normalised actions [N][H][action_dim]), each tried candidate's outcomes
([success, steps] per continuation seed) and the one followed. A labelled think is what a critic
that must *rank candidates at one state* learns from (docs/training.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.constants import EPISODE_INDEX_KEY, FRAME_INDEX_KEY, TASK_INDEX_KEY
from hume.data import format as fmt

LABELS_FILE = "meta/labelled_thinks.jsonl"


def read_labelled_thinks(root: str | Path) -> list[dict]:
    """A dataset folder's labelled thinks in (episode, frame) order, one per think: a think written
    twice (a crash between its label and its episode, then both again) counts once."""
    rows: dict[tuple[int, int], dict] = {}
    for row in fmt.read_log(Path(root) / LABELS_FILE):
        rows.setdefault((row["episode_index"], row["frame_index"]), row)
    return [rows[k] for k in sorted(rows)]


def success_rates(outcomes: list[list[list[int]]], n: int) -> np.ndarray:
    """[n]: each candidate's share of successful continuations; NaN for one not tried."""
    rates = np.full(n, np.nan, np.float32)
    for i, runs in enumerate(outcomes):
        rates[i] = np.mean([success for success, _ in runs])
    return rates


@dataclass(frozen=True)
class LabelledThinks:
    """A dataset's labelled thinks as arrays. T thinks of N candidates each.

    frame: [T] the think's row in the dataset's columns (for ConcatDataset: across its parts).
    candidates: [T, N, H, action_dim] float32, normalised as the policy's chunks are.
    rates: [T, N] float32, each candidate's success rate over its continuations; NaN: not tried.
    chosen: [T] the candidate the episode followed.
    episode, task: [T] the think's episode and task (for ConcatDataset: as it numbers them).
    """

    frame: np.ndarray
    candidates: np.ndarray
    rates: np.ndarray
    chosen: np.ndarray
    episode: np.ndarray
    task: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, rows: np.ndarray) -> LabelledThinks:
        """The thinks at `rows` (indices or a [T] bool mask), in their order."""
        return LabelledThinks(
            *(getattr(self, f.name)[rows] for f in dataclasses.fields(self))  # every field is [T, ...]
        )

    def held_out(self, every: int) -> np.ndarray:
        """[T] bool: the thinks of every `every`-th labelled episode of each task (its 1st, its
        (every+1)-th, ...; by episode index), a split by episode that a growing collection keeps.
        Counted per task, not over episode indices: with tasks interleaved (episode k does task
        k % tasks), episode_index % every would hold out whole tasks. 0: none."""
        if every < 0:
            raise ValueError(f"every must be >= 0 (0: nothing held out), got {every}")
        out = np.zeros(len(self), bool)
        if every == 0:
            return out
        for task in np.unique(self.task):
            episodes = np.unique(self.episode[self.task == task])  # sorted
            out |= np.isin(self.episode, episodes[::every]) & (self.task == task)
        return out

    @classmethod
    def of(cls, dataset) -> LabelledThinks | None:
        """The labels of a LeRobotDataset or ConcatDataset (each part's own file); None without."""
        parts = getattr(dataset, "parts", [dataset])
        offsets = getattr(dataset, "_episode_offsets", [0])
        rows_of = {
            (int(e), int(f)): i
            for i, (e, f) in enumerate(
                zip(dataset.columns[EPISODE_INDEX_KEY], dataset.columns[FRAME_INDEX_KEY], strict=True)
            )
        }
        frame, candidates, rates, chosen = [], [], [], []
        episodes, tasks = dataset.columns[EPISODE_INDEX_KEY], dataset.columns[TASK_INDEX_KEY]
        for part, offset in zip(parts, offsets, strict=True):
            for row in read_labelled_thinks(part.root):
                key = (row["episode_index"] + offset, row["frame_index"])
                if key not in rows_of:
                    raise fmt.DatasetFormatError(
                        f"{part.root}: a labelled think names episode {row['episode_index']} frame "
                        f"{row['frame_index']}, which the dataset does not hold"
                    )
                c = np.asarray(row["candidates"], np.float32)
                frame.append(rows_of[key])
                candidates.append(c)
                rates.append(success_rates(row["outcomes"], len(c)))
                chosen.append(row["chosen"])
        if not frame:
            return None
        shapes = {c.shape for c in candidates}
        if len(shapes) > 1:
            raise fmt.DatasetFormatError(
                f"{dataset.root}: labelled thinks of different shapes {sorted(shapes)}"
            )
        return cls(
            np.asarray(frame),
            np.stack(candidates),
            np.stack(rates),
            np.asarray(chosen),
            np.asarray(episodes[frame]).reshape(-1).astype(np.int64),
            np.asarray(tasks[frame]).reshape(-1).astype(np.int64),
        )
