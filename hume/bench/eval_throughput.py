"""LIBERO evaluation throughput: the plain loop vs our evaluator on local processes and on Ray,
same episodes, same policy, one run.

  plain      the loop of the standard LIBERO evaluation script: one process, one robosuite env per
             task with its defaults (hard reset: the simulation is rebuilt at every `reset()`;
             standard rendering with multisampling, shadows and reflections), the official
             initial state, the 10-step no-op wait, then the policy until success or the limit
  local      `sim.evaluator.evaluate` (what `hume eval` runs): soft resets, fast rendering,
             `num_workers` worker processes
  ray        the same with `backend=ray`: `num_workers` Ray tasks at a time on a private Ray
             started for the run (its start-up counted)

All run the same units (task, official initial state, seed) at the same camera resolution with
the same policy: by default the tiny Hume policy (configs/model/tiny.yaml) with fixed random
weights, which never succeeds, so every episode runs to `max_steps` and both sides do the same
number of steps (`policy=hold`, zero motion, takes the policy's cost out). Wall time counts
everything each side needs (process start, Ray start, env creation, policy building).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field

from hume.config import ConfigError

log = logging.getLogger(__name__)

POLICY_SEED = 0
POLICIES = ("hume", "hold")
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Config:
    suite: str = "libero_spatial"
    # Task ids; each runs `episodes_per_task` episodes from official initial states 0, 1, ...
    tasks: list[int] = field(default_factory=lambda: [0, 1])
    episodes_per_task: int = 2
    # Policy steps per episode (after the no-op wait).
    max_steps: int = 60
    # Rendered camera resolution (the standard LIBERO evaluation renders 256x256).
    image_size: int = 256
    # The evaluator's worker processes.
    num_workers: int = 2
    # hume: the tiny Hume policy with fixed random weights; hold: zero motion (no policy cost).
    policy: str = "hume"
    # false: no cameras on either side (state-only observations; needs policy=hold).
    render: bool = True
    seed: int = 7
    # A short run (one task, one 5-step episode, no cameras, hold policy, one worker): checks the
    # harness in seconds; its figures mean nothing.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if not self.tasks or self.episodes_per_task < 1 or self.max_steps < 1 or self.num_workers < 1:
            raise ConfigError("tasks must be non-empty; episodes_per_task, max_steps, num_workers >= 1")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be >= 16, got {self.image_size}")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.policy == "hume" and not self.render:
            raise ConfigError("the Hume policy needs camera images: use render=true, or policy=hold")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(
            self, tasks=[0], episodes_per_task=1, max_steps=5, num_workers=1, policy="hold", render=False
        )


class HoldPolicy:
    """Zero motion, gripper open: a policy that costs nothing."""

    def reset(self) -> None:
        pass

    def select_action(self, obs: dict):
        from hume.policy.hold import OPEN_GRIPPER, hold_action
        from sim.libero_env import ACTION_DIM

        return hold_action(OPEN_GRIPPER, ACTION_DIM)


def make_policy(kind: str, eval_cfg=None):
    """The policy named `kind`; with `functools.partial(make_policy, kind)` the evaluator's policy
    factory (it passes its EvalConfig, not needed here)."""
    return tiny_policy() if kind == "hume" else HoldPolicy()


def tiny_policy():
    """The tiny Hume policy with fixed random weights (the same in every process), in the
    synchronous loop."""
    import torch

    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy, SyncLoop

    torch.manual_seed(POLICY_SEED)
    return SyncLoop(HumePolicy.from_config(HumeConfig()))


def _eval_config(cfg: Config, output: str, backend: str = "local"):
    from sim.eval_config import EvalConfig

    return EvalConfig(
        backend=backend,
        suite=cfg.suite,
        tasks=[str(t) for t in cfg.tasks],
        episodes_per_task=cfg.episodes_per_task,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        image_size=cfg.image_size,
        fast_render=True,
        max_steps=cfg.max_steps,
        videos_per_task=0,
        render=cfg.render,
        output=output,
    )


def plain_loop(cfg: Config) -> dict:
    """The standard evaluation loop, written out: hard resets, default rendering, one process."""
    import torch

    from sim.episode import reset_policy
    from sim.evaluator import plan, seed_everything, select_tasks
    from sim.libero_env import NOOP_ACTION, NUM_WAIT_STEPS, to_observation

    t0 = time.perf_counter()
    torch.set_num_threads(os.cpu_count() or 1)
    eval_cfg = _eval_config(cfg, "")
    tasks = {t.task_id: t for t in select_tasks(eval_cfg)}
    policy = make_policy(cfg.policy)
    steps = episodes = 0
    env, env_task = None, None
    for unit in plan(eval_cfg, list(tasks.values())):
        task = tasks[unit.task_id]
        if env is None or env_task != unit.task_id:
            from libero.libero.envs.env_wrapper import ControlEnv, OffScreenRenderEnv

            if env is not None:
                env.close()
            if cfg.render:
                env = OffScreenRenderEnv(
                    bddl_file_name=task.bddl_file, camera_heights=cfg.image_size, camera_widths=cfg.image_size
                )
            else:
                env = ControlEnv(
                    bddl_file_name=task.bddl_file, use_camera_obs=False, has_offscreen_renderer=False
                )
            env.seed(0)
            env_task = unit.task_id
        seed_everything(unit.seed)
        env.reset()
        raw = env.set_init_state(task.init_states()[unit.init_state])
        for _ in range(NUM_WAIT_STEPS):
            raw, _, _, _ = env.step(NOOP_ACTION)
        reset_policy(policy, unit.seed)
        for _ in range(cfg.max_steps):
            raw, _, done, _ = env.step(policy.select_action(to_observation(raw, task.instruction)))
            steps += 1
            if done:
                break
        episodes += 1
    if env is not None:
        env.close()
    return {"episodes": episodes, "steps": steps, "wall_s": time.perf_counter() - t0}


def evaluator(cfg: Config, backend: str) -> dict:
    from pathlib import Path

    from sim.evaluator import EPISODE_LOG, evaluate, read_log

    t0 = time.perf_counter()
    # A short folder: a private Ray keeps its session (unix sockets) under it.
    with tempfile.TemporaryDirectory(prefix="hume-et-") as out:
        evaluate(_eval_config(cfg, out, backend), functools.partial(make_policy, cfg.policy))
        rows = list(read_log(Path(out) / EPISODE_LOG).values())
    return {
        "episodes": len(rows),
        "steps": sum(r["steps"] for r in rows),
        "wall_s": time.perf_counter() - t0,
        "num_workers": min(cfg.num_workers, len(rows)),
    }


def _rates(r: dict) -> dict:
    return {
        **r,
        "wall_s": round(r["wall_s"], 2),
        "steps_per_s": round(r["steps"] / r["wall_s"], 2),
        "episodes_per_hour": round(r["episodes"] / r["wall_s"] * 3600, 1),
    }


def run(cfg: Config) -> dict:
    cfg = cfg.effective()
    os.environ.setdefault("MUJOCO_GL", "egl")
    # Imports are paid before either clock starts (the evaluator's workers still pay their own).
    import libero.libero.envs  # noqa: F401

    import sim.evaluator  # noqa: F401

    if cfg.policy == "hume":
        import hume.policy  # noqa: F401

    plain = _rates(plain_loop(cfg))
    log.info("plain loop: %s", plain)
    ours = {}
    for backend in BACKENDS:
        ours[backend] = _rates(evaluator(cfg, backend))
        log.info("evaluator, %s: %s", backend, ours[backend])
    return {
        "benchmark": "eval-throughput",
        "suite": cfg.suite,
        "tasks": list(cfg.tasks),
        "episodes_per_task": cfg.episodes_per_task,
        "max_steps": cfg.max_steps,
        "image_size": cfg.image_size,
        "render": cfg.render,
        "policy": cfg.policy,
        "cpu_count": os.cpu_count(),
        "plain": plain,
        **ours,
        "speedup": {b: round(ours[b]["steps_per_s"] / plain["steps_per_s"], 2) for b in BACKENDS},
    }


def table(result: dict) -> str:
    rows = [f"{'loop':<10} {'episodes':>8} {'steps':>6} {'wall s':>8} {'steps/s':>8} {'episodes/h':>11}"]
    for name in ("plain", *BACKENDS):
        r = result[name]
        rows.append(
            f"{name:<10} {r['episodes']:>8} {r['steps']:>6} {r['wall_s']:>8.1f} "
            f"{r['steps_per_s']:>8.2f} {r['episodes_per_hour']:>11.1f}"
        )
    rows += [f"{b} / plain: {result['speedup'][b]:.2f}x steps/s" for b in BACKENDS]
    return "\n".join(rows)
