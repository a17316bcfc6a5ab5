"""Record scripted-expert LIBERO episodes as a LeRobot v2.1 dataset (`hume collect`).

The plan (task, episode -> initial state, seed, episode index) is fixed by the config, so a
collection interrupted at any point continues where it stopped when run again with the same
output folder: finished episodes are in meta/episodes.jsonl and are skipped. Workers (separate
processes, each with its own simulator) write their episodes' parquet and video files; the main
process owns the dataset's metadata.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.config import ConfigError, to_dict
from hume.data import format as fmt
from sim.collect_config import CollectConfig

log = logging.getLogger(__name__)

CAMERAS = ("agentview", "wrist")
CONFIG_FILE = "meta/collect_config.json"
SUMMARY_FILE = "meta/collect_summary.json"


@dataclass(frozen=True)
class Unit:
    """One episode to record."""

    task_id: int
    episode: int  # k-th episode of its task
    init_state: int
    episode_index: int  # its index in the dataset
    seed: int


def episode_seed(seed: int, task_id: int, episode: int) -> int:
    digest = hashlib.sha256(f"{seed}/{task_id}/{episode}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def select_tasks(cfg: CollectConfig) -> list[int]:
    """The config's tasks (each must have an expert), or every task of the suite that has one."""
    from sim.experts import UnsupportedTask, check_supported
    from sim.libero_env import get_task, task_names

    if cfg.tasks:
        tasks = [get_task(cfg.suite, t) for t in cfg.tasks]
        try:
            for task in tasks:
                check_supported(task)
        except UnsupportedTask as e:
            raise ConfigError(str(e)) from None
        return [t.task_id for t in tasks]
    task_ids = []
    for task_id in range(len(task_names(cfg.suite))):
        try:
            check_supported(get_task(cfg.suite, task_id))
            task_ids.append(task_id)
        except UnsupportedTask as e:
            log.warning("skipping: %s", e)
    if not task_ids:
        raise ConfigError(f"no task of {cfg.suite} has a scripted expert")
    return task_ids


def plan(cfg: CollectConfig, task_ids: list[int]) -> list[Unit]:
    units = []
    for task_id in task_ids:
        for k in range(cfg.episodes_per_task):
            units.append(
                Unit(
                    task_id=task_id,
                    episode=k,
                    init_state=cfg.first_init_state + k,
                    episode_index=len(units),
                    seed=episode_seed(cfg.seed, task_id, k),
                )
            )
    return units


def features(cfg: CollectConfig) -> dict:
    return fmt.libero_features(cfg.image_size, cfg.fps, CAMERAS if cfg.cameras else ())


def record_episode(env, expert, init_state: int, cameras: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Run the expert from an official initial state; frame t holds the observation the action
    was chosen on, the action, and what followed it (reward, done, success)."""
    obs = env.reset(init_state)
    expert.reset()
    columns: dict[str, list] = {"observation.state": [], "action": [], "next.success": []}
    if cameras:
        for cam in CAMERAS:
            columns[f"observation.images.{cam}"] = []
    success = False
    while not success and not env.truncated:
        action = expert.select_action(obs)
        for key in columns:
            if key.startswith("observation."):
                columns[key].append(obs[key])
        columns["action"].append(action)
        obs, success = env.step(action)
        columns["next.success"].append(success)
    frames = {k: np.stack(v) for k, v in columns.items()}
    frames["action"] = frames["action"].astype(np.float32)
    frames["next.success"] = frames["next.success"].astype(bool)
    length = len(frames["action"])
    frames["next.done"] = np.arange(length) == length - 1
    # Sparse reward: 1 on the frame whose action reached the goal, 0 elsewhere.
    frames["next.reward"] = frames["next.success"].astype(np.float32)
    return frames, success


_worker_envs: dict = {}


def _env_for(cfg: CollectConfig, task_id: int):
    from sim.libero_env import LiberoEnv

    env = _worker_envs.get(task_id)
    if env is None:
        for other in _worker_envs.values():
            other.close()
        _worker_envs.clear()
        env = LiberoEnv(
            cfg.suite,
            task_id,
            cameras=cfg.cameras,
            image_size=cfg.image_size,
            fast_render=cfg.fast_render,
            max_steps=cfg.max_steps or None,
            seed=cfg.seed,
        )
        _worker_envs[task_id] = env
    return env


def run_unit(cfg: CollectConfig, info: dict, task_index: int, unit: Unit) -> dict:
    """Record one episode and write its files (in a worker); returns its metadata."""
    from hume.data.writer import write_episode_files
    from sim.experts import make_expert

    env = _env_for(cfg, unit.task_id)
    expert = make_expert(env, cfg.noise, seed=unit.seed)
    frames, success = record_episode(env, expert, unit.init_state, cfg.cameras)
    stats = write_episode_files(cfg.output, info, unit.episode_index, task_index, frames)
    return {
        "unit": unit,
        "task": env.instruction,
        "length": len(frames["action"]),
        "success": success,
        "stats": stats,
    }


def _run_unit_star(args):
    return run_unit(*args)


def check_resume(cfg: CollectConfig, out: Path) -> None:
    """Continuing a collection is only sound with the same plan and recording settings."""
    path = out / CONFIG_FILE
    mine = {k: v for k, v in to_dict(cfg).items() if k not in ("workers", "output")}
    if path.is_file():
        theirs = {k: v for k, v in fmt.read_json(path).items() if k not in ("workers", "output")}
        if theirs != mine:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ConfigError(
                f"{out} holds a collection made with other settings ({', '.join(changed)}); "
                "use another --output, or the same config to continue it"
            )
    else:
        fmt.write_json(path, to_dict(cfg))


def collect(cfg: CollectConfig) -> dict:
    """Run (or continue) the collection `cfg` describes; returns the per-task summary."""
    from tqdm import tqdm

    from hume.data.writer import LeRobotWriter
    from sim.libero_env import get_task

    out = Path(cfg.output)
    task_ids = select_tasks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    check_resume(cfg, out)
    writer = LeRobotWriter(out, cfg.fps, features(cfg))
    task_index = {}
    for task_id in task_ids:
        task = get_task(cfg.suite, task_id)
        task_index[task_id] = writer.task_index(task.instruction)
    units = plan(cfg, task_ids)
    todo = [u for u in units if not writer.has_episode(u.episode_index)]
    if len(todo) < len(units):
        log.info("resuming %s: %d of %d episodes already recorded", out, len(units) - len(todo), len(units))
    bar = tqdm(
        total=len(units),
        initial=len(units) - len(todo),
        desc=f"collect {cfg.suite}",
        unit="ep",
        file=sys.stderr,
    )
    jobs = [(cfg, writer.info, task_index[u.task_id], u) for u in todo]
    pool = None
    try:
        if cfg.workers == 1:
            results = map(_run_unit_star, jobs)
        else:
            # Spawned, not forked: each worker starts its own simulator and GL context.
            pool = mp.get_context("spawn").Pool(cfg.workers)
            results = pool.imap_unordered(_run_unit_star, jobs)
        for r in results:
            u = r["unit"]
            writer.record_episode(
                u.episode_index,
                r["task"],
                r["length"],
                r["stats"],
                success=r["success"],
                suite=cfg.suite,
                task_id=u.task_id,
                init_state=u.init_state,
                seed=u.seed,
            )
            bar.update(1)
            bar.set_postfix(
                success=f"{sum(e['success'] for e in writer.episodes.values())}/{len(writer.episodes)}"
            )
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    writer.finalize()
    summary = summarize(cfg, writer)
    fmt.write_json(out / SUMMARY_FILE, summary)
    return summary


def summarize(cfg: CollectConfig, writer) -> dict:
    tasks: dict[int, dict] = {}
    for row in writer.episodes.values():
        t = tasks.setdefault(
            row["task_id"],
            {"task_id": row["task_id"], "name": row["tasks"][0], "episodes": 0, "successes": 0},
        )
        t["episodes"] += 1
        t["successes"] += int(row["success"])
    episodes = sum(t["episodes"] for t in tasks.values())
    successes = sum(t["successes"] for t in tasks.values())
    return {
        "suite": cfg.suite,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes if episodes else 0.0,
        "frames": writer.info["total_frames"],
        "tasks": [tasks[k] for k in sorted(tasks)],
    }
