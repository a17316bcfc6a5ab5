"""The LIBERO evaluator: episodes in parallel workers, an append-only log, results.json.

Every episode is a unit (task, episode index) with its own initial state and seed, run and
resumed as sim/jobs.py describes: finished episodes are appended to `DIR/episodes.jsonl` by the
main process only, and a run started again skips them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hume.config import ConfigError, check_checkpoint, to_dict, with_defaults
from hume.data import format as fmt
from sim import jobs
from sim.eval_config import EvalConfig, check_policy_overrides, read_saved_policy, render_size
from sim.jobs import Unit, episode_seed, seed_everything
from sim.policies import Policy
from sim.provenance import provenance
from sim.report import write_chart, write_results
from sim.suites import check_suite, get_task, max_steps_for, num_starts, task_names

log = logging.getLogger(__name__)

EPISODE_LOG = "episodes.jsonl"
RUN_CONFIG = "eval_config.json"
# Config fields that change an episode's outcome; a resumed run must agree on all of them.
OUTCOME_FIELDS = (
    "suite",
    "mode",
    "policy",
    "oracle",
    "latency",
    "seed",
    "render",
    "image_size",
    "fast_render",
    "max_steps",
    "first_init_state",
    "deploy_config",
)


def select_tasks(cfg: EvalConfig) -> list:
    """The config's tasks (LiberoTask or RemoteTask: suite, task_id, name, instruction)."""
    check_suite(cfg.suite)
    wanted = cfg.tasks or [str(i) for i in range(len(task_names(cfg.suite)))]
    return [get_task(cfg.suite, t) for t in wanted]


def plan(cfg: EvalConfig, tasks: list) -> list[Unit]:
    """All units in task order; init states wrap around the task's official states (usually 50)."""
    units = []
    for task in tasks:
        n_states = num_starts(task)
        for e in range(cfg.episodes_per_task):
            init = (cfg.first_init_state + e) % n_states
            units.append(Unit(task.task_id, e, init, episode_seed(cfg.seed, task.task_id, e)))
    return units


def read_log(path: Path) -> dict[tuple[int, int], dict]:
    """Finished episodes by (task_id, episode), the first row of each; a torn line (a crash
    mid-write) is skipped, so that episode runs again."""
    done: dict[tuple[int, int], dict] = {}
    for row in fmt.read_log(path):
        done.setdefault((row["task_id"], row["episode"]), row)
    return done


def check_resume(cfg: EvalConfig, out: Path) -> None:
    """Refuse to mix episodes of a different evaluation into this output folder."""
    now = {k: v for k, v in to_dict(cfg).items() if k in OUTCOME_FIELDS}
    path = out / RUN_CONFIG
    if path.is_file():
        before = with_defaults(fmt.read_json(path), to_dict(EvalConfig()))
        before["policy"] = read_saved_policy(before["policy"])
        diff = sorted(k for k in OUTCOME_FIELDS if before.get(k) != now.get(k))
        if diff:
            raise ConfigError(
                f"{out} holds episodes of a different evaluation (differs in: {', '.join(diff)}); "
                "pass another --output DIR, or delete that folder to start over"
            )
    else:
        fmt.write_json(path, now)


def make_policy(cfg: EvalConfig):
    """The policy a config names, wrapped for its mode: what `select_action` is called on."""
    if cfg.policy.type == "replay":
        from sim.policies import DatasetReplayPolicy

        return DatasetReplayPolicy(cfg.policy.dataset)
    from hume.policy import HumePolicy
    from hume.policy.sync_loop import SyncLoop

    check_checkpoint(cfg.policy.checkpoint, "policy.checkpoint")
    # The dtype is applied as the weights load (an override); the device only moves them (before
    # the fast path, if on, is traced).
    overrides = cfg.policy.overrides()
    policy = HumePolicy.from_pretrained(cfg.policy.checkpoint, device=cfg.policy.device, **overrides)
    if cfg.mode == "async":
        from sim.latency import LatencyModel, VirtualClockPolicy

        return VirtualClockPolicy(
            policy,
            LatencyModel(cfg.latency, cfg.seed),
            think_every=cfg.latency.think_every,
            refine_lead=cfg.latency.refine_lead,
        )
    return SyncLoop(policy)


class Worker:
    """Runs units: keeps one simulator (the current task's) and one policy for its lifetime."""

    def __init__(self, cfg: EvalConfig, out: Path, policy_factory: Callable[[EvalConfig], Policy]):
        self.cfg = cfg
        self.out = out
        self.policy = policy_factory(cfg)
        self.envs = jobs.TaskEnv(
            cfg.suite,
            cameras=cfg.render,
            image_size=cfg.image_size,
            fast_render=cfg.fast_render,
            max_steps=cfg.max_steps or max_steps_for(cfg.suite),
        )

    def run(self, unit: Unit) -> dict:
        from sim.episode import run_episode
        from sim.oracle import OracleActor

        env = self.envs.get(unit.task_id)
        seed_everything(unit.seed)
        begin = getattr(self.policy, "begin_episode", None)
        if callable(begin):
            begin(env.task, unit.init_state, unit.seed)
        record = self.cfg.render and unit.episode < self.cfg.videos_per_task
        # Filmed as it runs under a plain name, renamed for its outcome once that is known.
        film = self.out / "videos" / f"task{unit.task_id:02d}_ep{unit.episode:03d}.mp4" if record else None
        actor = self.policy
        if getattr(getattr(self.policy, "config", None), "selector", None) == "oracle":
            actor = OracleActor(self.policy, env, self.cfg.oracle)
        # plan() gives every unit an official start; sampled starts are collect.py's alone.
        assert unit.init_state is not None
        result = run_episode(env, actor, unit.init_state, seed=unit.seed, video=film)
        row = {
            **dataclasses.asdict(unit),
            "task": env.task.name,
            "success": result.success,
            "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "final_state": result.final_state,
        }
        stats = getattr(self.policy, "episode_stats", None)
        if callable(stats):
            row.update(stats())
        if isinstance(actor, OracleActor):
            # The candidates themselves stay out of the log: a collection keeps them (sim/collect.py).
            row["oracle"] = [{k: v for k, v in r.items() if k != "candidates"} for r in actor.records]
        if film is not None:
            outcome = "success" if result.success else "failure"
            row["video"] = str(Path("videos") / f"{film.stem}_{outcome}.mp4")
            film.replace(self.out / row["video"])
        return row

    def close(self) -> None:
        self.envs.close()


def start_worker(cfg: EvalConfig, out: Path, policy_factory, threads: int) -> Worker:
    """A Worker for a worker process, torch limited to `threads` (the processes share the cores)."""
    return jobs.start_worker(functools.partial(Worker, cfg, out, policy_factory), threads, _uses_torch(cfg))


def _uses_torch(cfg: EvalConfig) -> bool:
    """Whether the config's policy runs on torch (a Hume checkpoint; a replay does not)."""
    return cfg.policy.type == "hume"


def _run_all(cfg, out, units, policy_factory, run_units) -> Iterator[dict]:
    if not units:
        return
    if run_units is not None:
        yield from run_units(cfg, out, units)
        return
    if cfg.mode == "deploy":
        raise ConfigError(
            "mode=deploy runs its episodes through the deployed nodes (deploy/libero_eval.py): "
            "use `hume eval`, or pass run_units=deploy.libero_eval.run_deploy"
        )
    if cfg.backend == "ray":
        from sim.ray_backend import run_units as run_on_ray

        yield from run_on_ray(cfg, out, units, policy_factory)
        return
    make_worker = functools.partial(Worker, cfg, out, policy_factory)
    yield from jobs.run_units(make_worker, units, cfg.num_workers, _uses_torch(cfg))


def evaluate(
    cfg: EvalConfig,
    policy_factory: Callable[[EvalConfig], Policy] | None = None,
    run_units: Callable[[EvalConfig, Path, list[Unit]], Iterator[dict]] | None = None,
) -> dict:
    """Run (or continue) the evaluation `cfg` describes; returns what results.json holds.

    `policy_factory(cfg)` builds the policy in each worker (default: the config's Hume checkpoint,
    wrapped for the mode); it must be picklable when num_workers > 1. `run_units(cfg, out, units)`
    runs the episodes instead of the evaluator's own workers, yielding one row per unit: how
    mode=deploy runs them through the deployed nodes (deploy/libero_eval.py's `run_deploy`).
    """
    from tqdm import tqdm

    custom_policy = policy_factory
    if policy_factory is None:
        if cfg.policy.type == "hume":
            check_checkpoint(cfg.policy.checkpoint, "policy.checkpoint")
        policy_factory = make_policy
    check_policy_overrides(cfg)
    cfg = dataclasses.replace(cfg, image_size=render_size(cfg))
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    check_resume(cfg, out)
    tasks = select_tasks(cfg)
    units = plan(cfg, tasks)
    log_path = out / EPISODE_LOG
    done = read_log(log_path)
    todo = [u for u in units if (u.task_id, u.episode) not in done]
    if done:
        log.info("resuming %s: %d of %d episodes already done", out, len(units) - len(todo), len(units))
    rows = [done[(u.task_id, u.episode)] for u in units if (u.task_id, u.episode) in done]
    t0 = time.monotonic()
    bar = tqdm(
        total=len(units), initial=len(rows), desc=f"{cfg.suite} {cfg.mode}", unit="ep", file=sys.stderr
    )
    try:
        for row in _run_all(cfg, out, todo, policy_factory, run_units):
            fmt.append_jsonl(log_path, row)
            rows.append(row)
            bar.update(1)
            bar.set_postfix(success=f"{sum(r['success'] for r in rows) / len(rows):.1%}")
    finally:
        bar.close()
    wall = time.monotonic() - t0
    throughput = {
        "episodes_run": len(todo),
        "wall_s": round(wall, 2),
        "episodes_per_hour": round(len(todo) / wall * 3600, 1) if todo and wall > 0 else None,
        "num_workers": 1
        if cfg.mode == "deploy" and not cfg.policy_server
        else min(cfg.num_workers, max(len(todo), 1)),
        "backend": cfg.backend,
    }
    results = write_results(out, cfg, tasks, rows, throughput, provenance(cfg, custom_policy))
    write_chart(out / "success_by_task.png", results)
    return results
