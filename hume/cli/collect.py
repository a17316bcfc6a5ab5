"""`hume collect --config configs/collect/NAME.yaml [--output DIR]`: LIBERO episodes of a
scripted expert, or rollouts of a trained policy (`--source=policy --policy.checkpoint=DIR`)
-> a LeRobot v2.1 dataset in DIR (meta/info.json, data/, videos/).

Run again with the same --output to continue an interrupted collection. See docs/data.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from hume.config import parse_config


def main(argv: Sequence[str]) -> int:
    from sim.collect_config import CollectConfig

    cfg = parse_config(CollectConfig, argv, prog="hume collect")
    from sim.collect import collect
    from sim.libero_env import LiberoError, RendererError
    from sim.remote.client import RemoteError

    try:
        summary = collect(cfg)
    except (LiberoError, RendererError, RemoteError) as e:
        print(f"hume collect: {e}", file=sys.stderr)
        return 2
    for t in summary["tasks"]:
        print(f"  task {t['task_id']:>2} {t['successes']:>3}/{t['episodes']:<3} {t['name']}")
    print(
        f"{summary['suite']}: {summary['successes']}/{summary['episodes']} episodes succeeded "
        f"({summary['success_rate']:.1%}), {summary['frames']} frames -> {cfg.output}"
    )
    held_out = summary.get("held_out")
    if held_out:
        print(
            f"held-out starts: {held_out['same_as_official']} of {held_out['starts']} sampled starts equal "
            f"an official initial state (objects within {held_out['tolerance']:g}); nearest: "
            f"{held_out['min_distance']:.4f}"
        )
    keys = ("suite", "source", "episodes", "successes", "success_rate", "frames", "held_out")
    print(json.dumps({k: summary[k] for k in keys if k in summary}))
    return 0
