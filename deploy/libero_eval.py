"""`hume eval --mode=deploy`: LIBERO episodes through the real two-process runtime (launcher.py),
planned, logged and reported by the evaluator (sim/evaluator.py) like the other modes.

Episodes run in groups of consecutive episodes of one task, each group one System-1 process
driving the LIBERO robot adapter over ZeroMQ in wall-clock time. Without a policy server each
group is a deployment of its own (its own System 2), one after another. With
`policy_server=true` one System-2 process serves `num_workers` groups at once, batching their
observations into shared thinks: simulators on the CPU cores, the model on one accelerator.
Unlike `sync` and `async` this is not deterministic: what System 1 sees depends on real think
times. A group's episodes are logged when it finishes, so an interrupted run repeats at most the
unfinished groups.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from deploy.launcher import PolicyServer, run_deployment
from hume.config import parse_config
from hume.runtime.config import DeployConfig
from sim.eval_config import EvalConfig
from sim.suites import served

log = logging.getLogger(__name__)


def base_config(cfg: EvalConfig) -> DeployConfig:
    """Transport and System-1/2 settings from `cfg.deploy_config` (defaults without it)."""
    base = parse_config(DeployConfig, ["--config", cfg.deploy_config] if cfg.deploy_config else [])
    base = dataclasses.replace(base, checkpoint=cfg.policy.checkpoint, seed=cfg.seed)
    if cfg.policy_server and not base.torch_threads:
        # num_workers System-1 processes and System 2 share the cores; oversubscribed OpenMP
        # threads spin and stall each other.
        base = dataclasses.replace(base, torch_threads=max(1, (os.cpu_count() or 1) // (cfg.num_workers + 1)))
    return base


def deploy_config(
    cfg: EvalConfig,
    base: DeployConfig,
    task_id: int,
    first_init_state: int,
    episodes: int,
    run: Path,
    video: bool,
) -> DeployConfig:
    """The deployment for `episodes` episodes of one task: robot and episodes from the eval config."""
    simulator = served(cfg.suite)
    robot = dataclasses.replace(
        base.robot,
        kind=simulator.name if simulator else "libero",
        suite=cfg.suite,
        task=task_id,
        tasks=[],  # one task per group: a deploy config's task rotation (the demo's) does not apply
        init_state=first_init_state,
        image_size=cfg.image_size,
        fast_render=cfg.fast_render,
        max_steps=cfg.max_steps,
    )
    return dataclasses.replace(base, episodes=episodes, output=str(run), video=video, robot=robot)


def groups_of(units: list, max_size: int) -> list[list]:
    """Runs of consecutive episodes of one task, each at most `max_size` long."""
    groups: list[list] = []
    for unit in units:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and last.task_id == unit.task_id
            and last.episode + 1 == unit.episode
            and len(groups[-1]) < max_size
        ):
            groups[-1].append(unit)
        else:
            groups.append([unit])
    return groups


def _run_group(
    cfg: EvalConfig, base: DeployConfig, out: Path, group: list, level: str, server: PolicyServer | None
) -> list[dict]:
    first = group[0]
    run = out / "deploy" / f"task{first.task_id:02d}_ep{first.episode:03d}"
    video = first.episode < cfg.videos_per_task
    dcfg = deploy_config(cfg, base, first.task_id, first.init_state, len(group), run, video)
    log.info("deploying task %d, episodes %d..%d", first.task_id, first.episode, group[-1].episode)
    result = run_deployment(dcfg, log_level=level, server=server)
    # Latency, holds and chunk ages of the run are in its metrics.json.
    return [
        {
            **dataclasses.asdict(unit),
            "success": bool(ep["success"]),
            "steps": int(ep["steps"]),
            "deploy_run": str(run.relative_to(out)),
            **{k: v for k, v in ep.items() if k.endswith(("_deltas", "_ratio_p90"))},
        }
        for unit, ep in zip(group, result.episodes, strict=False)
    ]


def run_deploy(cfg: EvalConfig, out: Path, units: list) -> Iterator[dict]:
    """Rows for `units`: one deployment per group, or groups sharing one policy server."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    base = base_config(cfg)
    if not cfg.policy_server:
        for group in groups_of(units, len(units)):
            yield from _run_group(cfg, base, out, group, level, None)
        return
    workers = min(cfg.num_workers, len(units))
    # Groups small enough that every worker gets one, so one task's episodes also run in parallel.
    groups = groups_of(units, math.ceil(len(units) / workers))
    server_cfg = dataclasses.replace(base, output=str(out / "deploy" / "system2"))
    log.info("policy server: %d System-1 workers share one System 2", workers)
    # The server closes first on the way out, stopping its clients, so that no thread waits on a
    # System 1 still running its episodes after an error or Ctrl-C.
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="system1") as pool,
        PolicyServer(server_cfg, Path(server_cfg.output), level) as server,
    ):
        pending = {pool.submit(_run_group, cfg, base, out, g, level, server) for g in groups}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        finally:
            for future in pending:
                future.cancel()
