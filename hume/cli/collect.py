"""`hume collect --config configs/collect/NAME.yaml [--output DIR]`: scripted-expert LIBERO
episodes -> a LeRobot v2.1 dataset in DIR (meta/info.json, data/, videos/).

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

    try:
        summary = collect(cfg)
    except (LiberoError, RendererError) as e:
        print(f"hume collect: {e}", file=sys.stderr)
        return 2
    for t in summary["tasks"]:
        print(f"  task {t['task_id']:>2} {t['successes']:>3}/{t['episodes']:<3} {t['name']}")
    print(
        f"{summary['suite']}: {summary['successes']}/{summary['episodes']} episodes succeeded "
        f"({summary['success_rate']:.1%}), {summary['frames']} frames -> {cfg.output}"
    )
    print(json.dumps({k: summary[k] for k in ("suite", "episodes", "successes", "success_rate", "frames")}))
    return 0
