"""`hume eval --mode=deploy`: LIBERO episodes through the real two-process runtime (launcher.py),
planned, logged and reported by the evaluator (sim/evaluator.py) like the other modes.

Each task is one deployment: a System-2 process and a System-1 process driving the LIBERO robot
adapter over ZeroMQ, in wall-clock time. Unlike `sync` and `async` this is not deterministic:
what System 1 sees depends on real think times. A task's episodes are logged when its deployment
finishes, so an interrupted task runs again from its first unfinished episode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

from deploy.launcher import run_deployment
from hume.config import parse_config
from hume.runtime.config import DeployConfig
from sim.eval_config import EvalConfig

log = logging.getLogger(__name__)


def deploy_config(
    cfg: EvalConfig, task_id: int, first_init_state: int, episodes: int, run: Path, video: bool
):
    """The deployment for `episodes` episodes of one task: transport and System-1 settings from
    `cfg.deploy_config` (defaults without it); robot, checkpoint and episodes from the eval config."""
    base = parse_config(DeployConfig, ["--config", cfg.deploy_config] if cfg.deploy_config else [])
    robot = dataclasses.replace(
        base.robot,
        kind="libero",
        suite=cfg.suite,
        task=task_id,
        init_state=first_init_state,
        image_size=cfg.image_size,
        fast_render=cfg.fast_render,
        max_steps=cfg.max_steps,
    )
    return dataclasses.replace(
        base,
        checkpoint=cfg.policy.checkpoint,
        episodes=episodes,
        output=str(run),
        video=video,
        seed=cfg.seed,
        robot=robot,
    )


def run_deploy(cfg: EvalConfig, out: Path, units: list) -> Iterator[dict]:
    """Rows for `units`, one deployment per run of consecutive episodes of a task."""

    groups: list[list] = []
    for unit in units:
        last = groups[-1][-1] if groups else None
        if last is not None and last.task_id == unit.task_id and last.episode + 1 == unit.episode:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    for group in groups:
        first = group[0]
        run = out / "deploy" / f"task{first.task_id:02d}_ep{first.episode:03d}"
        dcfg = deploy_config(
            cfg, first.task_id, first.init_state, len(group), run, video=first.episode < cfg.videos_per_task
        )
        log.info("deploying task %d, episodes %d..%d", first.task_id, first.episode, group[-1].episode)
        result = run_deployment(dcfg, log_level=level)
        for unit, ep in zip(group, result.episodes, strict=False):
            # Latency, holds and chunk ages of the run are in its metrics.json.
            yield {
                **dataclasses.asdict(unit),
                "success": bool(ep["success"]),
                "steps": int(ep["steps"]),
                "deploy_run": str(run.relative_to(out)),
                **{k: v for k, v in ep.items() if k.endswith(("_deltas", "_ratio_p90"))},
            }
