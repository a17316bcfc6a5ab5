"""`hume stats --dataset DIR [--output OUT]`: normalisation statistics of a LeRobot dataset.

Computes min/max/mean/std/q01/q99 over every frame of the state, the action and the other
numeric columns (the discounted Monte-Carlo return included) and writes them as JSON to
OUT/stats.json (default: DIR/meta/stats.json, where LeRobot keeps them). See docs/data.md.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from hume.config import ConfigError, parse_config
from hume.constants import ACTION_KEY, STATE_KEY

DEFAULT_KEYS = [STATE_KEY, ACTION_KEY, "next.reward", "mc_return"]


@dataclasses.dataclass(frozen=True)
class StatsConfig:
    # A LeRobot dataset folder (v2.0, v2.1 or v3.0).
    dataset: str = ""
    # Columns to describe, by our names (docs/data.md); empty = state, action, reward, return.
    keys: list[str] = dataclasses.field(default_factory=list)
    # Discount of the Monte-Carlo return.
    gamma: float = 0.98
    # Folder for stats.json; empty = the dataset's meta/ folder.
    output: str = ""

    def validate(self) -> None:
        if not self.dataset:
            raise ConfigError(
                "--dataset DIR is required: a LeRobot dataset folder (e.g. one `hume collect` wrote)"
            )
        if not 0 <= self.gamma <= 1:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")


def main(argv: Sequence[str]) -> int:
    cfg = parse_config(StatsConfig, argv, prog="hume stats")
    import numpy as np

    from hume.data import LeRobotDataset
    from hume.data.format import DatasetFormatError, write_json
    from hume.data.stats import columns_stats, to_jsonable

    try:
        ds = LeRobotDataset(cfg.dataset, gamma=cfg.gamma)
    except (DatasetFormatError, FileNotFoundError) as e:
        print(f"hume stats: {e}", file=sys.stderr)
        return 2
    keys = cfg.keys or [k for k in DEFAULT_KEYS if k in ds.columns]
    try:
        stats = columns_stats(ds.columns, keys)
    except KeyError as e:
        raise ConfigError(f"keys: {e.args[0]}") from None
    path = Path(cfg.output) / "stats.json" if cfg.output else Path(cfg.dataset) / "meta" / "stats.json"
    if path.is_file() and not cfg.output:
        # Keep what is already there (image statistics, other columns); replace what we computed.
        from hume.data.format import read_json

        merged = read_json(path)
        merged.update(to_jsonable(stats))
        write_json(path, merged)
    else:
        write_json(path, to_jsonable(stats))
    with np.printoptions(precision=3, suppress=True):
        for key, s in stats.items():
            print(f"  {key}: mean {s['mean']} std {s['std']}")
    print(f"{ds.num_episodes} episodes, {len(ds)} frames -> {path}")
    return 0
