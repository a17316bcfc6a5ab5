"""Training throughput of both stages: samples/s and peak memory, through `hume train`'s own loop.

Each stage runs in a fresh (forked) process, so that its peak memory is its own, on a synthetic
LeRobot dataset written here (random smooth states and actions, noise images; the numbers do not
depend on what the data shows). Within that process `hume.train.trainer.train` runs
`steps + timed_steps` steps from scratch; the trainer times every step (batch assembly to optimizer
step, without logging or checkpoints), and the mean over the last `timed_steps` is reported (the
first `steps` warm up allocators and caches). Stage `system1_value` starts from the checkpoint
stage `system2` wrote, as in real use.
Besides wall time, the process's CPU time (all its threads) per step is reported: on a machine
shared with other work it is the steadier figure.

Peak memory on the CPU is the process's peak resident set (ru_maxrss): interpreter, torch,
dataset in memory and training together; `baseline_rss_mb` is the same process before training.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.config import ConfigError
from hume.constants import ACTION_KEY, IMAGE_KEY, STATE_KEY

log = logging.getLogger(__name__)

TASKS = ("put the black bowl on the plate", "open the top drawer")
CAMERAS = ("agentview", "wrist")


@dataclass(frozen=True)
class Config:
    # Model config (a configs/model/*.yaml file).
    model: str = "configs/model/tiny.yaml"
    batch_size: int = 8
    # Untimed warm-up steps, then timed steps (all in one run).
    steps: int = 2
    timed_steps: int = 10
    # Synthetic dataset: episodes x frames, square images of this side.
    episodes: int = 4
    episode_length: int = 40
    image_size: int = 128
    threads: int = 2
    # A few-second run (batch 2, 1 + 1 steps, a small dataset) to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        for name in ("batch_size", "timed_steps", "episodes", "episode_length", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1 (the warm-up steps), got {self.steps}")
        if not Path(self.model).is_file():
            raise ConfigError(f"model config {self.model} not found (pass a configs/model/*.yaml file)")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(
            self, batch_size=2, steps=1, timed_steps=1, episodes=2, episode_length=20, image_size=64
        )


def write_dataset(root: Path, episodes: int, length: int, image_size: int) -> Path:
    """A LeRobot v2.1 dataset in our LIBERO conventions; every other episode fails (reward 0)."""
    from hume.data import LeRobotWriter
    from hume.data.format import libero_features

    writer = LeRobotWriter(root, fps=20, features=libero_features(image_size, 20, CAMERAS))
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, length, dtype=np.float32)[:, None]
    for ep in range(episodes):
        phase = rng.uniform(0, np.pi, (1, 8)).astype(np.float32)
        state = np.sin(2 * t + phase)
        action = np.cos(3 * t + phase[:, :7])
        success = ep % 2 == 0
        reward = np.zeros(length, np.float32)
        reward[-1] = float(success)
        last = np.arange(length) == length - 1
        frames = {
            **{
                IMAGE_KEY.format(cam): rng.integers(0, 256, (length, image_size, image_size, 3), np.uint8)
                for cam in CAMERAS
            },
            STATE_KEY: state,
            ACTION_KEY: action,
            "next.reward": reward,
            "next.done": last,
            "next.success": last & success,
        }
        writer.add_episode(ep, TASKS[ep % len(TASKS)], frames, success=success)
    writer.finalize()
    return root


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _measure_stage(cfg: Config, stage: str, dataset: str, init_from: str, out: str, result) -> None:
    """In a fresh process: train `stage` for steps + timed_steps steps; put the figures in `result`."""
    import torch

    from hume.train.config import TrainConfig
    from hume.train.trainer import train

    torch.set_num_threads(cfg.threads)
    baseline = _rss_mb()
    n = cfg.steps + cfg.timed_steps
    train_cfg = TrainConfig(
        stage=stage,
        dataset=dataset,
        model=cfg.model,
        init_from=init_from,
        output=f"{out}/{stage}",
        steps=n,
        batch_size=cfg.batch_size,
        save_every=n,
        log_every=n,
        resume=False,
        cpu=True,
    )
    train_cfg.validate()
    trained = train(train_cfg)
    checkpoint = str(trained.checkpoint)
    step_s = float(np.mean(trained.step_seconds[cfg.steps :]))
    cpu_step_s = float(np.mean(trained.step_cpu_seconds[cfg.steps :]))
    result.update(
        stage=stage,
        step_s=round(step_s, 4),
        samples_per_s=round(cfg.batch_size / step_s, 2),
        cpu_s_per_step=round(cpu_step_s, 4),
        samples_per_cpu_s=round(cfg.batch_size / cpu_step_s, 2),
        peak_rss_mb=round(_rss_mb(), 1),
        baseline_rss_mb=round(baseline, 1),
        checkpoint=checkpoint,
    )


def _in_fresh_process(cfg: Config, stage: str, dataset: str, init_from: str, out: str) -> dict:
    # fork: the child starts with the parent's imports (torch, the trainer) and nothing else; no
    # torch op has run in the parent, so no thread pool is inherited half-made.
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        result = manager.dict()
        proc = ctx.Process(target=_measure_stage, args=(cfg, stage, dataset, init_from, out, result))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"stage {stage}: the training process failed (exit code {proc.exitcode})")
        return dict(result)


def run(cfg: Config) -> dict:
    # Imported once, before the stages fork: the trainer, and the plotting it does at the end.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import hume.train.trainer  # noqa: F401

    cfg = cfg.effective()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hume-train-throughput-") as tmp:
        dataset = str(write_dataset(Path(tmp) / "data", cfg.episodes, cfg.episode_length, cfg.image_size))
        init_from = ""
        for stage in ("system2", "system1_value"):
            row = _in_fresh_process(cfg, stage, dataset, init_from, tmp)
            init_from = row.pop("checkpoint")
            log.info("%s", row)
            rows.append(row)
    return {
        "benchmark": "train-throughput",
        "device": "cpu",
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "timed_steps": cfg.timed_steps,
        "threads": cfg.threads,
        "image_size": cfg.image_size,
        "stages": rows,
    }


def table(result: dict) -> str:
    rows = [
        f"{'stage':<14} {'s/step':>8} {'samples/s':>10} {'CPU s/step':>11} "
        f"{'peak RSS MB':>12} {'baseline MB':>12}"
    ]
    rows += [
        f"{r['stage']:<14} {r['step_s']:>8.3f} {r['samples_per_s']:>10.2f} {r['cpu_s_per_step']:>11.3f} "
        f"{r['peak_rss_mb']:>12.0f} {r['baseline_rss_mb']:>12.0f}"
        for r in result["stages"]
    ]
    return "\n".join(rows)
