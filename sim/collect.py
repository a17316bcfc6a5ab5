"""Record LIBERO episodes as a LeRobot v2.1 dataset (`hume collect`): a scripted expert's
demonstrations, or rollouts of a trained policy, each labelled by the simulator's success check.

The plan (task, episode -> start, seed, episode index) is fixed by the config, so a collection
interrupted at any point continues where it stopped when run again with the same output folder
(sim/jobs.py): finished episodes are in meta/episodes.jsonl and are skipped. Workers write their
episodes' parquet and video files; the main process owns the dataset's metadata. Episodes start
from official initial states or from sampled ones; a sampled start is recorded whole (seed and
flattened sim state) with its distance to the nearest official state, and the summary says how
many equal one (sim/start_states.py).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.config import ConfigError, to_dict, with_defaults
from hume.constants import ACTION_KEY, DONE_KEY, IMAGE_KEY, REWARD_KEY, STATE_KEY, SUCCESS_KEY
from hume.data import format as fmt
from hume.data.labels import LABELS_FILE, read_labelled_thinks
from sim import jobs, suites
from sim.collect_config import CollectConfig
from sim.eval_config import read_saved_policy
from sim.start_states import held_out_check

log = logging.getLogger(__name__)

CONFIG_FILE = "meta/collect_config.json"
SUMMARY_FILE = "meta/collect_summary.json"

# A rollout's frames also record the value head's Q of the chunk being executed (the chosen
# candidate's; NaN with the value head off): how the critic ranks, against the episode's outcome.
POLICY_VALUE = "policy.value"


@dataclass(frozen=True)
class Unit(jobs.Unit):
    """One episode to record."""

    episode_index: int  # its index in the dataset


def select_tasks(cfg: CollectConfig) -> list[int]:
    """The config's tasks, or every task of the suite; a scripted expert must handle each
    (tasks no expert handles are skipped when none are named)."""
    from sim.experts import UnsupportedTask, check_supported
    from sim.suites import get_task, task_names

    if cfg.tasks:
        tasks = [get_task(cfg.suite, t) for t in cfg.tasks]
        if cfg.source == "expert":
            try:
                for task in tasks:
                    check_supported(task)
            except UnsupportedTask as e:
                raise ConfigError(str(e)) from None
        return [t.task_id for t in tasks]
    task_ids = []
    for task_id in range(len(task_names(cfg.suite))):
        try:
            if cfg.source == "expert":
                check_supported(get_task(cfg.suite, task_id))
            task_ids.append(task_id)
        except UnsupportedTask as e:
            log.warning("skipping: %s", e)
    if not task_ids:
        raise ConfigError(f"no task of {cfg.suite} has a scripted expert")
    return task_ids


def plan(cfg: CollectConfig, task_ids: list[int]) -> list[Unit]:
    """Every episode to record, in dataset order: task by task, or (interleave_tasks) round by
    round, so that episode k of every task comes before episode k+1 of any."""
    pairs = [(t, k) for t in task_ids for k in range(cfg.episodes_per_task)]
    if cfg.interleave_tasks:
        pairs.sort(key=lambda pair: (pair[1], task_ids.index(pair[0])))
    sampled = cfg.init_states == "sampled"
    return [
        Unit(
            task_id=t,
            episode=k,
            init_state=None if sampled else cfg.first_init_state + k,
            episode_index=i,
            seed=jobs.episode_seed(cfg.seed, t, k),
        )
        for i, (t, k) in enumerate(pairs)
    ]


def features(cfg: CollectConfig) -> dict:
    cameras = suites.cameras(cfg.suite) if cfg.cameras else ()
    out = fmt.robot_features(cfg.image_size, cfg.fps, cameras, *suites.vector_names(cfg.suite))
    if cfg.source == "policy":
        out[POLICY_VALUE] = {"dtype": "float32", "shape": [1], "names": None}
    return out


def record_episode(env, actor, obs: dict, cameras: Sequence[str]) -> tuple[dict[str, np.ndarray], bool]:
    """Run `actor` (an expert or a policy: `select_action(obs)`) from `obs`, the episode's first
    observation, until success or the step limit; frame t holds the observation the action was
    chosen on (the state and the images of `cameras`), the action, and what followed it (reward,
    done, success)."""
    observed = [STATE_KEY] + [IMAGE_KEY.format(cam) for cam in cameras]
    columns: dict[str, list] = {key: [] for key in [*observed, ACTION_KEY, SUCCESS_KEY]}
    success = False
    while not success and not env.truncated:
        action = actor.select_action(obs)
        for key in observed:
            columns[key].append(obs[key])
        columns[ACTION_KEY].append(action)
        obs, success = env.step(action)
        columns[SUCCESS_KEY].append(success)
    frames = {k: np.stack(v) for k, v in columns.items()}
    frames[ACTION_KEY] = frames[ACTION_KEY].astype(np.float32)
    frames[SUCCESS_KEY] = frames[SUCCESS_KEY].astype(bool)
    length = len(frames[ACTION_KEY])
    frames[DONE_KEY] = np.arange(length) == length - 1
    # Sparse reward: 1 on the frame whose action reached the goal, 0 elsewhere.
    frames[REWARD_KEY] = frames[SUCCESS_KEY].astype(np.float32)
    return frames, success


def start_episode(env, unit: Unit) -> tuple[dict, dict]:
    """Reset `env` to the unit's start: (first observation, what episodes.jsonl records of it)."""
    if unit.init_state is not None:
        return env.reset(unit.init_state), {"init_state": unit.init_state}
    obs = env.reset_sampled(unit.seed)
    nearest, distance = env.nearest_official()
    return obs, {
        "start_state": env.start_state.tolist(),
        "nearest_official": nearest,
        "official_distance": distance,
    }


class RolloutActor:
    """A policy in a rollout, noting with each action the Q of the chunk that action came from."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.values: list[float] = []

    def select_action(self, obs: dict) -> np.ndarray:
        action = self.policy.select_action(obs)
        chunk = self.policy.schedule.chunk
        self.values.append(float(chunk.values[chunk.index]))
        return action


def labelled_thinks(actor, episode_index: int, task_index: int) -> list[dict]:
    """The rows of hume/data/labels.py's side table for an episode whose actor branched (none
    otherwise)."""
    records = getattr(getattr(actor, "policy", None), "records", None) or []
    return [
        {
            "episode_index": episode_index,
            "frame_index": r["tick"],
            "task_index": task_index,
            "candidates": np.round(np.asarray(r["candidates"], np.float64), 5).tolist(),
            "outcomes": r["outcomes"],
            "chosen": r["chosen"],
        }
        for r in records
    ]


class Recorder:
    """Records units (in a worker) and writes their episodes' files; keeps one simulator (the
    current task's) and, for rollouts, one policy for its lifetime."""

    def __init__(self, cfg: CollectConfig, info: dict, task_index: dict[int, int]):
        self.cfg = cfg
        self.info = info
        self.task_index = task_index  # task id -> its index in the dataset
        self.envs = jobs.TaskEnv(
            cfg.suite,
            cameras=cfg.cameras,
            image_size=cfg.image_size,
            fast_render=cfg.fast_render,
            max_steps=cfg.max_steps or None,
            seed=cfg.seed,
        )
        self.policy = None
        if cfg.source == "policy":
            from sim.eval_config import EvalConfig
            from sim.evaluator import make_policy

            # The checkpoint's policy as the synchronous evaluation runs it.
            self.policy = make_policy(EvalConfig(mode="sync", policy=cfg.policy))

    def actor(self, env, unit: Unit):
        """The expert or the policy (as a RolloutActor), reset for this episode with its seed."""
        if self.policy is None:
            from sim.experts import make_expert

            expert = make_expert(env, self.cfg.noise, seed=unit.seed)
            expert.reset()
            return expert
        from sim.episode import reset_policy

        jobs.seed_everything(unit.seed)
        acting = self.policy
        if self.policy.config.selector == "oracle":
            from sim.oracle import OracleActor

            acting = OracleActor(self.policy, env, self.cfg.oracle)
        reset_policy(acting, unit.seed)
        return RolloutActor(acting)

    def run(self, unit: Unit) -> dict:
        """Record one episode and write its files; returns what the main process records of it."""
        from hume.data.writer import write_episode_files

        env = self.envs.get(unit.task_id)
        obs, start = start_episode(env, unit)
        actor = self.actor(env, unit)
        cameras = suites.cameras(self.cfg.suite) if self.cfg.cameras else ()
        frames, success = record_episode(env, actor, obs, cameras)
        if isinstance(actor, RolloutActor):
            frames[POLICY_VALUE] = np.asarray(actor.values, dtype=np.float32)
        stats = write_episode_files(
            self.cfg.output, self.info, unit.episode_index, self.task_index[unit.task_id], frames
        )
        return {
            "unit": unit,
            "task": env.instruction,
            "length": len(frames[ACTION_KEY]),
            "success": success,
            "stats": stats,
            "start": start,
            "labels": labelled_thinks(actor, unit.episode_index, self.task_index[unit.task_id]),
        }

    def close(self) -> None:
        self.envs.close()


def check_resume(cfg: CollectConfig, out: Path) -> None:
    """Continuing a collection is only sound with the same plan and recording settings (an
    interleaved plan may grow or shrink: fewer episodes per task is a prefix of more)."""
    path = out / CONFIG_FILE
    free = {"workers", "output"} | ({"episodes_per_task"} if cfg.interleave_tasks else set())
    if cfg.source == "expert":
        free |= {"policy", "oracle"}  # no policy acts
    mine = {k: v for k, v in to_dict(cfg).items() if k not in free}
    if path.is_file():
        saved = with_defaults(fmt.read_json(path), to_dict(CollectConfig()))
        saved["policy"] = read_saved_policy(saved["policy"])
        theirs = {k: v for k, v in saved.items() if k not in free}
        if theirs != mine:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ConfigError(
                f"{out} holds a collection made with other settings ({', '.join(changed)}); "
                "use another --output, or the same config to continue it"
            )
    fmt.write_json(path, to_dict(cfg))


def collect(cfg: CollectConfig) -> dict:
    """Run (or continue) the collection `cfg` describes; returns the per-task summary."""
    from tqdm import tqdm

    from hume.data.writer import LeRobotWriter
    from sim.suites import get_task

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
    make_worker = functools.partial(Recorder, cfg, writer.info, task_index)
    try:
        for r in jobs.run_units(make_worker, todo, cfg.workers, uses_torch=cfg.source == "policy"):
            u = r["unit"]
            for row in r["labels"]:  # before the episode: a crash in between re-runs both
                fmt.append_jsonl(out / LABELS_FILE, row)
            writer.record_episode(
                u.episode_index,
                r["task"],
                r["length"],
                r["stats"],
                success=r["success"],
                suite=cfg.suite,
                task_id=u.task_id,
                source=cfg.source,
                init_states=cfg.init_states,
                seed=u.seed,
                **r["start"],
            )
            bar.update(1)
            bar.set_postfix(
                success=f"{sum(e['success'] for e in writer.episodes.values())}/{len(writer.episodes)}"
            )
    finally:
        bar.close()
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
    summary = {
        "suite": cfg.suite,
        "source": cfg.source,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes if episodes else 0.0,
        "frames": writer.info["total_frames"],
        "tasks": [tasks[k] for k in sorted(tasks)],
    }
    distances = {
        e: row["official_distance"] for e, row in writer.episodes.items() if "official_distance" in row
    }
    if distances:
        summary["held_out"] = held_out_check(distances)
    labels = read_labelled_thinks(cfg.output)
    if labels:
        summary["labelled_thinks"] = len(labels)
    return summary
